"""Close-outs (日结): each end of a branch's business day, by the duty manager or automatic."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base


class DayCloseout(Base):
    """One close-out and what it did. The automatic close-out of a business day is claimed by
    inserting its row: the unique index lets exactly one process, of however many, win it."""

    __tablename__ = "day_closeouts"
    __table_args__ = (
        Index(
            "uq_day_closeouts_automatic",
            "branch",
            "business_date",
            unique=True,
            postgresql_where=text("automatic"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    branch: Mapped[str] = mapped_column(Text, ForeignKey("branches.code", ondelete="CASCADE"))
    # The business day it ended: today's for the manager's, the day before for the automatic.
    business_date: Mapped[date] = mapped_column(Date)
    automatic: Mapped[bool] = mapped_column(Boolean)
    closed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expired: Mapped[int] = mapped_column(Integer, server_default="0")
    completed: Mapped[int] = mapped_column(Integer, server_default="0")
    counters_closed: Mapped[int] = mapped_column(Integer, server_default="0")

"""Alerts the duty manager reacts to: raised and cleared by the evaluator (SPEC §1)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base
from app.core.vocabulary import AlertKind, sql_list


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint(f"kind IN {sql_list(AlertKind)}", name="kind"),
        # One active alert per condition: `subject` is the service or counter code, or ''.
        Index(
            "uq_alerts_active",
            "branch",
            "kind",
            "subject",
            unique=True,
            postgresql_where=text("cleared_at IS NULL"),
        ),
        Index("ix_alerts_branch_since", "branch", "since"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    branch: Mapped[str] = mapped_column(Text, ForeignKey("branches.code", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text, server_default="")
    service: Mapped[str | None] = mapped_column(Text)
    counter: Mapped[str | None] = mapped_column(Text)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    detail: Mapped[str] = mapped_column(Text)
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

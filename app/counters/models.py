"""Counters (窗口 / 台席): a profile of business types, a state, a clerk, a current ticket."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, DateTime, ForeignKey, Index, Integer, Text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base
from app.core.vocabulary import CounterState, sql_list


class Counter(Base):
    __tablename__ = "counters"
    __table_args__ = (
        CheckConstraint(f"state IN {sql_list(CounterState)}", name="state"),
        # The current ticket's partition key travels with its id (set and cleared together).
        CheckConstraint(
            "(current_ticket_id IS NULL) = (current_business_date IS NULL)",
            name="current_with_date",
        ),
        # A clerk is signed in at one counter at a time.
        Index(
            "uq_counters_branch_staff_signed_in",
            "branch",
            "staff",
            unique=True,
            postgresql_where="staff IS NOT NULL",
        ),
    )

    branch: Mapped[str] = mapped_column(
        Text, ForeignKey("branches.code", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    # Ordered business-type codes: the counter's own first, fallbacks after.
    services: Mapped[list[str]] = mapped_column(ARRAY(Text))
    state: Mapped[str] = mapped_column(Text, server_default=CounterState.CLOSED)
    staff: Mapped[str | None] = mapped_column(Text)
    current_ticket_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # Its business date: the tickets partition it is in (docs/partitioning.md).
    current_business_date: Mapped[date | None] = mapped_column(Date)
    state_since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    pause_reason: Mapped[str | None] = mapped_column(Text)
    # Calls made by this counter, ever: keeps `next` honest about which call is which.
    calls: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

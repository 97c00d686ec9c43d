"""The branch event log: every ticket's history, counter changes and alerts, in one table.

Each row is written in the same transaction as the change it records and numbered with the
branch's `seq`; the lobby stream, the ticket history and the reports all read it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Text, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base


class BranchEvent(Base):
    """An event; the table is partitioned by week of `at` in UTC (docs/partitioning.md)."""

    __tablename__ = "branch_events"
    __table_args__ = (
        Index(
            "ix_branch_events_ticket_id",
            "ticket_id",
            postgresql_where=text("ticket_id IS NOT NULL"),
        ),
        Index("ix_branch_events_branch_type_at", "branch", "type", "at"),
        {"postgresql_partition_by": "RANGE (at)"},
    )

    branch: Mapped[str] = mapped_column(
        Text, ForeignKey("branches.code", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    type: Mapped[str] = mapped_column(Text)
    # The partition key, so part of the primary key (seq alone is unique per branch).
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    counter: Mapped[str | None] = mapped_column(Text)
    staff: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # Said by staff for the ticket's history only (a priority change's reason): never part of
    # the envelope the stream and webhooks send (app/events/wire.py).
    note: Mapped[str | None] = mapped_column(Text)

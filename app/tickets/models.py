"""Tickets (号票) and their daily number sequences."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    SmallInteger,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base
from app.core.vocabulary import Channel, Priority, TicketStatus, sql_list

# Not finished yet: what a close-out ends.
UNFINISHED = (TicketStatus.WAITING, TicketStatus.CALLED, TicketStatus.SERVING, TicketStatus.NO_SHOW)
# The outcomes a ticket finishes with (a no-show is both: it may still be re-queued).
FINISHED = (TicketStatus.DONE, TicketStatus.NO_SHOW, TicketStatus.CANCELLED, TicketStatus.EXPIRED)


class TicketSequence(Base):
    """The last number handed out per branch, business type and business day.

    Incremented by the statement that inserts the ticket (app/tickets/issuing.py): the row lock
    serialises concurrent issuers, and a statement that fails takes its number back with it, so
    numbers are unique and gap-free."""

    __tablename__ = "ticket_sequences"

    branch: Mapped[str] = mapped_column(Text, primary_key=True)
    service: Mapped[str] = mapped_column(Text, primary_key=True)
    business_date: Mapped[date] = mapped_column(Date, primary_key=True)
    last_value: Mapped[int] = mapped_column(Integer)


class Ticket(Base):
    """A ticket. The table is partitioned by week of `business_date` (app/core/partitions.py,
    docs/partitioning.md): every unique key includes the date, so `id` and `code` are unique
    per week by their randomness (122 and 76 bits), and a lookup that knows the date reads one
    partition."""

    __tablename__ = "tickets"
    __table_args__ = (
        ForeignKeyConstraint(
            ["branch", "service"], ["services.branch", "services.code"], ondelete="RESTRICT"
        ),
        # Numbers are unique per type of issue and day; a transfer changes `service` only.
        UniqueConstraint("branch", "issued_service", "business_date", "seq"),
        CheckConstraint(f"priority IN {sql_list(Priority)}", name="priority"),
        CheckConstraint(f"channel IN {sql_list(Channel)}", name="channel"),
        CheckConstraint(f"status IN {sql_list(TicketStatus)}", name="status"),
        CheckConstraint("lane IN (0, 1, 2)", name="lane"),
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating"),
        # The calling-order lookups only ever read waiting tickets: a partial index keeps them
        # as fast with millions of finished tickets as with none.
        Index(
            "ix_tickets_waiting",
            "branch",
            "service",
            "lane",
            "queued_at",
            postgresql_where=text("status = 'waiting'"),
        ),
        # The near front's first tickets of each type and class (app/queue/ordering.py:
        # `type_front_candidates_sql`): plain ones in calling order, and the few others.
        Index(
            "ix_tickets_waiting_plain",
            "branch",
            "service",
            "priority",
            "issued_at",
            "seq",
            "id",
            postgresql_where=text("status = 'waiting' AND lane = 1 AND queued_at = issued_at"),
        ),
        Index(
            "ix_tickets_waiting_moved",
            "branch",
            "service",
            "business_date",
            postgresql_where=text("status = 'waiting' AND (lane <> 1 OR queued_at <> issued_at)"),
        ),
        # Per business date: a retry across midnight is caught by its claim (IssueKey).
        Index(
            "uq_tickets_branch_idempotency_key",
            "branch",
            "idempotency_key",
            "business_date",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        Index("ix_tickets_branch_business_date", "branch", "business_date"),
        # What the automatic close-out looks for: tickets not finished (few, whatever the
        # history holds).
        Index(
            "ix_tickets_unfinished",
            "branch",
            "business_date",
            postgresql_where=text(f"status IN {sql_list(UNFINISHED)}"),
        ),
        # Recent service times per type, for the wait estimate.
        Index(
            "ix_tickets_done_recent",
            "branch",
            "service",
            "finished_at",
            postgresql_where=text("status = 'done'"),
        ),
        # The public key of a ticket (SPEC §9): /t/{code}, the public API.
        Index("uq_tickets_code", "code", "business_date", unique=True),
        Index(
            "ix_tickets_phone_to_erase",
            "branch",
            "business_date",
            postgresql_where=text("phone IS NOT NULL"),
        ),
        {"postgresql_partition_by": "RANGE (business_date)"},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    branch: Mapped[str] = mapped_column(Text)
    # The business type it waits for now (a transfer changes it) ...
    service: Mapped[str] = mapped_column(Text)
    # ... and the one it was issued for, whose prefix and sequence gave its number.
    issued_service: Mapped[str] = mapped_column(Text)
    # The partition key, so part of the primary key.
    business_date: Mapped[date] = mapped_column(Date, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    number: Mapped[str] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(Text)
    # Only for an SMS when the turn is near; shown masked, erased when the day is over.
    phone: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Calling order, see app.queue.ordering: lane 0 = front (transferred to the front, or a
    # re-queued no-show whose grace is used up), 1 = normal, 2 = re-queued no-show still held
    # back. Within a lane, `queued_at` orders first-come first-served.
    lane: Mapped[int] = mapped_column(SmallInteger, server_default="1")
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # For a re-queued no-show: calls made by the counters serving its type at the moment it
    # came back (see app.queue.ordering).
    requeue_base: Mapped[int | None] = mapped_column(Integer)
    # Set when a ticket was transferred to one counter: only that counter calls it.
    target_counter: Mapped[str | None] = mapped_column(Text)
    # The counter and clerk while called or serving.
    counter: Mapped[str | None] = mapped_column(Text)
    staff: Mapped[str | None] = mapped_column(Text)
    called_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_called_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    served_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    recall_count: Mapped[int] = mapped_column(Integer, server_default="0")
    transfer_count: Mapped[int] = mapped_column(Integer, server_default="0")
    idempotency_key: Mapped[str | None] = mapped_column(Text)
    rating: Mapped[int | None] = mapped_column(SmallInteger)
    rating_comment: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The ticket's public key (SPEC §9): unguessable, unique; the phone page and its QR code.
    code: Mapped[str] = mapped_column(
        Text,
        # Only for rows written without one (migration 0013, hand-written SQL): 76 random bits.
        server_default=text("substr(replace(CAST(gen_random_uuid() AS text), '-', ''), 1, 20)"),
    )
    # When `ticket.near` was emitted for it: once per ticket (app/queue/near.py).
    near_notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IssueRate(Base):
    """Tickets issued per token and minute, for the issuing rate limit (app.tickets.rate_limit)."""

    __tablename__ = "issue_rate"

    token_id: Mapped[str] = mapped_column(Text, primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    issued: Mapped[int] = mapped_column(Integer)


class IssueKey(Base):
    """An Idempotency-Key claimed by an issue. Issuing runs as one autocommitted statement; the
    claim is its first write, so a retry racing its original waits for it here (on the primary
    key) and then issues nothing, instead of taking a number it would have to give back."""

    __tablename__ = "issue_keys"

    branch: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

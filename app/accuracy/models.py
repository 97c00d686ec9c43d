"""What the accuracy figures are made of: per ticket, the wait it was quoted at issue and the
wait it had until its first call; and the errors of tickets whose quote came after that call."""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, Boolean, Float, Integer, Text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base


class EstimateQuote(Base):
    """One ticket's quote and its actual wait, written by whichever comes first (the quote
    writer or the first call) and completed by the other.

    No foreign key to `tickets`: checking it would lock the ticket's row (KEY SHARE) while the
    quote is written, and `next` (FOR UPDATE SKIP LOCKED) would pass over a waiting ticket in
    that moment. Retention deletes the rows of the tickets it deletes."""

    __tablename__ = "estimate_quotes"

    ticket_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    branch: Mapped[str] = mapped_column(Text)
    service: Mapped[str] = mapped_column(Text)  # the type the ticket was issued for
    # The quote at issue: the median and the 10th-90th percentile range, seconds.
    quoted_s: Mapped[int | None] = mapped_column(Integer)
    low_s: Mapped[int | None] = mapped_column(Integer)
    high_s: Mapped[int | None] = mapped_column(Integer)
    # Issue -> first call, seconds: kept by the first call, never changed by a later one.
    waited_s: Mapped[float | None] = mapped_column(Float)
    # The quote was written after the first call (the quote writer had not flushed yet): its
    # error is counted in `estimate_late_errors` instead of with the call's event.
    quoted_after_call: Mapped[bool] = mapped_column(Boolean, server_default="false")


class EstimateLateError(Base):
    """hallq_estimate_error_seconds' part that the event log cannot count: the errors of
    tickets whose quote was written after their first call, counted per bucket (`le`, the
    bucket's upper bound; 'Infinity' for +Inf). Only ever incremented."""

    __tablename__ = "estimate_late_errors"

    branch: Mapped[str] = mapped_column(Text, primary_key=True)
    service: Mapped[str] = mapped_column(Text, primary_key=True)
    le: Mapped[float] = mapped_column(Float, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)

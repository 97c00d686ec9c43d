"""Daily rollups of the report figures (docs/reports.md, "Rollups"): the additive parts of a
final business day's figures, so that a period report of a year reads a few thousand rows
instead of a year of events. They are a cache of `DAY_PARTS_SQL` over the history, never a
source: `rebuild_rollups` recomputes them exactly, and a day is rolled up only once nothing can
change its figures any more."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, Float, ForeignKey, Text
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base


class ReportRollupDay(Base):
    """A business day of a branch whose parts are in `report_rollups` (maybe none: a quiet
    day)."""

    __tablename__ = "report_rollup_days"

    branch: Mapped[str] = mapped_column(
        Text, ForeignKey("branches.code", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    built_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReportRollup(Base):
    """One part of a day's figures: a business type (`scope` service), or a counter or clerk
    under one business type (`service`), or a counter's or clerk's time (`service` '')."""

    __tablename__ = "report_rollups"

    branch: Mapped[str] = mapped_column(
        Text, ForeignKey("branches.code", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    scope: Mapped[str] = mapped_column(Text, primary_key=True)
    code: Mapped[str] = mapped_column(Text, primary_key=True)
    service: Mapped[str] = mapped_column(Text, primary_key=True)
    issued: Mapped[int] = mapped_column(BigInteger)
    called: Mapped[int] = mapped_column(BigInteger)
    served: Mapped[int] = mapped_column(BigInteger)
    no_show: Mapped[int] = mapped_column(BigInteger)
    cancelled: Mapped[int] = mapped_column(BigInteger)
    transferred: Mapped[int] = mapped_column(BigInteger)
    expired: Mapped[int] = mapped_column(BigInteger)
    # The waits (first calls) of the part, sorted: percentiles and shares within the target
    # are computed over any run of days from them.
    waits: Mapped[list[float]] = mapped_column(ARRAY(DOUBLE_PRECISION))
    service_sum: Mapped[float] = mapped_column(Float)
    service_n: Mapped[int] = mapped_column(BigInteger)
    rating_sum: Mapped[int] = mapped_column(BigInteger)
    ratings: Mapped[int] = mapped_column(BigInteger)
    satisfied: Mapped[int] = mapped_column(BigInteger)
    open_s: Mapped[float] = mapped_column(Float)
    serving_s: Mapped[float] = mapped_column(Float)
    signed_in_s: Mapped[float] = mapped_column(Float)
    paused_s: Mapped[float] = mapped_column(Float)
    # The estimate's accuracy (app/accuracy): first calls with a quote, the sums of their
    # absolute and signed errors (actual - quoted) and how many fell inside the quoted range.
    estimates: Mapped[int] = mapped_column(BigInteger, server_default="0")
    estimate_abs_error_s: Mapped[float] = mapped_column(Float, server_default="0")
    estimate_error_s: Mapped[float] = mapped_column(Float, server_default="0")
    estimate_in_range: Mapped[int] = mapped_column(BigInteger, server_default="0")

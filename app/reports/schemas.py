"""The reports: the daily report (one row per business type, counter and clerk, plus an
hourly curve), the period report (the same rows over a run of days, and the days), the branches
report (one row per branch) and a clerk's own tally.

Every figure is defined in docs/reports.md.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ReportFormat = Literal["json", "csv", "xlsx"]


class Figures(BaseModel):
    """The figures every row carries. `issued` and `cancelled` are null for counters and
    clerks: tickets are issued for a business type and cancelled while waiting, never at a
    counter."""

    name: str | None = Field(description="the configured name (null if no longer configured)")
    issued: int | None = Field(description="tickets issued for this type on the day")
    called: int = Field(description="tickets called for the first time on the day (the waits)")
    served: int = Field(description="tickets completed on the day")
    no_show: int = Field(description="tickets marked no-show on the day and not re-queued")
    cancelled: int | None = Field(description="waiting tickets cancelled on the day")
    transferred: int = Field(description="tickets transferred away on the day")
    expired: int = Field(
        description="tickets of the day expired at its close-out while waiting or called"
    )
    abandoned_pct: float | None = Field(
        description="% of the tickets issued that were not served: expired + cancelled + no-show"
        " over issued (business types only)"
    )
    avg_wait_s: float | None = Field(description="mean wait, issue -> first call")
    p90_wait_s: float | None = Field(description="90th percentile wait (nearest rank)")
    avg_service_s: float | None = Field(description="mean service time of served tickets")
    within_target_pct: float | None = Field(
        description="% of first calls within the business type's target wait"
    )
    rating_avg: float | None = Field(description="mean rating of the tickets served")
    ratings: int = Field(description="how many of the tickets served were rated")
    satisfaction_pct: float | None = Field(
        description="% of the ratings that are 4 or 5 (null if none was rated)"
    )


class EstimateAccuracy(BaseModel):
    """How good the waits quoted at issue were, over the first calls of tickets whose quote was
    kept (SPEC §11); null when there was none."""

    estimate_mae_s: float | None = Field(
        description="mean absolute error of the quoted wait (the median quoted at issue)"
    )
    estimate_bias_s: float | None = Field(
        description="mean of actual wait - quoted wait: positive, the estimates were too short"
    )
    estimate_in_range_pct: float | None = Field(
        description="% of the actual waits inside the range quoted at issue (10th-90th pct)"
    )


class _ServiceKey(BaseModel):
    service: str


class _CounterKey(BaseModel):
    counter: str


class _StaffKey(BaseModel):
    staff: str


class ServiceRow(EstimateAccuracy, Figures, _ServiceKey):
    pass


class CounterRow(Figures, _CounterKey):
    utilisation: float | None = Field(
        description="serving_s / open_s, 0..1; null if the counter was never open"
    )
    open_s: float = Field(description="seconds open or closing within the day")
    serving_s: float = Field(description="seconds serving a customer while open")


class StaffTime(BaseModel):
    signed_in_s: float = Field(
        description="seconds signed in at a counter (open, paused or closing)"
    )
    paused_s: float = Field(description="seconds signed in at a paused counter")
    served_per_hour: float | None = Field(
        description="tickets served per hour signed in (null if never signed in)"
    )


class StaffRow(StaffTime, Figures, _StaffKey):
    pass


class HourRow(BaseModel):
    hour: int = Field(description="local hour of the business day, 0..23")
    issued: int
    called: int = Field(description="first calls in this hour")
    avg_wait_s: float | None = Field(description="mean wait of the tickets first called")
    max_wait_s: float | None


class RatingComment(BaseModel):
    number: str
    service: str
    counter: str | None
    staff: str | None
    score: int
    comment: str
    rated_at: datetime


class DayRow(BaseModel):
    """One business day of a period: its business types together."""

    date: date
    issued: int
    served: int
    avg_wait_s: float | None
    within_target_pct: float | None
    abandoned_pct: float | None


class _TotalFigures(BaseModel):
    issued: int
    served: int
    avg_wait_s: float | None
    p90_wait_s: float | None
    within_target_pct: float | None
    abandoned_pct: float | None
    rating_avg: float | None
    satisfaction_pct: float | None


class Totals(EstimateAccuracy, _TotalFigures):
    """A branch over a period, its business types together: a row of the branches report."""


class DayFigures(BaseModel):
    date: date
    services: list[ServiceRow]
    counters: list[CounterRow]
    staff: list[StaffRow]


class _BranchKey(BaseModel):
    branch: str
    timezone: str


class DailyReport(DayFigures, _BranchKey):
    generated_at: datetime
    last_week: DayFigures = Field(description="the same weekday a week before")
    hours: list[HourRow]
    comments: list[RatingComment] = Field(
        description="rating comments of the tickets served on the day (managers only)"
    )


class PeriodReport(_BranchKey):
    """The daily report's rows over business days `from` to `to` (both included)."""

    model_config = ConfigDict(populate_by_name=True)

    from_: date = Field(alias="from", serialization_alias="from")
    to: date
    generated_at: datetime
    services: list[ServiceRow]
    counters: list[CounterRow]
    staff: list[StaffRow]
    days: list[DayRow] = Field(description="one row per business day of the period")
    total: Totals = Field(description="the whole period, as its row of the branches report")


class BranchRow(Totals):
    branch: str
    name: str
    timezone: str


class BranchesReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: date = Field(alias="from", serialization_alias="from")
    to: date
    generated_at: datetime
    branches: list[BranchRow]


class StaffTally(StaffRow):
    """A clerk's own figures of one business day (the clerk console's tally)."""

    branch: str
    date: date

"""The staffing plan (SPEC §11) and its what-if; every field is defined in docs/staffing.md."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

ComputedBy = Literal["erlang_c", "simulation", "none"]


class BasedOn(BaseModel):
    weeks: int = Field(description="the branch's staffing_weeks: how far back the forecast looks")
    days: int = Field(
        description="the days the arrivals are averaged over: the same weekday in each of those "
        "weeks, less holidays and days the branch did not open (0: no history)"
    )


class Shares(BaseModel):
    """What a number of open counters gives in an hour."""

    expected_within_target_pct: float | None = Field(
        description="% of the hour's customers expected to be called within their type's target "
        "wait (null: nobody is expected, or no history)"
    )
    expected_within_target_pct_by_service: dict[str, float] = Field(
        description="the same per business type expected in the hour"
    )
    counter_codes: list[str] = Field(
        description="the counters open, in the hour's opening order (docs/staffing.md)"
    )
    computed_by: ComputedBy = Field(
        description="erlang_c: each open counter serves one of the hour's types; simulation: "
        "the hall simulated with the calling rule; none: nobody is expected"
    )


class StaffingHour(Shares):
    hour: str = Field(description="the clock hour, HH:00 in the branch's timezone")
    arrivals: dict[str, float] = Field(
        description="forecast tickets issued in the hour per business type (empty: no history)"
    )
    service_time_s: dict[str, float] = Field(
        description="mean counter time per ticket (call to done) per business type"
    )
    recommended_counters: int | None = Field(
        description="the fewest counters open for which the expected share reaches the service "
        "level, at least the branch's minimum (null: no history)"
    )
    open_counters: int | None = Field(
        description="counters open or closing during the hour, time-weighted mean, rounded "
        "(null: the hour has not begun)"
    )
    reachable: bool = Field(
        description="false: not even every counter reaches the service level (then every "
        "counter is recommended, or the short types are named)"
    )
    short_services: list[str] = Field(
        description="types that fall short of their own share even with every counter open"
    )


class StaffingPlan(BaseModel):
    branch: str
    date: date
    service_level_pct: int
    based_on: BasedOn
    branch_counters: int = Field(description="how many counters the branch has")
    hours: list[StaffingHour] = Field(description="one row per opening hour of the date")


class WhatIf(Shares):
    branch: str
    date: date
    hour: str
    counters: int = Field(description="the number of counters asked about")
    recommended_counters: int | None
    based_on: BasedOn

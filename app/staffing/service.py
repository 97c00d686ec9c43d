"""The staffing plan of a branch for a date (SPEC §11) and its what-if: the forecast and the
counters open from the history (app.staffing.forecast), the plan hour by hour
(app.staffing.plan). docs/staffing.md says how, and what it does not foresee."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.branches.hours import Schedule
from app.branches.models import Branch, Service
from app.branches.service import get_branch, schedule_of
from app.core.dates import parse_query_date
from app.core.errors import unprocessable
from app.core.vocabulary import Priority
from app.counters.models import Counter
from app.queue.ordering import PRIORITY_ORDER
from app.simulation.hall import ServiceTime
from app.staffing.evaluate import Demand, Hall, Outcome
from app.staffing.forecast import Forecast, PlanHour, open_counters, opening_hours, read_forecast
from app.staffing.plan import HourPlan, plan_day, what_if
from app.staffing.schemas import BasedOn, Shares, StaffingHour, StaffingPlan, WhatIf

# How far ahead a plan may be asked for: next year's same weekday still has a history.
DAYS_AHEAD = 366


def parse_plan_date(value: str | None, today: date) -> date:
    """The `date` query parameter: YYYY-MM-DD from 2000 to a year ahead; missing: today."""
    if value is None:
        return today
    day = parse_query_date(value)
    if day > today + timedelta(days=DAYS_AHEAD):
        raise unprocessable(
            "invalid-date",
            f"date {day.isoformat()} is more than {DAYS_AHEAD} days after today "
            f"({today.isoformat()}): plan at most a year ahead",
        )
    return day


def natural_order(code: str) -> tuple[tuple[int, int | str], ...]:
    """Counter codes as a hall numbers them: "2" before "10"."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", code) if p)


@dataclass(frozen=True)
class Day:
    """A date of a branch made ready to plan: its opening hours, forecast and hall."""

    branch: Branch
    day: date
    hours: list[PlanHour]
    forecast: Forecast
    hall: Hall
    services: list[str]

    def demands(self) -> list[Demand]:
        times = {
            t: ServiceTime(self.forecast.service_time(t).mean_s, self.forecast.service_time(t).cv)
            for t in self.services
        }
        mixes = {t: _mix(self.forecast.priorities.get(t, {})) for t in self.services}
        demands = []
        for i, h in enumerate(self.hours):
            previous = self.hours[i - 1] if i else None
            follows = (
                previous is not None
                and previous.hour == h.hour - 1
                and previous.open_until_s == 3600.0
                and h.open_from_s == 0.0
            )
            arrivals = self.forecast.arrivals.get(h.hour, {})
            demands.append(
                Demand(
                    label=h.label,
                    arrivals={t: arrivals.get(t, 0.0) for t in self.services},
                    service_times=times,
                    priorities=mixes,
                    open_from_s=h.open_from_s,
                    open_until_s=h.open_until_s,
                    follows=follows,
                )
            )
        return demands


def _mix(shares: dict[str, float]) -> tuple[tuple[str, float], ...]:
    """A type's priority mix, in calling order; all normal without history."""
    mix = tuple((p, shares[p]) for p in PRIORITY_ORDER if shares.get(p))
    return mix or ((Priority.NORMAL, 1.0),)


async def prepare(
    session: AsyncSession, branch_code: str, day_param: str | None, now: datetime, default_s: float
) -> Day:
    branch = await get_branch(session, branch_code)
    schedule: Schedule = schedule_of(branch)
    day = parse_plan_date(day_param, schedule.business_date(now))
    services = list(
        await session.execute(
            select(Service.code, Service.target_wait_s, Service.max_wait_s)
            .where(Service.branch == branch_code)
            .order_by(Service.code)
        )
    )
    counters = sorted(
        await session.execute(
            select(Counter.code, Counter.services).where(Counter.branch == branch_code)
        ),
        key=lambda row: natural_order(row.code),
    )
    forecast = await read_forecast(
        session, branch_code, schedule, day, branch.staffing_weeks, default_s
    )
    hall = Hall(
        counters={row.code: tuple(row.services) for row in counters},
        targets_s={row.code: float(row.target_wait_s) for row in services},
        level=branch.service_level_pct / 100,
        guards_s={row.code: float(row.max_wait_s) for row in services if row.max_wait_s},
        min_open=branch.min_open_counters,
    )
    hours = opening_hours(schedule, day)
    return Day(branch, day, hours, forecast, hall, [row.code for row in services])


async def _plans(day: Day) -> list[HourPlan] | None:
    """The day's plan, or None without history (or without counters to plan)."""
    if not day.forecast.days or not day.hall.counters:
        return None
    # Some tenths of a second of CPU: off the event loop, which keeps serving meanwhile.
    return await asyncio.to_thread(plan_day, day.hall, day.demands())


def _pct(share: float | None) -> float | None:
    return None if share is None else round(100 * share, 1)


def _shares(outcome: Outcome | None) -> Shares:
    if outcome is None:
        return Shares(
            expected_within_target_pct=None,
            expected_within_target_pct_by_service={},
            counter_codes=[],
            computed_by="none",
        )
    return Shares(
        expected_within_target_pct=_pct(outcome.overall),
        expected_within_target_pct_by_service={
            t: round(100 * s, 1) for t, s in sorted(outcome.by_service.items())
        },
        counter_codes=list(outcome.counters),
        computed_by=outcome.method,
    )


def _hour_row(day: Day, index: int, plan: HourPlan | None, opened: int | None) -> StaffingHour:
    h = day.hours[index]
    arrivals: dict[str, float] = {}
    times: dict[str, float] = {}
    if plan is not None:
        arrivals = {t: round(n, 2) for t, n in plan.demand.arrivals.items()}
        times = {t: round(day.forecast.service_time(t).mean_s, 1) for t in arrivals}
    return StaffingHour(
        hour=h.label,
        arrivals=arrivals,
        service_time_s=times,
        recommended_counters=None if plan is None else plan.recommended,
        open_counters=opened,
        reachable=True if plan is None else plan.reachable,
        short_services=[] if plan is None else list(plan.short),
        **_shares(None if plan is None else plan.outcome).model_dump(),
    )


async def staffing_plan(
    session: AsyncSession, branch_code: str, day_param: str | None, now: datetime, default_s: float
) -> StaffingPlan:
    day = await prepare(session, branch_code, day_param, now, default_s)
    opened = await open_counters(session, branch_code, day.hours, now)
    await session.close()  # the plan itself needs no connection
    plans = await _plans(day)
    return StaffingPlan(
        branch=branch_code,
        date=day.day,
        service_level_pct=day.branch.service_level_pct,
        based_on=BasedOn(weeks=day.branch.staffing_weeks, days=len(day.forecast.days)),
        branch_counters=len(day.hall.counters),
        hours=[
            _hour_row(day, i, None if plans is None else plans[i], opened[h.hour])
            for i, h in enumerate(day.hours)
        ],
    )


async def staffing_what_if(
    session: AsyncSession,
    branch_code: str,
    day_param: str | None,
    hour: str,
    counters: int,
    now: datetime,
    default_s: float,
) -> WhatIf:
    day = await prepare(session, branch_code, day_param, now, default_s)
    await session.close()
    labels = [h.label for h in day.hours]
    if hour not in labels:
        opening = f"{labels[0]}-{labels[-1]}" if labels else "none: the branch is closed"
        raise unprocessable(
            "invalid-hour",
            f"hour {hour} is not an opening hour of {day.day.isoformat()} (hours: {opening})",
        )
    if counters > len(day.hall.counters):
        raise unprocessable(
            "invalid-counters",
            f"counters {counters}: the branch has {len(day.hall.counters)} counters",
        )
    plans = await _plans(day)
    index = labels.index(hour)
    plan = None if plans is None else plans[index]
    outcome = None
    if plan is not None:
        outcome = await asyncio.to_thread(what_if, day.hall, plan, counters)
    return WhatIf(
        branch=branch_code,
        date=day.day,
        hour=hour,
        counters=counters,
        recommended_counters=None if plan is None else plan.recommended,
        based_on=BasedOn(weeks=day.branch.staffing_weeks, days=len(day.forecast.days)),
        **_shares(outcome).model_dump(),
    )

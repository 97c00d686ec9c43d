"""The period report of a branch (SPEC §10): the daily report's rows over a run of business days,
the days one by one, and the total; and the branches report, one total per branch.

The final days of the period are read from the rollups (app/reports/rollups.py), built on the
way for those not rolled up yet; the days after the last final one (today, a day not closed out)
are computed from the history. Both give the same parts (app/reports/figures.py), which
app/reports/tally.py adds up: a period of one day is that day's daily report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.branches.models import Branch
from app.branches.service import schedule_of
from app.core.errors import unprocessable
from app.events.shared_reads import SharedReads
from app.reports.parts import days_parts
from app.reports.schemas import (
    BranchesReport,
    BranchRow,
    DayRow,
    PeriodReport,
    Totals,
)
from app.reports.service import branch_config, parse_report_date, report_basis, report_rows
from app.reports.tally import Tallies, Tally

MAX_PERIOD_DAYS = 366


@dataclass(frozen=True)
class Period:
    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def parse_period(first: str, last: str, today: date) -> Period:
    """`from` and `to`: calendar dates as YYYY-MM-DD, not after today, `from` not after `to`,
    at most `MAX_PERIOD_DAYS` days; else a 422 problem that says which."""
    period = Period(parse_report_date(first, today), parse_report_date(last, today))
    if period.first > period.last:
        raise unprocessable(
            "invalid-period",
            f"from ({period.first.isoformat()}) is after to ({period.last.isoformat()})",
        )
    if period.days > MAX_PERIOD_DAYS:
        raise unprocessable(
            "period-too-long",
            f"{period.first.isoformat()}..{period.last.isoformat()} is {period.days} days; "
            f"a report covers at most {MAX_PERIOD_DAYS}",
        )
    return period


def totals(tally: Tally) -> Totals:
    return Totals(
        issued=tally.issued,
        served=tally.served,
        avg_wait_s=tally.avg_wait_s(),
        p90_wait_s=tally.p90_wait_s(),
        within_target_pct=tally.within_target_pct(),
        abandoned_pct=tally.abandoned_pct(),
        rating_avg=tally.rating_avg(),
        satisfaction_pct=tally.satisfaction_pct(),
        **tally.estimate_accuracy(),
    )


def day_rows(tallies: Tallies, period: Period) -> list[DayRow]:
    rows = []
    for n in range(period.days):
        day = period.first + timedelta(days=n)
        tally = tallies.days.get(day.isoformat(), Tally())
        rows.append(
            DayRow(
                date=day,
                issued=tally.issued,
                served=tally.served,
                avg_wait_s=tally.avg_wait_s(),
                within_target_pct=tally.within_target_pct(),
                abandoned_pct=tally.abandoned_pct(),
            )
        )
    return rows


async def period_report(
    session: AsyncSession,
    branch_code: str,
    first: str,
    last: str,
    now: datetime,
    reads: SharedReads | None = None,
) -> PeriodReport:
    basis = await report_basis(session, branch_code, now, reads)
    period = parse_period(first, last, basis.schedule.business_date(now))
    parts = await days_parts(
        session, branch_code, period.first, period.last, basis.schedule, now, reads, basis.seq
    )
    await session.rollback()  # nothing more to write
    tallies = Tallies.of(parts, basis.config.targets)
    rows = report_rows(tallies, basis.config)
    return PeriodReport(
        branch=branch_code,
        timezone=basis.timezone,
        from_=period.first,
        to=period.last,
        generated_at=now,
        services=rows.services,
        counters=rows.counters,
        staff=rows.staff,
        days=day_rows(tallies, period),
        total=totals(tallies.total),
    )


# The branches report: dates are business days of each branch, so "not after today" is judged
# where today is furthest on (UTC+14); a branch still on the day before has nothing of it yet.
_FURTHEST_AHEAD = timedelta(hours=14)


async def branches_report(
    session: AsyncSession, first: str, last: str, now: datetime
) -> BranchesReport:
    period = parse_period(first, last, (now + _FURTHEST_AHEAD).date())
    # Read before any rollup is built: building commits, which expires loaded rows.
    branches = [
        (b.code, b.name, b.timezone, schedule_of(b))
        for b in await session.scalars(select(Branch).order_by(Branch.code))
    ]
    rows = []
    for code, name, timezone, schedule in branches:
        config = await branch_config(session, code)
        parts = await days_parts(session, code, period.first, period.last, schedule, now)
        tallies = Tallies.of(parts, config.targets)
        rows.append(
            BranchRow(
                branch=code, name=name, timezone=timezone, **totals(tallies.total).model_dump()
            )
        )
    await session.rollback()
    return BranchesReport(from_=period.first, to=period.last, generated_at=now, branches=rows)

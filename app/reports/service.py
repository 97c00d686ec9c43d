"""The daily report and a clerk's tally, computed from the branch history
(app/reports/figures.py), and the erasure of phone numbers once a business day is over.

A report covers one business day of a branch: from its `day_starts_at` to the next, in the
branch's timezone (`[00:00, 24:00)` by default). Each figure counts on the day its event
happened (issue, first call, completion, no-show, cancel, transfer; an expiry on the day the
ticket was issued) and for the business type, counter and clerk named by that event;
docs/reports.md defines every figure. For the current day the window ends now, so the report
is the day so far.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.branches.hours import Schedule
from app.branches.models import Service, Staff
from app.branches.service import get_branch, schedule_of
from app.core.dates import parse_query_date
from app.core.errors import unprocessable
from app.core.vocabulary import sql_list
from app.counters.models import Counter
from app.events.catalog import TICKET_SERVICE, EventType
from app.events.service import current_seq
from app.events.shared_reads import SharedReads
from app.reports import rollups
from app.reports.figures import Window, day_parts
from app.reports.parts import live_parts
from app.reports.schemas import (
    CounterRow,
    DailyReport,
    DayFigures,
    HourRow,
    RatingComment,
    ServiceRow,
    StaffRow,
    StaffTally,
)
from app.reports.tally import Tallies, Tally
from app.tickets.models import FINISHED

logger = logging.getLogger("hallq.reports")

_COMMENTS = text(
    f"""
    SELECT t.number, e.{TICKET_SERVICE} AS service, e.counter, e.staff,
           t.rating AS score, t.rating_comment AS comment, t.rated_at
    FROM branch_events e
    JOIN tickets t ON t.id = e.ticket_id
    WHERE e.branch = :branch AND e.type = '{EventType.TICKET_COMPLETED}'
      AND e.at >= :start AND e.at < :end
      AND t.rating_comment IS NOT NULL
    ORDER BY e.seq
    """  # noqa: S608 - constant fragments
)


@dataclass(frozen=True)
class Config:
    """What the reports take from a branch's configuration now: names and targets."""

    names: dict[str, dict[str, str]]  # scope -> code -> name
    targets: dict[str, int]  # business type -> target_wait_s


async def branch_config(session: AsyncSession, branch: str) -> Config:
    services = (
        await session.execute(
            select(Service.code, Service.name, Service.target_wait_s).where(
                Service.branch == branch
            )
        )
    ).all()
    counters = await session.execute(
        select(Counter.code, Counter.name).where(Counter.branch == branch)
    )
    staff = await session.execute(select(Staff.code, Staff.name).where(Staff.branch == branch))
    return Config(
        names={
            "service": {row.code: row.name for row in services},
            "counter": {code: name for code, name in counters},
            "staff": {code: name for code, name in staff},
        },
        targets={row.code: row.target_wait_s for row in services},
    )


@dataclass(frozen=True)
class Basis:
    """What a report reads of its branch before the history: the timezone and business day
    schedule, the names and targets, and the event seq they were read at (None when reads are
    not shared: no seq was read)."""

    timezone: str
    schedule: Schedule
    config: Config
    seq: int | None


async def report_basis(
    session: AsyncSession, branch_code: str, now: datetime, reads: SharedReads | None
) -> Basis:
    """The branch's `Basis`, read once for the reports a dashboard asks for together: the seq is
    read first and passed on, so that the history reads after it share by it too."""

    async def load() -> tuple[str, Schedule, Config]:
        branch = await get_branch(session, branch_code)
        return branch.timezone, schedule_of(branch), await branch_config(session, branch_code)

    if reads is None or not reads.active:
        return Basis(*await load(), seq=None)
    seq = await current_seq(session, branch_code) or 0
    timezone, schedule, config = await reads.read(
        session, branch_code, "report basis", now, load, seq
    )
    return Basis(timezone, schedule, config, seq)


def _codes(configured: Iterable[str], seen: Iterable[str]) -> list[str]:
    return sorted(set(configured) | set(seen))


@dataclass(frozen=True)
class Rows:
    services: list[ServiceRow]
    counters: list[CounterRow]
    staff: list[StaffRow]


def report_rows(tallies: Tallies, config: Config) -> Rows:
    """Every configured business type and counter (present even with nothing to show, so
    that reports line up) and every one seen; the clerks seen in the history, at work or
    signed in (a configured clerk who did not work has no row)."""
    rows, names = tallies.rows, config.names
    services = [
        ServiceRow(
            service=code,
            **rows["service"]
            .get(code, Tally())
            .figures(name=names["service"].get(code), for_type=True),
        )
        for code in _codes(names["service"], rows["service"])
    ]
    counters = []
    for code in _codes(names["counter"], rows["counter"]):
        tally = rows["counter"].get(code, Tally())
        counters.append(
            CounterRow(
                counter=code,
                **tally.figures(name=names["counter"].get(code), for_type=False),
                **tally.counter_time(),
            )
        )
    staff = [
        StaffRow(
            staff=code,
            **tally.figures(name=names["staff"].get(code), for_type=False),
            **tally.staff_time(),
        )
        for code, tally in sorted(rows["staff"].items())
    ]
    return Rows(services, counters, staff)


def hour_rows(tallies: Tallies) -> list[HourRow]:
    hours = []
    for hour in range(24):
        tally = tallies.rows["hour"].get(str(hour), Tally())
        hours.append(
            HourRow(
                hour=hour,
                issued=tally.issued,
                called=tally.called,
                avg_wait_s=tally.avg_wait_s(),
                max_wait_s=tally.max_wait_s(),
            )
        )
    return hours


def _figures(day: date, tallies: Tallies, config: Config) -> DayFigures:
    rows = report_rows(tallies, config)
    return DayFigures(date=day, services=rows.services, counters=rows.counters, staff=rows.staff)


async def _day(
    session: AsyncSession, branch: str, day: date, basis: Basis, now: datetime,
    reads: SharedReads | None,
) -> tuple[DayFigures, Tallies]:  # fmt: skip
    """The day's figures and tallies (hours included), from the history."""
    window = Window.of(day, day, basis.schedule, now)
    parts = await live_parts(reads, session, branch, window, now, basis.seq)
    tallies = Tallies.of(parts, basis.config.targets)
    return _figures(day, tallies, basis.config), tallies


async def _final_day(
    session: AsyncSession, branch: str, day: date, schedule: Schedule, now: datetime,
    config: Config,
) -> DayFigures:  # fmt: skip
    """The day's figures without its hours: from its rollup if a period report has rolled it up
    (a daily report does not build rollups: its week-old day may be older than the history)."""
    if day in await rollups.rolled_up_days(session, branch, day, day):
        parts = await rollups.rolled_up_parts(session, branch, day, day)
    else:
        parts = await day_parts(session, branch, Window.of(day, day, schedule, now))
    return _figures(day, Tallies.of(parts, config.targets), config)


def parse_report_date(value: str | None, today: date) -> date:
    """The `date` query parameter: YYYY-MM-DD, not after today; missing means today."""
    if value is None:
        return today
    day = parse_query_date(value)
    if day > today:
        raise unprocessable(
            "date-in-future",
            f"date {day.isoformat()} is after today ({today.isoformat()}) in the branch's "
            "timezone: there is nothing to report yet",
        )
    return day


async def daily_report(
    session: AsyncSession,
    branch_code: str,
    day: str | None,
    now: datetime,
    reads: SharedReads | None = None,
) -> DailyReport:
    basis = await report_basis(session, branch_code, now, reads)
    schedule, config = basis.schedule, basis.config
    report_day = parse_report_date(day, schedule.business_date(now))
    figures, tallies = await _day(session, branch_code, report_day, basis, now, reads)
    last_week = await _final_day(
        session, branch_code, report_day - timedelta(days=7), schedule, now, config
    )
    window = Window.of(report_day, report_day, schedule, now)
    comments = [
        RatingComment.model_validate(dict(row))
        for row in (await session.execute(_COMMENTS, window.params(branch_code))).mappings()
    ]
    await session.rollback()  # read-only: end the transaction
    return DailyReport(
        branch=branch_code,
        timezone=basis.timezone,
        generated_at=now,
        last_week=last_week,
        hours=hour_rows(tallies),
        comments=comments,
        **figures.model_dump(),
    )


async def staff_tally(
    session: AsyncSession,
    branch_code: str,
    staff: str,
    day: str | None,
    now: datetime,
    reads: SharedReads | None = None,
) -> StaffTally:
    """One clerk's row of the daily report (zeros if they did nothing that day)."""
    basis = await report_basis(session, branch_code, now, reads)
    report_day = parse_report_date(day, basis.schedule.business_date(now))
    figures, _ = await _day(session, branch_code, report_day, basis, now, reads)
    await session.rollback()
    row = next((r for r in figures.staff if r.staff == staff), None)
    if row is None:
        row = StaffRow(
            staff=staff,
            **Tally().figures(name=basis.config.names["staff"].get(staff), for_type=False),
            **Tally().staff_time(),
        )
    return StaffTally(branch=branch_code, date=report_day, **row.model_dump())


# -- privacy ------------------------------------------------------------------------------------


_TODAY = Schedule.business_date_sql("b")
_ERASE_PHONES = text(
    f"""
    UPDATE tickets t SET phone = NULL
    FROM branches b
    WHERE b.code = t.branch AND t.phone IS NOT NULL
      AND t.business_date < {_TODAY}
      AND (t.status IN {sql_list(FINISHED)} OR t.business_date < {_TODAY} - 1)
    """  # noqa: S608 - constant fragments
)


async def erase_expired_phones(session: AsyncSession, now: datetime) -> int:
    """Erase the phone numbers of tickets whose business day is over in their branch's
    timezone; returns how many were erased. Commits.

    An expired ticket's number goes with its day (the close-out ends tickets of earlier days
    before this runs). One of yesterday somehow still open keeps it until the day after. Safe
    to run from several processes at once and as often as wanted (a no-op when nothing is
    due)."""
    result = cast("CursorResult[Any]", await session.execute(_ERASE_PHONES, {"now": now}))
    await session.commit()
    erased = result.rowcount
    if erased:
        logger.info("erased %d phone numbers of finished business days", erased)
    return erased

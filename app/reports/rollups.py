"""Daily rollups of the report figures: the parts of a business day's figures
(app/reports/figures.py), kept once the day is final, so that a period report reads them
instead of the day's history (docs/reports.md, "Rollups").

A day is final once nothing can change its figures any more: it is over, nothing issued on it
or before is still waiting, called, being served or a no-show that could come back (the
close-out has ended them), and no counter is still open from it (the close-out closes such a
counter at the end of its day, which decides the next day's open time too). Ratings close with
the day and a no-show is re-queued on its own day only. What the reports take from the
configuration (names, the business types' targets) is applied when reading, never rolled up.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.branches.hours import Schedule
from app.business_day.service import LAST_TOUCHED_SQL
from app.core.vocabulary import CounterState, sql_list
from app.reports.figures import PART_COLUMNS, ROLLUP_SQL, Window
from app.reports.models import ReportRollup, ReportRollupDay
from app.tickets.models import UNFINISHED

# The last final business day of the branch: the day before the earliest of today, the oldest
# day with an unfinished ticket, and the day a counter still open was last used on.
_FINAL_THROUGH = text(
    f"""
    SELECT least(
        {Schedule.business_date_sql("b")},
        (SELECT min(t.business_date) FROM tickets t
         WHERE t.branch = b.code AND t.status IN {sql_list(UNFINISHED)}),
        (SELECT min({Schedule.business_date_sql("b", LAST_TOUCHED_SQL)})
         FROM counters c LEFT JOIN tickets t
           ON t.id = c.current_ticket_id AND t.business_date = c.current_business_date
         WHERE c.branch = b.code AND c.state <> '{CounterState.CLOSED}')
    ) - 1 AS final_through
    FROM branches b WHERE b.code = :branch
    """  # noqa: S608 - constant fragments
)

# Days built per statement: a month of a busy branch is about 100,000 events.
CHUNK_DAYS = 31


async def final_through(session: AsyncSession, branch: str, now: datetime) -> date:
    day: date = (await session.execute(_FINAL_THROUGH, {"branch": branch, "now": now})).scalar_one()
    return day


async def rolled_up_days(session: AsyncSession, branch: str, first: date, last: date) -> set[date]:
    rows = await session.scalars(
        select(ReportRollupDay.day).where(
            ReportRollupDay.branch == branch, ReportRollupDay.day.between(first, last)
        )
    )
    return set(rows)


def _runs(days: Sequence[date]) -> list[tuple[date, date]]:
    """Sorted days as runs of consecutive days, at most `CHUNK_DAYS` long."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if (
            runs
            and day == runs[-1][1] + timedelta(days=1)
            and ((day - runs[-1][0]).days < CHUNK_DAYS)
        ):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


async def build_rollups(
    session: AsyncSession, branch: str, days: Sequence[date], schedule: Schedule, now: datetime
) -> None:
    """Roll up `days` (final days of `branch`) from the history, and commit. Another process
    building the same days at the same time is harmless: the first one's rows stay."""
    for first, last in _runs(sorted(days)):
        # a month of a busy branch's story is sorted in memory, not on disk
        await session.execute(text("SET LOCAL work_mem = '256MB'"))
        await session.execute(ROLLUP_SQL, Window.of(first, last, schedule, now).params(branch))
        marks = [
            {"branch": branch, "day": first + timedelta(days=n), "built_at": now}
            for n in range((last - first).days + 1)
        ]
        await session.execute(insert(ReportRollupDay).values(marks).on_conflict_do_nothing())
        await session.commit()
    if len(days) >= CHUNK_DAYS:
        # Many new rows at once (a first report of a long period, a rebuild): let the planner
        # know the table's new size before it is read.
        await session.execute(text("ANALYZE report_rollups"))
        await session.commit()


_SUMMED = ", ".join(
    f"sum({name})::{'float8' if name.endswith('_s') or name == 'service_sum' else 'bigint'}"
    f" AS {name}"
    for name in PART_COLUMNS
    if name not in ("day", "scope", "code", "service", "waits")
)
_COLUMNS = ", ".join(PART_COLUMNS)

# The rolled-up parts of days `first` to `last`: the business types' day by day (for the days
# of the report), the counters' and clerks' already added up over the days in the database
# (tens of thousands of parts for a year, which would otherwise all travel to Python).
_ROLLED_UP = text(
    f"""
    WITH picked AS (
        SELECT * FROM report_rollups
        WHERE branch = :branch AND day BETWEEN :first AND :last AND scope <> 'service'
    ),
    summed AS (
        SELECT scope, code, service, {_SUMMED} FROM picked GROUP BY scope, code, service
    ),
    merged AS (
        SELECT scope, code, service, array_agg(w ORDER BY w) AS waits
        FROM picked CROSS JOIN LATERAL unnest(picked.waits) AS w
        GROUP BY scope, code, service
    )
    SELECT {_COLUMNS} FROM report_rollups
    WHERE branch = :branch AND day BETWEEN :first AND :last AND scope = 'service'
    UNION ALL
    SELECT {
        ", ".join(
            "CAST(:first AS date)"
            if name == "day"
            else "coalesce(m.waits, ARRAY[]::float8[])"
            if name == "waits"
            else f"s.{name}"
            for name in PART_COLUMNS
        )
    }
    FROM summed s LEFT JOIN merged m USING (scope, code, service)
    """  # noqa: S608 - constant fragments
)


async def rolled_up_parts(session: AsyncSession, branch: str, first: date, last: date) -> list[Any]:
    """The parts of the rolled-up days `first` to `last`, for `Tallies.of`: the same sums as
    the days' own parts (counters' and clerks' come added up over the days)."""
    params = {"branch": branch, "first": first, "last": last}
    # A year's waits (some hundreds of thousands) are merged in memory, not on disk.
    await session.execute(text("SET LOCAL work_mem = '256MB'"))
    return list((await session.execute(_ROLLED_UP, params)).all())


async def rebuild_rollups(
    session: AsyncSession, branch: str, schedule: Schedule, now: datetime
) -> int:
    """Forget the branch's rollups and roll up again every final day since its first ticket;
    returns how many days. For a repair, or after history was loaded by hand."""
    await session.execute(delete(ReportRollup).where(ReportRollup.branch == branch))
    await session.execute(delete(ReportRollupDay).where(ReportRollupDay.branch == branch))
    await session.commit()
    through = await final_through(session, branch, now)
    since = await session.scalar(
        text("SELECT min(business_date) FROM tickets WHERE branch = :branch"), {"branch": branch}
    )
    if since is None or since > through:
        return 0
    days = [since + timedelta(days=n) for n in range((through - since).days + 1)]
    await build_rollups(session, branch, days, schedule, now)
    return len(days)

"""R1: the period report of a year of a busy branch (≈ 250,000 tickets, a million events) must
answer within 2 s (issue 22). Measured in process, against the run's PostgreSQL:

- the year read afresh from the history (the statement the rollups are built with, no rollups);
- the first period report of the year, which rolls every final day up on the way;
- the period report again (from the rollups, today from the history): the figure, p50 and max;
- the daily report of one day of that year, for scale.

`python -m bench.r1_reports` measures it alone, on a PostgreSQL of its own (BENCH_QUICK=1: 90
days instead of 365); `make bench` runs it as R1.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.branches.hours import Schedule
from app.core.migrations import upgrade
from app.reports.figures import Window, day_parts
from app.reports.period import period_report
from app.reports.service import daily_report
from bench import pg as pgmod
from bench.harness import DATABASE, ROOT, Bench
from bench.report import Row, verdict
from devtools.history import SERVICES, History

BRANCH = "r1"
COUNTERS = 10
PER_DAY = 685  # x 364 days of history: 249,340 tickets
TARGET_S = 2.0
ROUNDS = 5


async def _load(dsn: str, first: date, days: int) -> None:
    """The branch, its types and counters, and `days` days of history from `first`."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO branches (code, name, timezone, created_at, updated_at)"
            " VALUES ($1, '年度营业厅 R1', 'Asia/Shanghai', now(), now())",
            BRANCH,
        )
        for code, target in zip(SERVICES, (600, 300, 180), strict=True):
            await conn.execute(
                "INSERT INTO services (branch, code, name, prefix, target_wait_s, created_at,"
                " updated_at) VALUES ($1, $2, $2, upper($2), $3, now(), now())",
                BRANCH, code, target,
            )  # fmt: skip
        for n in range(1, COUNTERS + 1):
            await conn.execute(
                "INSERT INTO counters (branch, code, name, services, state_since, created_at,"
                " updated_at) VALUES ($1, $2, $2, $3, now(), now(), now())",
                BRANCH, str(n), list(SERVICES),
            )  # fmt: skip
        async with conn.transaction():
            await History(BRANCH, first, days, PER_DAY, COUNTERS).load(conn)
        await conn.execute("VACUUM ANALYZE tickets")
        await conn.execute("VACUUM ANALYZE branch_events")
    finally:
        await conn.close()


async def _measure(url: str, first: date, last: date, now: datetime) -> dict[str, float]:
    engine = create_async_engine(url)
    timings: dict[str, float] = {}
    try:
        async with AsyncSession(engine) as session:
            schedule = Schedule.from_config("Asia/Shanghai", None, [], 0)
            started = time.monotonic()
            await day_parts(session, BRANCH, Window.of(first, last, schedule, now))
            await session.rollback()
            timings["fresh"] = time.monotonic() - started
            started = time.monotonic()
            report = await period_report(session, BRANCH, first.isoformat(), last.isoformat(), now)
            timings["first"] = time.monotonic() - started
            timings["issued"] = report.total.issued
            rounds = []
            for _ in range(ROUNDS):
                started = time.monotonic()
                await period_report(session, BRANCH, first.isoformat(), last.isoformat(), now)
                rounds.append(time.monotonic() - started)
            timings["p50"], timings["max"] = statistics.median(rounds), max(rounds)
            started = time.monotonic()
            await daily_report(session, BRANCH, (last - timedelta(days=30)).isoformat(), now)
            timings["daily"] = time.monotonic() - started
    finally:
        await engine.dispose()
    return timings


def _days(quick: bool) -> int:
    return 90 if quick else 365


def _first_day(now: datetime, days: int) -> date:
    """The period: `days` days to today (UTC's date, Shanghai's or the day before). The history
    fills them to yesterday, final and rolled up; today is read from the history."""
    return now.date() - timedelta(days=days - 1)


def _describe(t: dict[str, float], days: int) -> str:
    return (
        f"{days} days, {t['issued']:,.0f} tickets: p50 {t['p50']:.2f} s, max {t['max']:.2f} s "
        f"(first, building the rollups: {t['first']:.1f} s; afresh from the history: "
        f"{t['fresh']:.1f} s; one daily report: {t['daily']:.2f} s)"
    )


def measure(bench: Bench) -> None:
    assert bench.pg is not None
    days = _days(bench.plan.quick)
    now = datetime.now(UTC)
    first = _first_day(now, days)
    asyncio.run(_load(bench.pg.dsn(DATABASE), first, days - 1))
    timings = asyncio.run(_measure(bench.database_url, first, now.date(), now))
    bench.detail("R1 period report: " + _describe(timings, days))
    bench.rows["R1"] = [
        Row(
            f"R1 period report, {days} days",
            f"<= {TARGET_S:.0f} s",
            f"p50 {timings['p50']:.2f} s, max {timings['max']:.2f} s",
            f"afresh {timings['fresh']:.1f} s; first (rollups) {timings['first']:.1f} s",
            "—",
            verdict(timings["max"] <= TARGET_S),
        )
    ]


def main() -> int:
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    days = _days(quick)
    server = pgmod.start_server(ROOT / ".hallq" / f"bench-r1-{os.getpid()}")
    try:
        asyncio.run(pgmod.create_database(server, DATABASE))
        url = server.url(DATABASE)
        upgrade(url)
        now = datetime.now(UTC)
        first = _first_day(now, days)
        started = time.monotonic()
        asyncio.run(_load(server.dsn(DATABASE), first, days - 1))
        print(f"loaded {days} days in {time.monotonic() - started:.0f} s", flush=True)
        timings = asyncio.run(_measure(url, first, now.date(), now))
        print("R1 period report: " + _describe(timings, days))
        return 0 if timings["max"] <= TARGET_S else 1
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())

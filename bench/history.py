"""Tickets of history written in bulk (INSERT ... SELECT generate_series, bench/sql.py): B5's
million tickets of one branch, and B1's year of history over its branches
(`BENCH_HISTORY_TICKETS`, docs/performance.md "B1 with long history"), each in the weeks'
partitions when the tables are partitioned (devtools/history.py: make_weeks)."""

from __future__ import annotations

import asyncio
import time
from datetime import date, timedelta

from bench import pg as pgmod
from bench import sql
from bench.harness import DATABASE, Bench
from devtools.history import make_weeks

YEAR_DAYS = 364
HISTORY_TABLES = ("tickets", "branch_events", "ticket_sequences")
# The live days' tickets written as a hall writes them: waiting when issued (the bulk insert
# writes them finished), then called, then finished. $1 the first live day.
LIVE_CALLED_SQL = "UPDATE tickets SET status = 'called' WHERE business_date >= $1"
LIVE_FINISHED_SQL = """
    UPDATE tickets SET status = CASE WHEN served_at IS NULL THEN 'no_show' ELSE 'done' END
    WHERE business_date >= $1
"""
# The weekly partitions of the weeks before this one: autovacuum visited them in their week.
# Their names are app/core/partitions.py's; an unpartitioned schema has none.
WEEKS_OVER_SQL = """
    SELECT relname FROM pg_class
    WHERE relkind = 'r' AND relname ~ '^(tickets|branch_events)_p[0-9]{8}$'
      AND to_date(right(relname, 8), 'YYYYMMDD') BETWEEN $1 AND $2
"""


def load_history(
    bench: Bench, branch: str, count: int, last_day: date, per_day: int = 1000, key: str = ""
) -> None:
    """`count` finished tickets of `branch`, `per_day` a business day up to `last_day`, with
    three events each; `key` tells the ids of two loads into one branch apart."""
    base = int(bench.fetch("SELECT event_seq FROM branches WHERE code = $1", branch)[0][0])
    first_day = last_day - timedelta(days=-(-count // per_day) - 1)
    asyncio.run(_make_weeks(bench, first_day, last_day))
    chunk = 250_000
    for first in range(0, count, chunk):
        n = min(chunk, count - first)
        # chunks go back in time: chunk 0 ends on last_day, each later one before it
        end = last_day.fromordinal(last_day.toordinal() - first // per_day)
        _history_chunk(bench, branch, f"{branch}{key}-{first}", n, per_day, end, base + 3 * first)
    bench.execute(sql.SEQUENCES_FROM_TICKETS_SQL, branch)
    bench.execute("UPDATE branches SET event_seq = $1 WHERE code = $2", base + 3 * count, branch)


async def _make_weeks(bench: Bench, first: date, last: date) -> None:
    assert bench.pg is not None
    conn = await pgmod.connect(bench.pg, DATABASE)
    try:
        await make_weeks(conn, first, last)
    finally:
        await conn.close()


def _history_chunk(
    bench: Bench, branch: str, key: str, n: int, per_day: int, end: date, base: int
) -> None:
    async def run() -> None:
        assert bench.pg is not None
        conn = await pgmod.connect(bench.pg, DATABASE)
        try:
            async with conn.transaction():
                # A bulk load: no foreign-key trigger per row (the rows
                # are consistent by construction).
                await conn.execute("SET LOCAL session_replication_role = replica")
                await conn.execute(sql.history_tickets_sql(n, per_day), branch, end, key)
                await conn.execute(sql.history_events_sql(n), branch, base, key)
        finally:
            await conn.close()

    asyncio.run(run())


def load_year(bench: Bench, branches: list[str], total: int, live_days: int) -> str:
    """About `total` tickets over the last 52 weeks of `branches`, aged as a year of a live
    database leaves them: everything before the last `live_days` vacuumed, frozen and analyzed
    (as autovacuum's visits, anti-wraparound ones included, would have left it); the last
    `live_days` written since, each ticket updated when called and when finished, not vacuumed
    where autovacuum would not have come yet (the whole table, unpartitioned; this week's
    partitions, partitioned: the earlier weeks were visited in their week). What it loaded."""
    started = time.monotonic()
    per_day = max(1, round(total / YEAR_DAYS / len(branches)))
    yesterday = bench.day - timedelta(days=1)
    cut = yesterday - timedelta(days=live_days)
    for branch in branches:
        load_history(bench, branch, per_day * (YEAR_DAYS - live_days), cut, per_day, "y")
    bench.sql(*(f"VACUUM (FREEZE, ANALYZE) {table}" for table in HISTORY_TABLES))
    for branch in branches:
        load_history(bench, branch, per_day * live_days, yesterday, per_day, "l")
    first_live = cut + timedelta(days=1)
    bench.execute(LIVE_CALLED_SQL, first_live)
    bench.execute(LIVE_FINISHED_SQL, first_live)
    this_week = bench.day - timedelta(days=bench.day.weekday())
    over = bench.fetch(
        WEEKS_OVER_SQL, first_live - timedelta(days=7), this_week - timedelta(days=1)
    )
    bench.sql(*(f"VACUUM ANALYZE {row[0]}" for row in over))
    elapsed = time.monotonic() - started
    size = bench.fetch("SELECT pg_size_pretty(pg_database_size($1))", DATABASE)[0][0]
    partitions = bench.fetch(WEEKS_OVER_SQL, date.min, date.max)
    return (
        f"{per_day * YEAR_DAYS * len(branches):,} tickets of history ({per_day} a day in each of"
        f" {len(branches)} branches, {YEAR_DAYS} days to {yesterday}), the last {live_days} days"
        f" written live after the VACUUM FREEZE; {len(over)} partitions of weeks over vacuumed;"
        f" {len(partitions)} weekly partitions in the database, {size}; in {elapsed:.0f}s"
    )

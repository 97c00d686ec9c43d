"""devtools/history.py writes its generated history into the weeks' partitions, made before
the load as housekeeping would have made them, not into the default partition
(docs/partitioning.md); a week the default partition already holds rows of stays housekeeping's
to make."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg
from sqlalchemy import text

from app.core.partitions import BRANCH_EVENTS, TICKETS, week_start
from devtools.history import History
from tests.helpers import ADMIN, ok, setup_branch

MONDAY = date(2026, 1, 5)  # the migration made the weeks around the real today, not these
COUNTERS = {str(n): {"name": f"{n}号窗口", "services": ["a", "b", "v"]} for n in range(1, 4)}


async def _load(database_url: str, history: History) -> None:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await history.load(conn)
    finally:
        await conn.close()


async def _partitions(app: Any, sql: str) -> list[tuple[str, date]]:
    """(the partition a row lies in, the date its week is chosen by) of each row of `sql`."""
    async with app.state.sessionmaker() as session:
        return [(str(r[0]), r[1]) for r in (await session.execute(text(sql))).all()]


async def test_the_history_lies_in_its_weeks_partitions(app, client, database_url):
    await setup_branch(client, counters=COUNTERS)
    await _load(database_url, History("hz01", MONDAY - timedelta(days=3), 14, 20, len(COUNTERS)))

    tickets = await _partitions(app, "SELECT tableoid::regclass, business_date FROM tickets")
    assert len(tickets) == 14 * 20
    assert {where for where, day in tickets if where != TICKETS.partition(week_start(day))} == set()
    # (the setup's events are of the tests' clock, in November)
    events = await _partitions(
        app,
        "SELECT tableoid::regclass, CAST(timezone('UTC', at) AS date) FROM branch_events"
        " WHERE at < '2026-06-01'",
    )
    assert len(events) > len(tickets)
    wrong = {where for where, day in events if where != BRANCH_EVENTS.partition(week_start(day))}
    assert wrong == set()
    # three weeks: the Friday before MONDAY's week (with the Thursday of its events), two more
    assert len({where for where, _ in tickets}) == 3


async def test_a_week_the_default_partition_holds_is_left_to_housekeeping(
    app, client, clock, database_url
):
    await setup_branch(client, counters=COUNTERS)
    # A ticket of the second week's Friday, issued before the load: in the default partition.
    clock.set(datetime.combine(MONDAY + timedelta(days=11), time(2), UTC))
    issued = await client.post(
        "/api/v1/branches/hz01/tickets", json={"service": "a"}, headers=ADMIN
    )
    await ok(issued, 201)

    await _load(database_url, History("hz01", MONDAY, 10, 20, len(COUNTERS)))

    tickets = await _partitions(app, "SELECT tableoid::regclass, business_date FROM tickets")
    held = {where for where, day in tickets if day >= MONDAY + timedelta(days=7)}
    assert held == {TICKETS.default}
    made = {where for where, day in tickets if day < MONDAY + timedelta(days=7)}
    assert made == {TICKETS.partition(MONDAY)}

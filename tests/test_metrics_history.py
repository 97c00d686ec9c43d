"""A new process over a long history: its first scrape counts a bounded share of the event log
and answers with the database up, the rest is counted in the background, and the totals then
equal those of a process that counted everything at once (issue 25, docs/metrics.md)."""

from __future__ import annotations

import asyncio
import re
from datetime import date

import asyncpg
import httpx
from sqlalchemy import text

from app.main import create_app
from app.metrics import service as metrics_service
from devtools.history import History
from tests.helpers import setup_branch
from tests.test_metrics import Scrape, scrape

FIRST_DAY = date(2026, 1, 5)  # a Monday; ten weeks of history from it
WEEKS = 10
# The families counted from the event log, left out until a new process has counted all of it.
FROM_EVENT_LOG = {
    "hallq_tickets_issued", "hallq_tickets_finished", "hallq_wait_seconds",
    "hallq_service_seconds", "hallq_estimate_error_seconds",
}  # fmt: skip
COUNTERS = {str(n): {"name": f"{n}号窗口", "services": ["a", "b", "v"]} for n in range(1, 4)}


async def _load_history(client: httpx.AsyncClient, database_url: str) -> None:
    await setup_branch(client, counters=COUNTERS)
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await History("hz01", FIRST_DAY, 7 * WEEKS, 12, len(COUNTERS)).load(conn)
    finally:
        await conn.close()


async def test_a_new_process_answers_at_once_and_completes_its_count_in_the_background(
    app, client, clock, database_url, monkeypatch
):
    await _load_history(client, database_url)
    counted_at_once = await scrape(client)  # the fixture's process: all of it in one refresh

    monkeypatch.setattr(metrics_service, "CATCH_UP_CHUNK", 50)
    settings = app.state.settings.model_copy(update={"metrics_catch_up_events": 100})
    late = create_app(settings, clock)
    async with late.router.lifespan_context(late):
        transport = httpx.ASGITransport(app=late)
        async with httpx.AsyncClient(transport=transport, base_url="http://late.test") as c2:
            first = await scrape(c2)
            # the database answered, the gauges are there, the partial counts are not
            assert first.value("hallq_database_up") == 1
            assert first.value("hallq_waiting_tickets", branch="hz01", service="a") == 0
            assert not FROM_EVENT_LOG & set(first.families)
            complete = await _scrape_until_counted(c2)
    assert complete.series("hallq_") == counted_at_once.series("hallq_")
    assert complete.value("hallq_tickets_issued_total", branch="hz01", service="a",
                          priority="normal") > 0  # fmt: skip


async def _scrape_until_counted(client: httpx.AsyncClient) -> Scrape:
    for _ in range(600):
        scraped = await scrape(client)
        if set(scraped.families) >= FROM_EVENT_LOG:
            return scraped
        await asyncio.sleep(0.05)
    raise AssertionError("the background catch-up did not finish")


async def test_the_first_call_probe_reads_only_the_weeks_around_each_call(
    app, client, database_url
):
    """Each call's probe for the ticket's first call is pruned to the partitions of the days
    between the ticket's issue and the call, not every week of the history."""
    await _load_history(client, database_url)
    async with app.state.sessionmaker() as session:
        head = (await session.execute(text("SELECT event_seq FROM branches"))).scalar_one()
        plan = await session.execute(
            text(f"EXPLAIN (ANALYZE, COSTS OFF) {metrics_service._EVENT_TOTALS.text}"),
            {
                "branches": ["hz01"], "lo": [0], "hi": [head],
                "n_wait": 1, "neg_wait": [0.0], "n_service": 1, "neg_service": [0.0],
                "n_error": 1, "neg_error": [0.0],
            },
        )  # fmt: skip
        lines = [str(row[0]) for row in plan.all()]
    # The probe (the SubPlan) runs once per call; each run reads only the partitions its
    # bounds on `at` leave (pruned at run time), so its scans' loops add up to a few per call,
    # where an unbounded probe would read every week on every run.
    subplan = lines.index(next(line for line in lines if line.strip().startswith("SubPlan")))
    calls = int(re.findall(r"loops=(\d+)", lines[subplan + 1])[0])
    scans = [line for line in lines[subplan:] if re.search(r"Scan .* on branch_events_p", line)]
    reads = sum(int(n) for line in scans for n in re.findall(r"loops=(\d+)", line))
    assert len(scans) > WEEKS, "\n".join(lines)  # the plan covers every week ...
    assert calls > 500
    assert reads <= 3 * calls, "\n".join(lines)  # ... a run reads one to three of them

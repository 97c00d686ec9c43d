"""The wait estimate's accuracy, measured live (SPEC §11, issue 23): the quote kept with the
ticket on every way of issuing, the first call's wait beside it, exactly once whichever is
written first, and the figures of the reports and of hallq_estimate_error_seconds, by hand.

The tests' quote writer writes only when told to (tests/conftest.py), so each test decides
whether a ticket is called before or after its quote reaches the database. Where the figures
are computed by hand, the quotes are written directly with chosen values (a quote once kept
is never changed, so the writer's own quotes of those tickets then change nothing)."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from app.accuracy.service import (
    ERROR_BUCKETS,
    FLUSH_QUOTES_SQL,
    KEEP_CHOSEN_FIRST_CALL_SQL,
    Quote,
    flush_params,
    write_quotes,
)
from app.business_day.service import close_out_all_branches
from app.core.settings import Settings
from app.main import create_app
from tests.helpers import ADMIN, issue, make_token, ok, setup_branch
from tests.test_metrics import Scrape, expected_buckets, scrape
from tests.test_reports import at

B = "/api/v1/branches/hz01"
D = date(2026, 11, 24)
SERVICES = {
    "a": {"name": "综合业务", "prefix": "A", "target_wait_s": 600},
    "b": {"name": "缴费充值", "prefix": "B", "target_wait_s": 600},
}
COUNTERS = {"1": {"name": "1", "services": ["a", "b"]}, "2": {"name": "2", "services": ["b"]}}
ERROR = "hallq_estimate_error_seconds"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No metrics cache: each scrape reads the database."""
    return settings.model_copy(update={"metrics_cache_s": 0})


@pytest.fixture
async def hall(client: httpx.AsyncClient) -> None:
    await setup_branch(client, services=SERVICES, counters=COUNTERS)
    client.headers.update(ADMIN)


def assert_errors(metrics: Scrape, values: list[float], **labels: str) -> None:
    """hallq_estimate_error_seconds of `labels` holds `values`: buckets only, no _sum (the
    errors' sum can go down) and so no _count either (docs/metrics.md)."""
    buckets = {
        float(dict(lbls)["le"]): value
        for (name, lbls), value in metrics.samples.items()
        if name == f"{ERROR}_bucket" and {k: v for k, v in lbls if k != "le"} == labels
    }
    assert buckets == expected_buckets(ERROR_BUCKETS, values), (labels, buckets)
    assert not metrics.series(f"{ERROR}_sum") and not metrics.series(f"{ERROR}_count")


async def kept(app: Any, ticket_id: str) -> dict[str, Any]:
    """The ticket's row of `estimate_quotes` (an empty dict if it has none)."""
    async with app.state.sessionmaker() as session:
        row = (
            await session.execute(
                text("SELECT * FROM estimate_quotes WHERE ticket_id = :id"), {"id": ticket_id}
            )
        ).first()
        await session.rollback()
    return {} if row is None else dict(row._mapping)


def quoted(answer: dict[str, Any]) -> tuple[int, int, int]:
    """What an issue answer quoted: the median and the range."""
    low, high = answer["estimated_wait_range_s"]
    return answer["estimated_wait_s"], low, high


def quote_of(answer: dict[str, Any], service: str = "a") -> Quote:
    return Quote(uuid.UUID(answer["id"]), "hz01", service, *quoted(answer))


async def keep(app: Any, quotes: Iterable[tuple[dict[str, Any], str, int, int, int]]) -> None:
    """Write chosen quotes (ticket, type, median, low, high), as the writer would."""
    async with app.state.sessionmaker() as session:
        await write_quotes(
            session, [Quote(uuid.UUID(t["id"]), "hz01", s, m, lo, hi) for t, s, m, lo, hi in quotes]
        )


async def call(client: httpx.AsyncClient, counter: str = "1") -> dict[str, Any]:
    answer = await ok(await client.post(f"{B}/counters/{counter}/next"))
    ticket: dict[str, Any] = answer["ticket"]
    return ticket


async def someone_waits_for_a_lock(app: Any) -> None:
    """Until another session of this database waits for a lock (or fail after 10 s)."""
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    for _ in range(200):
        async with app.state.engine.connect() as conn:
            if await conn.scalar(waiting):
                return
        await asyncio.sleep(0.05)
    raise AssertionError("nobody waited for the row")


# -- the quote is kept, however the ticket was issued -------------------------------------------


async def test_every_way_of_issuing_keeps_the_quote(app, client, hall):
    branch = {"name": "hz01", "timezone": "Asia/Shanghai", "online_join": {"enabled": True}}
    await ok(await client.put(B, json=branch))
    kiosk = await make_token(client, "kiosk", "hz01")
    manager = await make_token(client, "manager", "hz01")  # the greeter's tablet, the desk
    from_kiosk = await issue(client, headers=kiosk)
    from_desk = await issue(client, service="b", headers=manager, priority="special")
    joined = await ok(
        await client.post("/api/v1/public/branches/hz01/tickets", json={"service": "a"}), 201
    )
    assert app.state.quotes.pending == 3
    assert (await app.state.quotes.flush()).kept == 3
    assert app.state.quotes.pending == 0
    async with app.state.sessionmaker() as session:
        joined_id = await session.scalar(
            text("SELECT id FROM tickets WHERE code = :code"), {"code": joined["code"]}
        )
    for ticket_id, answer, service in (
        (from_kiosk["id"], from_kiosk, "a"),
        (from_desk["id"], from_desk, "b"),
        (str(joined_id), joined, "a"),
    ):
        row = await kept(app, ticket_id)
        assert (row["quoted_s"], row["low_s"], row["high_s"]) == quoted(answer)
        assert (row["branch"], row["service"], row["waited_s"]) == ("hz01", service, None)
        assert row["quoted_after_call"] is False


async def test_a_replayed_issue_keeps_no_second_quote(app, client, hall):
    key = {"Idempotency-Key": "kiosk-7-press-1"}
    first = await issue(client, headers={**ADMIN, **key})
    again = await client.post(f"{B}/tickets", json={"service": "a"}, headers=key)
    assert again.headers["Idempotent-Replayed"] == "true" and again.json()["id"] == first["id"]
    assert app.state.quotes.pending == 1
    await app.state.quotes.flush()
    # After the flush too: the replay's answer is no new quote.
    await client.post(f"{B}/tickets", json={"service": "a"}, headers=key)
    assert app.state.quotes.pending == 0
    assert (await kept(app, first["id"]))["quoted_s"] == first["estimated_wait_s"]


async def test_a_quote_once_kept_never_changes(app, client, hall):
    ticket = await issue(client)
    await app.state.quotes.flush()
    async with app.state.sessionmaker() as session:
        again = Quote(uuid.UUID(ticket["id"]), "hz01", "a", 9999, 9000, 9999)
        assert (await write_quotes(session, [again])).kept == 0
    assert (await kept(app, ticket["id"]))["quoted_s"] == ticket["estimated_wait_s"]


async def test_the_writer_writes_on_its_own_and_when_it_stops(settings, clock, database_url):
    timed = create_app(settings.model_copy(update={"estimate_quote_flush_s": 0.05}), clock)
    transport = httpx.ASGITransport(app=timed)
    async with (
        timed.router.lifespan_context(timed),
        httpx.AsyncClient(transport=transport, base_url="http://hallq.test") as client,
    ):
        await setup_branch(client, services=SERVICES, counters=COUNTERS)
        on_time = await issue(client)
        for _ in range(200):  # written by the timer, nobody asked
            if await kept(timed, on_time["id"]):
                break
            await asyncio.sleep(0.05)
        assert (await kept(timed, on_time["id"]))["quoted_s"] == on_time["estimated_wait_s"]
    untimed = create_app(settings, clock)  # flushes only when told to, and when it stops
    transport = httpx.ASGITransport(app=untimed)
    async with (
        untimed.router.lifespan_context(untimed),
        httpx.AsyncClient(transport=transport, base_url="http://hallq.test") as client,
    ):
        last = await issue(client, headers=ADMIN)
        assert untimed.state.quotes.pending == 1
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        row = await conn.fetchrow(
            "SELECT quoted_s FROM estimate_quotes WHERE ticket_id = $1", uuid.UUID(last["id"])
        )
    finally:
        await conn.close()
    assert row is not None and row["quoted_s"] == last["estimated_wait_s"]


# -- the first call's wait, and the race with the quote -----------------------------------------


async def test_the_first_call_keeps_the_wait_and_a_later_call_does_not(app, client, clock, hall):
    await ok(await client.post(f"{B}/counters/1/open"))
    ticket = await issue(client)
    await app.state.quotes.flush()
    clock.advance(seconds=300)
    assert (await call(client))["id"] == ticket["id"]
    clock.advance(seconds=60)
    await ok(await client.post(f"{B}/counters/1/recall"))
    await ok(await client.post(f"{B}/counters/1/no-show"))
    clock.advance(seconds=120)
    await ok(await client.post(f"/api/v1/tickets/{ticket['id']}/requeue"))
    clock.advance(seconds=30)
    assert (await call(client))["id"] == ticket["id"]  # called again, 510 s after its issue
    row = await kept(app, ticket["id"])
    assert (row["waited_s"], row["quoted_after_call"]) == (300.0, False)
    body = await ok(await client.get(f"{B}/reports/daily"))
    a = body["services"][0]
    assert a["estimate_bias_s"] == 300.0 - ticket["estimated_wait_s"]


async def test_the_desks_call_keeps_the_wait(app, client, clock, hall):
    await ok(await client.post(f"{B}/counters/2/open"))
    ticket = await issue(client, service="b")
    clock.advance(seconds=45)
    await ok(await client.post(f"{B}/counters/2/call", json={"ticket": ticket["id"]}))
    row = await kept(app, ticket["id"])
    assert (row["waited_s"], row["quoted_s"]) == (45.0, None)
    # Its quote comes after the call: the flush completes the pair.
    flushed = await app.state.quotes.flush()
    assert (flushed.kept, flushed.after_call) == (1, 1)
    row = await kept(app, ticket["id"])
    assert (row["quoted_s"], row["quoted_after_call"]) == (ticket["estimated_wait_s"], True)


async def test_each_error_is_counted_once_whichever_comes_first(app, client, clock, hall):
    """A001 is called after its quote was written (counted with the call's event), A002
    before (counted by the flush): one observation each, however often Prometheus scrapes,
    and the same in a process that starts afterwards."""
    await ok(await client.post(f"{B}/counters/1/open"))
    early = await issue(client)  # A001
    await app.state.quotes.flush()
    late = await issue(client)  # A002: its quote waits in the writer
    clock.advance(seconds=100)
    assert (await call(client))["id"] == early["id"]
    await ok(await client.post(f"{B}/counters/1/complete"))
    clock.advance(seconds=20)
    assert (await call(client))["id"] == late["id"]
    errors = [100 - early["estimated_wait_s"], 120 - late["estimated_wait_s"]]

    before = await scrape(client)
    assert_errors(before, errors[:1], branch="hz01", service="a")
    assert (await app.state.quotes.flush()).after_call == 1
    for _ in range(2):
        after = await scrape(client)
        assert_errors(after, errors, branch="hz01", service="a")
    assert_errors(after, [], branch="hz01", service="b")
    second = create_app(app.state.settings, clock)
    transport = httpx.ASGITransport(app=second)
    async with (
        second.router.lifespan_context(second),
        httpx.AsyncClient(transport=transport, base_url="http://hallq.test") as other,
    ):
        fresh = await scrape(other)
    assert_errors(fresh, errors, branch="hz01", service="a")


async def test_a_call_and_a_flush_at_the_same_moment_take_turns(app, client, clock, hall):
    """Both write the ticket's row; its primary key makes the second wait for the first to
    commit, so exactly one of them completes the pair, in either order."""
    await ok(await client.post(f"{B}/counters/1/open"))
    first = await issue(client)
    second = await issue(client)
    clock.advance(seconds=200)

    # A flush of A001's quote holds its row, uncommitted, while counter 1 calls A001.
    async with app.state.engine.connect() as flushing:
        transaction = await flushing.begin()
        await flushing.execute(FLUSH_QUOTES_SQL, flush_params([quote_of(first)]))
        calling = asyncio.create_task(call(client))
        await someone_waits_for_a_lock(app)
        await transaction.commit()
    assert (await calling)["id"] == first["id"]
    row = await kept(app, first["id"])
    assert (row["waited_s"], row["quoted_after_call"]) == (200.0, False)

    # A call of A002 (the desk's statement) holds its row while the writer flushes.
    await ok(await client.post(f"{B}/counters/1/complete"))
    clock.advance(seconds=50)
    async with app.state.sessionmaker() as calling_session:
        await calling_session.execute(
            text(
                "UPDATE tickets SET status = 'called', counter = '1', called_at = :now,"
                " last_called_at = :now WHERE id = :id"
            ),
            {"now": clock.now(), "id": second["id"]},
        )
        await calling_session.execute(KEEP_CHOSEN_FIRST_CALL_SQL, {"ticket_id": second["id"]})
        flushing_task = asyncio.create_task(app.state.quotes.flush())
        await someone_waits_for_a_lock(app)
        await calling_session.commit()
    assert (await flushing_task).after_call == 1
    row = await kept(app, second["id"])
    assert (row["waited_s"], row["quoted_after_call"]) == (250.0, True)
    errors = [200 - first["estimated_wait_s"], 250 - second["estimated_wait_s"]]
    assert_errors(await scrape(client), errors, branch="hz01", service="a")


# -- the figures, by hand -----------------------------------------------------------------------


async def run_two_days(app: Any, client: httpx.AsyncClient, clock: Any) -> None:
    """D: A001 quoted 240 [120, 420] waits 300 (error +60, inside), A002 quoted 900
    [600, 1500] waits 720 (-180, inside), A003 quoted 60 is never called (no figure), B001
    quoted 100 [50, 200] waits 400 (+300, outside; its quote written after the call). D+1:
    A001 quoted 300 [200, 400] waits 500 (+200, outside)."""
    at(clock, D, "10:00")
    for counter in ("1", "2"):
        await ok(await client.post(f"{B}/counters/{counter}/open"))
    a1, a2, a3, b1 = [await issue(client, service=s) for s in ("a", "a", "a", "b")]
    await keep(app, [(a1, "a", 240, 120, 420), (a2, "a", 900, 600, 1500), (a3, "a", 60, 30, 120)])
    at(clock, D, "10:05")
    assert (await call(client, "1"))["id"] == a1["id"]
    await ok(await client.post(f"{B}/counters/1/complete"))
    clock.advance(seconds=400 - 300)  # 10:06:40
    assert (await call(client, "2"))["id"] == b1["id"]
    await keep(app, [(b1, "b", 100, 50, 200)])
    at(clock, D, "10:12")
    assert (await call(client, "1"))["id"] == a2["id"]
    await app.state.quotes.flush()  # the writer's own quotes change nothing now
    at(clock, D + timedelta(days=1), "00:00")
    assert await close_out_all_branches(app.state.sessionmaker, clock) == 1  # A003 expires
    at(clock, D + timedelta(days=1), "09:00")
    await ok(await client.post(f"{B}/counters/1/open"))
    next_a1 = await issue(client)
    await keep(app, [(next_a1, "a", 300, 200, 400)])
    clock.advance(seconds=500)
    assert (await call(client, "1"))["id"] == next_a1["id"]


def accuracy(row: dict[str, Any]) -> tuple[Any, Any, Any]:
    return row["estimate_mae_s"], row["estimate_bias_s"], row["estimate_in_range_pct"]


async def test_the_figures_by_hand(app, client, clock, hall):
    await run_two_days(app, client, clock)
    day = await ok(await client.get(f"{B}/reports/daily", params={"date": D.isoformat()}))
    a, b = day["services"]
    assert accuracy(a) == ((60 + 180) / 2, (60 - 180) / 2, 100.0)
    assert accuracy(b) == (300.0, 300.0, 0.0)
    assert all(set(accuracy(c)) == {None} for c in day["counters"] if "estimate_mae_s" in c)
    next_day = await ok(await client.get(f"{B}/reports/daily"))
    assert accuracy(next_day["services"][0]) == (200.0, 200.0, 0.0)
    assert accuracy(next_day["services"][1]) == (None, None, None)  # nothing of b called

    # The period is the days together; D is final (closed out) and read from its rollup.
    query = {"from": D.isoformat(), "to": (D + timedelta(days=1)).isoformat()}
    both = await ok(await client.get(f"{B}/reports/period", params=query))
    a, b = both["services"]
    assert accuracy(a) == (round((60 + 180 + 200) / 3, 1), round((60 - 180 + 200) / 3, 1), 66.7)
    assert accuracy(b) == (300.0, 300.0, 0.0)
    assert accuracy(both["total"]) == ((60 + 180 + 200 + 300) / 4, (60 - 180 + 200 + 300) / 4, 50.0)
    one_day = await ok(
        await client.get(f"{B}/reports/period", params={"from": D.isoformat(), "to": D.isoformat()})
    )
    assert one_day["services"] == day["services"]
    assert accuracy(one_day["total"]) == ((60 + 180 + 300) / 3, (60 - 180 + 300) / 3, 66.7)

    # The metric: every error once, under the type it was issued for.
    metrics = await scrape(client)
    assert_errors(metrics, [60, -180, 200], branch="hz01", service="a")
    assert_errors(metrics, [300], branch="hz01", service="b")

    # The CSV: a negative bias is a number, not text.
    response = await client.get(
        f"{B}/reports/daily", params={"date": D.isoformat(), "format": "csv"}
    )
    rows = {r["code"]: r for r in csv.DictReader(io.StringIO(response.text.lstrip("\ufeff")))}
    assert (rows["a"]["estimate_mae_s"], rows["a"]["estimate_bias_s"]) == ("120.0", "-60.0")
    assert (rows["b"]["estimate_in_range_pct"], rows["1"]["estimate_mae_s"]) == ("0.0", "")

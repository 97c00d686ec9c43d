"""Turn is near (SPEC §9): `ticket.near` once per ticket, wherever the queue changes.

`notify_ahead` is 3 unless a test sets it: a waiting ticket with at most 3 of its type ahead of
it in calling order is near. The event is emitted in the transaction that changed the queue,
once per ticket, never again (docs/phone.md says why), and none is missed when counters call at
once (the last test, on two server processes)."""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from app.queue.near import untold
from app.queue.near_after_commit import near_read_sql
from app.queue.ordering import TYPE_CUTOFFS_CTE, TYPE_POSITIONS_SQL
from app.queue.service import hall_params
from tests.helpers import ADMIN, issue, ok, setup_branch, stream_events
from tests.servers import running_servers

B = "/api/v1/branches/hz01"


async def near_events(app) -> list[dict]:
    return [e for e in await stream_events(app) if e["type"] == "ticket.near"]


async def near_numbers(app) -> list[str]:
    return [e["data"]["ticket"]["number"] for e in await near_events(app)]


async def next_at(client, counter: str):
    response = await client.post(f"{B}/counters/{counter}/next", headers=ADMIN)
    assert response.status_code in (200, 204), response.text
    return response.json()["ticket"] if response.status_code == 200 else None


async def test_tickets_near_at_issue_and_as_the_queue_moves(app, client):
    await setup_branch(client)
    tickets = [await issue(client) for _ in range(6)]
    # A001..A004 have 0..3 ahead when issued: near at once; A005 and A006 are not.
    assert await near_numbers(app) == ["A001", "A002", "A003", "A004"]
    events = await near_events(app)
    assert [e["data"]["waiting_ahead"] for e in events] == [0, 1, 2, 3]
    assert all(isinstance(e["data"]["estimated_wait_s"], int) for e in events)
    assert set(events[0]["data"]) == {"ticket", "waiting_ahead", "estimated_wait_s"}
    assert set(events[0]["data"]["ticket"]) == {"id", "number", "service", "priority"}
    # The event follows the issue in seq order.
    issued = [e for e in await stream_events(app) if e["type"] == "ticket.issued"]
    assert events[0]["seq"] == issued[0]["seq"] + 1

    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    assert (await next_at(client, "1"))["number"] == "A001"
    assert await near_numbers(app) == ["A001", "A002", "A003", "A004", "A005"]
    last = (await near_events(app))[-1]
    assert last["data"]["waiting_ahead"] == 3
    # The call and the near notice are one transaction: the near follows the call's events.
    called = [e for e in await stream_events(app) if e["type"] == "ticket.called"][-1]
    assert last["seq"] > called["seq"]

    # Public view: near and position agree.
    t5 = await ok(await client.get(f"/api/v1/public/tickets/{tickets[4]['code']}"))
    assert t5["near"] is True and t5["waiting_ahead"] == 3
    t6 = await ok(await client.get(f"/api/v1/public/tickets/{tickets[5]['code']}"))
    assert t6["near"] is False and t6["waiting_ahead"] == 4


async def test_a_cancel_moves_the_queue_up(app, client):
    await setup_branch(client)
    tickets = [await issue(client) for _ in range(6)]
    await ok(await client.post(f"/api/v1/tickets/{tickets[1]['id']}/cancel", headers=ADMIN))
    assert (await near_numbers(app))[-1] == "A005"
    # A cancel by the customer's phone too.
    await ok(await client.post(f"/api/v1/public/tickets/{tickets[2]['code']}/cancel"))
    assert (await near_numbers(app))[-1] == "A006"
    assert Counter(await near_numbers(app)).most_common(1)[0][1] == 1


async def test_a_call_on_another_counter_moves_the_queue_up(app, client):
    """Counter 2 serves b first, a as a fallback: its call of an a-ticket moves the a-queue."""
    await setup_branch(client)
    for _ in range(5):
        await issue(client, service="a")
    await ok(await client.post(f"{B}/counters/2/open", headers=ADMIN))
    assert (await next_at(client, "2"))["number"] == "A001"
    assert (await near_numbers(app))[-1] == "A005"


async def test_a_priority_change_and_a_transfer_bring_a_ticket_near(app, client):
    await setup_branch(client)
    tickets = [await issue(client) for _ in range(8)]
    assert "A008" not in await near_numbers(app)
    await ok(
        await client.post(
            f"/api/v1/tickets/{tickets[7]['id']}/priority",
            json={"priority": "special", "reason": "抱婴者"},
            headers=ADMIN,
        )
    )
    assert (await near_numbers(app))[-1] == "A008"
    # A ticket called by hand while far back, then transferred to the front of type b.
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    await ok(
        await client.post(f"{B}/counters/1/call", json={"ticket": tickets[6]["id"]}, headers=ADMIN)
    )
    assert "A007" not in await near_numbers(app)
    await ok(await client.post(f"{B}/counters/1/transfer", json={"service": "b"}, headers=ADMIN))
    assert (await near_numbers(app))[-1] == "A007"
    near = (await near_events(app))[-1]
    assert near["data"]["ticket"]["service"] == "b" and near["data"]["waiting_ahead"] == 0


async def test_once_per_ticket_also_after_a_requeue_or_falling_back(app, client):
    await setup_branch(client, branch={"requeue_after": 0})
    tickets = [await issue(client) for _ in range(4)]
    assert await near_numbers(app) == ["A001", "A002", "A003", "A004"]
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    await next_at(client, "1")
    await ok(await client.post(f"{B}/counters/1/no-show", headers=ADMIN))
    await ok(await client.post(f"/api/v1/tickets/{tickets[0]['id']}/requeue", headers=ADMIN))
    # Back at the front, but it was told before: no second notice.
    assert await near_numbers(app) == ["A001", "A002", "A003", "A004"]
    # Pushed back by priority tickets, then near again: still no second notice.
    for _ in range(4):
        await issue(client, priority="special")
    view = await ok(await client.get(f"/api/v1/public/tickets/{tickets[3]['code']}"))
    assert view["waiting_ahead"] > 3 and view["near"] is True
    for _ in range(6):
        await next_at(client, "1")
    counts = Counter(await near_numbers(app))
    assert set(counts.values()) == {1}


async def test_notify_ahead_per_branch(app, client):
    await setup_branch(client, branch={"notify_ahead": 0})
    for _ in range(3):
        await issue(client)
    assert await near_numbers(app) == ["A001"]
    branch = await ok(await client.get(B, headers=ADMIN))
    assert branch["notify_ahead"] == 0
    # null: no near notices at all.
    body = {"name": "x", "timezone": "Asia/Shanghai", "notify_ahead": None}
    await ok(await client.put(B, json=body, headers=ADMIN))
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    await next_at(client, "1")
    await issue(client)
    assert await near_numbers(app) == ["A001"]


# -- concurrency: two processes, many counters -------------------------------------------------

COUNTERS = 8
TICKETS = 60
CB = "/api/v1/branches/cc"


@pytest.mark.multiprocess
async def test_near_exactly_once_and_none_missed_under_concurrent_calls(database_url, pg):
    """Rounds of concurrent `next` on 8 counters (and concurrent cancels) over two processes:
    after each round every waiting ticket with at most 3 ahead has been told, and no ticket
    was told twice."""
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    with running_servers(database_url, 2) as servers:
        urls = [s.url for s in servers]
        async with httpx.AsyncClient(timeout=60) as http:

            async def put(path: str, body: dict) -> None:
                r = await http.put(f"{urls[0]}{CB}{path}", json=body, headers=ADMIN)
                assert r.status_code in (200, 201), r.text

            await put("", {"name": "Near hall", "timezone": "Asia/Shanghai"})
            await put("/services/a", {"name": "A", "prefix": "A"})
            await put("/services/b", {"name": "B", "prefix": "B"})
            for n in range(1, COUNTERS + 1):
                await put(f"/counters/{n}", {"name": str(n), "services": ["a", "b"]})
            issued = await asyncio.gather(
                *(
                    http.post(
                        f"{urls[i % 2]}{CB}/tickets",
                        json={
                            "service": "ab"[i % 2],
                            "priority": "vip" if i % 7 == 0 else "normal",
                        },
                        headers=ADMIN,
                    )
                    for i in range(TICKETS)
                )
            )
            assert all(r.status_code == 201 for r in issued)
            ids = [r.json()["id"] for r in issued]
            for n in range(1, COUNTERS + 1):
                r = await http.post(f"{urls[n % 2]}{CB}/counters/{n}/open", headers=ADMIN)
                assert r.status_code == 200
            conn = await asyncpg.connect(dsn)
            try:
                for round_ in range(6):
                    calls = [
                        http.post(f"{urls[n % 2]}{CB}/counters/{n}/next", headers=ADMIN)
                        for n in range(1, COUNTERS + 1)
                    ]
                    cancels = [
                        http.post(f"{urls[i % 2]}/api/v1/tickets/{ids[i]}/cancel", headers=ADMIN)
                        for i in range(40 + round_ * 3, 40 + round_ * 3 + 2)
                    ]
                    results = await asyncio.gather(*calls, *cancels)
                    assert all(r.status_code in (200, 204, 409) for r in results)
                    await _check_near(http, urls[0], conn)
            finally:
                await conn.close()


async def _check_near(http: httpx.AsyncClient, url: str, conn: asyncpg.Connection) -> None:
    listed = await http.get(
        f"{url}{CB}/tickets", params={"status": "waiting", "limit": 200}, headers=ADMIN
    )
    assert listed.status_code == 200
    front = {t["id"] for t in listed.json()["tickets"] if t["position"] <= 4}
    rows = await conn.fetch(
        "SELECT ticket_id, count(*) AS n FROM branch_events"
        " WHERE branch = 'cc' AND type = 'ticket.near' GROUP BY ticket_id"
    )
    told = {str(r["ticket_id"]): r["n"] for r in rows}
    assert all(n == 1 for n in told.values()), told
    missed = front - set(told)
    assert not missed, f"near but never told: {missed}"
    marked = await conn.fetch(
        "SELECT id FROM tickets WHERE branch = 'cc' AND near_notified_at IS NOT NULL"
    )
    assert {str(r["id"]) for r in marked} == set(told)


async def test_the_front_read_from_each_class_head_is_the_calling_orders(
    app, client, clock, settings
):
    """The near check sorts only each priority class's first plain tickets and every ticket
    moved in the queue (app/queue/ordering.py: `type_front_candidates_sql`), not the whole
    queue: its front must be the full calling order's first tickets."""
    await setup_branch(client, branch={"notify_ahead": 5, "requeue_after": 3})
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    normal = []
    for _ in range(8):
        normal.append(await issue(client))
        clock.advance(30)
    # A re-queued no-show (held back), and a ticket transferred back to its type's front.
    await next_at(client, "1")
    await ok(await client.post(f"{B}/counters/1/no-show", headers=ADMIN))
    await ok(await client.post(f"/api/v1/tickets/{normal[0]['id']}/requeue", headers=ADMIN))
    await issue(client, priority="vip")
    await issue(client, priority="special")
    chosen = {"ticket": normal[6]["id"]}
    await ok(await client.post(f"{B}/counters/1/call", json=chosen, headers=ADMIN))
    await ok(await client.post(f"{B}/counters/1/transfer", json={"service": "a"}, headers=ADMIN))
    now = clock.now()
    async with app.state.sessionmaker() as session:
        await session.execute(text("UPDATE tickets SET near_notified_at = NULL"))
        read = {**hall_params("hz01", now, settings), "services": ["a"]}
        front = untold((await session.execute(near_read_sql(None), read)).one().untold)
        positions = text(f"WITH {TYPE_CUTOFFS_CTE} {TYPE_POSITIONS_SQL} ORDER BY position")
        params = {"branch": "hz01", "service": "a", "now": now, "requeue_after": 3}
        ordered = (await session.scalars(positions, params)).all()
        await session.rollback()
    assert [near.ref.id for near in front] == ordered[:6]
    numbers = [near.ref.number for near in front]
    # The front lane, special, vip, then the normal class's first (the no-show is held back).
    assert numbers == ["A007", "A010", "A009", "A002", "A003", "A004"], numbers

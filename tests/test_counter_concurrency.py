"""Many counters pressing next at once, over two server processes, racing cancels and transfers.

Proves the claims of SPEC §1 "Calling": no ticket is ever held by two counters, none is called
twice (except once more after each transfer, which puts it back in a queue), none is lost.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from typing import Any

import asyncpg
import httpx
import pytest

from tests.helpers import ADMIN
from tests.servers import running_servers

pytestmark = pytest.mark.multiprocess

COUNTERS = 32
TICKETS = 300
BRANCH = "/api/v1/branches/cc"


async def configure(http: httpx.AsyncClient, url: str) -> None:
    async def put(path: str, body: dict) -> None:
        response = await http.put(f"{url}{BRANCH}{path}", json=body, headers=ADMIN)
        assert response.status_code in (200, 201), response.text

    await put("", {"name": "Concurrency hall", "timezone": "Asia/Shanghai"})
    await put("/services/a", {"name": "A", "prefix": "A"})
    await put("/services/b", {"name": "B", "prefix": "B"})
    for n in range(1, COUNTERS + 1):
        await put(f"/counters/{n}", {"name": str(n), "services": ["a", "b"]})


async def test_counters_pressing_next_at_once_never_share_a_ticket(database_url, pg):
    await race_counters(pg, database_url)


async def race_counters(
    pg: Any, database_url: str, *, via: str | None = None, env: dict[str, str] | None = None
) -> None:
    """The race, over two server processes that reach the database at `via` (a pooler) or
    `database_url`; then the database is read directly and judged."""
    rng = random.Random(7)
    with running_servers(via or database_url, 2, env=env) as servers:
        urls = [s.url for s in servers]
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            await configure(http, urls[0])
            # Issue the tickets concurrently through both processes, too.
            issued = await asyncio.gather(
                *(
                    http.post(
                        f"{urls[i % 2]}{BRANCH}/tickets",
                        json={"service": "a", "priority": rng.choice(["normal", "normal", "vip"])},
                        headers=ADMIN,
                    )
                    for i in range(TICKETS)
                )
            )
            assert all(r.status_code == 201 for r in issued), {r.status_code for r in issued}
            ticket_ids = [r.json()["id"] for r in issued]
            for n in range(1, COUNTERS + 1):
                r = await http.post(f"{urls[n % 2]}{BRANCH}/counters/{n}/open", headers=ADMIN)
                assert r.status_code == 200, r.text

            calls: list[tuple[int, str]] = []
            transferred: set[str] = set()
            cancelled: set[str] = set()
            refused: list[str] = []

            async def counter_worker(n: int) -> None:
                url = urls[n % 2]
                idle = 0
                while idle < 3:
                    r = await http.post(f"{url}{BRANCH}/counters/{n}/next", headers=ADMIN)
                    if r.status_code == 204:
                        idle += 1
                        await asyncio.sleep(0.01)
                        continue
                    assert r.status_code == 200, r.text
                    idle = 0
                    ticket = r.json()["ticket"]
                    calls.append((n, ticket["id"]))
                    # Now and then the clerk sends an A ticket to the B queue, at the front.
                    if ticket["service"] == "a" and rng.random() < 0.1:
                        t = await http.post(
                            f"{url}{BRANCH}/counters/{n}/transfer",
                            json={"service": "b"},
                            headers=ADMIN,
                        )
                        assert t.status_code == 200, t.text
                        transferred.add(ticket["id"])

            async def canceller() -> None:
                # Customers give up while the counters call: each cancel either wins (the
                # ticket was still waiting) or gets a 409 because a counter claimed it first.
                # Every other try aims at the ticket called last, to make the race close.
                for i, ticket_id in enumerate(rng.sample(ticket_ids, 60)):
                    if i % 2 and calls:
                        ticket_id = calls[-1][1]
                    r = await http.post(
                        f"{urls[rng.randrange(2)]}/api/v1/tickets/{ticket_id}/cancel",
                        headers=ADMIN,
                    )
                    assert r.status_code in (200, 409), r.text
                    if r.status_code == 200:
                        cancelled.add(ticket_id)
                    else:
                        refused.append(ticket_id)
                    await asyncio.sleep(0.005)

            await asyncio.gather(*(counter_worker(n) for n in range(1, COUNTERS + 1)), canceller())

    # The database is the judge: every ticket's history must be a legal life.
    conn = await asyncpg.connect(pg.dsn(database_url.rsplit("/", 1)[1]))
    try:
        statuses = dict(await conn.fetch("SELECT id::text, status FROM tickets"))
        events = await conn.fetch(
            "SELECT ticket_id::text AS ticket, type, counter, seq FROM branch_events"
            " WHERE ticket_id IS NOT NULL ORDER BY seq"
        )
        seqs = [r["seq"] for r in await conn.fetch("SELECT seq FROM branch_events ORDER BY seq")]
    finally:
        await conn.close()

    assert len(statuses) == TICKETS
    # Nothing lost: every ticket ended done or cancelled.
    assert Counter(statuses.values()) == {
        "done": TICKETS - len(cancelled),
        "cancelled": len(cancelled),
    }
    # The event log is gap-free per branch.
    assert seqs == list(range(1, len(seqs) + 1))

    lives: dict[str, list[str]] = defaultdict(list)
    holder: dict[str, str | None] = {}
    for e in events:
        lives[e["ticket"]].append(e["type"])
        if e["type"] == "ticket.called":
            # Never called while some counter still holds it.
            assert holder.get(e["ticket"]) is None, (e["ticket"], holder[e["ticket"]], e["counter"])
            holder[e["ticket"]] = e["counter"]
        elif e["type"] in ("ticket.transferred", "ticket.completed"):
            assert holder.get(e["ticket"]) == e["counter"]
            holder[e["ticket"]] = None

    for ticket_id, life in lives.items():
        transfers = life.count("ticket.transferred")
        if ticket_id in cancelled:
            assert life[-1] == "ticket.cancelled"
            assert life.count("ticket.called") == transfers
        else:
            # Called once, plus once more after each transfer; completed once.
            assert life.count("ticket.called") == transfers + 1, life
            assert life[-1] == "ticket.completed" and life.count("ticket.completed") == 1

    # What the clients saw matches the log: no counter got a ticket another counter held.
    assert len(calls) == sum(life.count("ticket.called") for life in lives.values())
    assert transferred, "the run should have exercised transfers"
    assert cancelled, "the run should have exercised cancels"
    assert refused, "some cancels should have lost the race to a counter"
    assert not cancelled & {t for _, t in calls} - transferred, "a called ticket was cancelled"

"""The close-out across server processes (SPEC §5): the automatic one runs once however many
processes try, and the manager's races `next` and issuing without a ticket called after it
expired or expired twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import asyncpg
import httpx
import pytest

from tests.helpers import ADMIN
from tests.servers import running_servers

pytestmark = pytest.mark.multiprocess

BRANCHES = ("d1", "d2", "d3")
COUNTERS = 6


async def configure(http: httpx.AsyncClient, url: str, branch: str) -> None:
    async def put(path: str, body: dict[str, Any]) -> None:
        response = await http.put(f"{url}/api/v1/branches/{branch}{path}", json=body, headers=ADMIN)
        assert response.status_code in (200, 201), response.text

    await put("", {"name": branch, "timezone": "Asia/Shanghai"})
    await put("/services/a", {"name": "A", "prefix": "A"})
    for n in range(1, COUNTERS + 1):
        await put(f"/counters/{n}", {"name": str(n), "services": ["a"]})


async def post(http: httpx.AsyncClient, url: str, path: str, **kwargs: Any) -> httpx.Response:
    return await http.post(f"{url}/api/v1{path}", headers=ADMIN, **kwargs)


async def post_ok(http: httpx.AsyncClient, url: str, path: str, **kwargs: Any) -> None:
    response = await post(http, url, path, **kwargs)
    assert response.is_success, response.text


async def _events(conn: asyncpg.Connection, type_: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT branch, seq, ticket_id::text AS ticket FROM branch_events WHERE type = $1"
        " ORDER BY branch, seq",
        type_,
    )
    return rows


async def test_the_automatic_close_out_runs_once_over_two_processes(database_url, pg):
    # Rounds every 0.2 s, each claimed by one of the two processes (whichever finds it due).
    env = {"HALLQ_ALERTS_INTERVAL_S": "0.2"}
    with running_servers(database_url, 2, env=env) as servers:
        urls = [s.url for s in servers]
        async with httpx.AsyncClient(timeout=30) as http:
            for branch in BRANCHES:
                await configure(http, urls[0], branch)
                issued = await asyncio.gather(
                    *(
                        post(
                            http, urls[i % 2], f"/branches/{branch}/tickets", json={"service": "a"}
                        )
                        for i in range(25)
                    )
                )
                assert all(r.status_code == 201 for r in issued)
                for n in (1, 2):
                    assert (
                        await post(http, urls[0], f"/branches/{branch}/counters/{n}/open")
                    ).is_success
                    assert (
                        await post(http, urls[1], f"/branches/{branch}/counters/{n}/next")
                    ).is_success
            conn = await asyncpg.connect(pg.dsn(database_url.rsplit("/", 1)[1]))
            try:
                # Everything happened a day earlier: the next rounds find yesterday left over.
                async with conn.transaction():
                    await conn.execute(
                        "UPDATE tickets SET business_date = business_date - 1,"
                        " issued_at = issued_at - interval '1 day',"
                        " queued_at = queued_at - interval '1 day',"
                        " called_at = called_at - interval '1 day',"
                        " last_called_at = last_called_at - interval '1 day'"
                    )
                    await conn.execute(
                        "UPDATE counters SET state_since = state_since - interval '1 day',"
                        " updated_at = updated_at - interval '1 day',"
                        " current_business_date = current_business_date - 1"
                    )
                for _ in range(300):
                    left = await conn.fetchval(
                        "SELECT count(*) FROM tickets WHERE status <> 'expired'"
                    )
                    if left == 0:
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)  # more rounds on both processes: none may add anything
                expired = await _events(conn, "ticket.expired")
                tickets = await conn.fetchval("SELECT count(*) FROM tickets")
                claims = await conn.fetch(
                    "SELECT branch, count(*) AS n FROM day_closeouts WHERE automatic"
                    " GROUP BY branch"
                )
                states = await conn.fetch("SELECT DISTINCT state FROM counters")
            finally:
                await conn.close()
    assert tickets == 75 and left == 0
    per_ticket = Counter(e["ticket"] for e in expired)
    assert len(per_ticket) == 75 and set(per_ticket.values()) == {1}
    assert {c["branch"]: c["n"] for c in claims} == dict.fromkeys(BRANCHES, 1)
    assert [s["state"] for s in states] == ["closed"]


async def test_close_out_racing_next_and_issuing_on_two_processes(database_url, pg):
    branch = "/branches/d1"
    with running_servers(database_url, 2) as servers:
        urls = [s.url for s in servers]
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            await configure(http, urls[0], "d1")
            for _ in range(40):
                assert (
                    await post(http, urls[1], f"{branch}/tickets", json={"service": "a"})
                ).is_success
            for n in range(1, COUNTERS + 1):
                assert (await post(http, urls[n % 2], f"{branch}/counters/{n}/open")).is_success
            answers: dict[str, Any] = {}
            refused_after_close: list[int] = []

            async def clerk(n: int) -> None:
                for _ in range(500):  # until the close-out closes the counter
                    r = await post(http, urls[n % 2], f"{branch}/counters/{n}/next")
                    if r.status_code == 409:  # the close-out closed the counter
                        assert "closed" in r.json()["detail"]
                        refused_after_close.append(n)
                        return
                    assert r.status_code in (200, 204), r.text
                    await asyncio.sleep(0.005)

            async def kiosk(i: int) -> None:
                after_close = 0
                for _ in range(500):  # until a few were issued after the close-out
                    r = await post(http, urls[i % 2], f"{branch}/tickets", json={"service": "a"})
                    assert r.status_code == 201, r.text
                    after_close += "closed" in answers
                    if after_close >= 3:
                        return

            async def manager() -> None:
                await asyncio.sleep(0.15)
                r = await post(http, urls[0], f"{branch}/day/close")
                assert r.status_code == 200, r.text
                answers["closed"] = r.json()

            await asyncio.gather(
                *(clerk(n) for n in range(1, COUNTERS + 1)), kiosk(0), kiosk(1), manager()
            )

        conn = await asyncpg.connect(pg.dsn(database_url.rsplit("/", 1)[1]))
        try:
            expired = await _events(conn, "ticket.expired")
            called = await _events(conn, "ticket.called")
            counters = await conn.fetch("SELECT code, state, current_ticket_id FROM counters")
            at_counters = await conn.fetchval(
                "SELECT count(*) FROM tickets WHERE status IN ('called', 'serving')"
            )
            statuses = dict(await conn.fetch("SELECT id::text, status FROM tickets"))
        finally:
            await conn.close()

    expired_at = {e["ticket"]: e["seq"] for e in expired}
    assert len(expired_at) == len(expired), "a ticket expired twice"
    # Nothing is called after it expired, and nothing expired stands at a counter.
    assert not [
        c for c in called if c["ticket"] in expired_at and c["seq"] > expired_at[c["ticket"]]
    ]
    assert all(statuses[t] == "expired" for t in expired_at)
    assert answers["closed"]["expired"] == len(expired) > 0
    assert answers["closed"]["counters_closed"] == COUNTERS
    # The counters were closed together: none kept a ticket, none called again afterwards
    # (every clerk loop either ended before the close-out or was refused by it).
    assert all(c["state"] == "closed" and c["current_ticket_id"] is None for c in counters)
    assert at_counters == 0
    assert sorted(refused_after_close) == list(range(1, COUNTERS + 1))
    # Issued after the close-out: waiting, untouched (the day goes on).
    assert Counter(statuses.values())["waiting"] >= 6

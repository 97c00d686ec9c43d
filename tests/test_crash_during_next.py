"""A crash or a dropped connection in the middle of `next` loses nothing: the call is made
whole, with its history, or not at all.

To stop `next` at a known point, the test holds the branch row lock: `next`'s statement claims
its ticket (an uncommitted UPDATE) and then waits for that lock to write the history. While it
waits, we kill the server process or cut its database connection. A cut connection ends the
statement: nothing was done. A killed server process does not: its statement is at the
database already and completes on its own once the lock is free, as a commit sent just before
the crash would (docs/decisions.md, "next in one round trip"); the call is then made whole.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import httpx
import pytest

from devtools.servers import wait_ready
from tests.helpers import ADMIN
from tests.servers import running_servers, start_server

pytestmark = pytest.mark.multiprocess

B = "/api/v1/branches/cr"


async def prepare(http: httpx.AsyncClient, url: str) -> str:
    for path, body in [
        ("", {"name": "Crash hall", "timezone": "Asia/Shanghai"}),
        ("/services/a", {"name": "A", "prefix": "A"}),
        ("/counters/1", {"name": "1", "services": ["a"]}),
    ]:
        r = await http.put(f"{url}{B}{path}", json=body, headers=ADMIN)
        assert r.status_code == 201, r.text
    ticket = await http.post(f"{url}{B}/tickets", json={"service": "a"}, headers=ADMIN)
    assert ticket.status_code == 201
    assert (await http.post(f"{url}{B}/counters/1/open", headers=ADMIN)).status_code == 200
    return str(ticket.json()["id"])


async def blocked_backends(conn: asyncpg.Connection) -> list[int]:
    """hallq connections waiting for a lock (our `next`, stuck on the branch row)."""
    rows = await conn.fetch(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'hallq'"
        " AND wait_event_type = 'Lock' AND datname = current_database()"
    )
    return [r["pid"] for r in rows]


async def wait_for(predicate) -> None:
    """Poll until `predicate()` holds (a generous limit only keeps a broken run from hanging)."""
    async with asyncio.timeout(20):
        while not await predicate():
            await asyncio.sleep(0.05)


async def settled(conn: asyncpg.Connection) -> None:
    """No hallq transaction is left open: the interrupted one ended (rolled back or done)."""

    async def no_open_transaction() -> bool:
        open_txns = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'hallq'"
            " AND xact_start IS NOT NULL AND datname = current_database()"
        )
        return int(open_txns) == 0

    await wait_for(no_open_transaction)


async def call_state(conn: asyncpg.Connection, ticket_id: str) -> tuple[str, str | None, int]:
    """The ticket's status, counter 1's current ticket, the ticket's `ticket.called` events."""
    status = await conn.fetchval("SELECT status FROM tickets WHERE id = $1::uuid", ticket_id)
    current = await conn.fetchval("SELECT current_ticket_id FROM counters WHERE code = '1'")
    called = await conn.fetchval(
        "SELECT count(*) FROM branch_events WHERE type = 'ticket.called' AND ticket_id = $1::uuid",
        ticket_id,
    )
    return status, str(current) if current else None, int(called)


async def assert_nothing_lost(conn: asyncpg.Connection, ticket_id: str) -> None:
    await settled(conn)
    assert await call_state(conn, ticket_id) == ("waiting", None, 0)


@contextlib.asynccontextmanager
async def branch_row_locked(conn: asyncpg.Connection):
    tx = conn.transaction()
    await tx.start()
    await conn.execute("SELECT 1 FROM branches WHERE code = 'cr' FOR UPDATE")
    try:
        yield
    finally:
        await tx.rollback()


async def test_server_killed_mid_next_loses_nothing(database_url, pg):
    conn = await asyncpg.connect(pg.dsn(database_url.rsplit("/", 1)[1]))
    try:
        with running_servers(database_url, 1) as (server,):
            async with httpx.AsyncClient(timeout=30) as http:
                ticket_id = await prepare(http, server.url)
                async with branch_row_locked(conn):
                    pending = asyncio.create_task(
                        http.post(f"{server.url}{B}/counters/1/next", headers=ADMIN)
                    )

                    async def next_is_stuck() -> bool:
                        return bool(await blocked_backends(conn))

                    await wait_for(next_is_stuck)
                    server.kill()  # SIGKILL: no cleanup, mid-statement
                    with pytest.raises(httpx.HTTPError):
                        await pending
        await settled(conn)
        # Made whole (the statement ran on) or not at all; never a claim without its history.
        state = await call_state(conn, ticket_id)
        assert state in {("called", ticket_id, 1), ("waiting", None, 0)}, state

        # A new process carries on: it calls the ticket, or completes the call made.
        replacement = start_server(database_url)
        try:
            wait_ready(replacement)
            async with httpx.AsyncClient(timeout=30) as http:
                r = await http.post(f"{replacement.url}{B}/counters/1/next", headers=ADMIN)
                if state[0] == "waiting":
                    assert r.status_code == 200, r.text
                    assert r.json()["ticket"]["id"] == ticket_id
                else:
                    assert r.status_code == 204, r.text
            assert await call_state(conn, ticket_id) in {
                ("called", ticket_id, 1),
                ("done", None, 1),
            }
        finally:
            replacement.stop()
    finally:
        await conn.close()


async def test_dropped_database_connection_mid_next_is_a_503_and_loses_nothing(database_url, pg):
    conn = await asyncpg.connect(pg.dsn(database_url.rsplit("/", 1)[1]))
    try:
        with running_servers(database_url, 1) as (server,):
            async with httpx.AsyncClient(timeout=30) as http:
                ticket_id = await prepare(http, server.url)
                async with branch_row_locked(conn):
                    pending = asyncio.create_task(
                        http.post(f"{server.url}{B}/counters/1/next", headers=ADMIN)
                    )
                    pids: list[int] = []

                    async def next_is_stuck() -> bool:
                        pids[:] = await blocked_backends(conn)
                        return bool(pids)

                    await wait_for(next_is_stuck)
                    await conn.execute("SELECT pg_terminate_backend($1)", pids[0])
                    response = await pending
                assert response.status_code == 503, response.text
                assert response.headers["content-type"].startswith("application/problem+json")
                assert response.headers["retry-after"]
                await assert_nothing_lost(conn, ticket_id)
                # The same process recovers: its pool drops the dead connection.
                r = await http.post(f"{server.url}{B}/counters/1/next", headers=ADMIN)
                assert r.status_code == 200, r.text
                assert r.json()["ticket"]["id"] == ticket_id
    finally:
        await conn.close()

"""Faults: PostgreSQL restarted under load, a server shut down under its screens."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.db import TestServer
from tests.helpers import ADMIN, new_token, ok, setup_branch
from tests.servers import running_servers

pytestmark = pytest.mark.multiprocess

B = "/api/v1/branches/hz01"
TICKETS = 60
COUNTERS = ("1", "2", "3")


async def configure(base: str) -> str:
    """Branch hz01 with business type a and open counters 1-3; returns a display token."""
    async with httpx.AsyncClient(base_url=base, timeout=20) as client:
        await setup_branch(
            client,
            branch={"name": "x", "timezone": "UTC"},
            services={"a": {"name": "A", "prefix": "A"}},
            counters={code: {"name": code, "services": ["a"]} for code in COUNTERS},
        )
        for code in COUNTERS:
            await ok(await client.post(f"{B}/counters/{code}/open", headers=ADMIN))
        return await new_token(client, "display", "hz01")


async def test_a_database_restart_under_load_loses_and_doubles_nothing(
    database_url: str, pg: TestServer
) -> None:
    if pg.embedded is None:
        pytest.skip(
            "restarts the embedded PostgreSQL; DATABASE_URL points at a server we leave alone"
        )
    unavailable: list[httpx.Response] = []
    with running_servers(database_url, 2) as servers:
        urls = [s.url for s in servers]
        async with httpx.AsyncClient(timeout=20) as http:
            display = await configure(urls[0])
            issued: dict[str, dict[str, Any]] = {}
            called: list[str] = []
            screen_events: list[dict[str, Any]] = []
            closes: list[int] = []
            done_issuing = asyncio.Event()
            screen_ready = asyncio.Event()

            async def post_until_done(url: str, **kwargs: Any) -> httpx.Response:
                """A kiosk or clerk that retries (with the same Idempotency-Key) until served."""
                for _ in range(600):
                    try:
                        response = await http.post(url, **kwargs)
                    except httpx.TransportError:
                        await asyncio.sleep(0.05)
                        continue
                    if response.status_code != 503:
                        return response
                    unavailable.append(response)
                    await asyncio.sleep(0.05)
                raise AssertionError(f"{url} never recovered")

            async def kiosk() -> None:
                for i in range(TICKETS):
                    response = await post_until_done(
                        f"{urls[i % 2]}{B}/tickets",
                        json={"service": "a"},
                        headers={**ADMIN, "Idempotency-Key": f"kiosk-{i}"},
                    )
                    assert response.status_code == 201, response.text
                    issued[f"kiosk-{i}"] = response.json()
                    await asyncio.sleep(0.03)
                done_issuing.set()

            async def clerk(code: str, url: str) -> None:
                while True:
                    response = await post_until_done(
                        f"{url}{B}/counters/{code}/next", headers=ADMIN
                    )
                    if response.status_code == 204:
                        if done_issuing.is_set():
                            return
                        await asyncio.sleep(0.05)
                        continue
                    assert response.status_code == 200, response.text
                    called.append(response.json()["ticket"]["id"])
                    await asyncio.sleep(0.02)

            async def screen() -> None:
                """Reconnects with `since` whenever it is cut off, like the lobby display."""
                since: int | None = None
                while not (done_issuing.is_set() and len(set(called)) >= TICKETS):
                    query = f"&since={since}" if since is not None else ""
                    url = f"{servers[1].ws_url}{B}/stream?token={display}{query}"
                    try:
                        async with connect(url, open_timeout=5) as ws:
                            while True:
                                message = json.loads(await asyncio.wait_for(ws.recv(), 2))
                                if message["type"] == "ping":
                                    continue
                                if message["type"] != "snapshot":
                                    screen_events.append(message)
                                since = message["seq"]
                                screen_ready.set()
                    except ConnectionClosed as closed:
                        closes.append(closed.rcvd.code if closed.rcvd else 1006)
                    except (TimeoutError, OSError):
                        pass
                    await asyncio.sleep(0.1)

            async def restart_database() -> None:
                while len(issued) < TICKETS // 3:
                    await asyncio.sleep(0.02)
                assert pg.embedded is not None
                await asyncio.to_thread(pg.embedded.restart, down_seconds=2)

            watcher = asyncio.create_task(screen())
            await asyncio.wait_for(screen_ready.wait(), 15)
            await asyncio.gather(
                kiosk(),
                restart_database(),
                *(clerk(code, urls[i % 2]) for i, code in enumerate(COUNTERS)),
            )
            await asyncio.wait_for(watcher, 30)

    # While it was down, requests failed fast with a 503 problem that says to retry.
    assert unavailable, "the restart was never noticed"
    for response in unavailable:
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "retry-after" in response.headers
    # Every kiosk got exactly one ticket: numbers A001..A060, none doubled, none skipped.
    numbers = sorted(t["number"] for t in issued.values())
    assert numbers == [f"A{i:03d}" for i in range(1, TICKETS + 1)]
    ids = {t["id"] for t in issued.values()}
    # Every ticket was called, and the history shows each one called exactly once.
    conn = await asyncpg.connect(pg.dsn(database_url.rsplit("/", 1)[1]))
    try:
        calls = Counter(
            str(row["ticket_id"])
            for row in await conn.fetch(
                "SELECT ticket_id FROM branch_events WHERE type = 'ticket.called'"
            )
        )
        total = await conn.fetchval("SELECT count(*) FROM tickets")
    finally:
        await conn.close()
    assert total == TICKETS
    assert set(calls) == ids and set(calls.values()) == {1}
    assert set(called) <= ids
    # The screen saw every event exactly once, in order, across its reconnects.
    seqs = [m["seq"] for m in screen_events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    seen = {m["data"]["ticket"]["number"] for m in screen_events if m["type"] == "ticket.issued"}
    assert seen == set(numbers)


async def test_shutdown_closes_streams_with_a_reason(database_url: str) -> None:
    with running_servers(database_url, 1) as (server,):
        display = await configure(server.url)
        async with connect(f"{server.ws_url}{B}/stream?token={display}") as ws:
            assert json.loads(await ws.recv())["type"] == "snapshot"
            stopping = threading.Thread(target=server.stop)
            stopping.start()
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 15)
            stopping.join()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1012  # service restart: reconnect with since

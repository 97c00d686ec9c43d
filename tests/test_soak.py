"""A busy day compressed into about a minute: kiosks issuing, 20 counters calling, 200 screens.

Bounded in time (HALLQ_SOAK_SECONDS, default 40 s of load after a 10 s warm-up) and loopback
only. At the end: memory and database connections flat, every screen saw every event in order,
every ticket's history is a legal path through the states, and the daily report agrees.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import connect

from devtools.servers import ServerProcess
from tests.db import TestServer
from tests.helpers import ADMIN, ok
from tests.servers import running_servers

pytestmark = pytest.mark.multiprocess

B = "/api/v1/branches/soak"
COUNTERS = [str(i) for i in range(1, 21)]
SCREENS = 200
WARMUP_S = 10.0
LOAD_S = float(os.environ.get("HALLQ_SOAK_SECONDS", "40"))
# The envelope is built by PostgreSQL (app/events/wire.py), which writes `"key" : value`.
HEAD = re.compile(r'\{"type"\s*:\s*"(?P<type>[a-z_.]+)",\s*"seq"\s*:\s*(?P<seq>\d+)')

# Which event takes a ticket from which state to which (SPEC §2, ticket status).
TRANSITIONS: dict[str, tuple[set[str | None], str]] = {
    "ticket.issued": ({None}, "waiting"),
    "ticket.called": ({"waiting"}, "called"),
    "ticket.recalled": ({"called"}, "called"),
    "ticket.serving": ({"called"}, "serving"),
    "ticket.completed": ({"called", "serving"}, "done"),
    "ticket.no_show": ({"called"}, "no_show"),
    "ticket.cancelled": ({"waiting"}, "cancelled"),
    "ticket.transferred": ({"called", "serving"}, "waiting"),
    "ticket.requeued": ({"no_show"}, "waiting"),
    # Told its turn is near (SPEC §9): only while it waits, and it keeps waiting.
    "ticket.near": ({"waiting"}, "waiting"),
}


def rss_kb(server: ServerProcess) -> int:
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def connections(conn: asyncpg.Connection, database: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        database,
    )
    return count


async def configure(http: httpx.AsyncClient, base: str) -> tuple[list[str], str]:
    await ok(
        await http.put(
            f"{base}{B}",
            json={"name": "Soak", "timezone": "UTC", "requeue_after": 2},
            headers=ADMIN,
        ),
        201,
    )
    for code, prefix in (("a", "A"), ("b", "B"), ("v", "V")):
        await ok(
            await http.put(
                f"{base}{B}/services/{code}",
                json={"name": code, "prefix": prefix, "target_wait_s": 60},
                headers=ADMIN,
            ),
            201,
        )
    profiles = [["a", "b"], ["b", "a"], ["v", "a", "b"], ["a"]]
    for i, code in enumerate(COUNTERS):
        await ok(
            await http.put(
                f"{base}{B}/counters/{code}",
                json={"name": code, "services": profiles[i % len(profiles)]},
                headers=ADMIN,
            ),
            201,
        )
    kiosks = []
    for _ in range(4):
        created = await ok(
            await http.post(
                f"{base}/api/v1/tokens", json={"role": "kiosk", "branch": "soak"}, headers=ADMIN
            ),
            201,
        )
        kiosks.append(created["token"])
    display = await ok(
        await http.post(
            f"{base}/api/v1/tokens", json={"role": "display", "branch": "soak"}, headers=ADMIN
        ),
        201,
    )
    return kiosks, display["token"]


async def test_a_busy_day_compressed(database_url: str, pg: TestServer) -> None:
    rng = random.Random(20261125)
    database = database_url.rsplit("/", 1)[1]
    env = {
        "HALLQ_ISSUE_RATE_PER_MINUTE": "0",
        "HALLQ_DB_POOL_SIZE": "5",
        "HALLQ_DB_MAX_OVERFLOW": "0",
    }
    with running_servers(database_url, 2, env=env) as servers:
        urls = [s.url for s in servers]
        # Idle connections are dropped before uvicorn's 5 s keep-alive would close them under
        # a request in flight.
        limits = httpx.Limits(keepalive_expiry=2)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            kiosks, display = await configure(http, urls[0])
            stop = asyncio.Event()  # the load stops
            hang_up = asyncio.Event()  # the screens stop
            screens_ready = 0
            screen_seqs: list[list[int]] = [[] for _ in range(SCREENS)]

            async def screen(n: int) -> None:
                nonlocal screens_ready
                server = servers[n % 2]
                url = f"{server.ws_url}{B}/stream?token={display}"
                async with connect(url, open_timeout=30, max_queue=None) as ws:
                    first = json.loads(await ws.recv())
                    screen_seqs[n].append(first["seq"])
                    screens_ready += 1
                    while not hang_up.is_set():
                        try:
                            raw = await asyncio.wait_for(ws.recv(), 0.5)
                        except TimeoutError:
                            continue
                        # 200 screens in one test process: read only the head of each message.
                        head = HEAD.match(raw if isinstance(raw, str) else raw.decode())
                        if head is None:
                            continue  # a ping
                        seq = int(head["seq"])
                        # A snapshot (a resync) is marked negative: the seq may jump there.
                        screen_seqs[n].append(-seq if head["type"] == "snapshot" else seq)

            async def kiosk(token: str, n: int) -> None:
                headers = {"Authorization": f"Bearer {token}"}
                while not stop.is_set():
                    service = rng.choices(["a", "b", "v"], [5, 4, 1])[0]
                    priority = rng.choices(["normal", "vip", "special"], [8, 1, 1])[0]
                    response = await http.post(
                        f"{urls[n % 2]}{B}/tickets",
                        json={"service": service, "priority": priority},
                        headers=headers,
                    )
                    assert response.status_code == 201, response.text
                    await asyncio.sleep(rng.uniform(0.3, 0.9))

            async def clerk(code: str, n: int) -> None:
                base = f"{urls[n % 2]}{B}/counters/{code}"
                await ok(await http.post(f"{base}/open", headers=ADMIN))
                while not stop.is_set():
                    response = await http.post(f"{base}/next", headers=ADMIN)
                    assert response.status_code in (200, 204), response.text
                    if response.status_code == 204:
                        await asyncio.sleep(0.2)
                        continue
                    ticket = response.json()["ticket"]
                    roll = rng.random()
                    if roll < 0.05:
                        await ok(await http.post(f"{base}/recall", headers=ADMIN))
                        await ok(await http.post(f"{base}/no-show", headers=ADMIN))
                        if rng.random() < 0.5:  # turns up later
                            await ok(
                                await http.post(
                                    f"{urls[0]}/api/v1/tickets/{ticket['id']}/requeue",
                                    headers=ADMIN,
                                )
                            )
                        continue
                    await ok(await http.post(f"{base}/start", headers=ADMIN))
                    await asyncio.sleep(rng.uniform(0.2, 1.0))
                    if roll < 0.10:
                        await ok(
                            await http.post(
                                f"{base}/transfer", json={"service": "a"}, headers=ADMIN
                            )
                        )
                    else:
                        await ok(await http.post(f"{base}/complete", headers=ADMIN))

            screen_tasks = [asyncio.create_task(screen(n)) for n in range(SCREENS)]
            while screens_ready < SCREENS:
                await asyncio.sleep(0.1)
                for task in screen_tasks:
                    if task.done():
                        task.result()
            workers = [
                *(asyncio.create_task(kiosk(t, i)) for i, t in enumerate(kiosks)),
                *(asyncio.create_task(clerk(c, i)) for i, c in enumerate(COUNTERS)),
            ]
            conn = await asyncpg.connect(pg.dsn(database))
            try:
                await asyncio.sleep(WARMUP_S)
                rss_warm = [rss_kb(s) for s in servers]
                conns_warm = await connections(conn, database)
                await asyncio.sleep(LOAD_S)
                rss_end = [rss_kb(s) for s in servers]
                conns_end = await connections(conn, database)
                stop.set()
                await asyncio.gather(*workers)
                # The day ends: clerks finish what is at their counters.
                for i, code in enumerate(COUNTERS):
                    await ok(
                        await http.post(f"{urls[i % 2]}{B}/counters/{code}/close", headers=ADMIN)
                    )
                final_seq = await conn.fetchval(
                    "SELECT event_seq FROM branches WHERE code = 'soak'"
                )
                # Let the screens receive the last events before they hang up.
                for _ in range(600):
                    if all(abs(s[-1]) >= final_seq for s in screen_seqs):
                        break
                    await asyncio.sleep(0.1)
                hang_up.set()
                await asyncio.gather(*screen_tasks)
                await asyncio.sleep(1)
                conns_idle = await connections(conn, database)
                events = await conn.fetch(
                    "SELECT ticket_id, type FROM branch_events "
                    "WHERE branch = 'soak' AND ticket_id IS NOT NULL ORDER BY seq"
                )
                statuses = dict(
                    await conn.fetch("SELECT id, status FROM tickets WHERE branch = 'soak'")
                )
                day = await conn.fetchval("SELECT min(business_date) FROM tickets")
            finally:
                await conn.close()
            report = await ok(
                await http.get(f"{urls[1]}{B}/reports/daily?date={day}", headers=ADMIN)
            )

    # Memory flat: what a process holds after the load is about what it held when warm.
    for warm, end in zip(rss_warm, rss_end, strict=True):
        assert end <= warm * 1.25 + 20_000, (warm, end)
    # Connections bounded under load (the pool of 5, no overflow, one listener, one event
    # notifier and one webhook dispatcher per process), and still so when the load is over:
    # nothing leaks.
    assert max(conns_warm, conns_end, conns_idle) <= 2 * (5 + 3), (
        conns_warm,
        conns_end,
        conns_idle,
    )

    # Every screen saw every event once, in order (a snapshot may stand in for a stretch).
    ends = Counter((n % 2, abs(seqs[-1])) for n, seqs in enumerate(screen_seqs))
    assert all(end == final_seq for _, end in ends), (final_seq, ends)
    for seqs in screen_seqs:
        last = seqs[0]
        for seq in seqs[1:]:
            if seq < 0:
                assert -seq >= last
                last = -seq
            else:
                assert seq == last + 1, (seq, last)
                last = seq
        assert last == final_seq

    # Every ticket's history is a legal path, ending where the ticket is.
    state: dict[Any, str | None] = defaultdict(lambda: None)
    for row in events:
        allowed_from, to = TRANSITIONS[row["type"]]
        assert state[row["ticket_id"]] in allowed_from, (row["type"], state[row["ticket_id"]])
        state[row["ticket_id"]] = to
    assert dict(state) == statuses
    assert len(statuses) > 50

    # The daily report agrees with the tickets.
    outcome = Counter(statuses.values())
    services = report["services"]
    assert sum(r["issued"] for r in services) == len(statuses)
    assert sum(r["served"] for r in services) == outcome["done"]
    assert sum(r["no_show"] for r in services) == outcome["no_show"]
    assert sum(r["served"] for r in report["counters"]) == outcome["done"]

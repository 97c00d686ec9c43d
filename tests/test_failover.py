"""Failover to a synchronous standby (B8, docs/operations.md), with real PostgreSQL servers:
a primary and a standby made by `pg_basebackup` (devtools/replication.py), two hallq processes
on a multi-host DATABASE_URL (`target_session_attrs=read-write`), kiosks issuing with
Idempotency-Key retries and clerks calling, the primary stopped hard and the standby promoted.

Shown: every ticket a kiosk was answered for exists afterwards, no number twice, numbering
gap-free, the stream resumes with `since` and misses nothing. The time from the promotion to
the first ticket issued again is printed (B8's figure; tests do not assert timings)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from app.core.migrations import upgrade
from devtools.replication import ReplicatedPostgres
from tests.db import ROOT
from tests.helpers import ADMIN, ADMIN_TOKEN
from tests.servers import running_servers

pytestmark = pytest.mark.multiprocess

B = "/api/v1/branches/fo01"
COUNTERS = 4
KIOSKS = 4


@dataclass
class Hall:
    urls: list[str]
    http: httpx.AsyncClient
    running: bool = True
    stream_target: int | None = None  # the last seq, once the hall has stopped
    acknowledged: dict[str, str] = field(default_factory=dict)  # ticket id -> number
    answered_at: list[float] = field(default_factory=list)  # when a kiosk got its ticket
    server_errors: list[str] = field(default_factory=list)


async def _kiosk(hall: Hall, n: int) -> None:
    """Issue, and retry one press with its Idempotency-Key until it is answered."""
    while hall.running:
        key, tries = str(uuid.uuid4()), 0
        while hall.running:
            url = hall.urls[(n + tries) % 2]
            tries += 1
            try:
                r = await hall.http.post(
                    f"{url}{B}/tickets",
                    json={"service": "a"},
                    headers={**ADMIN, "Idempotency-Key": key},
                )
            except httpx.TransportError:
                await asyncio.sleep(0.2)
                continue
            if r.status_code in (200, 201):
                hall.acknowledged[r.json()["id"]] = r.json()["number"]
                hall.answered_at.append(time.monotonic())
                break
            if r.status_code >= 500 and r.status_code != 503:
                hall.server_errors.append(r.text)
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.05)


async def _clerk(hall: Hall, counter: int) -> None:
    url = hall.urls[counter % 2]
    while hall.running:
        try:
            r = await hall.http.post(f"{url}{B}/counters/{counter}/next", headers=ADMIN)
            if r.status_code == 200:
                r = await hall.http.post(f"{url}{B}/counters/{counter}/complete", headers=ADMIN)
            if r.status_code >= 500 and r.status_code != 503:
                hall.server_errors.append(r.text)
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)


def _caught_up(hall: Hall, seqs: list[int]) -> bool:
    return hall.stream_target is not None and bool(seqs) and seqs[-1] >= hall.stream_target


async def _follow_stream(hall: Hall, ws_url: str, seqs: list[int]) -> None:
    """A screen: reconnects with `since` = the last seq it saw, whenever the stream drops,
    until it has seen the hall's last event."""
    while not _caught_up(hall, seqs):
        since = f"&since={seqs[-1]}" if seqs else ""
        try:
            async with connect(f"{ws_url}{B}/stream?token={ADMIN_TOKEN}{since}") as ws:
                while not _caught_up(hall, seqs):
                    with contextlib.suppress(TimeoutError):
                        message = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                        if message["type"] == "snapshot":
                            assert not seqs, "a resumed stream fell back to a snapshot"
                            seqs.append(message["seq"])
                        elif "seq" in message:
                            seqs.append(message["seq"])
        except (OSError, WebSocketException):
            await asyncio.sleep(0.3)


async def _configure(http: httpx.AsyncClient, url: str) -> None:
    puts: list[tuple[str, dict[str, object]]] = [
        ("", {"name": "fo01", "timezone": "Asia/Shanghai"})
    ]
    puts.append(("/services/a", {"name": "A", "prefix": "A"}))
    puts += [(f"/counters/{n}", {"name": str(n), "services": ["a"]}) for n in range(COUNTERS)]
    for path, body in puts:
        r = await http.put(f"{url}{B}{path}", json=body, headers=ADMIN)
        assert r.status_code == 201, r.text
    for n in range(COUNTERS):
        r = await http.post(f"{url}{B}/counters/{n}/open", headers=ADMIN)
        assert r.status_code == 200, r.text


async def test_failover_to_a_synchronous_standby_loses_nothing() -> None:
    root = Path(tempfile.mkdtemp(prefix="hallq-failover-", dir=ROOT / ".hallq"))
    replicated = ReplicatedPostgres.start(root, synchronous=True)
    try:
        admin = await asyncpg.connect(replicated.primary.dsn())
        await admin.execute("CREATE DATABASE hall")
        await admin.close()
        # Migrations go straight to the primary.
        await asyncio.to_thread(upgrade, replicated.primary.url("hall"))
        env = {"HALLQ_DB_CONNECT_TIMEOUT_S": "2"}
        with running_servers(replicated.url("hall"), 2, env=env) as servers:
            async with httpx.AsyncClient(timeout=15) as http:
                hall = Hall([s.url for s in servers], http)
                await _configure(http, hall.urls[0])
                seqs: list[int] = []
                tasks = [asyncio.create_task(_kiosk(hall, n)) for n in range(KIOSKS)]
                tasks += [asyncio.create_task(_clerk(hall, n)) for n in range(COUNTERS)]
                tasks.append(asyncio.create_task(_follow_stream(hall, servers[1].ws_url, seqs)))
                await asyncio.sleep(3)
                before = len(hall.acknowledged)
                replicated.crash_primary()
                await asyncio.sleep(1)  # the hall notices: requests fail meanwhile
                replicated.promote_standby()
                promoted = time.monotonic()
                for _ in range(600):
                    if any(t > promoted for t in hall.answered_at):
                        break
                    await asyncio.sleep(0.05)
                back = min(t for t in hall.answered_at if t > promoted) - promoted
                await asyncio.sleep(3)
                hall.running = False
                await asyncio.gather(*tasks[:-1])
                hall.stream_target = await _last_seq(replicated.standby.dsn("hall"))
                await asyncio.wait_for(tasks[-1], 30)
        print(
            f"\nB8: issuing answered again {back:.2f} s after the promotion; "
            f"{before} tickets before the crash, {len(hall.acknowledged)} in all"
        )
        await _judge(replicated.standby.dsn("hall"), hall, seqs)
    finally:
        replicated.stop()


async def _last_seq(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        seq: int = await conn.fetchval("SELECT event_seq FROM branches WHERE code = 'fo01'")
        return seq
    finally:
        await conn.close()


async def _judge(dsn: str, hall: Hall, seqs: list[int]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        assert not await conn.fetchval("SELECT pg_is_in_recovery()")
        tickets = {
            str(r["id"]): r["number"]
            for r in await conn.fetch("SELECT id, number FROM tickets WHERE branch = 'fo01'")
        }
        logged = [
            r["seq"]
            for r in await conn.fetch(
                "SELECT seq FROM branch_events WHERE branch = 'fo01' ORDER BY seq"
            )
        ]
    finally:
        await conn.close()
    assert not hall.server_errors, hall.server_errors[:3]
    # Every acknowledged ticket is there, with the number the kiosk printed.
    assert {t: tickets.get(t) for t in hall.acknowledged} == hall.acknowledged
    # No number twice, none skipped.
    numbers = sorted(tickets.values())
    assert numbers == [f"A{n:03d}" for n in range(1, len(numbers) + 1)]
    # The log is gap-free and the screen saw all of it, in order, across the failover.
    assert logged == list(range(1, len(logged) + 1))
    assert seqs == list(range(seqs[0], logged[-1] + 1))

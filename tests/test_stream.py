"""The lobby stream (SPEC §3) against real uvicorn processes sharing one database."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.alerts.service import evaluate_branch
from app.core.database import create_engine, create_sessionmaker
from app.core.settings import Settings
from app.events.catalog import CounterChanged, CounterView, EventType
from app.events.notifier import CHANNEL, MAX_PAYLOAD_BYTES
from app.events.service import NewEvent, record_events
from app.events.wire import parse_notification
from app.stream.service import StreamEvent, event_from_notification, events_after
from devtools.servers import ServerProcess
from tests.db import TestServer
from tests.helpers import ADMIN, bearer, make_token, new_token, ok, setup_branch
from tests.servers import running_servers

pytestmark = pytest.mark.multiprocess

BRANCH = "ws01"
TIMEOUT = 15.0


def counter_changed(code: str) -> CounterChanged:
    return CounterChanged(
        counter=CounterView(
            code=code, name=code, state="closed", services=["a"], staff=None, current=None
        )
    )


class Screen:
    """A websocket client that keeps every message it receives."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []

    async def receive(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        while True:
            message: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if message["type"] != "ping":
                self.messages.append(message)
                return message

    async def until(
        self, done: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT
    ) -> list[dict[str, Any]]:
        """Receive until a message satisfies `done`; returns the messages received meanwhile."""
        received = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            message = await self.receive(max(0.1, deadline - loop.time()))
            received.append(message)
            if done(message):
                return received

    async def until_seq(self, seq: int, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        return await self.until(lambda m: m["seq"] >= seq, timeout)


@asynccontextmanager
async def screen(
    server: ServerProcess, token: str, *, since: int | None = None, **kwargs: Any
) -> AsyncIterator[Screen]:
    url = f"{server.ws_url}/api/v1/branches/{BRANCH}/stream"
    if since is not None:
        url += f"?since={since}"
    async with connect(url, additional_headers=bearer(token), **kwargs) as ws:
        yield Screen(ws)


async def close_of(server: ServerProcess, path: str, headers: Mapping[str, str]) -> tuple[int, str]:
    """Connect, expect the server to close at once; returns (code, reason)."""
    async with connect(f"{server.ws_url}{path}", additional_headers=headers) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def setup(base: str) -> dict[str, str]:
    """A branch with two types and two counters; returns tokens by role."""
    async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as client:
        await setup_branch(
            client,
            BRANCH,
            # No near notices (SPEC §9): the tests count the events of issues and calls.
            branch={"name": "Stream", "timezone": "Asia/Shanghai", "notify_ahead": None},
            services={"a": {"name": "a", "prefix": "A"}, "b": {"name": "b", "prefix": "B"}},
            counters={
                "3": {"name": "3号窗口", "services": ["a", "b"]},
                "4": {"name": "4", "services": ["a", "b"]},
            },
        )
        return {
            role: await new_token(client, role, BRANCH) for role in ("display", "kiosk", "manager")
        }


async def issue(http: httpx.AsyncClient, base: str, service: str = "a") -> dict[str, Any]:
    result: dict[str, Any] = await ok(
        await http.post(
            f"{base}/api/v1/branches/{BRANCH}/tickets", json={"service": service}, headers=ADMIN
        ),
        201,
    )
    return result


async def counter(http: httpx.AsyncClient, base: str, code: str, action: str) -> Any:
    response = await http.post(
        f"{base}/api/v1/branches/{BRANCH}/counters/{code}/{action}", headers=ADMIN
    )
    assert response.status_code in (200, 204), response.text
    return response.json() if response.content else None


@asynccontextmanager
async def notifications(database_url: str) -> AsyncIterator[asyncio.Queue[str]]:
    """The payloads NOTIFYed on the events channel while the block runs, as a listener gets them."""
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    notified: asyncio.Queue[str] = asyncio.Queue()
    await conn.add_listener(CHANNEL, lambda *args: notified.put_nowait(args[3]))
    try:
        yield notified
    finally:
        await conn.close()


def seqs(messages: list[dict[str, Any]]) -> list[int]:
    return [m["seq"] for m in messages if m["type"] != "snapshot"]


async def test_call_on_one_process_reaches_screens_on_both(database_url):
    with running_servers(database_url, 2) as (one, two):
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            tokens = await setup(one.url)
            async with (
                screen(two, tokens["display"]) as far,
                screen(one, tokens["kiosk"]) as near,
            ):
                first = await far.receive()
                assert first["type"] == "snapshot"
                assert {s["service"] for s in first["data"]["services"]} == {"a", "b"}
                assert {c["code"] for c in first["data"]["counters"]} == {"3", "4"}
                start = first["seq"]
                assert (await near.receive())["seq"] == start

                await counter(http, one.url, "3", "open")
                ticket = await issue(http, one.url)
                called = await counter(http, one.url, "3", "next")
                assert called["ticket"]["id"] == ticket["id"]

                events = await far.until(lambda m: m["type"] == "ticket.called")
                assert [m["type"] for m in events] == [
                    "counter.changed",
                    "ticket.issued",
                    "ticket.called",
                ]
                # Strictly increasing, no gaps, right after the snapshot.
                assert seqs(events) == list(range(start + 1, start + 4))
                call = events[-1]["data"]
                assert call["ticket"] == {
                    "id": ticket["id"],
                    "number": "A001",
                    "service": "a",
                    "priority": "normal",
                }
                assert call["counter"] == {"code": "3", "name": "3号窗口"}
                assert call["announcement"]["zh"] == "请A001号到3号窗口办理"
                assert "A001" in call["announcement"]["en"]
                assert events[-1]["at"].endswith("Z")

                # The screen on the other process saw exactly the same events, same seqs.
                same = await near.until(lambda m: m["type"] == "ticket.called")
                assert [(m["seq"], m["type"], m["data"]) for m in same] == [
                    (m["seq"], m["type"], m["data"]) for m in events
                ]

                # A recall is announced again, with the same words.
                await counter(http, two.url, "3", "recall")
                recalled = await far.until(lambda m: m["type"] == "ticket.recalled")
                assert recalled[-1]["data"]["announcement"] == call["announcement"]


async def test_reconnect_with_since_misses_nothing(database_url):
    with running_servers(database_url, 2) as (one, two):
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            tokens = await setup(one.url)
            async with screen(two, tokens["display"]) as first_visit:
                seen = (await first_visit.receive())["seq"]
                await counter(http, one.url, "3", "open")
                await first_visit.until_seq(seen + 1)
                seen += 1

            # While the screen is away: issues and calls on both processes.
            numbers = [(await issue(http, base))["number"] for base in (one.url, two.url) * 3]
            await counter(http, two.url, "3", "next")
            await counter(http, one.url, "3", "next")
            async with screen(two, tokens["display"], since=seen) as back:
                replayed = await back.until(lambda m: m["type"] == "ticket.called", timeout=5)
                replayed += await back.until(lambda m: m["type"] == "ticket.called", timeout=5)
                assert replayed[0]["type"] != "snapshot"
                assert seqs(replayed) == list(range(seen + 1, seen + 1 + len(replayed)))
                issued = [
                    m["data"]["ticket"]["number"] for m in replayed if m["type"] == "ticket.issued"
                ]
                assert issued == numbers
                # ... and then live.
                await issue(http, one.url, "b")
                live = await back.until(lambda m: m["type"] == "ticket.issued")
                assert seqs(live) == list(range(seqs(replayed)[-1] + 1, live[-1]["seq"] + 1))
                assert live[-1]["data"]["ticket"]["number"] == "B001"

            # Asking from the future (another database's seq) gets a snapshot, not silence.
            async with screen(one, tokens["display"], since=10_000) as odd:
                assert (await odd.receive())["type"] == "snapshot"


async def test_since_too_old_gets_a_snapshot(database_url):
    env = {"HALLQ_STREAM_REPLAY_LIMIT": "3"}
    with running_servers(database_url, 1, env=env) as (one,):
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            tokens = await setup(one.url)
            for _ in range(5):
                await issue(http, one.url)
            async with screen(one, tokens["display"], since=0) as old:
                message = await old.receive()
                assert message["type"] == "snapshot"
                waiting = {s["service"]: s["waiting"] for s in message["data"]["services"]}
                assert waiting == {"a": 5, "b": 0}
            async with screen(one, tokens["display"], since=message["seq"] - 3) as recent:
                replay = [await recent.receive() for _ in range(3)]
                assert [m["type"] for m in replay] == ["ticket.issued"] * 3
                assert [m["data"]["ticket"]["number"] for m in replay] == ["A003", "A004", "A005"]


async def test_only_tokens_of_the_branch_may_read_the_stream(database_url):
    # A short keepalive: revocation reaches open streams at the next one.
    with running_servers(database_url, 1, env={"HALLQ_STREAM_KEEPALIVE_S": "1"}) as (one,):
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            tokens = await setup(one.url)
            async with httpx.AsyncClient(base_url=one.url, timeout=TIMEOUT) as client:
                await setup_branch(
                    client, "other", branch={"name": "Other", "timezone": "UTC"}, services={},
                    counters={},
                )  # fmt: skip
                elsewhere = await make_token(client, "display", "other")
                monitor = await make_token(client, "monitor")
            path = f"/api/v1/branches/{BRANCH}/stream"
            code, reason = await close_of(one, path, {})
            assert code == 1008 and "token" in reason
            code, reason = await close_of(one, path, bearer("hq.nope.nope"))
            assert code == 1008 and "not valid" in reason
            code, reason = await close_of(one, path, elsewhere)
            assert code == 1008 and "another branch" in reason
            code, reason = await close_of(one, path, monitor)
            assert code == 1008 and "monitor" in reason
            code, reason = await close_of(one, "/api/v1/branches/nope/stream", ADMIN)
            assert code == 4404 and "nope" in reason
            code, reason = await close_of(one, f"{path}?since=abc", ADMIN)
            assert code == 4400 and "since" in reason

            # Every branch role may read; the token can also come in the query string.
            for role in ("display", "kiosk", "manager"):
                url = f"{one.ws_url}{path}?token={tokens[role]}"
                async with connect(url) as ws:
                    assert json.loads(await ws.recv())["type"] == "snapshot"

            # Revoking a token closes the streams open on it at the next keepalive.
            token_id = tokens["display"].split(".")[1]
            async with screen(one, tokens["display"]) as doomed:
                await doomed.receive()
                await ok(
                    await http.delete(f"{one.url}/api/v1/tokens/{token_id}", headers=ADMIN), 204
                )
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await doomed.receive(timeout=TIMEOUT)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
                assert "revoked" in closed.value.rcvd.reason

            # ...also a stream kept busy by events (never idle for a whole keepalive).
            async with httpx.AsyncClient(base_url=one.url, timeout=TIMEOUT) as client:
                busy_token = await new_token(client, "display", BRANCH)

            async def keep_issuing() -> None:
                while True:
                    await issue(http, one.url)
                    await asyncio.sleep(0.2)

            async with screen(one, busy_token) as busy:
                await busy.receive()
                feeder = asyncio.create_task(keep_issuing())
                try:
                    await busy.until(lambda m: m["type"] == "ticket.issued")
                    busy_id = busy_token.split(".")[1]
                    await ok(
                        await http.delete(f"{one.url}/api/v1/tokens/{busy_id}", headers=ADMIN),
                        204,
                    )
                    # Events keep coming, so without the re-check this would run into the
                    # deadline instead of the close.
                    with pytest.raises(ConnectionClosed) as closed:
                        async with asyncio.timeout(TIMEOUT):
                            while True:
                                await busy.receive(timeout=TIMEOUT)
                finally:
                    feeder.cancel()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
                assert "revoked" in closed.value.rcvd.reason


class RawScreen:
    """A websocket client on a bare socket with a tiny receive buffer, which reads only when
    told to: while it does not read, the server's sends to it block within a few kilobytes."""

    def __init__(self, port: int, path: str, token: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
            ).encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(1024)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def receive(self) -> dict[str, Any]:
        """The next text message (server frames are unmasked; pings are skipped)."""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack("!H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(length)
            opcode = first & 0x0F
            if opcode == 0x8:
                raise ConnectionError(f"closed by the server: {payload!r}")
            if opcode == 0x1:
                message: dict[str, Any] = json.loads(payload)
                if message["type"] != "ping":
                    return message

    def close(self) -> None:
        self.sock.close()


async def test_a_stalled_client_does_not_hold_up_a_fast_one(database_url):
    env = {
        "HALLQ_STREAM_QUEUE_SIZE": "64",
        "HALLQ_STREAM_KEEPALIVE_S": "600",
        # The stalled client cannot answer websocket pings while it does not read.
        "UVICORN_WS_PING_INTERVAL": "600",
    }
    with running_servers(database_url, 2, env=env) as (one, two):
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            tokens = await setup(one.url)
            stalled = RawScreen(one.port, f"/api/v1/branches/{BRANCH}/stream", tokens["display"])
            try:
                async with screen(one, tokens["display"]) as fast:
                    start = (await fast.receive())["seq"]
                    assert (await asyncio.to_thread(stalled.receive))["seq"] == start
                    total = 600
                    limit = asyncio.Semaphore(8)

                    async def issue_one(i: int) -> None:
                        async with limit:
                            await issue(http, (one.url, two.url)[i % 2], "ab"[i % 2])

                    receiving = asyncio.create_task(fast.until_seq(start + total, timeout=180))
                    await asyncio.gather(*(issue_one(i) for i in range(total)))
                    received = await receiving
                    # The fast client got every event, in order, while the other sat still.
                    assert seqs(received) == list(range(start + 1, start + total + 1))

                    # The stalled client, once it reads again, gets a consistent stream: events
                    # without gaps, where a snapshot may stand in for what it fell behind on
                    # (whether it overflowed depends on the kernel's socket buffers; the
                    # overflow itself is proven in test_stream_buffer.py).
                    last = start
                    while last < start + total:
                        message = await asyncio.to_thread(stalled.receive)
                        if message["type"] == "snapshot":
                            assert message["seq"] >= last
                        else:
                            assert message["seq"] == last + 1, (message["seq"], last)
                        last = message["seq"]
                    assert last == start + total
                    await issue(http, two.url)
                    live = await asyncio.to_thread(stalled.receive)
                    assert live["type"] == "ticket.issued" and live["seq"] == start + total + 1
            finally:
                stalled.close()


async def test_listener_reconnects_and_catches_up(database_url, pg: TestServer):
    with running_servers(database_url, 2) as (one, two):
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            tokens = await setup(one.url)
            async with screen(two, tokens["display"]) as watching:
                start = (await watching.receive())["seq"]
                database = database_url.rsplit("/", 1)[1]
                conn = await asyncpg.connect(pg.dsn(database))
                try:
                    # Cut every process's listening connection, as a network failure would.
                    killed = await conn.fetchval(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = 'hallq-listener' AND datname = $1",
                        database,
                    )
                    assert killed >= 1
                finally:
                    await conn.close()
                numbers = [(await issue(http, one.url))["number"] for _ in range(5)]
                events = await watching.until_seq(start + 5, timeout=30)
                assert seqs(events) == list(range(start + 1, start + 6))
                assert [m["data"]["ticket"]["number"] for m in events] == numbers


async def test_an_event_reads_the_same_live_and_replayed(app, client, clock, database_url):
    """Live events are notified with the envelope their insert returned, replayed ones are read
    with the same SQL (app/events/wire.py: ENVELOPE_SQL): the same bytes, also at a whole second
    and for an alert's times."""
    await setup_branch(client, branch={"min_open_counters": 1, "notify_ahead": None})
    clock.set(clock.now().replace(microsecond=0))
    async with notifications(database_url) as notified:
        await ok(
            await client.post(
                "/api/v1/branches/hz01/tickets", json={"service": "a"}, headers=ADMIN
            ),
            201,
        )
        async with app.state.sessionmaker() as session:
            await evaluate_branch(session, "hz01", clock.now())  # no counter open: an alert
        clock.advance(1)
        await ok(await client.post("/api/v1/branches/hz01/counters/1/open", headers=ADMIN))
        async with app.state.sessionmaker() as session:
            await evaluate_branch(session, "hz01", clock.now())  # open now: cleared
        live: list[StreamEvent] = []
        while len(live) < 4 or not notified.empty():
            raw = await asyncio.wait_for(notified.get(), 5)
            live.append(event_from_notification(parse_notification(raw)))
    async with app.state.sessionmaker() as session:
        replayed = await events_after(session, "hz01", live[0].seq - 1, limit=100)
    assert [e.message for e in replayed] == [e.message for e in live]
    types = [json.loads(e.message)["type"] for e in live]
    assert {"ticket.issued", "alert.raised", "alert.cleared"} <= set(types)
    cleared = next(json.loads(e.message) for e in live if '"alert.cleared"' in e.message)
    assert cleared["data"]["cleared_at"].endswith("Z") and cleared["data"]["since"].endswith("Z")


async def test_an_event_never_notified_reaches_screens_through_the_sweep(database_url):
    """A process that dies between its commit and the notification (app/events/notifier.py):
    no notification ever comes, and the listeners' sweep finds the branch's committed seq ahead
    of what they delivered and reads the event from the history."""
    with running_servers(database_url, 2, env={"HALLQ_STREAM_SWEEP_S": "0.2"}) as (one, two):
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            tokens = await setup(one.url)
            async with (
                screen(one, tokens["display"]) as first,
                screen(two, tokens["display"]) as second,
            ):
                start = (await first.receive())["seq"]
                await second.receive()
                # A sessionmaker without a notifier, as in a process that died after committing.
                engine = create_engine(Settings(database_url=database_url))
                try:
                    async with create_sessionmaker(engine)() as session:
                        [seq] = await record_events(
                            session,
                            BRANCH,
                            datetime.now(UTC),
                            [NewEvent(counter_changed("9"), counter="9")],
                        )
                        await session.commit()
                finally:
                    await engine.dispose()
                assert seq == start + 1
                for watching in (first, second):
                    [event] = await watching.until_seq(seq, timeout=10)
                    assert event["type"] == EventType.COUNTER_CHANGED
                    assert event["data"] == counter_changed("9").model_dump(mode="json")
                # Notified events go on after it, in order.
                number = (await issue(http, one.url))["number"]
                for watching in (first, second):
                    [event] = await watching.until_seq(seq + 1)
                    assert event["seq"] == seq + 1
                    assert event["data"]["ticket"]["number"] == number


async def test_only_committed_events_are_notified_and_large_ones_by_reference(
    app, client, clock, database_url
):
    await setup_branch(client)
    async with notifications(database_url) as notified:
        async with app.state.sessionmaker() as session:
            await record_events(session, "hz01", clock.now(), [NewEvent(counter_changed("0"))])
            async with session.begin_nested():
                pass  # a savepoint released commits nothing
            with pytest.raises(RuntimeError, match="savepoint"):
                async with session.begin_nested():
                    await record_events(
                        session, "hz01", clock.now(), [NewEvent(counter_changed("0"))]
                    )
            # closed without a commit
        async with app.state.sessionmaker() as session:
            await record_events(session, "hz01", clock.now(), [NewEvent(counter_changed("1"))])
            await session.rollback()  # its seq is handed out again below
            [small] = await record_events(
                session, "hz01", clock.now(), [NewEvent(counter_changed("2"))]
            )
            [large] = await record_events(
                session,
                "hz01",
                clock.now(),
                [NewEvent(counter_changed("x" * MAX_PAYLOAD_BYTES))],
            )
            await session.commit()
        payloads = [json.loads(await asyncio.wait_for(notified.get(), 5)) for _ in range(2)]
        await asyncio.sleep(0.5)
        assert notified.empty()  # nothing for the rolled-back event
    assert payloads[0]["seq"] == small
    assert payloads[0]["data"] == counter_changed("2").model_dump(mode="json")
    assert payloads[1] == {"branch": "hz01", "seq": large, "ref": True}

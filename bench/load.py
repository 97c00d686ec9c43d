"""The load generator: a process of its own, so that the clients' CPU is not the servers'.

    python -m bench.load SCENARIO CONFIG.json      -> its result in CONFIG.result.json

Scenarios (each bounded in time and in count, and loopback-only: every URL is checked):

- `issue`      kiosks issuing tickets. Closed loop (`rate` null: each kiosk sends its next request
               when the previous one is answered) or open loop (`rate` per second: requests leave
               on a fixed schedule, and latency counts from the scheduled time, so a stalled
               server cannot hide its queueing).
- `prime`      every kiosk token reads its branch's queue once on every server, before `issue`.
- `next`       counters pressing `next` until nobody waits for them (204) or time runs out;
               returns every called ticket's id so the caller can check none was called twice.
- `latency`    one client, one request at a time: a list of named operations (B5).
- `calls`      a clerk pressing `next` at intervals; returns when each response arrived (B3).
- `ws-listen`  lobby screens: websocket clients that record when each `ticket.called` arrives.
               Prints `READY <n>` once connected, and its result after a `STOP` line on stdin.
- `fleet`      many branches at a hall's pace, with their screens and dashboards (B7,
               bench/load_fleet.py).

Times are `time.monotonic()`, which is CLOCK_MONOTONIC: the same clock in every process of the
machine, so a response seen by one process and a message seen by another can be compared.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from bench.load_fleet import scenario_fleet
from bench.stats import Summary

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
Config = dict[str, Any]


def check_loopback(url: str) -> str:
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK and not host.startswith("127."):
        raise SystemExit(f"bench.load only talks to loopback addresses, not {url}")
    return url.rstrip("/")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_session(concurrency: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=concurrency, limit_per_host=concurrency, force_close=False
    )
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30), raise_for_status=False
    )


@dataclass
class Recorder:
    """Latencies of the requests that finished inside the measured window."""

    started: float
    warmup_s: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    first: float | None = None
    last: float | None = None
    # Per second of the run (by send time): requests, and the slowest of them in ms. Shows
    # whether a high p99 is a few stalls or a steady queue.
    timeline: dict[int, list[float]] = field(default_factory=dict)

    def record(self, sent: float, done: float, status: int | str, ok: bool) -> None:
        key = str(status)
        self.statuses[key] = self.statuses.get(key, 0) + 1
        if sent < self.started + self.warmup_s:
            return
        if self.first is None:
            self.first = sent
        self.last = done
        if ok:
            latency_ms = (done - sent) * 1000
            self.latencies_ms.append(latency_ms)
            second = self.timeline.setdefault(int(sent - self.started), [0, 0.0])
            second[0] += 1
            second[1] = max(second[1], latency_ms)
        else:
            self.errors += 1

    def summary(self, window_end: float | None = None) -> Summary:
        begin = self.started + self.warmup_s
        end = window_end if window_end is not None else (self.last or begin)
        return Summary.of(self.latencies_ms, self.errors, max(end - begin, 1e-9))


# -- issue ------------------------------------------------------------------------------------


async def scenario_prime(config: Config) -> dict[str, Any]:
    """Every kiosk token reads its branch's queue once on every server process, as a kiosk's
    screen does, before anything is measured. A real kiosk uses its one token all day, so each
    process has it cached (app/core/config_cache.py); the benchmark needs 50 tokens per branch
    only to stay under the per-token issue limit, and without this each of them would be a
    cache miss per process inside the measured window."""
    urls = [check_loopback(u) for u in config["urls"]]
    branches: list[dict[str, Any]] = config["branches"]
    concurrency: int = config["concurrency"]
    sessions = [new_session(concurrency) for _ in urls]
    limit = asyncio.Semaphore(concurrency)
    primed = 0

    async def read_queue(i: int, branch: str, token: str) -> None:
        async with (
            limit,
            sessions[i].get(
                f"{urls[i]}/api/v1/branches/{branch}/queue", headers=auth(token)
            ) as resp,
        ):
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"priming {branch}: HTTP {resp.status}")
            nonlocal primed
            primed += 1

    try:
        await asyncio.gather(
            *(
                read_queue(i, branch["code"], token)
                for branch in branches
                for token in branch["tokens"]
                for i in range(len(urls))
            )
        )
    finally:
        for session in sessions:
            await session.close()
    return {"primed": primed}


# Drawn per request: 85% normal, 10% vip, 5% special, as the pgbench reference (bench/sql.py).
_PRIORITIES = ("normal",) * 17 + ("vip",) * 2 + ("special",)


@dataclass
class _Kiosks:
    """The kiosks of an `issue` run: the servers and a session for each, the seeded draws,
    the limits (a deadline and a number of requests) and what was measured."""

    urls: list[str]
    sessions: list[aiohttp.ClientSession]
    branches: list[dict[str, Any]]
    rng: random.Random
    recorder: Recorder
    deadline: float
    max_requests: int
    sent: int = 0

    async def issue_one(self, i: int, scheduled: float) -> None:
        """One ticket at a random branch and type; latency counts from `scheduled`."""
        branch = self.branches[self.rng.randrange(len(self.branches))]
        body = {
            "service": self.rng.choice(branch["services"]),
            "priority": self.rng.choice(_PRIORITIES),
        }
        session = self.sessions[i % len(self.sessions)]
        url = f"{self.urls[i % len(self.urls)]}/api/v1/branches/{branch['code']}/tickets"
        try:
            token = self.rng.choice(branch["tokens"])  # one of the branch's kiosks
            # Like the kiosk page: every press carries its own Idempotency-Key.
            headers = {**auth(token), "Idempotency-Key": f"bench-{i}-{self.rng.getrandbits(64):x}"}
            async with session.post(url, json=body, headers=headers) as resp:
                await resp.read()
                self.recorder.record(scheduled, time.monotonic(), resp.status, resp.status == 201)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.recorder.record(scheduled, time.monotonic(), type(exc).__name__, False)

    async def closed_loop(self, concurrency: int) -> None:
        """`concurrency` kiosks, each sending its next request when the last is answered."""

        async def kiosk(i: int) -> None:
            while time.monotonic() < self.deadline and self.sent < self.max_requests:
                self.sent += 1
                await self.issue_one(i, time.monotonic())

        await asyncio.gather(*(kiosk(i) for i in range(concurrency)))

    async def open_loop(self, rate: float, concurrency: int) -> None:
        """Request k leaves at started + k / rate, whatever happened before, with at most
        `concurrency` in flight."""
        in_flight: set[asyncio.Task[None]] = set()
        limit = asyncio.Semaphore(concurrency)

        async def bounded(i: int, scheduled: float) -> None:
            async with limit:
                await self.issue_one(i, scheduled)

        interval = 1.0 / rate
        k = 0
        while self.sent < self.max_requests:
            scheduled = self.recorder.started + k * interval
            if scheduled >= self.deadline:
                break
            delay = scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            k += 1
            self.sent += 1
            task = asyncio.create_task(bounded(k, scheduled))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.wait(in_flight, timeout=30)


async def scenario_issue(config: Config) -> dict[str, Any]:
    urls = [check_loopback(u) for u in config["urls"]]
    branches: list[dict[str, Any]] = config["branches"]
    concurrency: int = config["concurrency"]
    duration: float = config["duration_s"]
    warmup: float = config.get("warmup_s", 0.0)
    max_requests: int = config["max_requests"]
    rate: float | None = config.get("rate")
    rng = random.Random(config.get("seed", 1))

    sessions = [new_session(concurrency) for _ in urls]
    started = time.monotonic()
    kiosks = _Kiosks(
        urls=urls,
        sessions=sessions,
        branches=branches,
        rng=rng,
        recorder=Recorder(started, warmup),
        deadline=started + warmup + duration,
        max_requests=max_requests,
    )
    try:
        if rate is None:
            await kiosks.closed_loop(concurrency)
            window_end = None
        else:
            await kiosks.open_loop(rate, concurrency)
            window_end = kiosks.deadline
    finally:
        for session in sessions:
            await session.close()
    return {
        "summary": kiosks.recorder.summary(window_end).to_dict(),
        "statuses": kiosks.recorder.statuses,
        "sent": kiosks.sent,
        "timeline": {str(k): v for k, v in sorted(kiosks.recorder.timeline.items())},
        "started_monotonic": started,  # the timeline's origin, on the machine's monotonic clock
    }


async def scenario_healthz(config: Config) -> dict[str, Any]:
    """`GET /healthz` (answered without the database) as fast as it is answered: what the HTTP
    stack alone costs per request, the floor under every API request's CPU."""
    urls = [check_loopback(u) for u in config["urls"]]
    concurrency: int = config["concurrency"]
    sessions = [new_session(concurrency) for _ in urls]
    started = time.monotonic()
    deadline = started + config["duration_s"]
    recorder = Recorder(started, 0.0)

    async def client(i: int) -> None:
        session, url = sessions[i % len(sessions)], f"{urls[i % len(urls)]}/healthz"
        while time.monotonic() < deadline:
            sent = time.monotonic()
            try:
                async with session.get(url) as resp:
                    await resp.read()
                    recorder.record(sent, time.monotonic(), resp.status, resp.status == 200)
            except (aiohttp.ClientError, TimeoutError) as exc:
                recorder.record(sent, time.monotonic(), type(exc).__name__, False)

    try:
        await asyncio.gather(*(client(i) for i in range(concurrency)))
    finally:
        for session in sessions:
            await session.close()
    return {"summary": recorder.summary().to_dict(), "statuses": recorder.statuses}


# -- next -------------------------------------------------------------------------------------


async def scenario_next(config: Config) -> dict[str, Any]:
    urls = [check_loopback(u) for u in config["urls"]]
    branch: str = config["branch"]
    counters: list[dict[str, str]] = config["counters"]
    duration: float = config["duration_s"]
    max_calls: int = config["max_calls"]

    sessions = [new_session(len(counters)) for _ in urls]
    started = time.monotonic()
    deadline = started + duration
    recorder = Recorder(started, 0.0)
    called: list[str] = []
    calls = 0
    emptied = 0

    async def counter(i: int, code: str, token: str) -> None:
        nonlocal calls, emptied
        session = sessions[i % len(sessions)]
        url = f"{urls[i % len(urls)]}/api/v1/branches/{branch}/counters/{code}/next"
        while time.monotonic() < deadline and calls < max_calls:
            calls += 1
            sent = time.monotonic()
            try:
                async with session.post(url, headers=auth(token)) as resp:
                    body = await resp.read()
                    done = time.monotonic()
                    if resp.status == 200:
                        called.append(json.loads(body)["ticket"]["id"])
                    recorder.record(sent, done, resp.status, resp.status in (200, 204))
                    if resp.status == 204:
                        emptied += 1
                        return  # nobody waits for this counter any more
            except (aiohttp.ClientError, TimeoutError) as exc:
                recorder.record(sent, time.monotonic(), type(exc).__name__, False)

    try:
        await asyncio.gather(*(counter(i, c["code"], c["token"]) for i, c in enumerate(counters)))
    finally:
        for session in sessions:
            await session.close()
    return {
        "summary": recorder.summary().to_dict(),
        "statuses": recorder.statuses,
        "called": called,
        "counters_emptied": emptied,
        "timed_out": time.monotonic() >= deadline,
    }


# -- latency ----------------------------------------------------------------------------------


async def scenario_latency(config: Config) -> dict[str, Any]:
    """Each operation `repeat` times in turn, one request at a time."""
    url = check_loopback(config["url"])
    results: dict[str, Any] = {}
    async with new_session(1) as session:
        for op in config["ops"]:
            latencies: list[float] = []
            errors = 0
            started = time.monotonic()
            repeat: int = op["repeat"]
            paths: list[str] = op.get("paths") or [op["path"]] * repeat
            tokens: list[str] = op.get("tokens") or [op["token"]] * repeat
            for path, token in zip(paths[:repeat], tokens[:repeat], strict=True):
                sent = time.monotonic()
                async with session.request(
                    op["method"], f"{url}{path}", json=op.get("body"), headers=auth(token)
                ) as resp:
                    await resp.read()
                    if resp.status in op.get("ok", [200, 201]):
                        latencies.append((time.monotonic() - sent) * 1000)
                    else:
                        errors += 1
            results[op["name"]] = Summary.of(
                latencies, errors, time.monotonic() - started
            ).to_dict()
    return results


# -- calls and lobby screens (B3/B4) -----------------------------------------------------------


async def scenario_calls(config: Config) -> dict[str, Any]:
    """Issue `n` tickets, then press `next` every `interval_s`: when did each response come?"""
    url = check_loopback(config["url"])
    branch = config["branch"]
    n: int = config["n"]
    responses: list[dict[str, Any]] = []
    async with new_session(2) as session:
        for _ in range(n):
            async with session.post(
                f"{url}/api/v1/branches/{branch}/tickets",
                json={"service": config["service"]},
                headers=auth(config["kiosk_token"]),
            ) as resp:
                await resp.read()
        await asyncio.sleep(config.get("settle_s", 1.0))
        for _ in range(n):
            sent = time.monotonic()
            async with session.post(
                f"{url}/api/v1/branches/{branch}/counters/{config['counter']}/next",
                headers=auth(config["clerk_token"]),
            ) as resp:
                body = await resp.read()
                done = time.monotonic()
                if resp.status == 200:
                    ticket = json.loads(body)["ticket"]["id"]
                    responses.append({"ticket": ticket, "sent": sent, "response": done})
            await asyncio.sleep(config["interval_s"])
    return {"calls": responses}


@dataclass
class _Screens:
    """The lobby screens of a `ws-listen` run and what they saw: `received[i]` maps a ticket id
    to when screen i got its ticket.called; `ready[i]` says whether its snapshot came."""

    urls: list[str]
    branch: str
    tokens: list[str]  # one per group of screens, as deployed
    # websockets.connect with the run's options, given by the scenario: only it imports websockets
    connect: Callable[[str], contextlib.AbstractAsyncContextManager[ClientConnection]]
    received: list[dict[str, float]]
    ready: list[bool]
    connected: int = 0
    failures: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)

    async def come_up(self) -> list[asyncio.Task[None]]:
        """Start every screen, a batch of 50 at a time."""
        tasks: list[asyncio.Task[None]] = []
        for i in range(len(self.ready)):
            tasks.append(asyncio.create_task(self.screen(i)))
            if i % 50 == 49:
                await asyncio.sleep(0.05)  # screens come up over a moment, not in one SYN flood
        return tasks

    async def wait_until_up(self, started: float, timeout_s: float) -> None:
        """Until every screen is connected or has failed, or `timeout_s` after `started`."""
        while (
            self.connected + len(self.failures) < len(self.ready)
            and time.monotonic() - started < timeout_s
        ):
            await asyncio.sleep(0.1)

    async def screen(self, i: int) -> None:
        """One screen: connect (retrying a refused connection a few times with backoff, as a
        real screen does when it comes up), then record every ticket.called until stopped."""
        path = f"/api/v1/branches/{self.branch}/stream?token={self.tokens[i % len(self.tokens)]}"
        ws_url = self.urls[i % len(self.urls)].replace("http://", "ws://", 1) + path
        for attempt in range(1, 6):
            try:
                async with self.connect(ws_url) as ws:
                    await self.listen(i, ws)
                    return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failed connection is a result, not a crash
                reason = f"{type(exc).__name__}: {exc}"[:200]
                if self.ready[i] or attempt == 5:
                    self.failures.append(reason)
                    return
                self.retried.append(reason)
                await asyncio.sleep(attempt * (0.5 + random.random()))

    async def listen(self, i: int, ws: ClientConnection) -> None:
        """The snapshot first, then when each ticket.called arrives, until the stream ends."""
        first = json.loads(await ws.recv())
        if first.get("type") != "snapshot":
            self.failures.append(f"first message was {first.get('type')!r}")
            return
        self.connected += 1
        self.ready[i] = True
        mine = self.received[i]
        async for raw in ws:
            at = time.monotonic()
            if '"ticket.called"' not in raw:
                continue  # only calls are timed: skip parsing the rest
            message = json.loads(raw)
            if message.get("type") == "ticket.called":
                mine.setdefault(message["data"]["ticket"]["id"], at)

    def result(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "failures": self.failures[:20],
            "failed": len(self.failures),
            "retried": len(self.retried),
            "retry_reasons": sorted(set(self.retried))[:5],
            # only the screens that got their snapshot: the others count as failed, not as missed
            "received": [r for r, ok in zip(self.received, self.ready, strict=True) if ok],
        }


async def _wait_for_stop_line(timeout_s: float) -> None:
    """Until a line comes on stdin (the caller's `STOP`) or `timeout_s` has passed."""
    stdin_line = asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stdin_line, timeout=timeout_s)


async def scenario_ws_listen(config: Config) -> dict[str, Any]:
    import websockets  # only this scenario needs it

    clients: int = config["clients"]
    max_duration: float = config["max_duration_s"]
    screens = _Screens(
        urls=[check_loopback(u) for u in config["urls"]],
        branch=config["branch"],
        tokens=config["tokens"],
        connect=functools.partial(
            websockets.connect, open_timeout=config.get("connect_timeout_s", 30), max_queue=None
        ),
        received=[{} for _ in range(clients)],
        ready=[False] * clients,
    )
    started = time.monotonic()
    tasks = await screens.come_up()
    await screens.wait_until_up(started, timeout_s=60)
    print(f"READY {screens.connected} {len(screens.failures)}", flush=True)

    await _wait_for_stop_line(max_duration)
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks, timeout=10)
    return screens.result()


SCENARIOS: dict[str, Callable[[Config], Coroutine[Any, Any, dict[str, Any]]]] = {
    "issue": scenario_issue,
    "prime": scenario_prime,
    "healthz": scenario_healthz,
    "next": scenario_next,
    "latency": scenario_latency,
    "calls": scenario_calls,
    "ws-listen": scenario_ws_listen,
    "fleet": scenario_fleet,
}


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in SCENARIOS:
        print(f"usage: python -m bench.load {{{'|'.join(SCENARIOS)}}} CONFIG.json", file=sys.stderr)
        return 2
    config = json.loads(Path(argv[2]).read_text())
    runner = SCENARIOS[argv[1]]
    result: dict[str, Any]
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(runner(config))
    else:
        result = uvloop.run(runner(config))
    # The result goes to a file beside the config: it can be large (every screen's arrivals),
    # and a pipe left non-blocking by the event loop would cut a large print short.
    out = Path(argv[2]).with_suffix(".result.json")
    out.write_text(json.dumps(result))
    print(f"DONE {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""B9: webhooks delivered to a receiver on loopback. The delay from an event's commit time (its
`at`) to its arrival while tickets are issued at 200 a second over the servers, then a receiver
that is down for `b9_outage_s` while issuing goes on: how long after it is back it has
everything, in order, nothing lost."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web

from bench.harness import Bench
from bench.report import Row, verdict
from bench.servers import profiles
from bench.stats import percentile
from devtools.embedded_postgres import free_port

RATE = 200  # events a second
BRANCHES = ("wh1", "wh2", "wh3", "wh4")


@dataclass
class Arrival:
    received_at: float  # time.time()
    branch: str
    seq: int
    at: float  # the event's own time


@dataclass
class Receiver:
    port: int = field(default_factory=free_port)
    arrivals: list[Arrival] = field(default_factory=list)
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/b9"

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        event = json.loads(body)
        at = datetime.fromisoformat(event["at"]).timestamp()
        self.arrivals.append(Arrival(now, event["branch"], event["seq"], at))
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/b9", self._hook)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


async def issue_at_rate(
    http: aiohttp.ClientSession, urls: list[str], headers: dict[str, str], seconds: float
) -> int:
    """Tickets at `RATE` a second over the servers and branches; returns how many."""

    async def one(url: str) -> bool:
        async with http.post(url, json={"service": "a"}, headers=headers) as response:
            await response.read()
            return response.status == 201

    started = time.monotonic()
    tasks: list[asyncio.Task[bool]] = []
    for i in range(int(seconds * RATE)):
        delay = started + i / RATE - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        url = f"{urls[i % len(urls)]}/api/v1/branches/{BRANCHES[i % len(BRANCHES)]}/tickets"
        tasks.append(asyncio.create_task(one(url)))
    return sum(await asyncio.gather(*tasks))


async def wait_for_count(receiver: Receiver, count: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while len({(a.branch, a.seq) for a in receiver.arrivals}) < count:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def in_order(arrivals: list[Arrival]) -> bool:
    last: dict[str, int] = {}
    for a in arrivals:
        if a.seq < last.get(a.branch, 0):
            return False
        last[a.branch] = a.seq
    return True


async def run(bench: Bench) -> dict[str, Any]:
    plan = bench.plan
    headers = {"Authorization": f"Bearer {bench.admin_token}"}
    receiver = Receiver()
    await receiver.start()
    out: dict[str, Any] = {}
    # aiohttp, as bench/load.py: the load generator's own CPU is a share of the same 2 cores.
    # No overall timeout: on a busy machine requests queue rather than fail (the delay still
    # counts from each event's own time).
    connector = aiohttp.TCPConnector(limit=64)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        hook = f"{bench.urls[0]}/api/v1/webhooks/b9"
        async with http.put(hook, json={"url": receiver.url}, headers=headers) as created:
            created.raise_for_status()
        await asyncio.sleep(1.5)  # every process has seen the webhook (its timer's look)
        issued = await issue_at_rate(http, bench.urls, headers, plan.b9_seconds)
        out["steady_complete"] = await wait_for_count(receiver, issued, 60)
        steady = list(receiver.arrivals)
        delays = [(a.received_at - a.at) * 1000 for a in steady]
        out |= {"issued": issued, "received": len(steady), "in_order": in_order(steady)}
        out |= {"p50_ms": percentile(delays, 50), "p99_ms": percentile(delays, 99)}
        out["duplicates"] = len(steady) - len({(a.branch, a.seq) for a in steady})
        # The outage: down while issuing goes on, then up again.
        await receiver.stop()
        before = len(receiver.arrivals)
        down_issued = await issue_at_rate(http, bench.urls, headers, plan.b9_outage_s)
        await receiver.start()
        back = time.time()
        out["outage_complete"] = await wait_for_count(receiver, issued + down_issued, 300)
        after = receiver.arrivals[before:]
        out |= {"outage_issued": down_issued, "outage_in_order": in_order(receiver.arrivals)}
        out["first_after_s"] = (after[0].received_at - back) if after else float("nan")
        out["caught_up_s"] = (after[-1].received_at - back) if after else float("nan")
        async with http.delete(hook, headers=headers):
            pass
    await receiver.stop()
    return out


def measure(bench: Bench) -> None:
    setup = bench.setup()
    for code in BRANCHES:
        setup.branch(code, profiles(2), open_counters=False)
    setup.close()
    out = asyncio.run(run(bench))
    bench.raw["B9"] = out
    bench.detail(f"B9 webhooks: {json.dumps(out)}")
    steady_ok = out["steady_complete"] and out["in_order"] and out["p99_ms"] <= 1000
    outage_ok = out["outage_complete"] and out["outage_in_order"]
    bench.rows["B9"] = [
        Row(
            f"B9 webhook delay at {RATE} events/s",
            "p99 <= 1 s",
            f"p50 {out['p50_ms']:.0f} ms, p99 {out['p99_ms']:.0f} ms over {out['issued']} "
            f"events on {len(bench.urls)} processes"
            + (f", {out['duplicates']} sent twice" if out["duplicates"] else "")
            + ("" if out["in_order"] else ", OUT OF ORDER"),
            "event time to arrival",
            verdict=verdict(steady_ok),
        ),
        Row(
            f"B9 receiver down {bench.plan.b9_outage_s:.0f} s",
            "everything after, in order, none lost",
            f"{out['outage_issued']} events caught up {out['caught_up_s']:.0f} s after it was "
            f"back (first after {out['first_after_s']:.0f} s: the retry backoff)"
            + ("" if out["outage_complete"] else ", SOME MISSING")
            + ("" if out["outage_in_order"] else ", OUT OF ORDER"),
            verdict=verdict(outage_ok),
        ),
    ]

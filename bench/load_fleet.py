"""The `fleet` load scenario (B7): every branch of a share of the fleet at a busy hall's peak.

Per branch: one ticket issued and one `next` every `period_s` (at a random phase, so the fleet's
load is even), two lobby screens and one dashboard, each a websocket stream client that fetches
the queue view after events as app/web/static/live.js does (at most once per 250 ms), and the
dashboard's reports (today, this week, this month) every `report_every_s`, as dashboard.js does.
Recorded: latencies of issue, `next`, the queue views and the reports; when each call reached
each screen; errors by kind. Started by bench/b7_fleet.py, one process per share.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import aiohttp

REFRESH_DEBOUNCE_S = 0.25  # live.js: scheduleRefresh(250)


@dataclass
class FleetRecord:
    started: float
    warmup_s: float
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)  # {ticket, response}
    screens: dict[str, dict[str, float]] = field(default_factory=dict)  # ticket -> arrivals
    connected: int = 0

    def measured(self, sent: float) -> bool:
        return sent >= self.started + self.warmup_s

    def record(self, kind: str, sent: float, status: int | str, ok: bool) -> None:
        if not self.measured(sent):
            return
        if ok:
            self.latencies_ms.setdefault(kind, []).append((time.monotonic() - sent) * 1000)
        else:
            key = f"{kind} {status}"
            self.errors[key] = self.errors.get(key, 0) + 1

    def result(self) -> dict[str, Any]:
        return {
            "latencies_ms": self.latencies_ms,
            "errors": self.errors,
            "calls": self.calls,
            "arrivals": self.screens,
            "connected": self.connected,
        }


@dataclass
class BranchLoad:
    session: aiohttp.ClientSession
    streams: aiohttp.ClientSession
    url: str
    branch: dict[str, Any]
    record: FleetRecord
    config: dict[str, Any]
    stop_at: float

    def headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    @property
    def base(self) -> str:
        return f"{self.url}/api/v1/branches/{self.branch['code']}"

    async def request(self, kind: str, method: str, path: str, token: str, **kw: Any) -> Any:
        sent = time.monotonic()
        try:
            async with self.session.request(
                method, self.base + path, headers=self.headers(token), **kw
            ) as resp:
                body = await resp.read()
                ok = resp.status < 300
                self.record.record(kind, sent, resp.status, ok)
                return json.loads(body) if ok and body else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.record.record(kind, sent, type(exc).__name__, False)
            return None

    async def work(self) -> None:
        """A ticket and a call every period, the counters taking turns."""
        period = self.config["period_s"]
        await asyncio.sleep(random.uniform(0, period))
        counters = sorted(self.branch["clerks"], key=int)
        turn = 0
        while time.monotonic() < self.stop_at:
            tick = time.monotonic()
            await self.request("issue", "POST", "/tickets", self.branch["kiosk"],
                               json={"service": "a"})  # fmt: skip
            counter = counters[turn % len(counters)]
            turn += 1
            sent = time.monotonic()
            called = await self.request(
                "next", "POST", f"/counters/{counter}/next", self.branch["clerks"][counter]
            )
            if called and called.get("ticket") and self.record.measured(sent):
                self.record.calls.append(
                    {"ticket": called["ticket"]["id"], "response": time.monotonic()}
                )
            await asyncio.sleep(max(0.0, period - (time.monotonic() - tick)))

    async def reports(self) -> None:
        """The dashboard's reports: today, then this week and this month, as dashboard.js."""
        await asyncio.sleep(random.uniform(0, self.config["report_every_s"]))
        today = date.today()
        week = today - timedelta(days=today.weekday())
        paths = [
            ("daily", f"/reports/daily?date={today}"),
            ("period", f"/reports/period?from={today}&to={today}"),
            ("period", f"/reports/period?from={week}&to={today}"),
            ("period", f"/reports/period?from={today.replace(day=1)}&to={today}"),
        ]
        while time.monotonic() < self.stop_at:
            tick = time.monotonic()
            for kind, path in paths:
                await self.request(kind, "GET", path, self.branch["manager"])
            await asyncio.sleep(max(0.0, self.config["report_every_s"] - (time.monotonic() - tick)))

    async def stream_client(self, token: str, screen: bool) -> None:
        """A screen or a dashboard: the stream, and the queue view fetched after events."""
        ws_url = self.base.replace("http://", "ws://", 1) + f"/stream?token={token}"
        refresh: asyncio.Task[None] | None = None

        async def fetch_view() -> None:
            await asyncio.sleep(REFRESH_DEBOUNCE_S)
            await self.request("queue", "GET", "/queue", token)

        try:
            async with self.streams.ws_connect(ws_url, heartbeat=None) as ws:
                first = await ws.receive_json()
                if first.get("type") != "snapshot":
                    self.record.errors["stream no snapshot"] = 1
                    return
                self.record.connected += 1
                async for message in ws:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        break
                    at = time.monotonic()
                    raw = message.data
                    if screen and '"ticket.called"' in raw:
                        event = json.loads(raw)
                        if event.get("type") == "ticket.called":
                            ticket = event["data"]["ticket"]["id"]
                            self.record.screens.setdefault(ticket, {})[token + str(id(ws))] = at
                    if '"keepalive"' not in raw and (refresh is None or refresh.done()):
                        refresh = asyncio.create_task(fetch_view())
        except (aiohttp.ClientError, TimeoutError) as exc:
            key = f"stream {type(exc).__name__}"
            self.record.errors[key] = self.record.errors.get(key, 0) + 1
        finally:
            if refresh is not None:
                refresh.cancel()


async def scenario_fleet(config: dict[str, Any]) -> dict[str, Any]:
    urls: list[str] = config["urls"]
    started = time.monotonic()
    record = FleetRecord(started=started, warmup_s=config["warmup_s"])
    stop_at = started + config["duration_s"]
    connector = aiohttp.TCPConnector(limit=config.get("connections", 400))
    timeout = aiohttp.ClientTimeout(total=30)
    # The streams hold their connections for the whole run: a pool of their own, unbounded (in
    # the requests' pool, 2,000 branches' 6,000 streams took every connection and no request
    # was ever sent).
    streams = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(connect=30)
    )
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session, streams:
        tasks: list[asyncio.Task[None]] = []
        for i, branch in enumerate(config["branches"]):
            url = urls[i % len(urls)]
            load = BranchLoad(session, streams, url, branch, record, config, stop_at)
            screens = [
                load.stream_client(branch["display"], screen=True)
                for _ in range(config["screens_per_branch"])
            ]
            for coro in (*screens, load.stream_client(branch["manager"], screen=False)):
                tasks.append(asyncio.create_task(coro))
            tasks.append(asyncio.create_task(load.work()))
            tasks.append(asyncio.create_task(load.reports()))
            if i % 50 == 49:
                await asyncio.sleep(0.05)  # come up over a moment, not in one SYN flood
        await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait(tasks, timeout=10)
    return record.result()

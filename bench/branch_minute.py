"""What one branch-minute of B7's requests costs: `python -m bench.branch_minute [minutes]`.

One branch, one server process, its own PostgreSQL. Each simulated minute sends what B7 sends
for a branch (bench/load_fleet.py): two issues and two calls, each followed 250 ms later by
the queue view of its three stream clients at once, and the dashboard's reports (today's daily
report, then today, this week and this month as period reports). Printed: the CPU of the server
and of PostgreSQL per branch-minute, less what both use idle over the same time, and how it
splits between issues, calls, queue views and the dashboard's reports. A diagnostic
beside B7 (docs/performance.md): it runs in a minute or two and, being sequential, barely
depends on what else the machine is doing, unlike B7's latencies. `--no-views`: the same
without the queue views (the difference is their part).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import psutil

from app.core.clock import SystemClock
from app.core.migrations import upgrade
from bench import pg as pgmod
from bench.servers import Branch, Server, Setup, profiles, start_servers
from devtools.embedded_postgres import EmbeddedPostgres

IDLE_S = 10.0


def cpu_s(process: psutil.Process) -> float:
    """CPU seconds used so far by `process` and its children."""
    total = 0.0
    for p in (process, *process.children(recursive=True)):
        try:
            times = p.cpu_times()
        except psutil.Error:
            continue  # a backend that just ended
        total += times.user + times.system
    return total


class BranchMinute:
    def __init__(
        self,
        server: Server,
        branch: Branch,
        manager: str,
        cpu: Callable[[], float],
        views: bool = True,
    ) -> None:
        self.base = f"{server.url}/api/v1/branches/{branch.code}"
        self.branch = branch
        self.manager = manager
        self.with_views = views
        self.client = httpx.AsyncClient(timeout=30)
        self.cpu = cpu  # server and PostgreSQL, in s
        self.idle_cpu = 0.0  # what both use idle, in s per s
        self.parts: dict[str, float] = {}  # CPU s above idle, by kind of request

    @asynccontextmanager
    async def part(self, kind: str) -> AsyncIterator[None]:
        """Counts the CPU used while the requests of `kind` run (they run one kind at a time)."""
        cpu, started = self.cpu(), time.monotonic()
        yield
        used = self.cpu() - cpu - self.idle_cpu * (time.monotonic() - started)
        self.parts[kind] = self.parts.get(kind, 0.0) + used

    async def _ok(
        self, method: str, path: str, token: str, status: int = 200, body: object = None
    ) -> None:
        response = await self.client.request(
            method, self.base + path, headers={"Authorization": f"Bearer {token}"}, json=body
        )
        if response.status_code != status:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")

    async def views(self) -> None:
        await asyncio.sleep(0.25)  # live.js fetches 250 ms after the events
        if not self.with_views:
            return
        async with self.part("queue views"):
            await asyncio.gather(
                *(self._ok("GET", "/queue", t) for t in (*self.branch.displays, self.manager))
            )

    async def dashboard(self) -> None:
        today = SystemClock().now().astimezone(ZoneInfo("Asia/Shanghai")).date()
        async with self.part("daily report"):
            await self._ok("GET", f"/reports/daily?date={today}", self.manager)
        starts: tuple[date, ...] = (
            today,
            today - timedelta(days=today.weekday()),
            today.replace(day=1),
        )
        async with self.part("period reports"):
            await asyncio.gather(
                *(
                    self._ok("GET", f"/reports/period?from={f}&to={today}", self.manager)
                    for f in starts
                )
            )

    async def minute(self, n: int) -> None:
        counters = list(self.branch.clerks)
        for k in range(2):
            async with self.part("issues"):
                await self._ok("POST", "/tickets", self.branch.kiosk, 201, {"service": "a"})
            await self.views()
            counter = counters[(2 * n + k) % len(counters)]
            async with self.part("calls"):
                await self._ok("POST", f"/counters/{counter}/next", self.branch.clerks[counter])
            await self.views()
        await self.dashboard()


async def _measure(
    minutes: int, server: Server, branch: Branch, manager: str, pg_pid: int, views: bool
) -> str:
    server_process, postgres = psutil.Process(server.process.pid), psutil.Process(pg_pid)
    both: Callable[[], tuple[float, float]] = lambda: (cpu_s(server_process), cpu_s(postgres))  # noqa: E731
    load = BranchMinute(server, branch, manager, lambda: sum(both()), views)
    for n in range(5):  # a history, warm caches and rollups
        await load.minute(n)
    idle_from = both()
    await asyncio.sleep(IDLE_S)
    idle = [(b - a) / IDLE_S for a, b in zip(idle_from, both(), strict=True)]
    load.idle_cpu, load.parts = sum(idle), {}
    started, cpu_from = time.monotonic(), both()
    for n in range(minutes):
        await load.minute(n)
    elapsed = time.monotonic() - started
    used = [b - a - i * elapsed for a, b, i in zip(cpu_from, both(), idle, strict=True)]
    await load.client.aclose()
    per = [1000 * u / minutes for u in used]
    split = ", ".join(f"{kind} {1000 * s / minutes:.1f}" for kind, s in load.parts.items())
    return (
        f"{minutes} branch-minutes in {elapsed:.0f} s: server {per[0]:.1f} ms + PostgreSQL "
        f"{per[1]:.1f} ms = {sum(per):.1f} ms of CPU per branch-minute "
        f"({sum(per) / 60:.2f} ms per branch-second); by kind, ms per branch-minute: {split}; "
        f"idle: server {1000 * idle[0]:.1f} ms/s, "
        f"PostgreSQL {1000 * idle[1]:.1f} ms/s"
    )


@contextmanager
def bench_server(prefix: str) -> Iterator[tuple[EmbeddedPostgres, str, str, Server]]:
    """A PostgreSQL of its own, migrated, and one server process on it: (PostgreSQL, its
    database URL, the admin token, the server)."""
    os.environ.setdefault("HALLQ_ISSUE_RATE_PER_MINUTE", "0")
    with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
        pg = pgmod.start_server(Path(scratch) / "pg")
        try:
            asyncio.run(pgmod.create_database(pg, "hallq"))
            url = pg.url("hallq")
            upgrade(url)
            admin = secrets.token_urlsafe(24)
            [server] = start_servers(url, admin, count=1, workers=1, log_dir=Path(scratch))
            try:
                yield pg, url, admin, server
            finally:
                server.stop()
        finally:
            pg.stop()


def main(minutes: int, views: bool = True) -> str:
    with bench_server("hallq-branch-minute-") as (pg, _, admin, server):
        setup = Setup(server.url, admin)
        branch = setup.branch("m1", profiles(10), open_counters=True, displays=2)
        manager = setup.token("manager", "m1")[1]
        setup.close()
        pid = pg.postmaster_pid()
        assert pid is not None
        return asyncio.run(_measure(minutes, server, branch, manager, pid, views))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--no-views"]
    print(main(int(args[0]) if args else 15, views="--no-views" not in sys.argv))

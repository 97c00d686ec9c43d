"""B7: a fleet on one machine. 200, then 2,000 branches at a busy hall's peak (bench/load_fleet.py:
a ticket and a call per branch every 30 s, two screens and a dashboard each), Prometheus-style
scrapes of every server process every 15 s, and rounds of the alert evaluator timed beside them.
Per size: p99 of issue and `next`, call to screen, the alert round, the scrape's time and size,
the servers' memory, and the CPU per branch (servers and PostgreSQL), which should not grow with
the number of branches."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.fleet_setup import grow_fleet, make_template
from bench.harness import ROOT, Bench
from bench.report import Row, ratio, verdict
from bench.stats import percentile

SCRAPE_EVERY_S = 15.0
ALERT_EVERY_S = 5.0


@dataclass
class Size:
    """What one fleet size measured."""

    branches: int
    seconds: float
    latencies_ms: dict[str, list[float]]
    errors: dict[str, int]
    screen_ms: list[float]
    missed: int
    connected: int
    scrapes: list[tuple[float, int]]  # (seconds, bytes)
    alert_rounds_s: list[float]
    rss_mb: list[float]
    cpu_s: dict[str, float]

    def p99(self, kind: str) -> float:
        return percentile(self.latencies_ms.get(kind, []), 99)

    @property
    def carried(self) -> bool:
        """Its load was served: issues and calls answered, none failing."""
        served = min(len(self.latencies_ms.get(k, [])) for k in ("issue", "next"))
        return served > 0 and not self.errors

    @property
    def screen_p99(self) -> float:
        return percentile(self.screen_ms, 99)

    @property
    def alert_max(self) -> float:
        return max(self.alert_rounds_s, default=float("nan"))

    @property
    def scrape_max(self) -> float:
        return max((t for t, _ in self.scrapes), default=float("nan"))

    @property
    def holds(self) -> bool:
        """Every B7 target met at this size."""
        p99 = max(self.p99("issue"), self.p99("next"))
        return (
            self.carried and p99 <= 50 and self.screen_p99 <= 100 and self.alert_max <= 1
            and self.scrape_max <= 1 and not self.missed
        )  # fmt: skip

    @property
    def cpu_ms_per_branch_s(self) -> float:
        """CPU (servers and PostgreSQL) per branch per second of load, in ms."""
        return sum(self.cpu_s.values()) * 1000 / (self.branches * self.seconds)


@dataclass
class Sampler:
    """Scrapes /metrics of every server and times alert rounds until stopped (a thread)."""

    bench: Bench
    scrapes: list[tuple[float, int]] = field(default_factory=list)
    alert_rounds_s: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        from app.alerts.service import evaluate_all_branches
        from app.core.clock import SystemClock
        from app.core.database import create_engine, create_sessionmaker
        from app.core.settings import Settings

        settings = Settings(database_url=self.bench.database_url)
        engine = create_engine(settings)
        sessionmaker = create_sessionmaker(engine)
        headers = {"Authorization": f"Bearer {self.bench.admin_token}"}
        next_scrape = next_alert = time.monotonic()
        try:
            async with httpx.AsyncClient(headers=headers, timeout=30) as client:
                while not self.stop.is_set():
                    now = time.monotonic()
                    if now >= next_scrape:
                        next_scrape += SCRAPE_EVERY_S
                        for url in self.bench.urls:
                            started = time.monotonic()
                            response = await client.get(f"{url}/metrics")
                            self.scrapes.append((time.monotonic() - started, len(response.content)))
                    if now >= next_alert:
                        next_alert += ALERT_EVERY_S
                        started = time.monotonic()
                        await evaluate_all_branches(sessionmaker, SystemClock())
                        self.alert_rounds_s.append(time.monotonic() - started)
                    await asyncio.sleep(0.2)
        finally:
            await engine.dispose()


def measure(bench: Bench) -> None:
    plan = bench.plan
    make_template(bench)
    fleet: list[dict[str, Any]] = []
    sizes: list[Size] = []
    for size in plan.b7_sizes:
        bench.say(f"B7 growing the fleet to {size:,} branches ...")
        fleet += [b.config() for b in grow_fleet(bench, len(fleet) + 1, size)]
        sizes.append(_run_size(bench, fleet))
        _detail(bench, sizes[-1])
    _rows(bench, sizes)


def _run_size(bench: Bench, fleet: list[dict[str, Any]]) -> Size:
    plan = bench.plan
    shares = [fleet[i :: plan.b7_generators] for i in range(plan.b7_generators)]
    sampler = Sampler(bench)
    thread = threading.Thread(target=sampler.run, name="b7-sampler", daemon=True)
    procs = []
    with bench.cpu_timeline() as timeline:
        thread.start()
        for i, share in enumerate(shares):
            path = bench.run_dir / f"fleet-{len(fleet)}-{i}.json"
            path.write_text(json.dumps({
                "urls": bench.urls, "branches": share, "duration_s": plan.b7_seconds,
                "warmup_s": plan.b7_warmup_s, "period_s": 30.0, "report_every_s": 60.0,
                "screens_per_branch": 2,
            }))  # fmt: skip
            procs.append((path, subprocess.Popen(
                [sys.executable, "-m", "bench.load", "fleet", str(path)], cwd=ROOT,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )))  # fmt: skip
        time.sleep(plan.b7_warmup_s)
        rss = [mb for s in bench.servers for mb in s.rss_mb()]
        cpu_before = dict(timeline.total)
        results = []
        for path, proc in procs:
            _, err = proc.communicate(timeout=plan.b7_seconds + 120)
            if proc.returncode != 0:
                raise RuntimeError(f"fleet load failed:\n{err[-2000:]}")
            results.append(json.loads(path.with_suffix(".result.json").read_text()))
        cpu_after = dict(timeline.total)
        rss = [max(a, b) for a, b in zip(rss, [mb for s in bench.servers for mb in s.rss_mb()],
                                         strict=True)]  # fmt: skip
        sampler.stop.set()
        thread.join(timeout=60)
    return _size(len(fleet), plan.b7_seconds - plan.b7_warmup_s, results, sampler, rss,
                 {k: cpu_after[k] - cpu_before[k] for k in cpu_after})  # fmt: skip


def _size(
    branches: int,
    seconds: float,
    results: list[dict[str, Any]],
    sampler: Sampler,
    rss: list[float],
    cpu: dict[str, float],
) -> Size:
    latencies: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    screen_ms: list[float] = []
    missed = connected = 0
    for result in results:
        for kind, values in result["latencies_ms"].items():
            latencies.setdefault(kind, []).extend(values)
        for kind, n in result["errors"].items():
            errors[kind] = errors.get(kind, 0) + n
        connected += result["connected"]
        for call in result["calls"]:
            arrivals = result["arrivals"].get(call["ticket"], {})
            screen_ms += [(at - call["response"]) * 1000 for at in arrivals.values()]
            missed += max(0, 2 - len(arrivals))
    return Size(branches, seconds, latencies, errors, screen_ms, missed, connected,
                sampler.scrapes, sampler.alert_rounds_s, rss, cpu)  # fmt: skip


def _detail(bench: Bench, s: Size) -> None:
    counts = {k: len(v) for k, v in s.latencies_ms.items()}
    scrape_s = max((t for t, _ in s.scrapes), default=float("nan"))
    scrape_kb = max((n for _, n in s.scrapes), default=0) / 1024
    bench.detail(
        f"B7 {s.branches:,} branches, {s.seconds:.0f} s measured: requests {counts}; "
        f"p99 ms issue {s.p99('issue'):.0f}, next {s.p99('next'):.0f}, queue view "
        f"{s.p99('queue'):.0f}, daily report {s.p99('daily'):.0f}, period report "
        f"{s.p99('period'):.0f}; call to screen p50 {percentile(s.screen_ms, 50):.0f} ms, "
        f"p99 {percentile(s.screen_ms, 99):.0f} ms, missed {s.missed}; stream clients "
        f"{s.connected:,}; errors {s.errors or 'none'}; alert round max "
        f"{max(s.alert_rounds_s, default=float('nan')):.2f} s over {len(s.alert_rounds_s)}; "
        f"/metrics max {scrape_s:.2f} s, {scrape_kb:,.0f} KiB; RSS "
        + ", ".join(f"{mb:.0f}" for mb in s.rss_mb)
        + " MB; CPU s "
        + ", ".join(f"{k} {v:.1f}" for k, v in s.cpu_s.items())
        + f" = {s.cpu_ms_per_branch_s:.2f} ms per branch per second"
    )


def _rows(bench: Bench, sizes: list[Size]) -> None:
    rows = []
    for s in sizes:
        p99 = max(s.p99("issue"), s.p99("next"))
        rows.append(Row(
            f"B7 fleet of {s.branches:,}",
            "p99 issue/next <= 50 ms, screen <= 100 ms, alerts <= 1 s, scrape <= 1 s",
            f"issue {s.p99('issue'):.0f} / next {s.p99('next'):.0f} ms, screen "
            f"{s.screen_p99:.0f} ms, alerts {s.alert_max:.2f} s, scrape {s.scrape_max:.2f} s; "
            f"{s.cpu_ms_per_branch_s:.2f} CPU ms per branch-second",
            "targets", ratio(p99 / 50), verdict(s.holds),
        ))  # fmt: skip
    if len(sizes) >= 2:
        rows.append(_cost_row("B7 cost per branch", sizes[0], sizes[-1]))
        # The largest size whose load the machine carried (answered, no call missed): how far
        # the cost is shown flat when the largest one asks for more cores than the machine has.
        carried = [s for s in sizes[1:] if s.carried and not s.missed]
        if carried and carried[-1] is not sizes[-1]:
            rows.append(_cost_row("B7 cost per branch, sizes carried", sizes[0], carried[-1]))
    bench.rows["B7"] = rows


def _cost_row(what: str, small: Size, large: Size) -> Row:
    growth = large.cpu_ms_per_branch_s / small.cpu_ms_per_branch_s
    # A size whose load was not carried (requests failing) used less CPU, not less per branch:
    # its cost cannot pass.
    carried = small.carried and large.carried
    return Row(
        what, f"flat from {small.branches:,} to {large.branches:,}",
        f"{small.cpu_ms_per_branch_s:.2f} -> {large.cpu_ms_per_branch_s:.2f} CPU ms "
        "per branch-second" + ("" if carried else " (a size's load was not carried)"),
        f"{small.branches:,} branches", ratio(growth), verdict(growth <= 1.2 and carried),
    )  # fmt: skip

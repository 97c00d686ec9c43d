"""B3 and B4: 1,000 lobby screens on one branch, spread over the server processes. B3: how
long after a clerk's `next` answers the call reaches every screen; B4: the memory of each
server process with the screens connected."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import ROOT, Bench
from bench.report import Row, ratio, verdict
from bench.servers import Branch
from bench.stats import percentile

LISTENERS = 2


def measure(bench: Bench) -> None:
    plan = bench.plan
    setup = bench.setup()
    branch = setup.branch(
        "s1", {"1": ["a", "b"]}, open_counters=True, displays=max(1, plan.b3_clients // 100)
    )
    setup.close()
    idle = _rss(bench)
    procs, paths = _start_listeners(bench, branch)
    try:
        connected, failed = _connected(procs)
        bench.detail(f"B3 {connected} screens connected ({failed} failed)")
        time.sleep(1.0)
        loaded = _rss(bench)
        calls = bench.load("calls", {
            "url": bench.urls[0], "branch": branch.code, "n": plan.b3_calls, "service": "a",
            "kiosk_token": branch.kiosk, "counter": "1", "clerk_token": branch.clerks["1"],
            "interval_s": 0.5, "settle_s": 1.0,
        }, timeout=120)  # fmt: skip
        time.sleep(1.0)
        loaded = [max(a, b) for a, b in zip(loaded, _rss(bench), strict=True)]
        received = _received(bench, procs, paths)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    _report(bench, calls["calls"], received, connected, failed, idle, loaded)


def _rss(bench: Bench) -> list[float]:
    return [mb for s in bench.servers for mb in s.rss_mb()]


def _start_listeners(
    bench: Bench, branch: Branch
) -> tuple[list[subprocess.Popen[str]], list[Path]]:
    """The screens: load-generator processes that each connect their share of them and keep
    listening until told STOP."""
    procs = []
    paths = []
    urls = bench.urls
    for i in range(LISTENERS):
        path = bench.run_dir / f"ws-listen-{i}.json"
        paths.append(path)
        path.write_text(
            json.dumps(
                {
                    # each listener spreads its screens over every server process
                    "urls": urls[i % len(urls) :] + urls[: i % len(urls)],
                    "branch": branch.code,
                    "tokens": branch.displays,
                    "clients": bench.plan.b3_clients // LISTENERS,
                    "max_duration_s": 180,
                }
            )
        )
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "bench.load", "ws-listen", str(path)], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))  # fmt: skip
    return procs, paths


def _connected(procs: list[subprocess.Popen[str]]) -> tuple[int, int]:
    """Wait for each listener's READY line: the screens connected, and those that failed."""
    connected = failed = 0
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if len(line) != 3 or line[0] != "READY":
            raise RuntimeError(f"ws listener did not start: {line}")
        connected += int(line[1])
        failed += int(line[2])
    return connected, failed


def _received(
    bench: Bench, procs: list[subprocess.Popen[str]], paths: list[Path]
) -> list[dict[str, float]]:
    """Stop the listeners; every screen's arrival time of each ticket's call."""
    received: list[dict[str, float]] = []
    for proc, path in zip(procs, paths, strict=True):
        _, err = proc.communicate("STOP\n", timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"ws listener failed:\n{err[-2000:]}")
        result = json.loads(path.with_suffix(".result.json").read_text())
        received += result["received"]
        if result["failures"]:
            bench.detail(f"B3 listener failures: {result['failures'][:3]}")
        if result["retried"]:
            bench.detail(
                f"B3 {result['retried']} connection attempts refused and retried: "
                f"{result['retry_reasons'][:2]}"
            )
    return received


def _delays(
    calls: list[dict[str, Any]], received: list[dict[str, float]]
) -> tuple[list[float], list[float], list[float], int]:
    """Per call and screen, ms from the `next` response to the screen's arrival: all of them,
    the first screen's per call, the spread from first to last per call, and the misses."""
    delays: list[float] = []
    firsts: list[float] = []
    spreads: list[float] = []
    missed = 0
    for call in calls:
        arrivals = []
        for screen in received:
            at = screen.get(call["ticket"])
            if at is None:
                missed += 1
            else:
                arrivals.append((at - call["response"]) * 1000)
        delays += arrivals
        if arrivals:
            firsts.append(min(arrivals))
            spreads.append(max(arrivals) - min(arrivals))
    return delays, firsts, spreads, missed


def _report(
    bench: Bench,
    calls: list[dict[str, Any]],
    received: list[dict[str, float]],
    connected: int,
    failed: int,
    idle: list[float],
    loaded: list[float],
) -> None:
    plan = bench.plan
    delays, firsts, spreads, missed = _delays(calls, received)
    missed += failed * len(calls)
    p50, p99 = percentile(delays, 50), percentile(delays, 99)
    bench.detail(
        f"B3 {len(calls)} calls x {connected} screens: delay after the next "
        f"response p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(delays, default=0):.1f} ms, "
        f"missed {missed}; the first screen of a call gets it {percentile(firsts, 50):.1f} ms "
        f"after the response (median over calls), the last {percentile(spreads, 50):.1f} ms "
        "after the first (the fan-out: server writes and the listeners' own reading)"
    )
    bench.detail(
        "B4 RSS per server process (MB): idle "
        + ", ".join(f"{mb:.0f}" for mb in idle)
        + "; with the screens "
        + ", ".join(f"{mb:.0f}" for mb in loaded)
    )
    ok = connected == plan.b3_clients and missed == 0 and p99 <= 100
    bench.rows["B3"] = [Row(
        "B3 call to 1,000 screens", "p99 <= 100 ms, none missed",
        f"p99 {p99:.1f} ms, p50 {p50:.1f} ms; {connected} screens on "
        f"{len(bench.servers)} processes, {len(calls)} calls, missed {missed}",
        "the next response", ratio(p99 / 100), verdict(ok),
    )]  # fmt: skip
    worst = max(loaded)
    bench.rows["B4"] = [Row(
        "B4 memory, 1,000 screens", "<= 150 MB per process",
        f"max {worst:.0f} MB (" + ", ".join(f"{mb:.0f}" for mb in loaded) + " MB)",
        "idle " + ", ".join(f"{mb:.0f}" for mb in idle) + " MB",
        ratio(worst / 150), verdict(worst <= 150 and connected == plan.b3_clients),
    )]  # fmt: skip

"""Where the cores went, second by second, while a load runs: the servers, PostgreSQL's backends
and its autovacuum workers, sampled every 250 ms from a thread of the bench process.

B1's open loop has one slow stretch per full run, when autovacuum first visits the database; the
per-second CPU beside the load generator's per-second slowest request shows whether a stall is
the machine's CPU going elsewhere (docs/performance.md, fifth round) or something else.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import psutil

KINDS = ("servers", "postgres", "autovacuum")
INTERVAL_S = 0.25


def _cpu_s(process: psutil.Process) -> float | None:
    with contextlib.suppress(psutil.Error):
        times = process.cpu_times()
        return float(times.user + times.system)
    return None


@dataclass
class CpuTimeline:
    """CPU seconds per kind for each whole second since `origin` (a time.monotonic() value)."""

    servers: Callable[[], Iterable[psutil.Process]]
    postmaster: psutil.Process | None
    origin: float = 0.0
    seconds: dict[int, dict[str, float]] = field(default_factory=dict)
    _last: dict[int, float] = field(default_factory=dict)
    _kinds: dict[int, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> CpuTimeline:
        self.origin = time.monotonic()
        self._sample()  # the baseline of every process alive now
        self.seconds.clear()
        self._thread = threading.Thread(target=self._run, name="cpu-timeline", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL_S):
            self._sample()

    def _processes(self) -> list[tuple[str, psutil.Process]]:
        found = [("servers", p) for p in self.servers()]
        if self.postmaster is not None:
            with contextlib.suppress(psutil.Error):
                found.append(("postgres", self.postmaster))
                for child in self.postmaster.children(recursive=True):
                    kind = self._kinds.get(child.pid)
                    if kind is None:  # read a process's title once: a backend keeps its kind
                        with contextlib.suppress(psutil.Error):
                            title = " ".join(child.cmdline())
                            kind = "autovacuum" if "autovacuum worker" in title else "postgres"
                            self._kinds[child.pid] = kind
                    if kind is not None:
                        found.append((kind, child))
        return found

    def _sample(self) -> None:
        second = int(time.monotonic() - self.origin)
        bucket = self.seconds.setdefault(second, dict.fromkeys(KINDS, 0.0))
        for kind, process in self._processes():
            now = _cpu_s(process)
            if now is None:
                continue
            # A process first seen now started after the last sample: all its CPU is new.
            before = self._last.get(process.pid, 0.0 if self._last else now)
            self._last[process.pid] = now
            bucket[kind] += max(0.0, now - before)

    def at(self, origin: float, second: int) -> dict[str, float]:
        """The CPU of `second` counted from another clock origin (the load generator's start)."""
        return self.seconds.get(int(origin - self.origin) + second, dict.fromkeys(KINDS, 0.0))


def describe(timeline: CpuTimeline, load_origin: float, slowest: dict[int, float]) -> str:
    """The slowest second of a load beside a typical one: CPU ms of servers, PostgreSQL and
    autovacuum."""
    if not slowest:
        return "no timeline"

    def cpu(second: int) -> str:
        used = timeline.at(load_origin, second)
        return ", ".join(f"{kind} {used[kind] * 1000:.0f}" for kind in KINDS)

    worst = max(slowest, key=lambda s: slowest[s])
    ordered = sorted(slowest, key=lambda s: slowest[s])
    typical = ordered[len(ordered) // 2]
    autovacuum = [s for s in sorted(slowest) if timeline.at(load_origin, s)["autovacuum"] > 0]
    return (
        f"slowest second {worst}s ({slowest[worst]:.0f} ms): CPU ms {cpu(worst)}; "
        f"a median second {typical}s ({slowest[typical]:.0f} ms): {cpu(typical)}; "
        f"autovacuum at work in second(s) {', '.join(map(str, autovacuum)) or 'none'}"
    )

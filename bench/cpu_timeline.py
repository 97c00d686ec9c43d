"""Where the cores went while a load runs: the servers, PostgreSQL's backends and its autovacuum
workers, sampled every 250 ms from a thread of the bench process, per process id.

Per process id, because PostgreSQL's processes come and go during a load (autovacuum workers,
a pool's new connections): a total read before and after would lose the CPU of every process
that ended meanwhile. It gives the CPU per request of B1's and B2's closed loops, and for B1's
open loop the CPU of each second beside the load generator's slowest request of that second,
which shows whether a stall is the machine's CPU going elsewhere (docs/performance.md, fifth
round) or something else.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable

import psutil

KINDS = ("servers", "postgres", "autovacuum")
INTERVAL_S = 0.25


def _cpu_s(process: psutil.Process) -> float | None:
    with contextlib.suppress(psutil.Error):
        times = process.cpu_times()
        return float(times.user + times.system)
    return None


class CpuTimeline:
    """CPU seconds per kind for each whole second since the block began (`seconds`), and in all
    (`total`)."""

    def __init__(
        self, servers: Callable[[], Iterable[psutil.Process]], postmaster: psutil.Process | None
    ) -> None:
        self.servers = servers
        self.postmaster = postmaster
        self.origin = 0.0
        self.seconds: dict[int, dict[str, float]] = {}
        self._last: dict[int, float] = {}  # CPU seconds per process id at its last sample
        self._kinds: dict[int, str] = {}  # a backend keeps its kind: its title is read once
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> CpuTimeline:
        self.origin = time.monotonic()
        self._sample(baseline=True)
        self._thread = threading.Thread(target=self._run, name="cpu-timeline", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sample()  # up to the end of the block

    @property
    def total(self) -> dict[str, float]:
        return {kind: sum(second[kind] for second in self.seconds.values()) for kind in KINDS}

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL_S):
            self._sample()

    def _kind(self, backend: psutil.Process) -> str | None:
        kind = self._kinds.get(backend.pid)
        if kind is None:
            with contextlib.suppress(psutil.Error):
                title = " ".join(backend.cmdline())
                kind = "autovacuum" if "autovacuum worker" in title else "postgres"
                self._kinds[backend.pid] = kind
        return kind

    def _processes(self) -> list[tuple[str, psutil.Process]]:
        found = [("servers", p) for p in self.servers()]
        if self.postmaster is None:
            return found
        found.append(("postgres", self.postmaster))
        with contextlib.suppress(psutil.Error):
            for backend in self.postmaster.children(recursive=True):
                kind = self._kind(backend)
                if kind is not None:
                    found.append((kind, backend))
        return found

    def _sample(self, *, baseline: bool = False) -> None:
        """Add each process's CPU since its last sample to the current second. The baseline only
        records where every process alive at the start stands; a process first seen later
        started after the last sample, so all its CPU is new."""
        bucket = None
        if not baseline:
            second = int(time.monotonic() - self.origin)
            bucket = self.seconds.setdefault(second, dict.fromkeys(KINDS, 0.0))
        for kind, process in self._processes():
            now = _cpu_s(process)
            if now is None:
                continue
            before = self._last.get(process.pid, 0.0)
            self._last[process.pid] = now
            if bucket is not None:
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

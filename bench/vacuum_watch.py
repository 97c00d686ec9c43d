"""What autovacuum did while a figure ran: the tables it visited (pg_stat_user_tables' counts
before and after) and, sampled every 250 ms from a thread, when each vacuum or analyze was in
progress and in which phases (pg_stat_progress_vacuum, pg_stat_progress_analyze), beside the
moments the figure marks (its loops' starts). For B1 with long history (docs/performance.md)."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

from bench import pg as pgmod
from bench.harness import DATABASE, Bench

INTERVAL_S = 0.25
COUNTS_SQL = "SELECT relname, autovacuum_count, autoanalyze_count FROM pg_stat_user_tables"
PROGRESS_SQL = """
    SELECT 'vacuum', relid::regclass::text, phase, heap_blks_total FROM pg_stat_progress_vacuum
    UNION ALL
    SELECT 'analyze', relid::regclass::text, phase, sample_blks_total
    FROM pg_stat_progress_analyze
"""


@dataclass
class Visit:
    first_s: float
    last_s: float
    phases: set[str] = field(default_factory=set)
    blocks: int = 0


@dataclass
class VacuumWatch:
    bench: Bench
    origin: float = 0.0
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    visits: dict[tuple[str, str], list[Visit]] = field(default_factory=dict)
    marks: list[tuple[str, float]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def __enter__(self) -> VacuumWatch:
        self.origin = time.monotonic()
        self.counts = _counts(self.bench)
        self.thread = threading.Thread(target=self._run, name="vacuum-watch", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def mark(self, name: str) -> None:
        self.marks.append((name, time.monotonic() - self.origin))

    def _run(self) -> None:
        asyncio.run(self._sample())

    async def _sample(self) -> None:
        assert self.bench.pg is not None
        conn = await pgmod.connect(self.bench.pg, DATABASE)
        try:
            while not self.stop.wait(INTERVAL_S):
                at = time.monotonic() - self.origin
                for kind, table, phase, blocks in await conn.fetch(PROGRESS_SQL):
                    visits = self.visits.setdefault((kind, table), [])
                    if not visits or at - visits[-1].last_s > 2 * INTERVAL_S:  # a new visit
                        visits.append(Visit(at, at))
                    visit = visits[-1]
                    visit.last_s = at
                    visit.phases.add(phase)
                    visit.blocks = max(visit.blocks, int(blocks or 0))
        finally:
            await conn.close()

    def describe(self) -> str:
        """The marks, the tables autovacuum visited and each visit seen in progress."""
        after = _counts(self.bench)
        visited = []
        for table, (vacuums, analyzes) in sorted(after.items()):
            was = self.counts.get(table, (0, 0))
            if (vacuums, analyzes) != was:
                visited.append(f"{table} {vacuums - was[0]}v/{analyzes - was[1]}a")
        marks = ", ".join(f"{name} at {at:.0f}s" for name, at in self.marks)
        in_order = sorted(
            ((v, kind, table) for (kind, table), visits in self.visits.items() for v in visits),
            key=lambda seen: seen[0].first_s,
        )
        seen = [
            f"{kind} {table} {v.first_s:.1f}-{v.last_s:.1f}s ({v.blocks:,} blocks; "
            f"{', '.join(sorted(v.phases))})"
            for v, kind, table in in_order
        ]
        return (
            f"{marks}; autovacuum visits (vacuums/analyzes): {', '.join(visited) or 'none'};"
            f" in progress: {'; '.join(seen) or 'none seen'}"
        )


def _counts(bench: Bench) -> dict[str, tuple[int, int]]:
    return {str(r[0]): (int(r[1]), int(r[2])) for r in bench.fetch(COUNTS_SQL)}

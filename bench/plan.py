"""What a run measures and how long each part takes: figures, sizes and durations, from the
environment (BENCH_QUICK, BENCH_ONLY, BENCH_SERVERS, BENCH_WORKERS, BENCH_B7_SIZES,
BENCH_HISTORY_*; bench/run.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class Plan:
    quick: bool
    only: set[str]
    servers: int
    workers: int
    budget_s: float
    kiosk_branches: int = 20
    kiosks: int = 32
    b1_seconds: float = 20
    b1_warmup_s: float = 3
    pgbench_seconds: float = 15
    b2_counters: int = 50
    b2_calls: int = 4000
    b3_clients: int = 1000
    b3_calls: int = 20
    b5_history: int = 1_000_000
    b5_small: int = 1_000
    b5_repeat: int = 150
    b5_rounds: int = 2
    b6_minutes: int = 240
    b6_timeout_s: float = 240  # per seed
    b9_seconds: float = 20
    b9_outage_s: float = 60
    b7_sizes: tuple[int, ...] = (200, 2000)
    b7_seconds: float = 150
    b7_warmup_s: float = 40
    b7_generators: int = 2
    # B1 on a database with a year of history (bench/history.py: load_year); 0: a fresh one
    history_tickets: int = 0
    history_live_days: int = 35

    @classmethod
    def from_env(cls) -> Plan:
        quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
        only = {f.strip().upper() for f in os.environ.get("BENCH_ONLY", "").split(",") if f.strip()}
        servers = max(2, int(os.environ.get("BENCH_SERVERS", "2")))
        workers = max(1, int(os.environ.get("BENCH_WORKERS", "1")))
        # B9 waits out a 60 s outage and the retry backoff after it (~3 minutes of the budget).
        plan = cls(quick=quick, only=only, servers=servers, workers=workers, budget_s=920)
        plan.history_tickets = int(os.environ.get("BENCH_HISTORY_TICKETS", "0"))
        plan.history_live_days = int(os.environ.get("BENCH_HISTORY_LIVE_DAYS", "35"))
        if quick:
            plan.budget_s = 200
            plan.b1_seconds, plan.b1_warmup_s, plan.pgbench_seconds = 6, 1, 5
            plan.b2_calls = 2000
            plan.b3_calls = 8
            plan.b5_history, plan.b5_repeat, plan.b5_rounds = 100_000, 80, 1
            plan.b6_minutes, plan.b6_timeout_s = 120, 120
            plan.b9_seconds, plan.b9_outage_s = 6, 10
            plan.b7_sizes, plan.b7_seconds, plan.b7_warmup_s = (50, 200), 75, 35
        sizes = os.environ.get("BENCH_B7_SIZES", "")
        if sizes.strip():
            plan.b7_sizes = tuple(sorted({int(n) for n in sizes.split(",") if n.strip()}))
        if plan.wants("B7"):
            # Two fleet sizes, each grown, loaded and measured (bench/b7_fleet.py).
            plan.budget_s += len(plan.b7_sizes) * (plan.b7_seconds + 90)
        return plan

    def wants(self, figure: str) -> bool:
        return not self.only or figure in self.only

"""`make bench` / `python -m bench`: measure figures B1-B6, B9 and R1 and print one table.

Environment:
    BENCH_QUICK=1        a ~2-minute run for development (shorter phases, 100k tickets of history)
    BENCH_ONLY=B1,B5     measure only these figures (the others say "not measured: skipped")
    BENCH_SERVERS=2      hallq server processes (at least 2)
    BENCH_WORKERS=1      uvicorn workers per server process
    BENCH_B7_SIZES=200,600,2000  B7's fleet sizes, each grown from the last
    BENCH_HISTORY_TICKETS=1000000  B1 on a year of history of its branches (bench/history.py)
    BENCH_HISTORY_LIVE_DAYS=35     of which the last days written live, not yet vacuumed
    HALLQ_*              passed on to the servers (e.g. HALLQ_DB_POOL_SIZE)

Everything runs on this machine over loopback: a PostgreSQL under .hallq/bench-pg-<pid>
(deleted afterwards), the servers, the load generators (bench/load.py, separate processes) and
pgbench. Results: bench/results/latest.md (the table and the details), raw numbers in
bench/results/last-run/.

This module runs the figures in turn; each is measured by a module of its own (bench/b1_issue.py,
b2_next.py, b3_screens.py for B3 and B4, b5_history.py, b6_estimate.py, b9_webhooks.py,
r1_reports.py) on the
run's shared machinery (bench/harness.py, bench/accounting.py), and bench/report.py makes the table.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from bench import (
    b1_issue,
    b2_next,
    b3_screens,
    b5_history,
    b6_estimate,
    b7_fleet,
    b9_webhooks,
    r1_reports,
)
from bench.harness import ROOT, Bench
from bench.plan import Plan
from bench.report import Row, machine, table, write_latest

# A phase: its name, what measures it, and the rows it adds (figure, target).
Phase = tuple[str, Callable[[Bench], None], list[tuple[str, str]]]


def phases(plan: Plan) -> list[Phase]:
    """The figures in the order they run, each with the rows it adds."""
    return [
        ("B1", b1_issue.measure, [("B1 issue rate", ">= 80% of pgbench full"),
                                  ("B1 p99 at 80% rate", "p99 <= 50 ms")]),
        ("B2", b2_next.measure, [("B2 next, 50 counters", "none called twice or lost; "
                                  ">= 80% of pgbench full, >= 50% of core")]),
        ("B3", b3_screens.measure, [("B3 call to 1,000 screens", "p99 <= 100 ms, none missed"),
                                    ("B4 memory, 1,000 screens", "<= 150 MB per process")]),
        ("B6", b6_estimate.measure, [("B6 estimate vs oracle", "MAE <= 1.1 x the oracle's"),
                                     ("B6 estimate vs LES",
                                      "MAE >= 25% below last-to-enter-service"),
                                     ("B6 range coverage",
                                      "80% +- 5 points of actual waits in the range")]),
        ("B5", b5_history.measure, [(f"B5 growth to {plan.b5_history:,}", "<= 2x from 1,000")]),
        ("B9", b9_webhooks.measure, [(f"B9 webhook delay at {b9_webhooks.RATE} events/s",
                                      "p99 <= 1 s"),
                                     (f"B9 receiver down {plan.b9_outage_s:.0f} s",
                                      "everything after, in order, none lost")]),
        ("R1", r1_reports.measure, [("R1 period report, a year", "<= 2 s")]),
        ("B7", b7_fleet.measure, [(f"B7 fleet of {n:,}", "p99 issue/next <= 50 ms, screen "
                                   "<= 100 ms, alerts <= 1 s, scrape <= 1 s")
                                  for n in plan.b7_sizes]
                                 + [("B7 cost per branch", "flat")]),
    ]  # fmt: skip


def run(bench: Bench) -> None:
    """Every wanted phase in turn, within the time budget; a phase that fails or is left out
    still has its rows, saying why it was not measured."""
    plan = bench.plan
    for name, phase, rows in phases(plan):
        wanted = plan.wants(name) or (name == "B3" and plan.wants("B4"))
        if not wanted:
            _placeholder(bench, name, rows, "not measured: skipped (BENCH_ONLY)")
            continue
        if bench.remaining() < 20:
            _placeholder(bench, name, rows, "not measured: out of time budget")
            continue
        bench.say(f"{name} ...")
        try:
            phase(bench)
            quiet_logs()
        except Exception as exc:
            bench.detail(f"{name} failed: {type(exc).__name__}: {exc}")
            _placeholder(bench, name, rows, f"not measured: {type(exc).__name__}")


def _placeholder(bench: Bench, name: str, rows: list[tuple[str, str]], why: str) -> None:
    for figure, target in rows:
        key = "B4" if figure.startswith("B4") else name
        if not any(r.figure == figure for r in bench.rows.get(key, [])):
            bench.rows.setdefault(key, []).append(Row(figure, target, why))


def quiet_logs() -> None:
    """B6's in-process app sets up INFO logging; the bench's own HTTP calls stay quiet."""
    for name in ("httpx", "httpcore", "hallq.access", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:  # the environment configures a run; `--help` (or any argument) must not start one
        print(__doc__)
        return 0 if args in (["-h"], ["--help"]) else 2
    plan = Plan.from_env()
    bench = Bench(plan)

    def _terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    try:
        bench.start()
        run(bench)
    finally:
        bench.stop()
    elapsed = time.monotonic() - bench.started
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    table_text = table(bench.rows)
    header = (
        f"hallq benchmark, {when}, {'quick' if plan.quick else 'full'} run in {elapsed:.0f}s: "
        f"{plan.servers} server processes x {plan.workers} worker(s), PostgreSQL "
        f"{bench.raw.get('postgres', '?')} (fsync on), {machine()}"
    )
    print("\n" + header + "\n\n" + table_text + "\n", flush=True)
    latest = write_latest(header, table_text, bench.details)
    print(f"written to {latest.relative_to(ROOT)}")
    return 0

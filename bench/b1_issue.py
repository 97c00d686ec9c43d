"""B1: kiosks issuing tickets. The rate of 32 kiosks in a closed loop against pgbench running
the same SQL, the p99 in an open loop at 80 % of that rate, and what an issue costs the
machine's cores beside an empty request (docs/performance.md)."""

from __future__ import annotations

import os
import time
from typing import Any

import httpx

from bench import pg as pgmod
from bench import sql
from bench.accounting import accounting
from bench.cpu_timeline import describe as describe_cpu
from bench.harness import DATABASE, Bench
from bench.history import load_year
from bench.report import Row, against_pgbench, beside_core, errors, ratio, timeline, verdict
from bench.servers import Branch
from bench.stats import Summary
from bench.vacuum_watch import VacuumWatch

COUNTERS = {"1": ["a", "b"], "2": ["b", "a"], "3": ["v", "a"]}


def measure(bench: Bench) -> None:
    plan = bench.plan
    kiosk_branches, open_loop_branches = _branches(bench)
    assert bench.pg is not None
    if plan.history_tickets:
        codes = [f"{prefix}{i:02d}" for prefix in "kmpq" for i in range(1, plan.kiosk_branches + 1)]
        history = load_year(bench, codes, plan.history_tickets, plan.history_live_days)
        bench.detail(f"B1 history: {history}")
    tokens = bench.kiosk_tokens(
        [b.code for b in kiosk_branches + open_loop_branches], per_branch=50
    )
    with VacuumWatch(bench) as watch:
        _measure(bench, kiosk_branches, open_loop_branches, tokens, watch)
    bench.detail(f"B1 autovacuum: {watch.describe()}")
    if plan.history_tickets:
        bench.detail(f"B1 /metrics after the year of history: {_scrapes(bench)}")


def _measure(
    bench: Bench,
    kiosk_branches: list[Branch],
    open_loop_branches: list[Branch],
    tokens: dict[str, list[str]],
    watch: VacuumWatch,
) -> None:
    plan = bench.plan
    watch.mark("pgbench")
    core, full = _pgbench_references(bench)
    config = {
        "urls": bench.urls,
        "branches": _load_branches(kiosk_branches, tokens),
        "concurrency": plan.kiosks,
        "duration_s": plan.b1_seconds,
        "warmup_s": plan.b1_warmup_s,
        "max_requests": 200_000,
    }
    bench.load("prime", config, timeout=120)  # bench/load.py: scenario_prime
    watch.mark("closed loop")
    closed: dict[str, Any] = {}
    with accounting(
        bench, "B1 hallq issue", lambda: int(sum(closed.get("statuses", {}).values()))
    ) as issue_cost:
        closed = bench.load("issue", config, timeout=plan.b1_seconds + 120)
    hallq = Summary.from_dict(closed["summary"])
    bench.detail(f"B1 hallq, {plan.kiosks} kiosks, closed loop: {hallq.describe()}")
    _, core_text = beside_core(hallq, core.summary)
    bench.rows["B1"] = [
        against_pgbench(
            "B1 issue rate", ">= 80% of pgbench full", hallq, full.summary, at_least=0.8,
            also=core_text,
        )
    ]  # fmt: skip
    watch.mark("open loop")
    _open_loop(bench, config, _load_branches(open_loop_branches, tokens), 0.8 * hallq.rate)
    watch.mark("end")
    # Last: both figures are recorded whatever happens to this side measurement.
    _budget(bench, issue_cost, full.summary.rate)


def _branches(bench: Bench) -> tuple[list[Branch], list[Branch]]:
    """The closed loop's branches and the open loop's; and the same again for each pgbench
    variant (p.., q..), which issue straight into the database."""
    plan = bench.plan
    setup = bench.setup()
    kiosk_branches = [
        setup.branch(f"k{i:02d}", COUNTERS, open_counters=False)
        for i in range(1, plan.kiosk_branches + 1)
    ]
    # The open loop gets branches of its own: nobody is called in B1, so queues only grow,
    # and each issue reads its hall (the waiting tickets of its branch). Starting from empty
    # queues as the closed loop did, it runs at 80 % of a rate measured under the same
    # conditions, not on queues the closed loop already filled.
    open_loop_branches = [
        setup.branch(f"m{i:02d}", COUNTERS, open_counters=False)
        for i in range(1, plan.kiosk_branches + 1)
    ]
    # The same branches again for each pgbench variant, so that each starts, as hallq does,
    # with empty queues (the hall read of the full variant scans the waiting tickets).
    for prefix in ("p", "q"):
        for i in range(1, plan.kiosk_branches + 1):
            setup.branch(f"{prefix}{i:02d}", COUNTERS, open_counters=False)
    setup.close()
    return kiosk_branches, open_loop_branches


def _load_branches(branches: list[Branch], tokens: dict[str, list[str]]) -> list[dict[str, Any]]:
    return [
        {"code": b.code, "tokens": tokens[b.code], "services": list(sql.SERVICES)} for b in branches
    ]


def _pgbench_references(bench: Bench) -> tuple[pgmod.PgbenchResult, pgmod.PgbenchResult]:
    """pgbench issuing with hallq's core statements, and with every statement hallq sends
    (`full`, the target's reference: what is left is the cost of Python over the same SQL)."""
    plan = bench.plan
    assert bench.pg is not None
    # With a year of weekly partitions the server's `auto` keeps choosing custom plans, each
    # planned anew (~70 ms for `issue_sql`): plan as hallq's connections do, once.
    mode = "force_generic_plan" if plan.history_tickets else None
    reference = pgmod.run_pgbench(
        bench.pg, DATABASE,
        sql.issue_script(prefix="p", branches=plan.kiosk_branches, full=False),
        clients=plan.kiosks, seconds=plan.pgbench_seconds, variables=[f"day={bench.day}"],
        plan_cache_mode=mode,
    )  # fmt: skip
    bench.detail(f"B1 pgbench core (3 statements): {reference.summary.describe()}")
    full = pgmod.run_pgbench(
        bench.pg, DATABASE,
        sql.issue_script(prefix="q", branches=plan.kiosk_branches, full=True),
        clients=plan.kiosks, seconds=plan.pgbench_seconds,
        variables=[f"day={bench.day}", "requeue_after=2"], plan_cache_mode=mode,
    )  # fmt: skip
    bench.detail(f"B1 pgbench full (every statement hallq sends): {full.summary.describe()}")
    return reference, full


def _open_loop(
    bench: Bench, config: dict[str, Any], branches: list[dict[str, Any]], rate: float
) -> None:
    """Issues offered at `rate` on fresh branches, whatever the answers: the p99 row."""
    open_loop_config = {
        **config,
        "branches": branches,
        "rate": rate,
        "concurrency": 256,
        "warmup_s": 1.0,
    }
    bench.load("prime", open_loop_config, timeout=120)
    with bench.cpu_timeline() as cpu:
        steady = bench.load("issue", open_loop_config, timeout=bench.plan.b1_seconds + 120)
    s = Summary.from_dict(steady["summary"])
    bench.detail(f"B1 hallq at {rate:.0f}/s (80%), open loop: {s.describe()}")
    bench.detail(f"B1 open loop, slowest request per second: {timeline(steady)}")
    slowest = {int(k): v[1] for k, v in steady.get("timeline", {}).items()}
    bench.detail(
        "B1 open loop, where the cores went: "
        + describe_cpu(cpu, steady["started_monotonic"], slowest)
    )
    bench.rows["B1"].append(
        Row(
            "B1 p99 at 80% rate",
            "p99 <= 50 ms",
            f"p99 {s.p99_ms:.1f} ms, p50 {s.p50_ms:.1f} ms at {s.rate:.0f}/s" + errors(s),
            f"offered {rate:.0f}/s",
            ratio(s.p99_ms / 50),
            verdict(s.p99_ms <= 50 and s.errors == 0),
        )
    )


def _budget(bench: Bench, issue_cost: dict[str, float], reference_rate: float) -> None:
    """What the B1 target leaves per issue on this machine's cores, beside what the HTTP
    stack alone costs (`GET /healthz`, no database): whether the target is in reach of any
    issuing code on these servers, or of the machine."""
    floor: dict[str, Any] = {}
    config = {"urls": bench.urls, "concurrency": bench.plan.kiosks, "duration_s": 5}
    with accounting(
        bench,
        "B1 floor (GET /healthz)",
        lambda: int(sum(floor.get("statuses", {}).values())),
        statements=False,
    ) as floor_cost:
        floor = bench.load("healthz", config, timeout=60)
    if not reference_rate or not floor_cost or not issue_cost:
        return
    cores = os.cpu_count() or 1
    budget = cores * 1000 / (0.8 * reference_rate)
    bench.detail(
        f"B1 budget: 80% of pgbench full's rate ({0.8 * reference_rate:.0f}/s) leaves"
        f" {budget:.2f} ms of the {cores} cores per issue, for the servers, PostgreSQL and"
        f" the load generator together. An issue took {issue_cost['servers']:.2f} +"
        f" {issue_cost['postgres']:.2f} + {issue_cost['load']:.2f} ms; a GET /healthz,"
        f" which touches no database, {floor_cost['servers']:.2f} ms of the servers and"
        f" {floor_cost['load']:.2f} ms of the load generator"
    )


def _scrapes(bench: Bench) -> str:
    """Each server's first scrape (which counts the whole event log: a process starts from
    none) and its second, timed: what the metrics cost with the history's partitions."""

    def scrape(client: httpx.Client, url: str) -> str:
        started = time.monotonic()
        response = client.get(f"{url}/metrics")
        up = b"\nhallq_database_up 1" in response.content  # not the HELP line's "1 when"
        read = "hall's metrics read" if up else "hall's metrics NOT read"
        return (
            f"{time.monotonic() - started:.2f} s ({len(response.content) / 1024:,.0f} KiB, {read})"
        )

    def counted(client: httpx.Client, url: str, started: float) -> str:
        # A new process counts the rest of the log in the background (docs/metrics.md).
        while time.monotonic() - started < 60:
            if b"\nhallq_tickets_issued_total{" in client.get(f"{url}/metrics").content:
                return f"{time.monotonic() - started:.1f} s"
            time.sleep(0.5)
        return "not within 60 s"

    headers = {"Authorization": f"Bearer {bench.admin_token}"}
    with httpx.Client(headers=headers, timeout=600) as client:
        return "; ".join(
            f"{url}: first {scrape(client, url)}, second {scrape(client, url)}, "
            f"counters complete after {counted(client, url, time.monotonic())}"
            for url in bench.urls
        )

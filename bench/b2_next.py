"""B2: clerks at 50 counters pressing `next` on one branch, against pgbench running the same
SQL; afterwards the database is checked: no ticket called twice, none lost."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench import pg as pgmod
from bench import sql
from bench.accounting import accounting
from bench.harness import DATABASE, Bench
from bench.report import against_pgbench, beside_core
from bench.servers import Branch, profiles
from bench.stats import Summary


def measure(bench: Bench) -> None:
    plan = bench.plan
    setup = bench.setup()
    counters = profiles(plan.b2_counters)
    hallq_branch = setup.branch("n1", counters, open_counters=True)
    pg_branch = setup.branch("n2", counters, open_counters=True)
    setup.close()
    assert bench.pg is not None
    calls = plan.b2_calls - plan.b2_calls % plan.b2_counters
    margin = calls // 4  # every call finds a ticket for its counter's profile
    now = datetime.now(UTC)

    def prefill(branch: str) -> None:
        bench.execute(sql.prefill_queue_sql(calls + margin), branch, bench.day, now)
        bench.execute(sql.SEQUENCES_FROM_TICKETS_SQL, branch)
        bench.sql("ANALYZE tickets")

    core, full = _pgbench_references(bench, pg_branch, calls, prefill)
    # The pgbench branch's waiting queue is now `margin` + the prefill of the full run's
    # leftovers; hallq's branch gets the same queue as the core run had.
    prefill(hallq_branch.code)
    config = {
        "urls": bench.urls,
        "branch": hallq_branch.code,
        "counters": [{"code": c, "token": t} for c, t in hallq_branch.clerks.items()],
        "duration_s": max(30.0, min(120.0, bench.remaining() / 3)),
        "max_calls": calls,
    }
    out: dict[str, Any] = {}
    with accounting(bench, "B2 hallq next", lambda: int(sum(out.get("statuses", {}).values()))):
        out = bench.load("next", config, timeout=240)
    hallq = Summary.from_dict(out["summary"])
    bench.detail(
        f"B2 hallq, {plan.b2_counters} counters on {len(bench.urls)} processes: {hallq.describe()}"
    )
    doubles, lost, check_text = check(bench, hallq_branch.code, out["called"], calls + margin)
    bench.detail(f"B2 check: {check_text}")
    core_share, core_text = beside_core(hallq, core.summary)
    bench.rows["B2"] = [
        against_pgbench(
            "B2 next, 50 counters",
            "none called twice or lost; >= 80% of pgbench full, >= 50% of core",
            hallq,
            full.summary,
            at_least=0.8,
            also=f"{core_text}; called twice {doubles}, lost {lost}",
            ok=doubles == 0 and lost == 0 and core_share >= 0.5,
        )
    ]


def _pgbench_references(
    bench: Bench, branch: Branch, calls: int, prefill: Callable[[str], None]
) -> tuple[pgmod.PgbenchResult, pgmod.PgbenchResult]:
    """pgbench calling with hallq's core statements (the reference), then with every statement
    hallq sends (shown beside it), each on a freshly filled queue."""
    plan = bench.plan
    assert bench.pg is not None
    results = []
    for full in (False, True):
        prefill(branch.code)
        result = pgmod.run_pgbench(
            bench.pg, DATABASE, sql.next_script(full=full),
            clients=plan.b2_counters, transactions_per_client=calls // plan.b2_counters,
            variables=[f"branch={branch.code}", "requeue_after=2",
                       f"token_id={branch.clerk_id}"],
        )  # fmt: skip
        results.append(result)
        what = "full (every statement hallq sends)" if full else "core"
        bench.detail(f"B2 pgbench {what}, {plan.b2_counters} counters: {result.summary.describe()}")
    return results[0], results[1]


def check(bench: Bench, branch: str, called: list[str], prefilled: int) -> tuple[int, int, str]:
    """From the database: every ticket is waiting, called or done, exactly once; every
    ticket a counter got in a 200 was called exactly once; and nothing else was."""
    statuses = dict(
        (r[0], int(r[1]))
        for r in bench.fetch(
            "SELECT status, count(*) FROM tickets WHERE branch = $1 GROUP BY status", branch
        )
    )
    events = bench.fetch(
        "SELECT ticket_id::text, count(*) FROM branch_events"
        " WHERE branch = $1 AND type = 'ticket.called' GROUP BY ticket_id",
        branch,
    )
    called_in_db = {r[0]: int(r[1]) for r in events}
    answered: dict[str, int] = {}
    for ticket in called:
        answered[ticket] = answered.get(ticket, 0) + 1
    doubles = sum(1 for n in called_in_db.values() if n > 1) + sum(
        1 for n in answered.values() if n > 1
    )
    total = sum(statuses.values())
    accounted = statuses.get("waiting", 0) + statuses.get("called", 0) + statuses.get("done", 0)
    # lost: a ticket that left the queue without a counter being told, or the other way round
    lost = (
        len(set(called_in_db) ^ set(answered))
        + (total - accounted)
        + abs(prefilled - total)
        + abs(statuses.get("called", 0) + statuses.get("done", 0) - len(answered))
    )
    return (
        doubles,
        lost,
        (
            f"{len(answered)} tickets answered to counters, {len(called_in_db)} with a "
            f"ticket.called event, statuses {statuses}; called twice {doubles}, lost {lost}"
        ),
    )

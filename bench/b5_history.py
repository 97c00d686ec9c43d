"""B5: a branch with a million tickets of history beside one with a thousand: the latency of
issuing, the queue view and `next` must not grow with the history (the plan of the claim walks
the waiting tickets only)."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime

from app.queue.ordering import PICK_NEXT_SQL
from bench import pg as pgmod
from bench import sql
from bench.harness import DATABASE, Bench
from bench.history import load_history
from bench.report import Row, verdict
from bench.servers import Branch
from bench.stats import Summary

COUNTERS = {"1": ["a", "b"], "2": ["b", "a"], "3": ["a", "b"], "4": ["v", "a"], "5": ["a", "b"]}
OPERATIONS = ("issue", "queue", "next")


def measure(bench: Bench) -> None:
    plan = bench.plan
    setup = bench.setup()
    small = setup.branch("h1", COUNTERS, open_counters=True)
    large = setup.branch("h2", COUNTERS, open_counters=True)
    setup.close()
    kiosks = bench.kiosk_tokens([small.code, large.code], per_branch=20)
    yesterday = bench.day.fromordinal(bench.day.toordinal() - 1)
    load_history(bench, small.code, plan.b5_small, yesterday)
    bench.sql("VACUUM ANALYZE tickets", "VACUUM ANALYZE branch_events")
    before = latencies(bench, small, kiosks[small.code])
    bench.detail("B5 h1 (1,000 of history), before the bulk load: " + describe(before))
    started = time.monotonic()
    load_history(bench, large.code, plan.b5_history, yesterday)
    bench.sql("VACUUM ANALYZE tickets", "VACUUM ANALYZE branch_events",
              "VACUUM ANALYZE ticket_sequences")  # fmt: skip
    size = bench.fetch("SELECT pg_size_pretty(pg_database_size($1))", DATABASE)[0][0]
    bench.detail(
        f"B5 {plan.b5_history:,} tickets of history loaded into h2 in "
        f"{time.monotonic() - started:.0f}s (database now {size})"
    )
    by_branch: dict[str, dict[str, list[float]]] = {"h1": {}, "h2": {}}
    for _ in range(plan.b5_rounds):
        for branch in (large, small):
            for op, summary in latencies(bench, branch, kiosks[branch.code]).items():
                by_branch[branch.code].setdefault(op, []).append(summary.p50_ms)
    explain(bench, large.code)
    ratios = {}
    parts = []
    for op in OPERATIONS:
        a = sorted(by_branch["h1"][op])[len(by_branch["h1"][op]) // 2]
        b = sorted(by_branch["h2"][op])[len(by_branch["h2"][op]) // 2]
        ratios[op] = b / a
        parts.append(f"{op} {a:.1f} -> {b:.1f} ms")
    worst = max(ratios, key=lambda k: ratios[k])
    history = f"{plan.b5_history:,}"
    bench.detail(f"B5 p50, {plan.b5_small:,} -> {history} tickets of history: " + ", ".join(parts))
    bench.rows["B5"] = [Row(
        f"B5 growth to {history}", "<= 2x from 1,000",
        "p50 " + ", ".join(parts),
        f"branch with {plan.b5_small:,} of history",
        f"{ratios[worst]:.2f} ({worst})",
        verdict(all(r <= 2 for r in ratios.values())),
    )]  # fmt: skip


def explain(bench: Bench, branch: str) -> None:
    """The plan of the pick-and-claim on the million-ticket branch, with 150 waiting: it
    must walk the waiting tickets only (a partial index), never the history."""
    bench.execute(sql.prefill_queue_sql(150), branch, bench.day, datetime.now(UTC))
    names: list[str] = []

    def positional(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    query = re.sub(r"(?<!:):([a-z_]+)", positional, PICK_NEXT_SQL.text)
    values = {
        "branch": branch, "counter": "1", "staff": "s1", "profile": ["a", "b"],
        "now": datetime.now(UTC), "requeue_after": 2,
    }  # fmt: skip

    async def run() -> list[str]:
        assert bench.pg is not None
        conn = await pgmod.connect(bench.pg, DATABASE)
        try:
            tr = conn.transaction()
            await tr.start()
            rows = await conn.fetch(
                f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {query}", *[values[n] for n in names]
            )
            await tr.rollback()
            return [str(r[0]) for r in rows]
        finally:
            await conn.close()

    plan = asyncio.run(run())
    bench.details.append(f"B5 EXPLAIN ANALYZE of PICK_NEXT_SQL on {branch} (150 waiting):")
    bench.details.extend(f"    {line}" for line in plan)
    bench.execute("DELETE FROM tickets WHERE branch = $1 AND status = 'waiting'", branch)


def latencies(bench: Bench, branch: Branch, kiosks: list[str]) -> dict[str, Summary]:
    """Sequential latencies of issue, the queue view and next on `branch`: `repeat` tickets
    issued (spread over the branch's kiosks, under the per-kiosk rate limit), the queue
    read as many times, then as many `next` over its 5 counters, which empties it again."""
    repeat = bench.plan.b5_repeat
    base = f"/api/v1/branches/{branch.code}"
    counters = sorted(branch.clerks)
    out = bench.load("latency", {
        "url": bench.urls[0],
        "ops": [
            {"name": "issue", "method": "POST", "path": f"{base}/tickets", "repeat": repeat,
             "tokens": [kiosks[i % len(kiosks)] for i in range(repeat)],
             "body": {"service": "a"}, "ok": [201]},
            {"name": "queue", "method": "GET", "path": f"{base}/queue", "repeat": repeat,
             "token": branch.kiosk},
            {"name": "next", "method": "POST", "repeat": repeat, "token": "",
             "paths": [f"{base}/counters/{counters[i % len(counters)]}/next"
                       for i in range(repeat)],
             "tokens": [branch.clerks[counters[i % len(counters)]] for i in range(repeat)],
             "ok": [200]},
        ],
    }, timeout=300)  # fmt: skip
    return {op: Summary.from_dict(s) for op, s in out.items()}


def describe(summaries: dict[str, Summary]) -> str:
    return ", ".join(
        f"{op} p50 {s.p50_ms:.1f} ms p99 {s.p99_ms:.1f} ms" for op, s in summaries.items()
    )

"""What one request costs while a block of load runs: the CPU time of the servers, PostgreSQL
and the load generator, the statements the servers send (pg_stat_statements), the database
connections they open, and with BENCH_PROFILE a py-spy profile of the first server."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.harness import DATABASE, Bench
from bench.profile import summarize


@contextlib.contextmanager
def accounting(
    bench: Bench, label: str, requests: Callable[[], int], *, statements: bool = True
) -> Iterator[dict[str, float]]:
    """What one request costs while the block runs: the statements the servers send
    (pg_stat_statements, and the heaviest ones by total time; not with `statements=False`),
    and the CPU time of the servers, PostgreSQL and the load generator, which the yielded
    dict holds afterwards (ms per request). With BENCH_PROFILE=1, py-spy samples the first
    server meanwhile."""
    cost: dict[str, float] = {}
    if statements:
        bench.sql("SELECT pg_stat_statements_reset()")
    sessions = sessions_opened(bench)
    profiler = start_profiler(bench, label)
    load_cpu = finished_children_cpu_s()
    with bench.cpu_timeline() as timeline:
        yield cost
    used = timeline.total
    cpu = used["servers"]
    pg_cpu = used["postgres"] + used["autovacuum"]
    load_cpu = finished_children_cpu_s() - load_cpu
    sessions = sessions_opened(bench) - sessions
    if profiler is not None:
        profiler.wait(timeout=120)
        out = profile_path(bench, label)
        if out.exists():
            bench.details.extend(summarize(out))
    count = requests()
    if not count:
        return
    cost.update(
        servers=cpu * 1000 / count, postgres=pg_cpu * 1000 / count, load=load_cpu * 1000 / count
    )
    heaviest = (
        statements_per_request(bench, label, count, sessions, cost["servers"]) if statements else []
    )
    # Where the machine's cores went: the whole load-generator process is counted (its
    # warm-up included), so its share per measured request is an upper bound.
    total_ms = sum(cost.values())
    bench.detail(
        f"{label}, CPU per request: servers {cost['servers']:.2f} ms, PostgreSQL "
        f"{cost['postgres']:.2f} ms, load generator {cost['load']:.2f} ms;"
        f" {total_ms:.2f} ms in all, so {os.cpu_count()} cores would carry at most"
        f" {(os.cpu_count() or 1) * 1000 / total_ms:.0f}/s"
    )
    bench.details.extend(heaviest)


def finished_children_cpu_s() -> float:
    """CPU time of this process's children that have ended: the load generators."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def statements_per_request(
    bench: Bench, label: str, count: int, sessions: int, server_ms: float
) -> list[str]:
    """What the servers sent while an accounted block ran (pg_stat_statements since its
    start), per request; returns the lines of the heaviest statements by total time."""
    rows = bench.fetch(
        "SELECT calls, total_exec_time, left(regexp_replace(query, '\\s+', ' ', 'g'), 90)"
        " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
        " WHERE d.datname = $1 AND query NOT LIKE '%pg_stat_statements%'"
        " ORDER BY total_exec_time DESC",
        DATABASE,
    )
    calls = sum(int(r[0]) for r in rows)
    db_ms = sum(float(r[1]) for r in rows)
    bench.detail(
        f"{label}: {calls / count:.1f} statements per request (BEGIN/COMMIT included), "
        f"{db_ms / count:.2f} ms of statement execution (lock waits included), "
        f"{server_ms:.2f} ms of server CPU per request; "
        f"{sessions} new database connections for {count} requests"
    )
    return [
        f"    {int(r[0]) / count:5.2f}/req  {float(r[1]) / count:6.3f} ms/req  {r[2]}"
        for r in rows[:16]
    ]


def sessions_opened(bench: Bench) -> int:
    """Connections ever opened to the database (pg_stat_database.sessions): a pool that
    keeps opening connections pays for a backend start and SCRAM authentication each time."""
    rows = bench.fetch("SELECT sessions FROM pg_stat_database WHERE datname = $1", DATABASE)
    return int(rows[0][0])


def profile_path(bench: Bench, label: str) -> Path:
    """profile-B1-hallq-issue.txt for "B1 hallq issue": one file per accounted block."""
    return bench.run_dir / f"profile-{'-'.join(re.findall(r'[A-Za-z0-9]+', label))}.txt"


def start_profiler(bench: Bench, label: str) -> subprocess.Popen[bytes] | None:
    if os.environ.get("BENCH_PROFILE", "") in ("", "0"):
        return None
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists():
        bench.say("BENCH_PROFILE: py-spy is not installed (make bench installs it)")
        return None
    out = profile_path(bench, label)
    pid = bench.servers[0].worker_processes()[0].pid
    # Native frames need py-spy to pause the process for each sample (it refuses
    # --nonblocking with --native), which slows the server down while it samples.
    mode = ["--native"] if os.environ.get("BENCH_PROFILE") == "native" else ["--nonblocking"]
    return subprocess.Popen(
        [str(py_spy), "record", "--pid", str(pid), "--duration", "5", "--rate", "200",
         "--format", "raw", "--output", str(out), *mode],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

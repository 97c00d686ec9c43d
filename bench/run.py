"""`make bench` / `python -m bench`: measure figures B1-B6 and print one table.

Environment:
    BENCH_QUICK=1        a ~2-minute run for development (shorter phases, 100k tickets of history)
    BENCH_ONLY=B1,B5     measure only these figures (the others say "not measured: skipped")
    BENCH_SERVERS=2      hallq server processes (at least 2)
    BENCH_WORKERS=1      uvicorn workers per server process
    HALLQ_*              passed on to the servers (e.g. HALLQ_DB_POOL_SIZE)

Everything runs on this machine over loopback: a PostgreSQL under .hallq/bench-pg-<pid>
(deleted afterwards), the servers, the load generators (bench/load.py, separate processes) and
pgbench. Results: bench/results/latest.md (the table and the details), raw numbers in
bench/results/last-run/.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psutil

from app.auth.service import hash_secret, new_token
from app.queue.ordering import PICK_NEXT_SQL
from bench import pg as pgmod
from bench import sql
from bench.cpu_timeline import CpuTimeline
from bench.cpu_timeline import describe as describe_cpu
from bench.profile import summarize
from bench.servers import Branch, Server, Setup, profiles, start_servers
from bench.stats import Summary, percentile
from devtools.embedded_postgres import EmbeddedPostgres

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DATABASE = "hallq"


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
    b6_timeout_s: float = 240

    @classmethod
    def from_env(cls) -> Plan:
        quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
        only = {f.strip().upper() for f in os.environ.get("BENCH_ONLY", "").split(",") if f.strip()}
        servers = max(2, int(os.environ.get("BENCH_SERVERS", "2")))
        workers = max(1, int(os.environ.get("BENCH_WORKERS", "1")))
        plan = cls(quick=quick, only=only, servers=servers, workers=workers, budget_s=660)
        if quick:
            plan.budget_s = 180
            plan.b1_seconds, plan.b1_warmup_s, plan.pgbench_seconds = 6, 1, 5
            plan.b2_calls = 2000
            plan.b3_calls = 8
            plan.b5_history, plan.b5_repeat, plan.b5_rounds = 100_000, 80, 1
            plan.b6_minutes, plan.b6_timeout_s = 120, 90
        return plan

    def wants(self, figure: str) -> bool:
        return not self.only or figure in self.only


@dataclass
class Row:
    figure: str
    target: str
    measured: str
    reference: str = "—"
    ratio: str = "—"
    verdict: str = "not measured"


def _timeline(result: dict[str, Any]) -> str:
    """The slowest request of each second of a load (by send time): a few stalls or a queue."""
    return ", ".join(
        f"{second}s {slowest:.0f} ms" for second, (_, slowest) in result.get("timeline", {}).items()
    )


def _ratio(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "—"


def _verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


class Bench:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.started = time.monotonic()
        self.run_dir = RESULTS / "last-run"
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.run_dir.mkdir(parents=True)
        self.admin_token = "bench-admin-" + secrets.token_urlsafe(16)
        self.pg: EmbeddedPostgres | None = None
        self.servers: list[Server] = []
        self.rows: dict[str, list[Row]] = {}
        self.details: list[str] = []
        self.raw: dict[str, Any] = {}
        self.loads = 0
        self.day = datetime.now(ZoneInfo("Asia/Shanghai")).date()

    # -- plumbing --------------------------------------------------------------------------

    def say(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"bench [{elapsed:5.0f}s] {message}", flush=True)

    def detail(self, line: str) -> None:
        self.details.append(line)
        self.say(line)

    def remaining(self) -> float:
        return self.plan.budget_s - (time.monotonic() - self.started)

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    @property
    def database_url(self) -> str:
        assert self.pg is not None
        return self.pg.url(DATABASE)

    def sql(self, *statements: str) -> None:
        assert self.pg is not None
        asyncio.run(pgmod.execute(self.pg, DATABASE, *statements))

    def execute(self, query: str, *args: Any) -> None:
        assert self.pg is not None
        asyncio.run(pgmod.execute_args(self.pg, DATABASE, query, *args))

    def fetch(self, query: str, *args: Any) -> list[Any]:
        assert self.pg is not None
        return asyncio.run(pgmod.fetch(self.pg, DATABASE, query, *args))

    def load(self, scenario: str, config: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Run one load-generator process and return its result."""
        self.loads += 1
        path = self.run_dir / f"load-{self.loads:02d}-{scenario}.json"
        path.write_text(json.dumps(config, indent=1))
        result = subprocess.run(
            [sys.executable, "-m", "bench.load", scenario, str(path)],
            cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"load generator {scenario} failed:\n{result.stderr[-2000:]}")
        out: dict[str, Any] = json.loads(path.with_suffix(".result.json").read_text())
        return out

    def server_processes(self) -> list[psutil.Process]:
        return [p for server in self.servers for p in server.worker_processes()]

    def cpu_timeline(self) -> CpuTimeline:
        """The CPU of the servers and of PostgreSQL, per second, while a block runs."""
        assert self.pg is not None
        pid = self.pg.postmaster_pid()
        return CpuTimeline(self.server_processes, psutil.Process(pid) if pid is not None else None)

    @staticmethod
    def finished_children_cpu_s() -> float:
        """CPU time of this process's children that have ended: the load generators."""
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    @contextlib.contextmanager
    def accounting(
        self, label: str, requests: Callable[[], int], *, statements: bool = True
    ) -> Iterator[dict[str, float]]:
        """What one request costs while the block runs: the statements the servers send
        (pg_stat_statements, and the heaviest ones by total time; not with `statements=False`),
        and the CPU time of the servers, PostgreSQL and the load generator, which the yielded
        dict holds afterwards (ms per request). With BENCH_PROFILE=1, py-spy samples the first
        server meanwhile."""
        cost: dict[str, float] = {}
        if statements:
            self.sql("SELECT pg_stat_statements_reset()")
        sessions = self.sessions_opened()
        profiler = self.start_profiler(label)
        load_cpu = self.finished_children_cpu_s()
        with self.cpu_timeline() as timeline:
            yield cost
        used = timeline.total
        cpu = used["servers"]
        pg_cpu = used["postgres"] + used["autovacuum"]
        load_cpu = self.finished_children_cpu_s() - load_cpu
        sessions = self.sessions_opened() - sessions
        if profiler is not None:
            profiler.wait(timeout=120)
            out = self.profile_path(label)
            if out.exists():
                self.details.extend(summarize(out))
        count = requests()
        if not count:
            return
        cost.update(
            servers=cpu * 1000 / count, postgres=pg_cpu * 1000 / count, load=load_cpu * 1000 / count
        )
        heaviest = (
            self.statements_per_request(label, count, sessions, cost["servers"])
            if statements
            else []
        )
        # Where the machine's cores went: the whole load-generator process is counted (its
        # warm-up included), so its share per measured request is an upper bound.
        total_ms = sum(cost.values())
        self.detail(
            f"{label}, CPU per request: servers {cost['servers']:.2f} ms, PostgreSQL "
            f"{cost['postgres']:.2f} ms, load generator {cost['load']:.2f} ms;"
            f" {total_ms:.2f} ms in all, so {os.cpu_count()} cores would carry at most"
            f" {(os.cpu_count() or 1) * 1000 / total_ms:.0f}/s"
        )
        self.details.extend(heaviest)

    def statements_per_request(
        self, label: str, count: int, sessions: int, server_ms: float
    ) -> list[str]:
        """What the servers sent while an accounted block ran (pg_stat_statements since its
        start), per request; returns the lines of the heaviest statements by total time."""
        rows = self.fetch(
            "SELECT calls, total_exec_time, left(regexp_replace(query, '\\s+', ' ', 'g'), 90)"
            " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
            " WHERE d.datname = $1 AND query NOT LIKE '%pg_stat_statements%'"
            " ORDER BY total_exec_time DESC",
            DATABASE,
        )
        calls = sum(int(r[0]) for r in rows)
        db_ms = sum(float(r[1]) for r in rows)
        self.detail(
            f"{label}: {calls / count:.1f} statements per request (BEGIN/COMMIT included), "
            f"{db_ms / count:.2f} ms of statement execution (lock waits included), "
            f"{server_ms:.2f} ms of server CPU per request; "
            f"{sessions} new database connections for {count} requests"
        )
        return [
            f"    {int(r[0]) / count:5.2f}/req  {float(r[1]) / count:6.3f} ms/req  {r[2]}"
            for r in rows[:16]
        ]

    def sessions_opened(self) -> int:
        """Connections ever opened to the database (pg_stat_database.sessions): a pool that
        keeps opening connections pays for a backend start and SCRAM authentication each time."""
        rows = self.fetch("SELECT sessions FROM pg_stat_database WHERE datname = $1", DATABASE)
        return int(rows[0][0])

    def profile_path(self, label: str) -> Path:
        """profile-B1-hallq-issue.txt for "B1 hallq issue": one file per accounted block."""
        return self.run_dir / f"profile-{'-'.join(re.findall(r'[A-Za-z0-9]+', label))}.txt"

    def start_profiler(self, label: str) -> subprocess.Popen[bytes] | None:
        if os.environ.get("BENCH_PROFILE", "") in ("", "0"):
            return None
        py_spy = Path(sys.executable).with_name("py-spy")
        if not py_spy.exists():
            self.say("BENCH_PROFILE: py-spy is not installed (make bench installs it)")
            return None
        out = self.profile_path(label)
        pid = self.servers[0].worker_processes()[0].pid
        # Native frames need py-spy to pause the process for each sample (it refuses
        # --nonblocking with --native), which slows the server down while it samples.
        mode = ["--native"] if os.environ.get("BENCH_PROFILE") == "native" else ["--nonblocking"]
        return subprocess.Popen(
            [str(py_spy), "record", "--pid", str(pid), "--duration", "5", "--rate", "200",
             "--format", "raw", "--output", str(out), *mode],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    # -- lifecycle ------------------------------------------------------------------------

    @staticmethod
    def quiet_logs() -> None:
        """B6's in-process app sets up INFO logging; the bench's own HTTP calls stay quiet."""
        for name in ("httpx", "httpcore", "hallq.access", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)

    def start(self) -> None:
        self.say(
            f"{'quick' if self.plan.quick else 'full'} run, {self.plan.servers} server processes "
            f"x {self.plan.workers} worker(s), budget {self.plan.budget_s:.0f}s"
        )
        data_dir = ROOT / ".hallq" / f"bench-pg-{os.getpid()}"
        self.pg = pgmod.start_server(data_dir)
        asyncio.run(pgmod.create_database(self.pg, DATABASE))
        pgmod.migrate(self.database_url)
        self.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        self.raw["postgres"] = asyncio.run(pgmod.server_version(self.pg))
        self.say(f"PostgreSQL {self.raw['postgres']} on port {self.pg.port}, migrated")
        self.servers = start_servers(
            self.database_url,
            self.admin_token,
            count=self.plan.servers,
            workers=self.plan.workers,
            log_dir=self.run_dir,
        )
        self.say(f"servers on {', '.join(self.urls)}")

    def stop(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()
        if self.pg is not None:
            # Its log (autovacuum runs, checkpoints, slow statements) goes with the results.
            with contextlib.suppress(OSError):
                shutil.copy(self.pg.log_file, self.run_dir / "postgres.log")
            self.pg.stop()

    def setup(self) -> Setup:
        return Setup(self.urls[0], self.admin_token)

    # -- B1: issuing ----------------------------------------------------------------------

    def b1_budget(self, issue_cost: dict[str, float], reference_rate: float) -> None:
        """What the B1 target leaves per issue on this machine's cores, beside what the HTTP
        stack alone costs (`GET /healthz`, no database): whether the target is in reach of any
        issuing code on these servers, or of the machine."""
        floor: dict[str, Any] = {}
        config = {"urls": self.urls, "concurrency": self.plan.kiosks, "duration_s": 5}
        with self.accounting(
            "B1 floor (GET /healthz)",
            lambda: int(sum(floor.get("statuses", {}).values())),
            statements=False,
        ) as floor_cost:
            floor = self.load("healthz", config, timeout=60)
        if not reference_rate or not floor_cost or not issue_cost:
            return
        cores = os.cpu_count() or 1
        budget = cores * 1000 / (0.5 * reference_rate)
        self.detail(
            f"B1 budget: half of pgbench's rate ({0.5 * reference_rate:.0f}/s) leaves"
            f" {budget:.2f} ms of the {cores} cores per issue, for the servers, PostgreSQL and"
            f" the load generator together. An issue took {issue_cost['servers']:.2f} +"
            f" {issue_cost['postgres']:.2f} + {issue_cost['load']:.2f} ms; a GET /healthz,"
            f" which touches no database, {floor_cost['servers']:.2f} ms of the servers and"
            f" {floor_cost['load']:.2f} ms of the load generator"
        )

    def b1(self) -> None:
        plan = self.plan
        setup = self.setup()
        counters = {"1": ["a", "b"], "2": ["b", "a"], "3": ["v", "a"]}
        kiosk_branches = [
            setup.branch(f"k{i:02d}", counters, open_counters=False)
            for i in range(1, plan.kiosk_branches + 1)
        ]
        # The open loop gets branches of its own: nobody is called in B1, so queues only grow,
        # and each issue reads its hall (the waiting tickets of its branch). Starting from empty
        # queues as the closed loop did, it runs at 80 % of a rate measured under the same
        # conditions, not on queues the closed loop already filled.
        open_loop_branches = [
            setup.branch(f"m{i:02d}", counters, open_counters=False)
            for i in range(1, plan.kiosk_branches + 1)
        ]
        # The same branches again for each pgbench variant, so that each starts, as hallq does,
        # with empty queues (the hall read of the full variant scans the waiting tickets).
        for prefix in ("p", "q"):
            for i in range(1, plan.kiosk_branches + 1):
                setup.branch(f"{prefix}{i:02d}", counters, open_counters=False)
        setup.close()
        assert self.pg is not None

        tokens = self.kiosk_tokens(
            [b.code for b in kiosk_branches + open_loop_branches], per_branch=50
        )
        reference = pgmod.run_pgbench(
            self.pg, DATABASE,
            sql.issue_script(prefix="p", branches=plan.kiosk_branches, full=False),
            clients=plan.kiosks, seconds=plan.pgbench_seconds, variables=[f"day={self.day}"],
        )  # fmt: skip
        self.detail(f"B1 pgbench core (3 statements): {reference.summary.describe()}")
        full = pgmod.run_pgbench(
            self.pg, DATABASE,
            sql.issue_script(prefix="q", branches=plan.kiosk_branches, full=True),
            clients=plan.kiosks, seconds=plan.pgbench_seconds,
            variables=[f"day={self.day}", "requeue_after=2"],
        )  # fmt: skip
        self.detail(f"B1 pgbench full (every statement hallq sends): {full.summary.describe()}")

        config = {
            "urls": self.urls,
            "branches": [
                {"code": b.code, "tokens": tokens[b.code], "services": list(sql.SERVICES)}
                for b in kiosk_branches
            ],
            "concurrency": plan.kiosks,
            "duration_s": plan.b1_seconds,
            "warmup_s": plan.b1_warmup_s,
            "max_requests": 200_000,
        }
        self.load("prime", config, timeout=120)  # bench/load.py: scenario_prime
        closed: dict[str, Any] = {}
        with self.accounting(
            "B1 hallq issue", lambda: int(sum(closed.get("statuses", {}).values()))
        ) as issue_cost:
            closed = self.load("issue", config, timeout=plan.b1_seconds + 120)
        hallq = Summary.from_dict(closed["summary"])
        self.detail(f"B1 hallq, {plan.kiosks} kiosks, closed loop: {hallq.describe()}")
        ratio = hallq.rate / reference.summary.rate if reference.summary.rate else math.nan
        self.rows["B1"] = [
            Row(
                "B1 issue rate",
                ">= 50% of pgbench",
                f"{hallq.rate:.0f}/s, p50 {hallq.p50_ms:.1f} ms, p99 {hallq.p99_ms:.1f} ms"
                + (f", {hallq.errors} errors" if hallq.errors else ""),
                f"pgbench {reference.summary.rate:.0f}/s, p99 {reference.summary.p99_ms:.1f} ms",
                _ratio(ratio),
                _verdict(ratio >= 0.5 and hallq.errors == 0),
            )
        ]
        rate = 0.8 * hallq.rate
        open_loop_config = {
            **config,
            "branches": [
                {"code": b.code, "tokens": tokens[b.code], "services": list(sql.SERVICES)}
                for b in open_loop_branches
            ],
            "rate": rate,
            "concurrency": 256,
            "warmup_s": 1.0,
        }
        self.load("prime", open_loop_config, timeout=120)
        with self.cpu_timeline() as cpu:
            steady = self.load("issue", open_loop_config, timeout=plan.b1_seconds + 120)
        s = Summary.from_dict(steady["summary"])
        self.detail(f"B1 hallq at {rate:.0f}/s (80%), open loop: {s.describe()}")
        self.detail(f"B1 open loop, slowest request per second: {_timeline(steady)}")
        slowest = {int(k): v[1] for k, v in steady.get("timeline", {}).items()}
        self.detail(
            "B1 open loop, where the cores went: "
            + describe_cpu(cpu, steady["started_monotonic"], slowest)
        )
        self.rows["B1"].append(
            Row(
                "B1 p99 at 80% rate",
                "p99 <= 50 ms",
                f"p99 {s.p99_ms:.1f} ms, p50 {s.p50_ms:.1f} ms at {s.rate:.0f}/s"
                + (f", {s.errors} errors" if s.errors else ""),
                f"offered {rate:.0f}/s",
                _ratio(s.p99_ms / 50),
                _verdict(s.p99_ms <= 50 and s.errors == 0),
            )
        )
        # Last: both figures are recorded whatever happens to this side measurement.
        self.b1_budget(issue_cost, reference.summary.rate)

    def kiosk_tokens(self, branches: list[str], per_branch: int) -> dict[str, list[str]]:
        """Many kiosks: `per_branch` kiosk tokens for each branch, written straight into
        api_tokens (as app.auth.service would: `hq.<id>.<secret>`, the secret's SHA-256 kept).
        The load spreads over them, so no kiosk passes the per-token issue rate limit that a
        real kiosk never reaches either."""
        rows = []
        tokens: dict[str, list[str]] = {}
        now = datetime.now(UTC)
        for branch in branches:
            for _ in range(per_branch):
                token_id, secret, token = new_token()
                rows.append((token_id, hash_secret(secret), "kiosk", branch, "bench kiosk", now))
                tokens.setdefault(branch, []).append(token)

        async def insert() -> None:
            assert self.pg is not None
            conn = await pgmod.connect(self.pg, DATABASE)
            try:
                await conn.executemany(
                    "INSERT INTO api_tokens (id, secret_hash, role, branch, label, created_at)"
                    " VALUES ($1, $2, $3, $4, $5, $6)",
                    rows,
                )
            finally:
                await conn.close()

        asyncio.run(insert())
        return tokens

    # -- B2: next from 50 counters ------------------------------------------------------------

    def b2(self) -> None:
        plan = self.plan
        setup = self.setup()
        counters = profiles(plan.b2_counters)
        hallq_branch = setup.branch("n1", counters, open_counters=True)
        pg_branch = setup.branch("n2", counters, open_counters=True)
        setup.close()
        assert self.pg is not None
        calls = plan.b2_calls - plan.b2_calls % plan.b2_counters
        margin = calls // 4  # every call finds a ticket for its counter's profile
        now = datetime.now(UTC)

        def prefill(branch: str) -> None:
            self.execute(sql.prefill_queue_sql(calls + margin), branch, self.day, now)
            self.execute(sql.SEQUENCES_FROM_TICKETS_SQL, branch)
            self.sql("ANALYZE tickets")

        results = []
        for full in (False, True):
            prefill(pg_branch.code)
            result = pgmod.run_pgbench(
                self.pg,
                DATABASE,
                sql.next_script(full=full),
                clients=plan.b2_counters,
                transactions_per_client=calls // plan.b2_counters,
                variables=[
                    f"branch={pg_branch.code}",
                    "requeue_after=2",
                    f"token_id={pg_branch.clerk_id}",
                ],
            )
            results.append(result)
            what = "full (every statement hallq sends)" if full else "core"
            self.detail(
                f"B2 pgbench {what}, {plan.b2_counters} counters: {result.summary.describe()}"
            )
        reference = results[0]
        # The pgbench branch's waiting queue is now `margin` + the prefill of the full run's
        # leftovers; hallq's branch gets the same queue as the core run had.
        prefill(hallq_branch.code)
        config = {
            "urls": self.urls,
            "branch": hallq_branch.code,
            "counters": [{"code": c, "token": t} for c, t in hallq_branch.clerks.items()],
            "duration_s": max(30.0, min(120.0, self.remaining() / 3)),
            "max_calls": calls,
        }
        out: dict[str, Any] = {}
        with self.accounting("B2 hallq next", lambda: int(sum(out.get("statuses", {}).values()))):
            out = self.load("next", config, timeout=240)
        hallq = Summary.from_dict(out["summary"])
        self.detail(
            f"B2 hallq, {plan.b2_counters} counters on {len(self.urls)} processes: "
            f"{hallq.describe()}"
        )
        doubles, lost, check = self.b2_check(hallq_branch.code, out["called"], calls + margin)
        self.detail(f"B2 check: {check}")
        ratio = hallq.rate / reference.summary.rate if reference.summary.rate else math.nan
        self.rows["B2"] = [
            Row(
                "B2 next, 50 counters",
                "none called twice or lost; >= 40% of pgbench",
                f"{hallq.rate:.0f}/s, p50 {hallq.p50_ms:.1f} ms, p99 {hallq.p99_ms:.1f} ms; "
                f"called twice {doubles}, lost {lost}"
                + (f", {hallq.errors} errors" if hallq.errors else ""),
                f"pgbench {reference.summary.rate:.0f}/s, p99 {reference.summary.p99_ms:.1f} ms",
                _ratio(ratio),
                _verdict(ratio >= 0.4 and doubles == 0 and lost == 0 and hallq.errors == 0),
            )
        ]

    def b2_check(self, branch: str, called: list[str], prefilled: int) -> tuple[int, int, str]:
        """From the database: every ticket is waiting, called or done, exactly once; every
        ticket a counter got in a 200 was called exactly once; and nothing else was."""
        statuses = dict(
            (r[0], int(r[1]))
            for r in self.fetch(
                "SELECT status, count(*) FROM tickets WHERE branch = $1 GROUP BY status", branch
            )
        )
        events = self.fetch(
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

    # -- B3/B4: lobby screens -------------------------------------------------------------------

    def b3(self) -> None:
        if not (ROOT / "app" / "stream" / "views.py").exists():
            self.rows["B3"] = [
                Row(
                    "B3 call to 1,000 screens",
                    "p99 <= 100 ms, none missed",
                    "not measured: stream not built",
                )
            ]
            self.rows["B4"] = [
                Row(
                    "B4 memory, 1,000 screens",
                    "<= 150 MB per process",
                    "not measured: stream not built",
                )
            ]
            return
        plan = self.plan
        setup = self.setup()
        branch = setup.branch(
            "s1", {"1": ["a", "b"]}, open_counters=True, displays=max(1, plan.b3_clients // 100)
        )
        setup.close()
        idle = [mb for s in self.servers for mb in s.rss_mb()]
        listeners = 2
        procs = []
        paths = []
        for i in range(listeners):
            path = self.run_dir / f"ws-listen-{i}.json"
            paths.append(path)
            path.write_text(
                json.dumps(
                    {
                        # each listener spreads its screens over every server process
                        "urls": self.urls[i % len(self.urls) :] + self.urls[: i % len(self.urls)],
                        "branch": branch.code,
                        "tokens": branch.displays,
                        "clients": plan.b3_clients // listeners,
                        "max_duration_s": 180,
                    }
                )
            )
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "bench.load", "ws-listen", str(path)], cwd=ROOT,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            ))  # fmt: skip
        try:
            connected = failed = 0
            for proc in procs:
                assert proc.stdout is not None
                line = proc.stdout.readline().split()
                if len(line) != 3 or line[0] != "READY":
                    raise RuntimeError(f"ws listener did not start: {line}")
                connected += int(line[1])
                failed += int(line[2])
            self.detail(f"B3 {connected} screens connected ({failed} failed)")
            time.sleep(1.0)
            loaded = [mb for s in self.servers for mb in s.rss_mb()]
            calls = self.load("calls", {
                "url": self.urls[0], "branch": branch.code, "n": plan.b3_calls, "service": "a",
                "kiosk_token": branch.kiosk, "counter": "1", "clerk_token": branch.clerks["1"],
                "interval_s": 0.5, "settle_s": 1.0,
            }, timeout=120)  # fmt: skip
            time.sleep(1.0)
            loaded = [
                max(a, b)
                for a, b in zip(
                    loaded, [mb for s in self.servers for mb in s.rss_mb()], strict=True
                )
            ]
            received: list[dict[str, float]] = []
            for proc, path in zip(procs, paths, strict=True):
                _, err = proc.communicate("STOP\n", timeout=60)
                if proc.returncode != 0:
                    raise RuntimeError(f"ws listener failed:\n{err[-2000:]}")
                result = json.loads(path.with_suffix(".result.json").read_text())
                received += result["received"]
                if result["failures"]:
                    self.detail(f"B3 listener failures: {result['failures'][:3]}")
                if result["retried"]:
                    self.detail(
                        f"B3 {result['retried']} connection attempts refused and retried: "
                        f"{result['retry_reasons'][:2]}"
                    )
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
        delays: list[float] = []
        firsts: list[float] = []
        spreads: list[float] = []
        missed = 0
        for call in calls["calls"]:
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
        missed += failed * len(calls["calls"])
        p50, p99 = percentile(delays, 50), percentile(delays, 99)
        self.detail(
            f"B3 {len(calls['calls'])} calls x {connected} screens: delay after the next "
            f"response p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(delays, default=0):.1f} ms, "
            f"missed {missed}; the first screen of a call gets it {percentile(firsts, 50):.1f} ms "
            f"after the response (median over calls), the last {percentile(spreads, 50):.1f} ms "
            "after the first (the fan-out: server writes and the listeners' own reading)"
        )
        self.detail(
            "B4 RSS per server process (MB): idle "
            + ", ".join(f"{mb:.0f}" for mb in idle)
            + "; with the screens "
            + ", ".join(f"{mb:.0f}" for mb in loaded)
        )
        ok = connected == plan.b3_clients and missed == 0 and p99 <= 100
        self.rows["B3"] = [Row(
            "B3 call to 1,000 screens", "p99 <= 100 ms, none missed",
            f"p99 {p99:.1f} ms, p50 {p50:.1f} ms; {connected} screens on "
            f"{len(self.servers)} processes, {len(calls['calls'])} calls, missed {missed}",
            "the next response", _ratio(p99 / 100), _verdict(ok),
        )]  # fmt: skip
        worst = max(loaded)
        self.rows["B4"] = [Row(
            "B4 memory, 1,000 screens", "<= 150 MB per process",
            f"max {worst:.0f} MB (" + ", ".join(f"{mb:.0f}" for mb in loaded) + " MB)",
            "idle " + ", ".join(f"{mb:.0f}" for mb in idle) + " MB",
            _ratio(worst / 150), _verdict(worst <= 150 and connected == plan.b3_clients),
        )]  # fmt: skip

    # -- B5: a million tickets of history ---------------------------------------------------

    def b5(self) -> None:
        plan = self.plan
        setup = self.setup()
        counters = {"1": ["a", "b"], "2": ["b", "a"], "3": ["a", "b"], "4": ["v", "a"],
                    "5": ["a", "b"]}  # fmt: skip
        small = setup.branch("h1", counters, open_counters=True)
        large = setup.branch("h2", counters, open_counters=True)
        setup.close()
        kiosks = self.kiosk_tokens([small.code, large.code], per_branch=20)
        yesterday = self.day.fromordinal(self.day.toordinal() - 1)
        self.load_history(small.code, plan.b5_small, yesterday)
        self.sql("VACUUM ANALYZE tickets", "VACUUM ANALYZE branch_events")
        before = self.b5_measure(small, kiosks[small.code])
        self.detail("B5 h1 (1,000 of history), before the bulk load: " + self.b5_text(before))
        started = time.monotonic()
        self.load_history(large.code, plan.b5_history, yesterday)
        self.sql("VACUUM ANALYZE tickets", "VACUUM ANALYZE branch_events",
                 "VACUUM ANALYZE ticket_sequences")  # fmt: skip
        size = self.fetch("SELECT pg_size_pretty(pg_database_size($1))", DATABASE)[0][0]
        self.detail(
            f"B5 {plan.b5_history:,} tickets of history loaded into h2 in "
            f"{time.monotonic() - started:.0f}s (database now {size})"
        )
        by_branch: dict[str, dict[str, list[float]]] = {"h1": {}, "h2": {}}
        for _ in range(plan.b5_rounds):
            for branch in (large, small):
                for op, summary in self.b5_measure(branch, kiosks[branch.code]).items():
                    by_branch[branch.code].setdefault(op, []).append(summary.p50_ms)
        self.b5_explain(large.code)
        ratios = {}
        parts = []
        for op in ("issue", "queue", "next"):
            a = sorted(by_branch["h1"][op])[len(by_branch["h1"][op]) // 2]
            b = sorted(by_branch["h2"][op])[len(by_branch["h2"][op]) // 2]
            ratios[op] = b / a
            parts.append(f"{op} {a:.1f} -> {b:.1f} ms")
        worst = max(ratios, key=lambda k: ratios[k])
        history = f"{plan.b5_history:,}"
        self.detail(
            f"B5 p50, {plan.b5_small:,} -> {history} tickets of history: " + ", ".join(parts)
        )
        self.rows["B5"] = [Row(
            f"B5 growth to {history}", "<= 2x from 1,000",
            "p50 " + ", ".join(parts),
            f"branch with {plan.b5_small:,} of history",
            f"{ratios[worst]:.2f} ({worst})",
            _verdict(all(r <= 2 for r in ratios.values())),
        )]  # fmt: skip

    def b5_explain(self, branch: str) -> None:
        """The plan of the pick-and-claim on the million-ticket branch, with 150 waiting: it
        must walk the waiting tickets only (a partial index), never the history."""
        self.execute(sql.prefill_queue_sql(150), branch, self.day, datetime.now(UTC))
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

        async def explain() -> list[str]:
            assert self.pg is not None
            conn = await pgmod.connect(self.pg, DATABASE)
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

        plan = asyncio.run(explain())
        self.details.append(f"B5 EXPLAIN ANALYZE of PICK_NEXT_SQL on {branch} (150 waiting):")
        self.details.extend(f"    {line}" for line in plan)
        self.execute("DELETE FROM tickets WHERE branch = $1 AND status = 'waiting'", branch)

    def load_history(self, branch: str, count: int, last_day: Any) -> None:
        base = int(self.fetch("SELECT event_seq FROM branches WHERE code = $1", branch)[0][0])
        per_day = 1000
        chunk = 250_000
        for first in range(0, count, chunk):
            n = min(chunk, count - first)
            # chunks go back in time: chunk 0 ends yesterday, each later one before it
            end = last_day.fromordinal(last_day.toordinal() - first // per_day)
            self._history_chunk(branch, f"{branch}-{first}", n, per_day, end, base + 3 * first)
        self.execute(sql.SEQUENCES_FROM_TICKETS_SQL, branch)
        self.execute("UPDATE branches SET event_seq = $1 WHERE code = $2", base + 3 * count, branch)

    def _history_chunk(
        self, branch: str, key: str, n: int, per_day: int, end: Any, base: int
    ) -> None:
        async def run() -> None:
            assert self.pg is not None
            conn = await pgmod.connect(self.pg, DATABASE)
            try:
                async with conn.transaction():
                    # A bulk load: no foreign-key trigger per row (the rows
                    # are consistent by construction).
                    await conn.execute("SET LOCAL session_replication_role = replica")
                    await conn.execute(sql.history_tickets_sql(n, per_day), branch, end, key)
                    await conn.execute(sql.history_events_sql(n), branch, base, key)
            finally:
                await conn.close()

        asyncio.run(run())

    def b5_measure(self, branch: Branch, kiosks: list[str]) -> dict[str, Summary]:
        """Sequential latencies of issue, the queue view and next on `branch`: `repeat` tickets
        issued (spread over the branch's kiosks, under the per-kiosk rate limit), the queue
        read as many times, then as many `next` over its 5 counters, which empties it again."""
        repeat = self.plan.b5_repeat
        base = f"/api/v1/branches/{branch.code}"
        counters = sorted(branch.clerks)
        out = self.load("latency", {
            "url": self.urls[0],
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

    @staticmethod
    def b5_text(summaries: dict[str, Summary]) -> str:
        return ", ".join(
            f"{op} p50 {s.p50_ms:.1f} ms p99 {s.p99_ms:.1f} ms" for op, s in summaries.items()
        )

    # -- B6: the estimated wait in a simulated hall ------------------------------------------

    def b6(self) -> None:
        if not (ROOT / "devtools" / "hall_simulation.py").exists():
            self.rows["B6"] = [
                Row(
                    "B6 estimated wait",
                    "MAE <= 25% of the actual wait",
                    "not measured: devtools/hall_simulation.py not written",
                )
            ]
            return
        assert self.pg is not None
        url = asyncio.run(pgmod.create_database(self.pg, "hallq_b6"))
        pgmod.migrate(url)
        minutes = self.plan.b6_minutes
        result = asyncio.run(asyncio.wait_for(run_simulation(url, minutes, self.admin_token),
                                              self.plan.b6_timeout_s))  # fmt: skip
        mae = float(result.mae_ratio)
        by_service = getattr(result, "by_service", {}) or {}
        self.detail(
            f"B6 simulated hall, {minutes} min, seed 1: {result.tickets} tickets measured, "
            f"MAE {getattr(result, 'mae_s', math.nan):.0f} s over a mean actual wait of "
            f"{getattr(result, 'mean_actual_wait_s', math.nan):.0f} s = {mae:.1%}; by type: "
            + ", ".join(f"{k} {v.mae_ratio:.0%} (n={v.tickets})" for k, v in by_service.items())
        )
        self.rows["B6"] = [Row(
            "B6 estimated wait", "MAE <= 25% of the actual wait",
            f"MAE {mae:.0%} of the actual wait over {result.tickets} tickets",
            f"simulated hall, {minutes} min", _ratio(mae / 0.25), _verdict(mae <= 0.25),
        )]  # fmt: skip

    # -- the whole run ------------------------------------------------------------------------

    def run(self) -> None:
        phases: list[tuple[str, Callable[[], None], list[tuple[str, str]]]] = [
            ("B1", self.b1, [("B1 issue rate", ">= 50% of pgbench"),
                             ("B1 p99 at 80% rate", "p99 <= 50 ms")]),
            ("B2", self.b2, [("B2 next, 50 counters",
                              "none called twice or lost; >= 40% of pgbench")]),
            ("B3", self.b3, [("B3 call to 1,000 screens", "p99 <= 100 ms, none missed"),
                             ("B4 memory, 1,000 screens", "<= 150 MB per process")]),
            ("B6", self.b6, [("B6 estimated wait", "MAE <= 25% of the actual wait")]),
            ("B5", self.b5, [(f"B5 growth to {self.plan.b5_history:,}", "<= 2x from 1,000")]),
        ]  # fmt: skip
        for name, phase, rows in phases:
            wanted = self.plan.wants(name) or (name == "B3" and self.plan.wants("B4"))
            if not wanted:
                self._placeholder(name, rows, "not measured: skipped (BENCH_ONLY)")
                continue
            if self.remaining() < 20:
                self._placeholder(name, rows, "not measured: out of time budget")
                continue
            self.say(f"{name} ...")
            try:
                phase()
                self.quiet_logs()
            except Exception as exc:
                self.detail(f"{name} failed: {type(exc).__name__}: {exc}")
                self._placeholder(name, rows, f"not measured: {type(exc).__name__}")

    def _placeholder(self, name: str, rows: list[tuple[str, str]], why: str) -> None:
        for figure, target in rows:
            key = "B4" if figure.startswith("B4") else name
            if not any(r.figure == figure for r in self.rows.get(key, [])):
                self.rows.setdefault(key, []).append(Row(figure, target, why))

    def table(self) -> str:
        header = "| figure | target | measured | reference | ratio | result |"
        lines = [header, "|---|---|---|---|---|---|"]
        for key in ("B1", "B2", "B3", "B4", "B5", "B6"):
            for r in self.rows.get(key, []):
                lines.append(
                    f"| {r.figure} | {r.target} | {r.measured} | {r.reference} | {r.ratio} "
                    f"| {r.verdict} |"
                )
        return "\n".join(lines)


async def run_simulation(database_url: str, minutes: int, admin_token: str) -> Any:
    """B6 runs in this process: the simulation moves a ManualClock, which only an in-process
    app can share."""
    import httpx

    from app.core.clock import ManualClock
    from app.core.settings import Settings
    from app.main import create_app
    from devtools.hall_simulation import run_hall_simulation

    clock = ManualClock(datetime(2026, 11, 24, 1, 0, tzinfo=UTC))  # 09:00 in Shanghai
    app = create_app(Settings(database_url=database_url, admin_token=admin_token), clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hallq.bench") as client:
            return await run_hall_simulation(
                client,
                clock,
                seed=1,
                minutes=minutes,
                headers={"Authorization": f"Bearer {admin_token}"},
            )


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GB, Python {sys.version.split()[0]}"


def main() -> int:
    plan = Plan.from_env()
    bench = Bench(plan)

    def _terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    try:
        bench.start()
        bench.run()
    finally:
        bench.stop()
    elapsed = time.monotonic() - bench.started
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    table = bench.table()
    header = (
        f"hallq benchmark, {when}, {'quick' if plan.quick else 'full'} run in {elapsed:.0f}s: "
        f"{plan.servers} server processes x {plan.workers} worker(s), PostgreSQL "
        f"{bench.raw.get('postgres', '?')} (fsync on), {machine()}"
    )
    print("\n" + header + "\n\n" + table + "\n", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(
        f"# {header}\n\n{table}\n\n## Details\n\n```\n" + "\n".join(bench.details) + "\n```\n"
    )
    print(f"written to {(RESULTS / 'latest.md').relative_to(ROOT)}")
    return 0

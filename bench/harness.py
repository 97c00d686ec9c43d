"""One benchmark run's machinery and state: its PostgreSQL and hallq servers, the load-generator
processes, database access, and the rows and detail lines the figures add (bench/report.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psutil

from app.auth.service import hash_secret, new_token
from app.core.migrations import upgrade
from bench import pg as pgmod
from bench.cpu_timeline import CpuTimeline
from bench.plan import Plan
from bench.report import RESULTS, Row
from bench.servers import Server, Setup, start_servers
from devtools.embedded_postgres import EmbeddedPostgres

ROOT = Path(__file__).resolve().parents[1]
DATABASE = "hallq"


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

    # -- output ----------------------------------------------------------------------------

    def say(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"bench [{elapsed:5.0f}s] {message}", flush=True)

    def detail(self, line: str) -> None:
        self.details.append(line)
        self.say(line)

    def remaining(self) -> float:
        return self.plan.budget_s - (time.monotonic() - self.started)

    # -- the database ----------------------------------------------------------------------

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

    def kiosk_tokens(self, branches: list[str], per_branch: int) -> dict[str, list[str]]:
        """Many kiosks: `per_branch` kiosk tokens for each branch, written straight into
        api_tokens (as app.tokens.service would: `hq.<id>.<secret>`, the secret's SHA-256 kept).
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

    # -- the servers and the load generators -------------------------------------------------

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    def setup(self) -> Setup:
        return Setup(self.urls[0], self.admin_token)

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

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.say(
            f"{'quick' if self.plan.quick else 'full'} run, {self.plan.servers} server processes "
            f"x {self.plan.workers} worker(s), budget {self.plan.budget_s:.0f}s"
        )
        data_dir = ROOT / ".hallq" / f"bench-pg-{os.getpid()}"
        self.pg = pgmod.start_server(data_dir)
        asyncio.run(pgmod.create_database(self.pg, DATABASE))
        upgrade(self.database_url)
        self.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        self.raw["postgres"] = asyncio.run(pgmod.server_version(self.pg))
        self.say(f"PostgreSQL {self.raw['postgres']} on port {self.pg.port}, migrated")
        self.servers = start_servers(
            self.database_url,
            self.admin_token,
            count=self.plan.servers,
            workers=self.plan.workers,
            log_dir=self.run_dir,
            # A fleet's setting (docs/metrics.md): histograms summed over branches. B7 measures
            # the scrape of 2,000 branches with it; the other figures do not read histograms.
            env={"HALLQ_METRICS_HISTOGRAMS": "all"} if self.plan.wants("B7") else None,
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

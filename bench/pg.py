"""The benchmark's PostgreSQL: an embedded server tuned like a production one, and `pgbench`.

Durability is on (fsync, synchronous_commit, full_page_writes), unlike the test server: every
issued ticket and every `next` waits for its WAL flush, as it would in production. Memory is
sized for a small dedicated database host, scaled to this 2-core, 24 GB machine that also runs
the servers and the load generator. pg_stat_statements is loaded (as it usually is in
production) so the benchmark can count the statements each request sends.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench.stats import Summary
from devtools.embedded_postgres import EmbeddedPostgres, postgres_bin_dir

PRODUCTION_SETTINGS = {
    # durability: as in production (the test server turns these off)
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "wal_level": "replica",  # what streaming replication (docs/scaling.md) needs
    # memory: a small dedicated host (1 GB of shared buffers; the OS cache does the rest)
    "shared_buffers": "1GB",
    "effective_cache_size": "8GB",
    "work_mem": "16MB",
    "maintenance_work_mem": "512MB",
    "wal_buffers": "16MB",
    # checkpoints: spread out, not in the middle of every run
    "max_wal_size": "8GB",
    "min_wal_size": "1GB",
    "checkpoint_timeout": "15min",
    "checkpoint_completion_target": "0.9",
    # planner: SSD storage; JIT off, as is usual for short OLTP statements
    "random_page_cost": "1.1",
    "effective_io_concurrency": "200",
    "jit": "off",
    "max_connections": "300",
    # what every request costs, counted per statement
    "shared_preload_libraries": "'pg_stat_statements'",
    "pg_stat_statements.track": "top",
    "log_min_messages": "warning",
    # what may stall a run, in the log copied to bench/results/last-run/postgres.log
    "log_autovacuum_min_duration": "0",
    "log_checkpoints": "on",
    "log_lock_waits": "on",
}


def start_server(data_dir: Path) -> EmbeddedPostgres:
    return EmbeddedPostgres(data_dir, settings=PRODUCTION_SETTINGS, delete_on_stop=True).start()


async def connect(pg: EmbeddedPostgres, database: str) -> asyncpg.Connection:
    return await asyncpg.connect(pg.dsn(database))


async def create_database(pg: EmbeddedPostgres, name: str) -> str:
    conn = await connect(pg, "postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return pg.url(name)


async def execute(pg: EmbeddedPostgres, database: str, *statements: str) -> None:
    conn = await connect(pg, database)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def execute_args(pg: EmbeddedPostgres, database: str, query: str, *args: Any) -> None:
    conn = await connect(pg, database)
    try:
        await conn.execute(query, *args)
    finally:
        await conn.close()


async def fetch(pg: EmbeddedPostgres, database: str, query: str, *args: Any) -> list[Any]:
    conn = await connect(pg, database)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def server_version(pg: EmbeddedPostgres) -> str:
    rows = await fetch(pg, "postgres", "SHOW server_version")
    return str(rows[0][0])


# -- pgbench ----------------------------------------------------------------------------------


@dataclass
class PgbenchResult:
    summary: Summary
    failed: int
    output: str


def run_pgbench(
    pg: EmbeddedPostgres,
    database: str,
    script: str,
    *,
    clients: int,
    seconds: float | None = None,
    transactions_per_client: int | None = None,
    variables: Sequence[str] = (),
    timeout: float = 300,
    plan_cache_mode: str | None = None,
) -> PgbenchResult:
    """Run `script` (pgbench's script language) and read every transaction's latency from its
    per-transaction log, so that p50/p99 are exact rather than pgbench's average.
    `plan_cache_mode`: the sessions' setting (hallq's is force_generic_plan), else the server's."""
    pgbench = postgres_bin_dir() / "pgbench"
    with tempfile.TemporaryDirectory(prefix="hallq-pgbench-") as tmp:
        script_file = Path(tmp) / "script.sql"
        script_file.write_text(script)
        argv = [
            str(pgbench), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
            "--no-vacuum", "--protocol=prepared", f"--client={clients}",
            f"--jobs={min(clients, 2)}", f"--file={script_file}",
            "--log", f"--log-prefix={tmp}/tx",
        ]  # fmt: skip
        if seconds is not None:
            argv.append(f"--time={max(1, round(seconds))}")
        if transactions_per_client is not None:
            argv.append(f"--transactions={transactions_per_client}")
        for var in variables:
            argv.append(f"--define={var}")
        argv.append(database)
        env = {**os.environ, "PGPASSWORD": pg.password}
        if plan_cache_mode is not None:
            env["PGOPTIONS"] = f"-c plan_cache_mode={plan_cache_mode}"
        result = subprocess.run(
            argv, env=env, cwd=tmp, capture_output=True, text=True, timeout=timeout, check=False
        )
        output = result.stdout + result.stderr
        if result.returncode not in (0, 2):  # 2: some clients failed; reported below
            raise RuntimeError(f"pgbench failed ({result.returncode}):\n{output[-3000:]}")
        latencies_ms: list[float] = []
        for log in Path(tmp).glob("tx.*"):
            for line in log.read_text().splitlines():
                fields = line.split()
                # client_id transaction_no time script_no time_epoch time_us
                if len(fields) >= 3 and fields[2].isdigit():
                    latencies_ms.append(int(fields[2]) / 1000)
    if not latencies_ms:  # every client failed (exit code 2): say why rather than report 0/s
        raise RuntimeError(f"pgbench completed no transaction:\n{output[-3000:]}")
    duration = _field(output, r"duration: (\d+) s")
    tps = _field(output, r"tps = ([\d.]+) \(without initial connection time\)")
    failed = int(_field(output, r"number of failed transactions: (\d+)") or 0)
    seconds_run = duration if duration else (len(latencies_ms) / tps if tps else 0.0)
    if tps and latencies_ms:
        seconds_run = len(latencies_ms) / tps  # pgbench's own measure of the window
    return PgbenchResult(Summary.of(latencies_ms, failed, seconds_run), failed, output)


def _field(text: str, pattern: str) -> float:
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0

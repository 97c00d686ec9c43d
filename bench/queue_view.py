"""What one read of the queue view costs: `python -m bench.queue_view [reads] [waiting]`.

One branch set up as `bench.branch_minute`'s (10 counters open, types a, b and v), with a
history of finished tickets and `waiting` tickets waiting per type; then `reads` reads of the
view as GET /queue makes them when it does not share one (`read_seq_view`), in this process,
one after another. Printed: the CPU per read of this process and of PostgreSQL (less
what PostgreSQL uses idle), and the wall time per read. `--profile` prints cProfile's hottest
functions of the reads instead. A diagnostic for the view's own cost (docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from datetime import UTC, datetime

import httpx
import psutil
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.core.database import create_engine
from app.core.settings import Settings
from app.hall.shared_view import read_seq_view
from bench.branch_minute import IDLE_S, bench_server, cpu_s
from bench.servers import Branch, Setup, profiles

HISTORY_CALLS = 60  # finished tickets before the measured state (the estimate's history)


def _fill(url: str, branch: Branch, waiting: int) -> None:
    """A history of finished tickets, every counter with a current one, `waiting` per type."""
    with httpx.Client(base_url=f"{url}/api/v1/branches/{branch.code}", timeout=30) as client:

        def issue(service: str) -> None:
            response = client.post(
                "/tickets",
                json={"service": service},
                headers={"Authorization": f"Bearer {branch.kiosk}"},
            )
            response.raise_for_status()

        def call(counter: str) -> None:
            token = branch.clerks[counter]
            response = client.post(
                f"/counters/{counter}/next", headers={"Authorization": f"Bearer {token}"}
            )
            response.raise_for_status()

        counters = list(branch.clerks)
        for n in range(HISTORY_CALLS):
            issue("abv"[n % 3])
            call(counters[n % len(counters)])
        for _ in range(waiting):
            for service in "abv":
                issue(service)


async def _reads(settings: Settings, branch: str, reads: int, pg_pid: int, profile: bool) -> str:
    engine = create_engine(settings)
    postgres = psutil.Process(pg_pid)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def read_all(count: int) -> None:
        for _ in range(count):
            async with sessions() as session:
                await read_seq_view(session, branch, datetime.now(UTC), settings)

    try:
        await read_all(20)  # warm: connections, prepared statements, caches
        idle_from = cpu_s(postgres)
        await asyncio.sleep(IDLE_S)
        pg_idle = (cpu_s(postgres) - idle_from) / IDLE_S
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await read_all(reads)
            profiler.disable()
            stats = pstats.Stats(profiler).sort_stats("tottime")
            stats.print_stats(25)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
            return ""
        started, cpu_from, pg_from = time.monotonic(), time.process_time(), cpu_s(postgres)
        await read_all(reads)
        elapsed = time.monotonic() - started
        python_ms = 1000 * (time.process_time() - cpu_from) / reads
        pg_ms = 1000 * (cpu_s(postgres) - pg_from - pg_idle * elapsed) / reads
        return (
            f"{reads} queue view reads: Python {python_ms:.2f} ms + PostgreSQL {pg_ms:.2f} ms "
            f"= {python_ms + pg_ms:.2f} ms of CPU per read; wall {1000 * elapsed / reads:.2f} ms "
            f"per read"
        )
    finally:
        await engine.dispose()


def main(reads: int, waiting: int, profile: bool) -> str:
    with bench_server("hallq-queue-view-") as (pg, url, admin, server):
        setup = Setup(server.url, admin)
        branch = setup.branch("q1", profiles(10), open_counters=True)
        setup.close()
        _fill(server.url, branch, waiting)
        server.stop()  # its background work would count as PostgreSQL's
        pid = pg.postmaster_pid()
        assert pid is not None
        settings = Settings(database_url=url, admin_token=admin)
        return asyncio.run(_reads(settings, branch.code, reads, pid, profile))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reads", type=int, nargs="?", default=500)
    parser.add_argument("waiting", type=int, nargs="?", default=20, help="tickets per type")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    print(main(args.reads, args.waiting, args.profile))

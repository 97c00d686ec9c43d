"""B6: the estimated wait against the actual one in a simulated hall (devtools/hall_simulation.py),
run in this process on a database of its own."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from app.core.migrations import upgrade
from bench import pg as pgmod
from bench.harness import Bench
from bench.report import Row, ratio, verdict

if TYPE_CHECKING:
    from devtools.hall_simulation import SimulationResult


def measure(bench: Bench) -> None:
    assert bench.pg is not None
    url = asyncio.run(pgmod.create_database(bench.pg, "hallq_b6"))
    upgrade(url)
    minutes = bench.plan.b6_minutes
    result = asyncio.run(asyncio.wait_for(run_simulation(url, minutes, bench.admin_token),
                                          bench.plan.b6_timeout_s))  # fmt: skip
    mae = float(result.mae_ratio)
    by_service = result.by_service
    bench.detail(
        f"B6 simulated hall, {minutes} min, seed 1: {result.tickets} tickets measured, "
        f"MAE {result.mae_s:.0f} s over a mean actual wait of "
        f"{result.mean_actual_wait_s:.0f} s = {mae:.1%}; by type: "
        + ", ".join(f"{k} {v.mae_ratio:.0%} (n={v.tickets})" for k, v in by_service.items())
    )
    bench.rows["B6"] = [Row(
        "B6 estimated wait", "MAE <= 25% of the actual wait",
        f"MAE {mae:.0%} of the actual wait over {result.tickets} tickets",
        f"simulated hall, {minutes} min", ratio(mae / 0.25), verdict(mae <= 0.25),
    )]  # fmt: skip


async def run_simulation(database_url: str, minutes: int, admin_token: str) -> SimulationResult:
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

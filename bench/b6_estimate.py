"""B6: the quoted wait against the actual one, the oracle's and the baselines' in the simulated
hall (devtools/hall_simulation.py), over seeds 1-3, each run in this process on a database of its
own. Pooled over the seeds: hallq's mean absolute error against the oracle's (<= 1.1 x) and
LES's (>= 25% below), and the share of actual waits inside the quoted range (80% +- 5)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from app.core.migrations import upgrade
from bench import pg as pgmod
from bench.harness import Bench
from bench.report import Row, ratio, verdict

if TYPE_CHECKING:
    from devtools.hall_simulation import SimulationResult, TicketRecord

SEEDS = (1, 2, 3)
MAE_VS_ORACLE = 1.1  # at most
MAE_VS_LES = 0.75  # at most: 25% below
COVERAGE, COVERAGE_POINTS = 0.80, 0.05


def measure(bench: Bench) -> None:
    assert bench.pg is not None
    minutes = bench.plan.b6_minutes
    results = []
    for seed in SEEDS:
        url = asyncio.run(pgmod.create_database(bench.pg, f"hallq_b6_{seed}"))
        upgrade(url)
        run = run_simulation(url, minutes, bench.admin_token, seed)
        result = asyncio.run(asyncio.wait_for(run, bench.plan.b6_timeout_s))
        bench.detail(seed_line(seed, minutes, result))
        results.append(result)
    records = [r for result in results for r in result.records]
    hallq, oracle, les = (mae(records, name) for name in ("hallq", "oracle", "les"))
    coverage = sum(r.in_range for r in records) / len(records)
    where = f"simulated hall, seeds 1-3, {minutes} min, {len(records)} tickets"
    bench.rows["B6"] = [
        Row("B6 estimate vs oracle", f"MAE <= {MAE_VS_ORACLE} x the oracle's",
            f"MAE {hallq:.0f} s = {hallq / oracle:.2f} x the oracle's {oracle:.0f} s", where,
            ratio(hallq / oracle / MAE_VS_ORACLE), verdict(hallq <= MAE_VS_ORACLE * oracle)),
        Row("B6 estimate vs LES", "MAE >= 25% below last-to-enter-service",
            f"MAE {hallq:.0f} s = {1 - hallq / les:.0%} below LES's {les:.0f} s", where,
            ratio(hallq / les / MAE_VS_LES), verdict(hallq <= MAE_VS_LES * les)),
        Row("B6 range coverage", "80% +- 5 points of actual waits in the range",
            f"{coverage:.1%} of actual waits in estimated_wait_range_s", where,
            ratio(abs(coverage - COVERAGE) / COVERAGE_POINTS),
            verdict(abs(coverage - COVERAGE) <= COVERAGE_POINTS)),
    ]  # fmt: skip


def mae(records: list[TicketRecord], estimator: str) -> float:
    return sum(abs(r.quote(estimator) - r.actual_wait_s) for r in records) / len(records)


def seed_line(seed: int, minutes: int, result: SimulationResult) -> str:
    by = result.by_estimator
    return (
        f"B6 seed {seed}, {minutes} min: {result.tickets} tickets, mean actual wait "
        f"{result.mean_actual_wait_s:.0f} s, utilisation {result.utilisation:.0%}; MAE hallq "
        f"{result.mae_s:.0f} s, oracle {by['oracle'].mae_s:.0f} s, LES {by['les'].mae_s:.0f} s, "
        f"QL {by['ql'].mae_s:.0f} s; hallq / oracle {result.mae_vs('oracle'):.2f}, / LES "
        f"{result.mae_vs('les'):.2f}, / QL {result.mae_vs('ql'):.2f}; coverage "
        f"{result.coverage:.1%} (the oracle's range {result.oracle_coverage:.1%}); by type: "
        + ", ".join(f"{k} {v.mae_ratio:.0%} (n={v.tickets})" for k, v in result.by_service.items())
    )


async def run_simulation(
    database_url: str, minutes: int, admin_token: str, seed: int
) -> SimulationResult:
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
                seed=seed,
                minutes=minutes,
                headers={"Authorization": f"Bearer {admin_token}"},
            )

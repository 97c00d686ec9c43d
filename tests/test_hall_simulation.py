"""The wait estimate measured in a simulated hall driven through the real API (figure B6).

Deterministic: the seed fixes arrivals, priorities, service times and no-shows, the manual clock
moves from event to event, and the oracle replays each ticket's future from a stream of its own,
so the figures below are the same on every run and machine.
"""

from __future__ import annotations

import pytest

from devtools.hall_simulation import ESTIMATORS, run_hall_simulation
from tests.helpers import ADMIN

# What the model reaches on seed 1 over 4 hours (docs/estimate.md): MAE 1.09 x the oracle's,
# 0.55 x LES's, the range holding 78% of actual waits. A change that makes the estimate worse
# than these bounds fails here; `make bench` reports B6 against its targets over seeds 1-3.
MAE_VS_ORACLE_BOUND = 1.13
MAE_VS_LES_BOUND = 0.62
COVERAGE_BOUNDS = (0.74, 0.88)


async def test_estimated_wait_error_in_a_simulated_hall(client, clock):
    result = await run_hall_simulation(client, clock, seed=1, minutes=240, headers=ADMIN)

    # The hall is the one described: steady and busy, every measured ticket called.
    assert result.tickets >= 300
    assert 0.75 <= result.utilisation <= 0.95
    assert result.mean_actual_wait_s > 60
    assert set(result.by_service) == {"a", "b", "c", "v"}
    assert set(result.by_priority) == {"normal", "vip", "special"}
    assert all(r.actual_wait_s >= 0 and r.estimated_wait_s >= 0 for r in result.records)
    assert all(r.range_s[0] <= r.estimated_wait_s <= r.range_s[1] for r in result.records)
    assert result.mae_ratio == pytest.approx(result.mae_s / result.mean_actual_wait_s)
    assert set(result.by_estimator) == set(ESTIMATORS)
    assert result.by_estimator["hallq"].mae_s == pytest.approx(result.mae_s)

    # The oracle knows more than hallq can, and the baselines less: the order is fixed.
    oracle, les = result.by_estimator["oracle"].mae_s, result.by_estimator["les"].mae_s
    assert oracle < result.mae_s < les
    assert 0.75 <= result.oracle_coverage <= 0.9  # its 10th-90th percentile, ~80%

    # The guards against a regression of the model.
    assert result.mae_vs("oracle") <= MAE_VS_ORACLE_BOUND, result.by_estimator
    assert result.mae_vs("les") <= MAE_VS_LES_BOUND, result.by_estimator
    assert COVERAGE_BOUNDS[0] <= result.coverage <= COVERAGE_BOUNDS[1], result.coverage


async def test_the_simulation_is_deterministic(client, clock):
    first = await run_hall_simulation(
        client, clock, seed=7, minutes=60, warmup_minutes=10, headers=ADMIN
    )
    clock.advance(86400)  # a fresh branch on the next day
    second = await run_hall_simulation(
        client, clock, seed=7, minutes=60, warmup_minutes=10, branch="sim2", headers=ADMIN
    )
    assert first.tickets > 50
    assert first.records == second.records
    assert first.by_estimator == second.by_estimator

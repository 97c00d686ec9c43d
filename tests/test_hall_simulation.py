"""The wait estimate measured in a simulated hall driven through the real API (figure B6).

Deterministic: the seed fixes arrivals, priorities, service times and no-shows, and the manual
clock moves from event to event, so the figures below are the same on every run and machine.
"""

from __future__ import annotations

import pytest

from devtools.hall_simulation import run_hall_simulation
from tests.helpers import ADMIN

# What the model reaches in this hall (docs/estimate.md): 0.341 for seed 1 over 4 hours.
# A change that makes the estimate worse fails here.
REGRESSION_BOUND = 0.38


async def test_estimated_wait_error_in_a_simulated_hall(client, clock):
    result = await run_hall_simulation(client, clock, seed=1, minutes=240, headers=ADMIN)

    # The hall is the one described: steady and busy, every measured ticket called.
    assert result.tickets >= 300
    assert 0.75 <= result.utilisation <= 0.95
    assert result.mean_actual_wait_s > 60
    assert set(result.by_service) == {"a", "b", "c", "v"}
    assert set(result.by_priority) == {"normal", "vip", "special"}
    assert all(r.actual_wait_s >= 0 and r.estimated_wait_s >= 0 for r in result.records)
    assert result.mae_ratio == pytest.approx(result.mae_s / result.mean_actual_wait_s)

    # The B6 target itself (25%) is not reached in this hall: `make bench` reports the figure
    # against it; this test guards the model against getting worse (docs/estimate.md).
    assert result.mae_ratio <= REGRESSION_BOUND, result


async def test_the_simulation_is_deterministic(client, clock):
    first = await run_hall_simulation(
        client, clock, seed=7, minutes=60, warmup_minutes=10, headers=ADMIN
    )
    clock.advance(86400)  # a fresh branch on the next day
    second = await run_hall_simulation(
        client, clock, seed=7, minutes=60, warmup_minutes=10, branch="sim2", headers=ADMIN
    )
    assert first.tickets > 50
    assert [(r.service, r.priority, r.actual_wait_s) for r in first.records] == [
        (r.service, r.priority, r.actual_wait_s) for r in second.records
    ]
    assert first.mae_s == pytest.approx(second.mae_s)

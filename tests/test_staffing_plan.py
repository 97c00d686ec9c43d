"""The staffing plan's parts with known answers (SPEC §11, issue 23): Erlang C against textbook
values, an M/M/c hour where the simulation and Erlang C agree, the opening order, which method
answers, and the plan checked in the simulated hall (devtools/staffing_validation.py). The API
and the forecast from a history: tests/test_staffing.py."""

from __future__ import annotations

import math

import pytest

from app.simulation.default_hall import hall_model
from app.simulation.hall import ServiceTime
from app.simulation.queueing import erlang_c
from app.staffing import evaluate as staffing_evaluate
from app.staffing.erlang import counters_needed, share_within
from app.staffing.evaluate import Demand, Hall, carry_over, evaluate
from app.staffing.plan import opening_order, plan_day, what_if
from devtools.staffing_validation import (
    ALL,
    LEVEL,
    NEAR_MISS_ERRORS,
    TOLERANCE,
    check_plan,
    default_day,
)


def test_erlang_c_textbook_values():
    # Two counters, one Erlang: C = 1/3 (a classic exercise).
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    # One counter: the probability of waiting is the utilisation.
    assert erlang_c(1, 0.7) == pytest.approx(0.7)
    # The call centre of the textbooks: 100 calls in half an hour of 180 s each (10 Erlangs),
    # answered within 20 s: 11 agents wait 68.2%, 12 44.9%, 13 28.5%, 14 17.4% of the calls,
    # and 14 are the fewest for 80% (13 give 79.6%).
    per_s, handle_s = 100 / 1800, 180.0
    waits = [round(erlang_c(c, 10.0), 3) for c in (11, 12, 13, 14)]
    assert waits == [0.682, 0.449, 0.285, 0.174]
    assert share_within(13, per_s, handle_s, 20) == pytest.approx(0.7956, abs=1e-4)
    assert share_within(14, per_s, handle_s, 20) == pytest.approx(0.8884, abs=1e-4)
    assert counters_needed(per_s, handle_s, 20, 0.8) == 14
    # 20 Erlangs (600 calls an hour of 120 s): 26 circuits keep the chance of waiting under
    # 15% (25 do not), 30 bring it to 2.5%.
    assert erlang_c(25, 20.0) > 0.15 > erlang_c(26, 20.0)
    assert erlang_c(30, 20.0) == pytest.approx(0.025, abs=0.001)


def test_share_within_target_at_the_edges():
    # M/M/1 written out: 1 - rho e^{-(mu - lambda) T}.
    lam, mu = 1 / 600, 1 / 300
    assert share_within(1, lam, 300, 600) == pytest.approx(1 - 0.5 * math.exp(-(mu - lam) * 600))
    assert share_within(2, 1 / 100, 300, 600) == 0.0  # 3 Erlangs on 2 counters never keep up
    assert share_within(0, 1 / 600, 300, 600) == 0.0
    assert share_within(3, 0.0, 300, 600) == 1.0
    assert counters_needed(0.0, 300, 600, 0.8) == 0


def one_type(counters: int, per_hour: float, mean_s: float) -> tuple[Hall, list[Demand]]:
    """One business type served by `counters` identical counters, hour after hour."""
    hall = Hall(
        counters={str(c): ("a",) for c in range(1, counters + 1)},
        targets_s={"a": 300.0},
        level=LEVEL,
    )
    times = {"a": ServiceTime(mean_s, exponential=True)}
    hours = [Demand(f"{9 + h:02d}:00", {"a": per_hour}, times, follows=h > 0) for h in range(7)]
    return hall, hours


def test_an_mmc_hour_simulated_agrees_with_erlang_c(monkeypatch):
    """Three counters, 24 an hour of 360 s (utilisation 0.8), target 5 minutes: Erlang C says
    60.7%. Hours simulated one after another, each from the halls the one before left (after
    three hours the queue has settled, as Erlang C assumes), agree within 2 points."""
    monkeypatch.setattr(staffing_evaluate, "SHOWN_REPLICATIONS", 400)
    hall, hours = one_type(3, 24.0, 360.0)
    expected = share_within(3, 24 / 3600, 360.0, 300.0)
    assert expected == pytest.approx(0.607, abs=0.001)
    everyone = ("1", "2", "3")
    # One queue per type: Erlang C answers.
    answer = evaluate(hall, hours[0], everyone)
    assert answer.method == "erlang_c" and answer.overall == pytest.approx(expected)
    carried: tuple = ()
    settled: list[float] = []
    for i, hour in enumerate(hours):
        simulated = staffing_evaluate.simulate(hall, hour, everyone, carried)
        carried = carry_over(hall, hour, simulated, carried)
        if i >= 3 and simulated.overall is not None:
            settled.append(simulated.overall)
    assert sum(settled) / len(settled) == pytest.approx(expected, abs=0.02)
    # The halls carried over keep about as many counters busy as the load: 2.4 Erlangs.
    busy = sum(len(snapshot.busy) for snapshot in carried) / len(carried)
    assert 2.1 < busy < 2.7


def test_the_opening_order_follows_the_load():
    """The default hall at its rates: a (3.75 Erlangs) gets its own counters 1, 2 and 3 (a
    first in each), then b (1.22) its counter 4, c (0.83) its 6, v (0.77) its 7; what is left
    of a's load takes 8, and counter 5 (b, a) comes last."""
    model = hall_model()
    hall = Hall(model.counters, dict.fromkeys("abcv", 600.0), LEVEL)
    demand = Demand("10:00", model.arrivals_per_hour, model.service_times, model.priorities)
    assert opening_order(hall, demand) == ("1", "2", "3", "4", "6", "7", "8", "5")
    # With only b expected, b's own counters come first, then those that serve it as a
    # fallback, in order; counters 3, 6 and 7 never serve b and come last.
    only_b = Demand("10:00", {"b": 40.0}, model.service_times)
    assert opening_order(hall, only_b) == ("4", "5", "1", "2", "8", "3", "6", "7")


def test_erlang_c_where_profiles_split_and_the_simulation_where_they_overlap():
    model = hall_model()
    hall = Hall(model.counters, dict.fromkeys("abcv", 600.0), LEVEL)
    times = model.service_times
    # b and c expected: counters 4 (b, a) and 6 (c, a) serve one of them each: two queues.
    split = evaluate(hall, Demand("10:00", {"b": 5.0, "c": 3.0}, times), ("4", "6"))
    assert split.method == "erlang_c"
    assert split.by_service["b"] == pytest.approx(share_within(1, 5 / 3600, 100.0, 600.0))
    assert split.by_service["c"] == pytest.approx(share_within(1, 3 / 3600, 540.0, 600.0))
    # a and c expected: counter 6 (c, a) serves both: they share it.
    overlap = evaluate(hall, Demand("10:00", {"a": 5.0, "c": 3.0}, times), ("1", "6"))
    assert overlap.method == "simulation"
    # Nobody serves v: its customers are never called.
    unserved = evaluate(hall, Demand("10:00", {"a": 5.0, "v": 3.0}, times), ("1", "2"))
    assert unserved.unserved == ("v",) and unserved.by_service["v"] == 0.0


def test_a_day_with_nobody_expected_opens_the_branchs_minimum():
    model = hall_model()
    hall = Hall(model.counters, dict.fromkeys("abcv", 600.0), LEVEL, min_open=2)
    plans = plan_day(hall, [Demand("09:00", {"a": 0.0}, model.service_times)])
    assert plans[0].recommended == 2 and plans[0].outcome.overall is None
    assert not plans[0].binding


def test_the_plan_holds_in_the_simulated_hall():
    """The default simulated hall through a weekday (devtools/staffing_validation.py): each
    hour's plan, followed in 200 simulated days with other seeds, reaches what it asked of the
    hour within 5 points (80% over all customers, 65% for each type; where not even every
    counter reaches that, what the plan expects instead), and in every hour where the level
    decided the count one counter fewer misses it (or reaches it by less than two standard
    errors of the simulated days: a near miss)."""
    hall, demands = default_day(load=1.0)
    plans = plan_day(hall, demands)
    checks = check_plan(hall, demands, plans, replications=200)
    binding = [c for c in checks if c.plan.binding]
    assert len(binding) >= 8  # the level, not the floor, decides most hours
    for check in checks:
        label = check.plan.demand.label
        assert check.holds, (label, check.following, check.plan.outcome)
        assert check.following[ALL][0] >= LEVEL - TOLERANCE, label
        if check.one_fewer is not None:
            assert check.misses(check.one_fewer, NEAR_MISS_ERRORS), (label, check.one_fewer)
    misses = [c for c in binding if c.one_fewer is not None and c.misses(c.one_fewer)]
    assert len(misses) >= len(binding) - 1  # a near miss is the exception
    # The plan's own expectation is near what the hall gets (within 6 points every hour).
    for check in checks:
        planned = check.plan.outcome.overall
        assert planned is not None
        assert abs(planned - check.following[ALL][0]) < 0.06, check.plan.demand.label


def test_what_if_follows_the_opening_order():
    hall, demands = default_day(load=1.0)
    plans = plan_day(hall, demands)
    peak = plans[3]
    fewer = what_if(hall, peak, peak.recommended - 1)
    assert fewer.counters == peak.order[: peak.recommended - 1]
    assert (fewer.overall or 0.0) < (peak.outcome.overall or 0.0)
    assert not fewer.meets(peak.demand.required(LEVEL))

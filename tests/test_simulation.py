"""The hall engine, the oracle and the baselines (app/simulation/): known answers from queueing
theory, the calling rule, snapshots. Seeded, so every figure below is the same on every run."""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from statistics import NormalDist

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.queue.ordering import LANE_NORMAL, QueuedTicket, choose_group, choose_next, class_rank
from app.simulation.baselines import les_quote, ql_quote, serving_rate_per_s
from app.simulation.default_hall import DEFAULT_COUNTERS, hall_model
from app.simulation.hall import (
    Behaviour,
    BusyCounter,
    HallModel,
    Period,
    Served,
    ServiceTime,
    Snapshot,
    WaitingCustomer,
    simulate_hall,
)
from app.simulation.oracle import oracle_wait, quantile
from app.simulation.queueing import erlang_c, mean_wait_s, wait_longer_than

HOUR = 3600.0


def pool(counters: int, service: str = "a") -> dict[str, tuple[str, ...]]:
    return {str(i + 1): (service,) for i in range(counters)}


def steady(hours: float, per_hour: dict[str, float], counters) -> list[Period]:
    return [Period(0.0, hours * HOUR, per_hour, tuple(counters))]


# -- Erlang C --------------------------------------------------------------------------------


def test_erlang_c_known_values():
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = rho
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    # A textbook call-centre case: 10 agents, 8 Erlangs.
    assert erlang_c(10, 8.0) == pytest.approx(0.4092, abs=1e-4)
    assert erlang_c(3, 3.0) == 1.0  # overloaded: everyone waits
    assert erlang_c(3, 0.0) == 0.0
    assert mean_wait_s(1, arrival_rate=1 / 600, service_rate=1 / 300) == pytest.approx(300)


@pytest.mark.parametrize(("counters", "load"), [(1, 0.5), (3, 2.4), (5, 3.0)])
def test_an_m_m_c_hall_waits_as_erlang_c_says(counters, load):
    """Exponential service, Poisson arrivals, c counters of one type, from empty: after the
    first hour, the share who wait longer than t is C(c, a) e^{-(c mu - lambda) t}."""
    mean_s = 300.0
    per_hour = load / mean_s * HOUR
    served = simulate_hall(
        steady(1000, {"a": per_hour}, pool(counters)),
        pool(counters),
        {"a": ServiceTime(mean_s, exponential=True)},
        random.Random(11),
    )
    waits = [s.wait_s for s in served if s.arrived_s > HOUR]
    assert len(waits) > 1000 * per_hour * 0.9
    for t in (0.0, 120.0, 300.0):
        expected = wait_longer_than(t, counters, per_hour / HOUR, 1 / mean_s)
        measured = sum(w > t for w in waits) / len(waits)
        assert measured == pytest.approx(expected, abs=0.03), t
    expected_mean = mean_wait_s(counters, per_hour / HOUR, 1 / mean_s)
    assert sum(waits) / len(waits) == pytest.approx(expected_mean, rel=0.1)


# -- the engine -------------------------------------------------------------------------------


def test_lognormal_service_times_have_the_mean_and_cv_asked_for():
    rng = random.Random(3)
    draws = [ServiceTime(270, cv=0.6).draw(rng) for _ in range(40_000)]
    mean = sum(draws) / len(draws)
    sd = math.sqrt(sum((d - mean) ** 2 for d in draws) / len(draws))
    assert mean == pytest.approx(270, rel=0.02)
    assert sd / mean == pytest.approx(0.6, rel=0.05)


def test_a_day_of_the_default_hall_is_served_in_arrival_order_within_a_class():
    model = hall_model()
    served = model.simulate(model.steady(8 * 60), random.Random(5))
    assert 700 < len(served) < 1100  # ~110 an hour
    assert all(s.called_s >= s.arrived_s for s in served)
    assert {s.counter for s in served} == set(DEFAULT_COUNTERS)
    assert served == sorted(served, key=lambda s: s.arrived_s)
    # First come, first served within a type and class: called in the order they came.
    for service in "abcv":
        normal = [s for s in served if s.service == service and s.priority == "vip"]
        assert [s.called_s for s in normal] == sorted(s.called_s for s in normal)
    assert 0.02 < sum(s.no_show for s in served) / len(served) < 0.05


def test_same_periods_same_customers_whatever_the_counters_do():
    """Each type draws its customers from its own stream: closing a counter changes the waits,
    not who comes when (common random numbers for comparing staffing plans)."""
    model = hall_model()
    periods = model.steady(240)
    fewer = HallModel(
        {k: v for k, v in model.counters.items() if k != "8"},
        model.service_times,
        model.priorities,
        model.arrivals_per_hour,
        model.behaviour,
    )
    first = model.simulate(periods, random.Random(9))
    second = fewer.simulate(fewer.steady(240), random.Random(9))
    assert [(s.service, s.priority, s.arrived_s) for s in first] == [
        (s.service, s.priority, s.arrived_s) for s in second
    ]
    assert sum(s.wait_s for s in second) > sum(s.wait_s for s in first)


def test_counters_open_and_close_with_the_periods():
    counters = {"1": ("a",), "2": ("a",)}
    periods = [
        Period(0, HOUR, {"a": 30}, ("1",)),
        Period(HOUR, 2 * HOUR, {"a": 30}, ("1", "2")),
        Period(2 * HOUR, 3 * HOUR, {"a": 0}, ("2",)),
    ]
    served = simulate_hall(periods, counters, {"a": ServiceTime(100)}, random.Random(1))
    assert all(s.arrived_s < 2 * HOUR for s in served)  # nobody arrives at rate 0
    assert {s.counter for s in served if s.called_s < HOUR} == {"1"}
    # After two hours only counter 2 calls; counter 1 may only finish its last customer.
    assert {s.counter for s in served if s.called_s > 2 * HOUR} <= {"2"}


def test_customers_of_a_type_nobody_serves_at_the_end_are_never_called():
    periods = [Period(0, HOUR, {"a": 20, "b": 20}, ("1",))]
    served = simulate_hall(
        periods, {"1": ("a",)}, {"a": ServiceTime(60), "b": ServiceTime(60)}, random.Random(2)
    )
    assert all(s.called_s == math.inf and s.counter == "" for s in served if s.service == "b")
    assert all(s.called_s < math.inf for s in served if s.service == "a")


def test_periods_are_checked():
    counters = {"1": ("a",)}
    times = {"a": ServiceTime(60)}
    with pytest.raises(ValueError, match="gaps"):
        simulate_hall(
            [Period(0, 60, {}, ("1",)), Period(120, 180, {}, ("1",))],
            counters,
            times,
            random.Random(0),
        )
    with pytest.raises(ValueError, match="unknown counters"):
        simulate_hall([Period(0, 60, {}, ("9",))], counters, times, random.Random(0))


def _snapshot_hall(counters, waiting, busy=None, guard=None, **kwargs) -> list[Served]:
    """A hall with no arrivals that starts from a snapshot."""
    periods = [Period(0, HOUR, {}, tuple(counters))]
    times = {t: ServiceTime(100, cv=0.01) for t in ("a", "b")}
    return simulate_hall(
        periods,
        counters,
        times,
        random.Random(0),
        snapshot=Snapshot(busy=busy or {}, waiting=tuple(waiting)),
        starvation_guard_s=guard,
        **kwargs,
    )


def test_the_engine_calls_by_the_real_rule():
    # Counter 1 serves b first and helps a: a special a goes before its own normal b.
    waiting = [
        WaitingCustomer("b", "normal", -300),
        WaitingCustomer("a", "normal", -200),
        WaitingCustomer("a", "special", -100),
    ]
    served = _snapshot_hall({"1": ("b", "a")}, waiting)
    by_call = sorted(served, key=lambda s: s.called_s)
    assert [(s.service, s.priority) for s in by_call] == [
        ("a", "special"),
        ("b", "normal"),
        ("a", "normal"),
    ]
    # With a starvation guard of 250 s on a, the normal a waiting 200 s becomes overdue after
    # 50 s and goes before the counter's own b (which has no guard).
    guarded = _snapshot_hall({"1": ("b", "a")}, waiting, guard={"a": 250})
    by_call = sorted(guarded, key=lambda s: s.called_s)
    assert [(s.service, s.priority) for s in by_call] == [
        ("a", "special"),
        ("a", "normal"),
        ("b", "normal"),
    ]


def test_stop_after_ends_the_run_at_that_customers_call():
    waiting = [WaitingCustomer("a", "normal", -10 * i) for i in range(5, 0, -1)]
    served = _snapshot_hall({"1": ("a",)}, waiting, stop_after=2)
    assert len(served) == 3
    assert served[-1].arrived_s == -30
    with pytest.raises(ValueError, match="stop_after"):
        _snapshot_hall({"1": ("a",)}, waiting, stop_after=9)


# -- snapshots: what a busy counter still needs -------------------------------------------------


def _conditional_quantile(service: ServiceTime, elapsed_s: float, q: float) -> float:
    """The q-quantile of the time still to go, for a lognormal service time known to exceed
    `elapsed_s`."""
    sigma = math.sqrt(math.log(1 + service.cv**2))
    mu = math.log(service.mean_s) - sigma**2 / 2
    normal = NormalDist(mu, sigma)
    done = normal.cdf(math.log(elapsed_s))
    return math.exp(normal.inv_cdf(done + (1 - done) * q)) - elapsed_s


@pytest.mark.parametrize("elapsed_s", [60.0, 300.0, 900.0])
def test_residual_service_time_is_drawn_given_the_time_already_served(elapsed_s):
    service = ServiceTime(300, cv=0.6)
    rng = random.Random(4)
    draws = sorted(service.residual(rng, elapsed_s) for _ in range(20_000))
    for q in (0.1, 0.5, 0.9):
        expected = _conditional_quantile(service, elapsed_s, q)
        assert quantile(draws, q) == pytest.approx(expected, rel=0.05)


def test_a_snapshot_counter_frees_after_its_customers_residual():
    """One counter, 400 s into a lognormal service; the next ticket waits for its residual."""
    service = ServiceTime(300, cv=0.6)
    model = HallModel({"1": ("a",)}, {"a": service}, {}, {}, Behaviour())
    snapshot = Snapshot(busy={"1": BusyCounter("a", 430, served_s=400)}, waiting=(
        WaitingCustomer("a"),))  # fmt: skip
    quote = oracle_wait(model, snapshot, random.Random(8), replays=4001)
    assert quote.median_s == pytest.approx(_conditional_quantile(service, 400, 0.5), rel=0.05)
    assert quote.low_s == pytest.approx(_conditional_quantile(service, 400, 0.1), rel=0.08)
    assert quote.high_s == pytest.approx(_conditional_quantile(service, 400, 0.9), rel=0.05)


def test_a_customer_who_should_have_come_by_now_is_a_no_show():
    model = HallModel(
        {"1": ("a",)},
        {"a": ServiceTime(300)},
        {},
        {},
        Behaviour(walk_s=(10, 40), no_show_rate=0.03, no_show_s=90),
    )
    snapshot = Snapshot(busy={"1": BusyCounter("a", 50)}, waiting=(WaitingCustomer("a"),))
    quote = oracle_wait(model, snapshot, random.Random(1), replays=21)
    assert quote.low_s == quote.high_s == pytest.approx(40)  # 90 s after the call


# -- the oracle -----------------------------------------------------------------------------------


def _erlang_quantile(shape: int, mean_s: float, q: float) -> float:
    """The q-quantile of Gamma(shape, rate 1/mean_s) for whole shapes, by bisection on its
    CDF 1 - sum_{j < shape} e^{-x} x^j / j!."""

    def cdf(x: float) -> float:
        return 1 - sum(math.exp(-x) * x**j / math.factorial(j) for j in range(shape))

    low, high = 0.0, 10.0 * shape + 10
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < q else (low, mid)
    return low * mean_s


@pytest.mark.parametrize("ahead", [0, 2, 6])
def test_oracle_of_an_m_m_1_snapshot_is_the_gamma_wait(ahead):
    """One exponential counter, busy; `ahead` tickets before ours: the wait is the sum of
    ahead + 1 exponential times (the residual is exponential too), Gamma(ahead + 1, mu).
    Customers still to come are normal and never pass ours."""
    model = HallModel(
        {"1": ("a",)},
        {"a": ServiceTime(200, exponential=True)},
        {},
        {"a": 10.0},
        Behaviour(),
    )
    waiting = tuple(WaitingCustomer("a", arrived_s=-5.0 * i) for i in range(ahead + 1, 0, -1))
    snapshot = Snapshot(busy={"1": BusyCounter("a", 120, served_s=120)}, waiting=waiting)
    quote = oracle_wait(model, snapshot, random.Random(ahead), replays=4001)
    assert quote.median_s == pytest.approx(_erlang_quantile(ahead + 1, 200, 0.5), rel=0.06)
    assert quote.low_s == pytest.approx(_erlang_quantile(ahead + 1, 200, 0.1), rel=0.1)
    assert quote.high_s == pytest.approx(_erlang_quantile(ahead + 1, 200, 0.9), rel=0.06)


def test_oracle_counts_priority_customers_still_to_come():
    """Specials of the type keep arriving (half the counter's capacity) and pass a normal
    ticket: its wait grows by about half again or more."""
    counters = {"1": ("a",)}
    times = {"a": ServiceTime(200, exponential=True)}
    waiting = tuple(WaitingCustomer("a", arrived_s=-5.0 * i) for i in range(3, 0, -1))
    snapshot = Snapshot(busy={"1": BusyCounter("a", 0, 0)}, waiting=waiting)
    calm = HallModel(counters, times, {}, {"a": 9.0}, Behaviour())
    specials = HallModel(counters, times, {"a": (("special", 1.0),)}, {"a": 9.0}, Behaviour())
    assert (
        oracle_wait(specials, snapshot, random.Random(1), replays=401).median_s
        > oracle_wait(calm, snapshot, random.Random(1), replays=401).median_s * 1.4
    )


def test_quantile_interpolates():
    assert quantile([0.0, 10.0], 0.5) == 5.0
    assert quantile([1.0, 2.0, 3.0, 4.0, 5.0], 0.9) == pytest.approx(4.6)
    assert quantile([7.0], 0.1) == 7.0


# -- the baselines -------------------------------------------------------------------------


def test_les_quotes_the_wait_of_the_last_customer_of_the_type_called():
    calls = [
        Served("a", "normal", 0, 100, "1"),
        Served("b", "normal", 50, 80, "2"),
        Served("a", "vip", 90, 120, "1"),
    ]
    assert les_quote(calls, "a") == 30
    assert les_quote(calls, "b") == 30
    assert les_quote(calls, "c") == 0  # nobody of the type called yet


def test_ql_quotes_the_tickets_ahead_over_the_serving_rate():
    counters = {"1": ("a", "b"), "2": ("b", "a"), "3": ("c",)}
    times = {"a": ServiceTime(275), "b": ServiceTime(100), "c": ServiceTime(500)}
    rate = serving_rate_per_s("a", counters, times, Behaviour(walk_s=(10, 40)))
    assert rate == pytest.approx(2 / 300)
    assert ql_quote(3, rate) == pytest.approx(600)
    assert ql_quote(3, rate, idle_counter=True) == 0
    assert ql_quote(0, serving_rate_per_s("d", counters, {"d": ServiceTime(60)})) == math.inf


# -- one calling rule --------------------------------------------------------------------------

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
waiting_tickets = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(["normal", "vip", "special"]),
        st.integers(min_value=0, max_value=3000),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(waiting_tickets, st.permutations(["a", "b", "c"]), st.integers(min_value=1, max_value=3))
def test_choose_group_calls_what_the_calling_order_calls(tickets, profile, length):
    """The group rule (used by the estimate's replay and the engine) picks the group of the
    ticket that the ticket-level rule (and so the SQL) calls."""
    profile = list(profile[:length])
    queued = [
        QueuedTicket(
            id=uuid.UUID(int=i + 1),
            service=service,
            priority=priority,
            lane=LANE_NORMAL,
            issued_at=NOW - timedelta(seconds=waited),
            queued_at=NOW - timedelta(seconds=waited),
            max_wait_s=1800,
        )
        for i, (service, priority, waited) in enumerate(tickets)
    ]
    chosen = choose_next(queued, counter="1", profile=profile, now=NOW, requeue_after=2)
    group = choose_group({(t.service, _rank(t)) for t in queued}, profile)
    if chosen is None:
        assert group is None
    else:
        assert group == (chosen.service, _rank(chosen))


def _rank(ticket: QueuedTicket) -> tuple[int, int, int]:
    overdue = (NOW - ticket.issued_at).total_seconds() >= 1800
    return class_rank(LANE_NORMAL, overdue, ticket.priority)

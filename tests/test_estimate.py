"""The wait estimate: the pure model (app/queue/estimate.py), then the SQL that feeds it."""

from __future__ import annotations

import math

import pytest

from app.core.settings import Settings
from app.queue.estimate import (
    CV_WITHOUT_HISTORY,
    HORIZON_S,
    MEDIAN_OFFSET_MANY,
    MEDIAN_OFFSET_ONE,
    MIN_RATE_SPAN_S,
    OVERRUN_FRACTION,
    PATH_ERROR,
    RANGE_Z,
    TIME_PER_TICKET_FACTOR,
    CounterNow,
    Hall,
    Issued,
    Opening,
    Place,
    TypeHistory,
    WaitEstimate,
    WaitingGroup,
    estimate_wait,
    estimate_wait_s,
    gamma_quantile_ratio,
    median_offset,
    median_wait_s,
    replay,
    wait_range,
)
from app.queue.ordering import class_rank
from app.queue.service import load_hall
from tests.helpers import ADMIN, issue, ok, setup_branch

NORMAL = class_rank(1, False, "normal")
VIP = class_rank(1, False, "vip")
SPECIAL = class_rank(1, False, "special")
T = TIME_PER_TICKET_FACTOR  # a customer still to be called takes T x the recent mean


def history(*handling_s: float, **issued: int) -> TypeHistory:
    """Finished tickets that took `handling_s` each (newest first); `issued`: tickets of each
    class issued in the last half hour, the count reaching further back."""
    return TypeHistory(tuple(handling_s), Issued(issued, reach_s=3600.0))


def counter(code: str, *profile: str, busy: str | None = None, elapsed: float = 0.0):
    return CounterNow(code, tuple(profile), current_service=busy, elapsed_s=elapsed)


def hall(counters, waiting=(), **histories: TypeHistory) -> Hall:
    return Hall(
        counters=tuple(counters),
        waiting=tuple(waiting),
        history=histories,
        default_service_s=300.0,
    )


def path_s(h: Hall, place: Place) -> float:
    """When the average-path replay calls the ticket at `place`."""
    path = replay(h, place)
    assert path is not None
    return path.path_s


# -- what history tells ------------------------------------------------------------------------


def test_mean_time_per_ticket_comes_from_history_or_the_default():
    assert history(100, 200, 300).mean_handling_s(default_s=999) == 200
    assert TypeHistory().mean_handling_s(default_s=999) == 999


def test_remaining_time_is_what_is_left_of_longer_tickets():
    h = history(100, 200, 400)
    assert h.remaining_s(0, 999) == pytest.approx((100 + 200 + 400) / 3)
    # 150 s in: the 100 s ticket is ruled out; 50 or 250 s remain, 150 on average.
    left = h.remaining(150, 999)
    assert left.mean_s == pytest.approx(150)
    assert left.spread_s == pytest.approx(100)
    odds = Opening(left.mean_s, left.spread_s, left)
    assert [odds.chance_by(t) for t in (49, 50, 249, 250)] == [0, 0.5, 0.5, 1]
    # Longer than any recent ticket: expected to end soon.
    assert h.remaining_s(500, 999) == pytest.approx(OVERRUN_FRACTION * h.mean_handling_s(999))
    # No recent ticket to tell the odds: a normal spread around the expected end.
    overrun = h.remaining(500, 999)
    assert Opening(overrun.mean_s, overrun.spread_s, overrun).chance_by(overrun.mean_s) == 0.5


def test_remaining_time_without_history_uses_the_default():
    assert TypeHistory().remaining_s(100, default_s=300) == 200
    assert TypeHistory().remaining_s(1000, default_s=300) == pytest.approx(OVERRUN_FRACTION * 300)


def test_arrival_rates_count_the_tickets_issued_in_the_window_by_class():
    issued = Issued({"normal": 18, "vip": 3}, reach_s=2500)  # read back past the window
    assert issued.rates_per_s(1800) == {
        "normal": pytest.approx(18 / 1800),
        "vip": pytest.approx(3 / 1800),
    }
    # A hall that opened ten minutes ago: still over the window (fewer than there will be).
    assert Issued({"normal": 5}, reach_s=600).rates_per_s(1800) == {"normal": 5 / 1800}
    assert Issued().rates_per_s(1800) == {}
    assert Issued({"vip": 0}, reach_s=5000).rates_per_s(1800) == {}


def test_a_busy_types_rate_is_that_of_its_last_tickets():
    # The read stopped at its limit: 50 tickets in the last 900 s.
    issued = Issued({"normal": 45, "vip": 5}, reach_s=900, capped=True)
    assert issued.rates_per_s(1800) == {"normal": 45 / 900, "vip": 5 / 900}
    # Capped, but the tickets read go back past the window: over the window.
    assert Issued({"normal": 40}, reach_s=2000, capped=True).rates_per_s(1800) == {
        "normal": 40 / 1800
    }


def test_the_cv_of_service_times_comes_from_history() -> None:
    assert history(100, 300).cv() == pytest.approx(0.5)
    assert history(100).cv() == CV_WITHOUT_HISTORY


# -- the replay: one type ------------------------------------------------------------------------


def test_a_free_counter_calls_the_first_ticket_at_once():
    assert path_s(hall([counter("1", "a")], a=history(300)), Place("a", ahead=0)) == 0
    assert estimate_wait(hall([counter("1", "a")]), Place("a", ahead=0)).range_s == (0, 0)


def test_one_free_counter_works_through_the_tickets_ahead():
    h = hall([counter("1", "a")], [WaitingGroup("a", NORMAL, 3)], a=history(300))
    assert path_s(h, Place("a", ahead=2)) == pytest.approx(2 * T * 300)


def test_counters_work_in_parallel():
    h = hall([counter("1", "a"), counter("2", "a")], a=history(300))
    assert path_s(h, Place("a", ahead=1)) == 0  # the second free counter takes it
    assert path_s(h, Place("a", ahead=2)) == pytest.approx(T * 300)
    assert path_s(h, Place("a", ahead=3)) == pytest.approx(T * 300)
    assert path_s(h, Place("a", ahead=4)) == pytest.approx(2 * T * 300)


def test_a_busy_counter_frees_when_its_customer_is_expected_to_leave():
    a = history(200, 300, 400)
    fresh = hall([counter("1", "a", busy="a", elapsed=0)], a=a)
    assert path_s(fresh, Place("a", ahead=0)) == 300
    # 250 s into the service: of the recent tickets only 300 s and 400 s lasted this long.
    late = hall([counter("1", "a", busy="a", elapsed=250)], a=a)
    assert path_s(late, Place("a", ahead=0)) == 100
    assert path_s(late, Place("a", ahead=1)) == pytest.approx(100 + T * 300)


def test_the_first_of_several_busy_counters_takes_the_ticket():
    a = history(200, 300, 400)
    h = hall(
        [counter("1", "a", busy="a", elapsed=10), counter("2", "a", busy="a", elapsed=250)],
        a=a,
    )
    assert path_s(h, Place("a", ahead=0)) == 100
    # The next one goes to counter 1 (free after ~290 s), not counter 2 again (100 + 270 s).
    assert path_s(h, Place("a", ahead=1)) == a.remaining_s(10, 300)


def test_the_customer_at_the_counter_counts_with_its_own_type():
    h = hall([counter("1", "a", busy="c", elapsed=0)], a=history(100), c=history(900))
    assert path_s(h, Place("a", ahead=0)) == 900


def test_the_estimate_grows_with_the_tickets_ahead():
    h = hall(
        [counter("1", "a", "b", busy="a", elapsed=30), counter("2", "b", "a")],
        [WaitingGroup("b", NORMAL, 2)],
        a=history(240, 300),
        b=history(90, 120),
    )
    estimates = [estimate_wait_s(h, Place("a", ahead=k)) for k in range(12)]
    assert estimates == sorted(estimates)
    assert estimates[-1] > estimates[0]


def test_the_default_service_time_serves_a_type_without_history():
    h = hall([counter("1", "a")])
    assert path_s(h, Place("a", ahead=1)) == pytest.approx(T * 300)


def test_nobody_serving_the_type_counts_as_one_counter_halfway_through():
    h = hall([counter("1", "b")], a=history(200))
    assert path_s(h, Place("a", ahead=0)) == 100
    assert path_s(h, Place("a", ahead=2)) == pytest.approx(100 + 2 * T * 200)
    assert path_s(hall([]), Place("a", ahead=0)) == 150


# -- the replay follows the calling order ----------------------------------------------------


def test_a_helping_counter_serves_its_own_queue_first():
    # Counter 1 is for b and helps a; two b customers wait.
    h = hall(
        [counter("1", "b", "a"), counter("2", "a", busy="a", elapsed=0)],
        [WaitingGroup("b", NORMAL, 2)],
        a=history(500),
        b=history(100),
    )
    # Counter 1 serves both b (free at 180 s) before counter 2 is done (500 s).
    assert path_s(h, Place("a", ahead=0)) == pytest.approx(2 * T * 100)
    # With a longer b queue, counter 2 comes first.
    longer = hall(h.counters, [WaitingGroup("b", NORMAL, 7)], a=history(500), b=history(100))
    assert path_s(longer, Place("a", ahead=0)) == 500


def test_a_counter_helps_at_once_when_its_own_queue_is_empty():
    h = hall(
        [counter("1", "b", "a"), counter("2", "a", busy="a", elapsed=0)],
        a=history(500),
        b=history(100),
    )
    assert path_s(h, Place("a", ahead=0)) == 0


def test_a_fallback_counter_takes_its_own_queue_before_our_type():
    # Counter 1 is for a and helps b: a normal a customer goes before our normal b ticket.
    h = hall([counter("1", "a", "b")], [WaitingGroup("a", NORMAL, 1)], a=history(300))
    assert path_s(h, Place("b", ahead=0)) == pytest.approx(T * 300)


def test_a_priority_ticket_goes_before_the_counters_own_normal_queue():
    h = hall([counter("1", "b", "a")], [WaitingGroup("b", NORMAL, 3)], b=history(100))
    assert path_s(h, Place("a", ahead=0, priority="special")) == 0
    assert path_s(h, Place("a", ahead=0, priority="vip")) == 0
    assert path_s(h, Place("a", ahead=0)) == pytest.approx(3 * T * 100)


def test_priority_tickets_of_a_fallback_type_go_first():
    # Counter 1 is for b; a special ticket of a, its fallback type, is called before our b.
    h = hall(
        [counter("1", "b", "a")],
        [WaitingGroup("a", SPECIAL, 1)],
        a=history(400),
        b=history(100),
    )
    assert path_s(h, Place("b", ahead=0)) == pytest.approx(T * 400)
    assert path_s(h, Place("b", ahead=0, priority="special")) == 0


def test_only_the_tickets_ahead_of_our_own_type_count():
    # Six normal a tickets wait, ours is the third; two vips of a are ahead of everyone.
    h = hall(
        [counter("1", "a")],
        [WaitingGroup("a", NORMAL, 6), WaitingGroup("a", VIP, 2)],
        a=history(100),
    )
    assert path_s(h, Place("a", ahead=4)) == pytest.approx(4 * T * 100)
    # A vip ticket behind the two vips: the normal tickets do not count.
    assert path_s(h, Place("a", ahead=2, priority="vip")) == pytest.approx(2 * T * 100)


def test_held_requeued_tickets_wait_behind_and_front_lane_tickets_go_first():
    h = hall(
        [counter("1", "a")],
        [
            WaitingGroup("a", class_rank(2, False, "normal"), 3),
            WaitingGroup("a", class_rank(0, False, "normal"), 1),
        ],
        a=history(100),
    )
    assert path_s(h, Place("a", ahead=1)) == pytest.approx(T * 100)


def test_an_overdue_ticket_goes_before_priority_tickets():
    h = hall([counter("1", "a")], [WaitingGroup("a", SPECIAL, 2)], a=history(100))
    assert path_s(h, Place("a", ahead=0, overdue=True)) == 0
    assert path_s(h, Place("a", ahead=2)) == pytest.approx(2 * T * 100)


def test_tickets_ahead_never_count_below_zero():
    # The groups (read a moment later) know more better tickets than the position says.
    h = hall([counter("1", "a")], [WaitingGroup("a", VIP, 3)], a=history(100))
    assert path_s(h, Place("a", ahead=1)) == pytest.approx(3 * T * 100)


# -- customers still to come ---------------------------------------------------------------------


def test_priority_customers_still_to_come_pass_a_normal_ticket():
    # In the last 30 minutes 3 vips (one every 600 s) and 18 normal customers of a came.
    a = history(*[300] * 20, normal=18, vip=3)
    h = hall([counter("1", "a", busy="a", elapsed=0)], a=a)
    quiet = hall(h.counters, a=history(*[300] * 20))
    # Without arrivals: 300 s for the customer at the counter, 2 x 270 for those ahead.
    assert path_s(quiet, Place("a", ahead=2)) == pytest.approx(300 + 2 * 270)
    # The vip who comes at 600 s is called at 840 s, before the normal ticket (at 1110 s).
    assert path_s(h, Place("a", ahead=2)) == pytest.approx(300 + 3 * 270)
    # Nobody passes a vip ticket but special customers, and there were none.
    assert path_s(h, Place("a", ahead=2, priority="vip")) == pytest.approx(300 + 2 * 270)


def test_customers_of_other_types_keep_the_counters_that_put_them_first():
    # Counter 1 is for b and helps a; a b customer comes every 150 s and takes 90 s.
    h = hall(
        [counter("1", "b", "a", busy="b", elapsed=0)],
        a=history(100),
        b=history(100, normal=12),
    )
    without = hall(h.counters, a=history(100), b=history(100))
    assert path_s(without, Place("a", ahead=1)) == pytest.approx(100 + T * 100)
    # At 100 s it calls the first a (free at 190 s); the b who came at 150 s goes next.
    assert path_s(h, Place("a", ahead=1)) == pytest.approx(100 + 2 * T * 100)


def test_a_queue_that_never_reaches_the_ticket_gives_up_at_the_horizon():
    # Specials of a arrive faster (every 60 s) than the counter serves them (270 s).
    a = history(*[300] * 30, special=30)
    h = hall([counter("1", "a", busy="a")], a=a)
    assert estimate_wait_s(h, Place("a", ahead=0)) == round(HORIZON_S)
    # A free counter still calls it at once, before the first of them arrives.
    assert path_s(hall([counter("1", "a")], a=a), Place("a", 0)) == 0


# -- the median: the odds of the openings ------------------------------------------------------


def test_an_opening_is_as_likely_as_its_recent_tickets_or_a_normal_spread():
    left = history(100, 200, 300, 400).remaining(150, 999)  # 50, 150 or 250 s left
    exact = Opening(left.mean_s, left.spread_s, left)
    assert [exact.chance_by(t) for t in (0, 50, 150, 300)] == [0, pytest.approx(1 / 3), 2 / 3, 1]
    normal = Opening(600.0, 100.0)
    assert normal.chance_by(600) == pytest.approx(0.5)
    assert normal.chance_by(700) == pytest.approx(0.8413, abs=1e-4)
    assert Opening(600.0, 0.0).chance_by(599) < 0.5 < Opening(600.0, 0.0).chance_by(601)


def test_the_median_offset_goes_from_one_counter_to_a_poisson_stream():
    assert median_offset(1) == MEDIAN_OFFSET_ONE == 0.5
    assert pytest.approx(math.log(2)) == MEDIAN_OFFSET_MANY
    assert median_offset(1) < median_offset(2) < median_offset(8) < MEDIAN_OFFSET_MANY


def test_at_one_counter_the_median_is_that_of_the_customer_there():
    # Nobody ahead, one counter, its customer just called: half of the recent tickets were
    # over by 300 s (of 100 ... 500 s).
    h = hall([counter("1", "a", busy="a")], a=history(100, 200, 300, 400, 500))
    path = replay(h, Place("a", ahead=0))
    assert path is not None and path.turn == 0 and path.counters_opening == 1
    assert path.path_s == 300
    assert median_wait_s(path) == pytest.approx(300, abs=2)


def test_the_first_of_several_busy_counters_frees_sooner_than_any_is_expected_to():
    # Eight counters whose customers were just called, each expected to leave after 300 s; a
    # third of the recent tickets took 200 s: one of eight is most likely free by then.
    h = hall(
        [counter(str(i), "a", busy="a") for i in range(8)],
        a=history(200, 300, 400),
    )
    path = replay(h, Place("a", ahead=0))
    assert path is not None and path.path_s == 300 and path.counters_opening == 8
    assert median_wait_s(path) == pytest.approx(200, abs=2)
    # Three ahead: by 200 s only 8/3 of the counters are expected to be free, by 300 s 16/3.
    deeper = replay(h, Place("a", ahead=3))
    assert deeper is not None and median_wait_s(deeper) == pytest.approx(300, abs=2)


def test_a_long_queue_at_one_counter_is_quoted_about_its_average_path():
    h = hall([counter("1", "a", busy="a")], [WaitingGroup("a", NORMAL, 20)], a=history(200, 400))
    path = replay(h, Place("a", ahead=20))
    assert path is not None and path.turn == 20
    assert path.path_s == pytest.approx(300 + 20 * T * 300)
    assert median_wait_s(path) == pytest.approx(path.path_s, rel=0.03)


def test_openings_of_counters_that_serve_their_own_queue_first_do_not_count():
    # Counter 2 puts b first and has b customers for the next hour: its calls are no openings
    # for our a ticket, which counter 1 calls after the one ahead.
    h = hall(
        [counter("1", "a", busy="a"), counter("2", "b", "a", busy="b")],
        [WaitingGroup("a", NORMAL, 1), WaitingGroup("b", NORMAL, 30)],
        a=history(300),
        b=history(100),
    )
    path = replay(h, Place("a", ahead=1))
    assert path is not None and path.calls_before > path.turn == 1
    assert path.counters_opening == 1


# -- the range -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "p10", "p90"),
    # Exact percentiles of Gamma(shape, 1) over its mean (chi-square tables, 2 x shape dof).
    [(1, 0.10536, 2.30259), (4, 0.43604, 1.66808), (10, 0.62215, 1.42064)],
)
def test_gamma_quantile_ratio_is_close_to_the_exact_percentiles(
    shape: int, p10: float, p90: float
) -> None:
    assert gamma_quantile_ratio(shape, -RANGE_Z) == pytest.approx(p10, rel=0.07)
    assert gamma_quantile_ratio(shape, RANGE_Z) == pytest.approx(p90, rel=0.02)


def test_range_brackets_the_median_and_narrows_with_more_calls_ahead() -> None:
    short = wait_range(300.0, 0)
    long = wait_range(3000.0, 30)
    for quote in (short, long):
        assert quote.low_s <= quote.median_s <= quote.high_s
    # Relative spread falls like 1/sqrt(calls + 1).
    assert (long.high_s - long.low_s) / 3000 < (short.high_s - short.low_s) / 300 / 3


def test_the_range_narrows_with_steadier_service_at_one_counter_but_not_below_the_floor() -> None:
    def spread(quote: WaitEstimate) -> float:
        return (quote.high_s - quote.low_s) / quote.median_s

    steady = wait_range(1000.0, 4, serving=1, cv=0.3)
    erratic = wait_range(1000.0, 4, serving=1, cv=1.0)
    assert spread(steady) < spread(erratic)
    # Calls at many counters come about as a Poisson stream, whatever one service's cv.
    assert spread(wait_range(1000.0, 4, serving=8, cv=0.3)) > spread(steady)
    # A long queue: the path's own error (PATH_ERROR) is what is left.
    floor = 2 * RANGE_Z * PATH_ERROR
    assert spread(wait_range(10_000.0, 2000, serving=1, cv=0.5)) == pytest.approx(floor, rel=0.1)


# -- the SQL that feeds it, through the API --------------------------------------------------

B = "/api/v1/branches/hz01"


async def act(client, code, action):
    response = await client.post(f"{B}/counters/{code}/{action}", headers=ADMIN)
    assert response.status_code in (200, 204), response.text


async def read_hall(app, clock) -> Hall:
    async with app.state.sessionmaker() as session:
        return (await load_hall(session, "hz01", clock.now(), Settings())).hall


async def serve_three_and_call_a_fourth(client, clock) -> None:
    """Counter 1 (a, then b) serves three a customers in 100, 200 and 300 s (call -> done); the
    fourth has been at the counter for 150 s."""
    await setup_branch(client)
    await act(client, "1", "open")
    for seconds in (100, 200, 300):
        await issue(client)
        await act(client, "1", "next")
        await act(client, "1", "start")
        clock.advance(seconds)
        await act(client, "1", "complete")
    await issue(client)
    await act(client, "1", "next")
    clock.advance(150)


async def test_the_hall_read_gives_history_counters_and_arrivals(app, client, clock):
    await serve_three_and_call_a_fourth(client, clock)
    # A vip and a b customer wait.
    await issue(client, priority="vip")
    await issue(client, service="b")
    h = await read_hall(app, clock)
    assert h.counters == (counter("1", "a", "b", busy="a", elapsed=150),)
    assert set(h.waiting) == {WaitingGroup("a", VIP, 1), WaitingGroup("b", NORMAL, 1)}
    assert h.history["a"].handling_s == (300, 200, 100)  # newest first
    # Five a tickets came in the last 750 s (the branch's first), fewer than the read's limit.
    assert h.history["a"].issued == Issued({"normal": 4, "vip": 1}, reach_s=750)
    assert h.history["b"] == TypeHistory((), Issued({"normal": 1}, reach_s=0))
    # Read with a limit of 3 tickets: a's stops inside the window, 450 s back.
    async with app.state.sessionmaker() as session:
        capped = await load_hall(session, "hz01", clock.now(), Settings(estimate_history=3))
    assert capped.hall.history["a"].issued == Issued(
        {"normal": 2, "vip": 1}, reach_s=450, capped=True
    )
    # Half an hour later the window has moved past the first b.
    clock.advance(1801)
    await issue(client, service="b")
    later = await read_hall(app, clock)
    assert later.history["b"].issued == Issued({"normal": 1}, reach_s=1801)


async def test_issue_and_ticket_read_quote_the_hall_they_read(app, client, clock):
    await serve_three_and_call_a_fourth(client, clock)
    before = await read_hall(app, clock)
    first = await issue(client)
    assert first["position"] == 1
    expected = estimate_wait(before, Place("a", ahead=0))
    assert first["estimated_wait_s"] == expected.median_s > 0
    assert first["estimated_wait_range_s"] == list(expected.range_s)
    # The same estimate when the ticket is read back.
    detail = await ok(await client.get(f"/api/v1/tickets/{first['id']}", headers=ADMIN))
    assert detail["estimated_wait_s"] == expected.median_s
    assert detail["estimated_wait_range_s"] == first["estimated_wait_range_s"]
    second = await issue(client)
    assert second["estimated_wait_s"] > first["estimated_wait_s"]


async def test_closed_counters_do_not_count_and_paused_ones_do(client, clock):
    await setup_branch(client)
    # Nobody serves a: one imaginary counter, halfway through a default (300 s) customer.
    lone = hall([], a=history())
    assert (await issue(client))["estimated_wait_s"] == estimate_wait_s(lone, Place("a", 0))
    await act(client, "2", "open")  # counter 2: b, then a; free
    free = hall([counter("2", "b", "a")])
    assert (await issue(client))["estimated_wait_s"] == estimate_wait_s(free, Place("a", 1))
    await act(client, "2", "pause")
    assert (await issue(client))["estimated_wait_s"] == estimate_wait_s(free, Place("a", 2))
    await act(client, "2", "close")
    assert (await issue(client))["estimated_wait_s"] == estimate_wait_s(lone, Place("a", 3))


async def test_an_own_type_queue_delays_a_helping_counter(client):
    await setup_branch(client)
    await act(client, "2", "open")  # counter 2: b first, then a
    await issue(client, service="b")
    await issue(client, service="b")
    # Both b tickets (default 300 s each) go first at counter 2, and the b customers still to
    # come (two in the half hour so far) before our a ticket too.
    b = TypeHistory((), Issued({"normal": 2}, reach_s=0))
    h = hall([counter("2", "b", "a")], [WaitingGroup("b", NORMAL, 2)], b=b)
    assert path_s(h, Place("a", 0)) == pytest.approx(2 * T * 300)
    assert (await issue(client, service="a"))["estimated_wait_s"] == estimate_wait_s(
        h, Place("a", 0)
    )
    # A special a ticket passes them.
    special = await issue(client, service="a", priority="special")
    assert special["estimated_wait_s"] == 0


async def test_queue_view_estimates_the_wait_of_a_normal_ticket_taken_now(client):
    await setup_branch(client)
    await act(client, "1", "open")
    for _ in range(3):
        await issue(client)
    await issue(client, priority="vip")
    view = await ok(await client.get(f"{B}/queue", headers=ADMIN))
    by_service = {s["service"]: s for s in view["services"]}
    assert by_service["a"]["waiting"] == 4
    a = TypeHistory((), Issued({"normal": 3, "vip": 1}, reach_s=0))
    h = hall(
        [counter("1", "a", "b")], [WaitingGroup("a", NORMAL, 3), WaitingGroup("a", VIP, 1)], a=a
    )
    expected = estimate_wait(h, Place("a", 4))
    assert by_service["a"]["estimated_wait_s"] == expected.median_s
    assert by_service["a"]["estimated_wait_range_s"] == list(expected.range_s)
    # Counter 1 helps b once the a queue is done.
    assert by_service["b"]["estimated_wait_s"] == estimate_wait_s(h, Place("b", 0))
    # Nobody serves v: one imaginary counter halfway through a customer.
    assert by_service["v"]["estimated_wait_s"] == estimate_wait_s(h, Place("v", 0))


def test_a_burst_of_issues_is_not_taken_for_a_rate() -> None:
    """Fifty tickets issued within 3 s (a flood, or a test) count as if they had come over
    MIN_RATE_SPAN_S: a rate of 16 a second would have the replay admit thousands of
    customers ahead of the ticket."""
    burst = Issued({"normal": 50}, reach_s=3.0, capped=True)
    assert burst.rates_per_s() == {"normal": pytest.approx(50 / MIN_RATE_SPAN_S)}
    steady = Issued({"normal": 50}, reach_s=900.0, capped=True)
    assert steady.rates_per_s() == {"normal": pytest.approx(50 / 900)}

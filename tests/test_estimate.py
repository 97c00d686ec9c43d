"""The wait estimate: the pure model (app/queue/estimate.py), then the SQL that feeds it."""

from __future__ import annotations

import pytest

from app.queue.estimate import (
    CV_WITHOUT_HISTORY,
    HORIZON_S,
    MEDIAN_FACTOR,
    OVERRUN_FRACTION,
    PATH_ERROR,
    RANGE_Z,
    CounterNow,
    Done,
    Hall,
    Place,
    TypeHistory,
    WaitEstimate,
    WaitingGroup,
    estimate_wait_s,
    gamma_quantile_ratio,
    replay,
    wait_estimate,
)
from app.queue.ordering import class_rank
from tests.helpers import ADMIN, issue, ok, setup_branch

NORMAL = class_rank(1, False, "normal")
VIP = class_rank(1, False, "vip")
SPECIAL = class_rank(1, False, "special")


def history(*handling_s: float, priority: str = "normal", every_s: float = 3600.0) -> TypeHistory:
    """Finished tickets that took `handling_s` each, the newest first, `every_s` apart (long
    ago by default, so that they count for service times but hardly for arrival rates)."""
    return TypeHistory(
        tuple(Done(h, priority, age_s=every_s * (i + 1)) for i, h in enumerate(handling_s))
    )


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


def median(path: float, calls: int = 0, serving: int = 1, cv: float = CV_WITHOUT_HISTORY) -> int:
    """The quoted median for a ticket called at `path` after `calls` by `serving` counters."""
    return wait_estimate(path, calls, serving, cv).median_s


# -- what history tells ------------------------------------------------------------------------


def test_mean_time_per_ticket_comes_from_history_or_the_default():
    assert history(100, 200, 300).mean_handling_s(default_s=999) == 200
    assert TypeHistory().mean_handling_s(default_s=999) == 999


def test_remaining_time_is_the_mean_residual_of_longer_tickets():
    h = history(100, 200, 400)
    assert h.remaining_s(0, 999) == pytest.approx((100 + 200 + 400) / 3)
    # 150 s in: the 100 s ticket is ruled out; (50 + 250) / 2 remain on average.
    assert h.remaining_s(150, 999) == pytest.approx(150)
    # Longer than any recent ticket: expected to end soon.
    assert h.remaining_s(500, 999) == pytest.approx(OVERRUN_FRACTION * h.mean_handling_s(999))


def test_remaining_time_without_history_uses_the_default():
    assert TypeHistory().remaining_s(100, default_s=300) == 200
    assert TypeHistory().remaining_s(1000, default_s=300) == pytest.approx(OVERRUN_FRACTION * 300)


def test_arrival_rates_count_recent_tickets_by_class():
    done = (
        Done(60, "normal", age_s=100),
        Done(60, "vip", age_s=200),
        Done(60, "normal", age_s=1700),
        Done(60, "normal", age_s=5000),  # outside the window
    )
    rates = TypeHistory(done).rates_per_s(window_s=1800)
    assert rates == {"normal": pytest.approx(2 / 1800), "vip": pytest.approx(1 / 1800)}


def test_arrival_rates_over_a_history_shorter_than_the_window():
    # Ten tickets in the last 900 s and none before (the hall opened recently).
    done = tuple(Done(60, "normal", age_s=90 * (i + 1)) for i in range(10))
    rates = TypeHistory(done).rates_per_s(window_s=3600)
    assert rates["normal"] == pytest.approx(10 / (900 * 11 / 10))
    assert TypeHistory().rates_per_s(1800) == {}


# -- the replay: one type ------------------------------------------------------------------------


def test_a_free_counter_calls_the_first_ticket_at_once():
    assert path_s(hall([counter("1", "a")], a=history(300)), Place("a", ahead=0)) == 0


def test_one_free_counter_works_through_the_tickets_ahead():
    h = hall([counter("1", "a")], [WaitingGroup("a", NORMAL, 3)], a=history(300))
    assert path_s(h, Place("a", ahead=2)) == 600


def test_counters_work_in_parallel():
    h = hall([counter("1", "a"), counter("2", "a")], a=history(300))
    assert path_s(h, Place("a", ahead=1)) == 0  # the second free counter takes it
    assert path_s(h, Place("a", ahead=2)) == 300
    assert path_s(h, Place("a", ahead=3)) == 300
    assert path_s(h, Place("a", ahead=4)) == 600


def test_a_busy_counter_frees_when_its_customer_is_expected_to_leave():
    a = history(200, 300, 400)
    fresh = hall([counter("1", "a", busy="a", elapsed=0)], a=a)
    assert path_s(fresh, Place("a", ahead=0)) == 300
    # 250 s into the service: of the recent tickets only 300 s and 400 s lasted this long.
    late = hall([counter("1", "a", busy="a", elapsed=250)], a=a)
    assert path_s(late, Place("a", ahead=0)) == 100
    assert path_s(late, Place("a", ahead=1)) == 100 + 300


def test_the_first_of_several_busy_counters_takes_the_ticket():
    a = history(200, 300, 400)
    h = hall(
        [counter("1", "a", busy="a", elapsed=10), counter("2", "a", busy="a", elapsed=250)],
        a=a,
    )
    assert path_s(h, Place("a", ahead=0)) == 100
    # The next one goes to counter 1 (free after ~290 s), not counter 2 again (100 + 300 s).
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
    assert path_s(h, Place("a", ahead=1)) == 300


def test_nobody_serving_the_type_counts_as_one_counter_halfway_through():
    h = hall([counter("1", "b")], a=history(200))
    assert path_s(h, Place("a", ahead=0)) == 100
    assert path_s(h, Place("a", ahead=2)) == 100 + 2 * 200
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
    # Counter 1 serves both b (free at 200 s) before counter 2 is done (500 s).
    assert path_s(h, Place("a", ahead=0)) == 200
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
    assert path_s(h, Place("b", ahead=0)) == 300


def test_a_priority_ticket_goes_before_the_counters_own_normal_queue():
    h = hall([counter("1", "b", "a")], [WaitingGroup("b", NORMAL, 3)], b=history(100))
    assert path_s(h, Place("a", ahead=0, priority="special")) == 0
    assert path_s(h, Place("a", ahead=0, priority="vip")) == 0
    assert path_s(h, Place("a", ahead=0)) == 300


def test_priority_tickets_of_a_fallback_type_go_first():
    # Counter 1 is for b; a special ticket of a, its fallback type, is called before our b.
    h = hall(
        [counter("1", "b", "a")],
        [WaitingGroup("a", SPECIAL, 1)],
        a=history(400),
        b=history(100),
    )
    assert path_s(h, Place("b", ahead=0)) == 400
    assert path_s(h, Place("b", ahead=0, priority="special")) == 0


def test_only_the_tickets_ahead_of_our_own_type_count():
    # Six normal a tickets wait, ours is the third; two vips of a are ahead of everyone.
    h = hall(
        [counter("1", "a")],
        [WaitingGroup("a", NORMAL, 6), WaitingGroup("a", VIP, 2)],
        a=history(100),
    )
    assert path_s(h, Place("a", ahead=4)) == 400
    # A vip ticket behind the two vips: the normal tickets do not count.
    assert path_s(h, Place("a", ahead=2, priority="vip")) == 200


def test_held_requeued_tickets_wait_behind_and_front_lane_tickets_go_first():
    h = hall(
        [counter("1", "a")],
        [
            WaitingGroup("a", class_rank(2, False, "normal"), 3),
            WaitingGroup("a", class_rank(0, False, "normal"), 1),
        ],
        a=history(100),
    )
    assert path_s(h, Place("a", ahead=1)) == 100


def test_an_overdue_ticket_goes_before_priority_tickets():
    h = hall([counter("1", "a")], [WaitingGroup("a", SPECIAL, 2)], a=history(100))
    assert path_s(h, Place("a", ahead=0, overdue=True)) == 0
    assert path_s(h, Place("a", ahead=2)) == 200


def test_tickets_ahead_never_count_below_zero():
    # The groups (read a moment later) know more better tickets than the position says.
    h = hall([counter("1", "a")], [WaitingGroup("a", VIP, 3)], a=history(100))
    assert path_s(h, Place("a", ahead=1)) == 300


# -- customers still to come ---------------------------------------------------------------------


def test_priority_customers_still_to_come_pass_a_normal_ticket():
    # In the last 30 minutes one vip every 600 s and one normal every 100 s were served.
    recent = tuple(Done(300, "vip", age_s=600 * (i + 1)) for i in range(3)) + tuple(
        Done(300, "normal", age_s=100 * (i + 1)) for i in range(18)
    )
    a = TypeHistory(tuple(sorted(recent, key=lambda d: d.age_s)))
    assert a.rates_per_s(1800)["vip"] == pytest.approx(1 / 600)
    h = hall([counter("1", "a", busy="a", elapsed=0)], a=a)
    quiet = hall(h.counters, a=history(*(d.handling_s for d in a.done)))
    # Without arrivals: 300 s for the customer at the counter, 2 x 300 for those ahead.
    assert path_s(quiet, Place("a", ahead=2)) == 900
    # Vips arrive at 600 s and 1200 s and are called before the normal ticket (at 600, 1200).
    assert path_s(h, Place("a", ahead=2)) == 1500
    # Nobody passes a vip ticket but special customers, and there were none.
    assert path_s(h, Place("a", ahead=2, priority="vip")) == 900


def test_a_queue_that_never_reaches_the_ticket_gives_up_at_the_horizon():
    # Specials of a arrive faster (every 60 s) than the counter serves them (300 s).
    recent = tuple(Done(300, "special", age_s=60 * (i + 1)) for i in range(30))
    h = hall([counter("1", "a", busy="a")], a=TypeHistory(recent))
    assert estimate_wait_s(h, Place("a", ahead=0)) == round(HORIZON_S)
    # A free counter still calls it at once, before the first of them arrives.
    assert path_s(hall([counter("1", "a")], a=TypeHistory(recent)), Place("a", 0)) == 0


# -- the SQL that feeds it, through the API --------------------------------------------------

B = "/api/v1/branches/hz01"


async def act(client, code, action):
    response = await client.post(f"{B}/counters/{code}/{action}", headers=ADMIN)
    assert response.status_code in (200, 204), response.text


async def test_issue_estimate_uses_service_history_and_the_customer_at_the_counter(client, clock):
    await setup_branch(client)
    await act(client, "1", "open")  # counter 1: a, then b
    # Three a customers take 100, 200 and 300 s at the counter (call -> done).
    for seconds in (100, 200, 300):
        await issue(client)
        await act(client, "1", "next")
        await act(client, "1", "start")
        clock.advance(seconds)
        await act(client, "1", "complete")
    # The next customer has been at the counter for 150 s.
    await issue(client)
    await act(client, "1", "next")
    clock.advance(150)
    first = await issue(client)
    assert first["position"] == 1
    # Of the recent tickets only 200 s and 300 s lasted 150 s: (50 + 150) / 2 = 100 s remain.
    cv = history(100, 200, 300).cv()
    assert first["estimated_wait_s"] == median(100, cv=cv)
    second = await issue(client)
    # One call (the first ticket) before it on the average path of 300 s, at the one counter.
    assert second["estimated_wait_s"] == median(100 + 200, calls=1, cv=cv)
    assert second["estimated_wait_range_s"] == list(wait_estimate(300.0, 1, 1, cv).range_s)
    # The same estimate when the ticket is read back.
    detail = await ok(await client.get(f"/api/v1/tickets/{second['id']}", headers=ADMIN))
    assert detail["estimated_wait_s"] == median(100 + 200, calls=1, cv=cv)
    assert detail["estimated_wait_range_s"] == second["estimated_wait_range_s"]


async def test_closed_counters_do_not_count_and_paused_ones_do(client, clock):
    await setup_branch(client)
    # Nobody serves a: one imaginary counter, halfway through a default (300 s) customer.
    assert (await issue(client))["estimated_wait_s"] == median(150)
    await act(client, "2", "open")  # counter 2: b, then a; free
    assert (await issue(client))["estimated_wait_s"] == median(300, calls=1)  # one a ahead
    await act(client, "2", "pause")
    assert (await issue(client))["estimated_wait_s"] == median(600, calls=2)
    await act(client, "2", "close")
    assert (await issue(client))["estimated_wait_s"] == median(150 + 3 * 300, calls=3)


async def test_an_own_type_queue_delays_a_helping_counter(client):
    await setup_branch(client)
    await act(client, "2", "open")  # counter 2: b first, then a
    await issue(client, service="b")
    await issue(client, service="b")
    # Both b tickets (default 300 s each) go first at counter 2.
    assert (await issue(client, service="a"))["estimated_wait_s"] == median(600, calls=2)
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
    assert by_service["a"]["estimated_wait_s"] == median(4 * 300, calls=4)
    assert by_service["a"]["estimated_wait_range_s"] == list(
        wait_estimate(4 * 300, 4, 1, CV_WITHOUT_HISTORY).range_s
    )
    # Counter 1 helps b once the a queue is done.
    assert by_service["b"]["estimated_wait_s"] == median(4 * 300, calls=4)
    # Nobody serves v: one imaginary counter halfway through a customer.
    assert by_service["v"]["estimated_wait_s"] == median(150)


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
    short = wait_estimate(300.0, 0)
    long = wait_estimate(3000.0, 30)
    for quote in (short, long):
        assert quote.low_s <= quote.median_s <= quote.high_s
    # Relative spread falls like 1/sqrt(calls + 1).
    assert (long.high_s - long.low_s) / 3000 < (short.high_s - short.low_s) / 300 / 3


def test_the_median_is_lower_within_the_first_round_of_several_counters() -> None:
    # Eight counters, nobody ahead: the first of eight busy counters frees up much sooner than
    # the soonest expected time; eight calls later, the path is nearly right.
    first = wait_estimate(200.0, 0, serving=8, cv=0.6)
    later = wait_estimate(200.0, 16, serving=8, cv=0.6)
    assert first.median_s < 0.5 * 200 < later.median_s
    # Many rounds of service ahead: MEDIAN_FACTOR of the path.
    assert wait_estimate(3000.0, 40, serving=2, cv=0.6).median_s == round(3000 * MEDIAN_FACTOR)


def test_the_range_narrows_with_steadier_service_at_one_counter_but_not_below_the_floor() -> None:
    def spread(quote: WaitEstimate) -> float:
        return (quote.high_s - quote.low_s) / quote.median_s

    steady = wait_estimate(1000.0, 4, serving=1, cv=0.3)
    erratic = wait_estimate(1000.0, 4, serving=1, cv=1.0)
    assert spread(steady) < spread(erratic)
    # Calls at many counters come about as a Poisson stream, whatever one service's cv.
    assert spread(wait_estimate(1000.0, 4, serving=8, cv=0.3)) > spread(steady)
    # A long queue: the path's own error (PATH_ERROR) is what is left.
    floor = 2 * RANGE_Z * PATH_ERROR
    assert spread(wait_estimate(10_000.0, 2000, serving=1, cv=0.5)) == pytest.approx(floor, rel=0.1)


def test_the_cv_of_service_times_comes_from_history() -> None:
    assert history(100, 300).cv() == pytest.approx(0.5)
    assert history(100).cv() == CV_WITHOUT_HISTORY

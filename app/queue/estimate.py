"""Estimated wait of a waiting ticket: a replay of the hall's calling order, then the odds of the
moments a counter may call it.

The replay (`replay`) runs the real calling rule (app.queue.ordering) on average values: each
counter frees up when its current customer is expected to leave, calls what the rule would call
and is taken for that type's time per ticket; customers still to come arrive at their recent
rates. Following the real rule is the point: a counter helps another type only once its own
queue is empty, and a `special` ticket of a fallback type still goes before the counter's own
`normal` ones. On the way it notes every *opening*: a moment a counter that can call the ticket
calls a ticket of its type. Those moments are uncertain, and the quote (`quote`) is the median
of when the ticket's own opening comes. The model in full, what it does not foresee and its
measured error: docs/estimate.md.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from app.core.vocabulary import Priority
from app.queue.ordering import LANE_NORMAL, Group, Rank, choose_group, class_rank

# A customer already at the counter for longer than any recent one of the type: expect them to
# leave soon, after this fraction of the type's mean time.
OVERRUN_FRACTION = 0.15
# The replay gives up after this much simulated time or this many calls (a queue that never
# reaches the ticket, e.g. priority customers arriving faster than they are served).
HORIZON_S = 12 * 3600.0
MAX_CALLS = 20_000
# No type takes a counter for less than this, whatever its history says.
MIN_HANDLING_S = 1.0
# Arrival rates: tickets issued in this window (or, for a busy type, over its last
# HALLQ_ESTIMATE_HISTORY tickets if they came in less time).
RATE_WINDOW_S = 1800.0
MIN_RATE_SPAN_S = 300.0
# The customers still to be served take this share of the recent mean time per ticket. The
# recent tickets are the ones that made today's queue: when it is long, they were slow, and
# the next ones are, on average, less so (regression to the mean; docs/estimate.md).
TIME_PER_TICKET_FACTOR = 0.9
# After the ticket's own opening, the openings each other counter would give it next (a counter
# that is faster than expected calls the ticket before the one the replay chose).
OPENINGS_AFTER = 3
# The median wait is when the expected number of openings reaches (openings ahead) + offset:
# 0.5 at one counter (a sum of service times, nearly symmetric), ln 2 when many counters take
# turns (openings then come about as a Poisson stream, whose first event has median ln 2 / rate).
MEDIAN_OFFSET_ONE = 0.5
MEDIAN_OFFSET_MANY = math.log(2)
# The range: the 10th and 90th percentile of a Gamma with that median. Its relative variance
# 1 / shape is that of the calls before ours, cv^2 / (calls + 1) (Whitt 1999: the spread falls
# like 1/sqrt(n + 1)), plus PATH_ERROR^2 for what the path itself gets wrong (service times and
# arrival rates read from a short history). cv is that of the time between calls: the type's
# service time with one counter, tending to 1 (Poisson) as more counters take turns.
RANGE_Z = 1.2816  # the standard normal's 90th percentile
PATH_ERROR = 0.25
CV_WITHOUT_HISTORY = 1.0  # as if exponential
# An opening known to the second is not known better than this (keeps the odds continuous).
MIN_SPREAD_S = 1.0
# An opening whose erfc argument (t - moment) / (spread x sqrt 2) is beyond this (4.2 spreads)
# counts as sure or impossible: its chance is within 0.5 x erfc(3) = 1.1e-5 of that.
NEGLIGIBLE_Z = 3.0


@dataclass(frozen=True)
class Issued:
    """Tickets of one business type issued lately: how many of each priority class within the
    rate window. `capped`: the read stopped at its limit (HALLQ_ESTIMATE_HISTORY tickets) at
    `reach_s` ago, inside the window: a busy type, whose rate is that of its last tickets."""

    by_priority: Mapping[str, int] = field(default_factory=dict)
    reach_s: float = 0.0
    capped: bool = False

    def rates_per_s(self, window_s: float = RATE_WINDOW_S) -> dict[str, float]:
        """Arrivals per second by class over the window (early in a hall's first day: fewer
        than there will be), or over the time a busy type's last tickets span."""
        span = window_s
        if self.capped and self.reach_s < window_s:
            # Not less than MIN_RATE_SPAN_S: a burst of a few seconds is not a rate.
            span = max(self.reach_s, MIN_RATE_SPAN_S)
        return {p: n / span for p, n in sorted(self.by_priority.items()) if n > 0}


@dataclass(frozen=True)
class TypeHistory:
    """What recent tickets of a business type tell: the counter time (call to done) of the last
    finished ones, newest first, and how many were issued lately."""

    handling_s: tuple[float, ...] = ()
    issued: Issued = field(default_factory=Issued)

    @cached_property
    def _sorted(self) -> list[float]:
        return sorted(self.handling_s)

    def mean_handling_s(self, default_s: float) -> float:
        if not self.handling_s:
            return default_s
        return sum(self.handling_s) / len(self.handling_s)

    def cv(self) -> float:
        """The coefficient of variation of the recent tickets' counter time."""
        return self._cv

    @cached_property
    def _cv(self) -> float:
        times = self.handling_s
        if len(times) < 2:
            return CV_WITHOUT_HISTORY
        mean = sum(times) / len(times)
        if mean <= 0:
            return CV_WITHOUT_HISTORY
        return math.sqrt(sum((t - mean) ** 2 for t in times) / len(times)) / mean

    @cached_property
    def _tail_sums(self) -> tuple[list[float], list[float]]:
        """Sums of the sorted times and of their squares from each one to the longest."""
        sums, squares = [0.0], [0.0]
        for t in reversed(self._sorted):
            sums.append(sums[-1] + t)
            squares.append(squares[-1] + t * t)
        return sums[::-1], squares[::-1]

    def remaining(self, elapsed_s: float, default_s: float) -> Residual:
        """What is left for a customer at the counter since `elapsed_s`: the recent tickets
        that lasted longer than that, minus `elapsed_s`."""
        times = self._sorted
        start = bisect.bisect_right(times, elapsed_s)
        longer = len(times) - start
        if longer:
            sums, squares = self._tail_sums
            mean = sums[start] / longer
            spread = math.sqrt(max(squares[start] / longer - mean * mean, 0.0))
            return Residual(mean - elapsed_s, spread, times, start, elapsed_s)
        full = self.mean_handling_s(default_s)
        mean = OVERRUN_FRACTION * full if times else max(full - elapsed_s, OVERRUN_FRACTION * full)
        return Residual(mean, mean * min(self.cv(), 1.0))

    def remaining_s(self, elapsed_s: float, default_s: float) -> float:
        """Expected time left for a customer at the counter since `elapsed_s`."""
        return self.remaining(elapsed_s, default_s).mean_s


@dataclass(frozen=True)
class Residual:
    """Time left for a customer at the counter: its mean and spread, and the recent tickets of
    the type that lasted longer than it has so far (`times[start:]`): the share of them over by
    t from now is the chance it is over by then."""

    mean_s: float
    spread_s: float
    times: Sequence[float] = ()  # recent counter times of the type, sorted
    start: int = 0  # the first of them longer than `elapsed_s`
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class CounterNow:
    code: str
    profile: tuple[str, ...]  # own type first, fallbacks after
    current_service: str | None = None  # the type of the customer called to it or at it
    elapsed_s: float = 0.0  # since that customer was (last) called


@dataclass(frozen=True)
class WaitingGroup:
    """Waiting tickets of one type that share a place in the calling order."""

    service: str
    rank: Rank
    count: int


@dataclass(frozen=True)
class Hall:
    """The branch now: counters that will call again, who waits, and recent history."""

    counters: tuple[CounterNow, ...]
    waiting: tuple[WaitingGroup, ...]
    history: Mapping[str, TypeHistory] = field(default_factory=dict)
    default_service_s: float = 300.0
    rate_window_s: float = RATE_WINDOW_S
    # Means already worked out: the replay asks for them at every simulated call.
    _means: dict[str, float] = field(default_factory=dict, compare=False, repr=False)
    # What a call of each type adds to a counter's free time and to its variance, and what is
    # left of each customer at a counter: the same for every replay of the hall (the queue view
    # quotes every type of one hall).
    _takes: dict[str, tuple[float, float]] = field(default_factory=dict, compare=False, repr=False)
    _left: dict[tuple[str, float], Residual] = field(
        default_factory=dict, compare=False, repr=False
    )

    def mean_handling_s(self, service: str) -> float:
        """The recent mean counter time per ticket of the type (or the default)."""
        mean = self._means.get(service)
        if mean is None:
            history = self.history.get(service, TypeHistory())
            mean = max(history.mean_handling_s(self.default_service_s), MIN_HANDLING_S)
            self._means[service] = mean
        return mean

    def time_per_ticket_s(self, service: str) -> float:
        """How long a customer still to be called keeps a counter (TIME_PER_TICKET_FACTOR)."""
        return max(TIME_PER_TICKET_FACTOR * self.mean_handling_s(service), MIN_HANDLING_S)

    def take(self, service: str) -> tuple[float, float]:
        """A customer still to be called of the type: how long they keep a counter, and the
        variance that adds to the moment it is free again."""
        take = self._takes.get(service)
        if take is None:
            time = self.time_per_ticket_s(service)
            take = self._takes[service] = (time, (min(self.cv(service), 1.0) * time) ** 2)
        return take

    def cv(self, service: str) -> float:
        history = self.history.get(service)
        return history.cv() if history is not None else CV_WITHOUT_HISTORY

    def remaining(self, service: str, elapsed_s: float) -> Residual:
        left = self._left.get((service, elapsed_s))
        if left is None:
            history = self.history.get(service, TypeHistory())
            left = self._left[service, elapsed_s] = history.remaining(
                elapsed_s, self.default_service_s
            )
        return left

    def remaining_s(self, service: str, elapsed_s: float) -> float:
        return self.remaining(service, elapsed_s).mean_s

    def arrival_rates(self) -> dict[str, dict[str, float]]:
        """Arrivals per second by type and class."""
        return {s: h.issued.rates_per_s(self.rate_window_s) for s, h in self.history.items()}


@dataclass(frozen=True)
class Place:
    """The ticket whose wait is estimated: its type, its rank, and how many of its type are
    ahead of it in calling order (its position - 1)."""

    service: str
    ahead: int
    priority: str = Priority.NORMAL
    lane: int = LANE_NORMAL
    overdue: bool = False

    @property
    def rank(self) -> Rank:
        return class_rank(self.lane, self.overdue, self.priority)


@dataclass(frozen=True)
class WaitEstimate:
    """Seconds until the ticket is called: the median, and the 10th and 90th percentile."""

    median_s: int
    low_s: int
    high_s: int

    @property
    def range_s(self) -> tuple[int, int]:
        return (self.low_s, self.high_s)


@dataclass(frozen=True)
class Opening:
    """A moment a counter that can call the ticket calls one of its type: when, on the average
    path, and how uncertain that is (the spread of the time until then; for a counter's first
    call, what is left of its current customer's time)."""

    at_s: float
    spread_s: float
    residual: Residual | None = None  # its first call: the chance comes from recent tickets

    def chance_by(self, t: float) -> float:
        """The chance that this opening has come by `t`."""
        return expected_openings((self,))(t)


@dataclass(frozen=True)
class Path:
    """Where the average-path replay calls the ticket, and what the quote needs to know."""

    path_s: float  # when it is called
    calls_before: int  # calls before it by the counters that can call it
    serving: int  # counters that can call it
    cv: float  # its type's service-time coefficient of variation, from history
    openings: tuple[Opening, ...] = ()  # every opening noted, its own among them
    turn: int = 0  # how many of them come before its own on the average path
    counters_opening: int = 1  # how many counters give it openings


def gamma_quantile_ratio(shape: float, z: float) -> float:
    """A quantile of Gamma(shape) over its mean, by Wilson and Hilferty's cube-root normal
    approximation (within a few percent of the exact value from shape 1 up)."""
    third = 1.0 / (9.0 * shape)
    return max(0.0, 1.0 - third + z * math.sqrt(third)) ** 3


def median_offset(counters: int) -> float:
    """MEDIAN_OFFSET_ONE with one counter giving openings, towards MEDIAN_OFFSET_MANY."""
    share = 1 - 1 / max(counters, 1)
    return MEDIAN_OFFSET_ONE + (MEDIAN_OFFSET_MANY - MEDIAN_OFFSET_ONE) * share


def expected_openings(openings: Sequence[Opening]) -> Callable[[float], float]:
    """How many of the openings are expected to have come by t: each one's chance, from the
    recent tickets for a counter's first call (when there are two or more), else a normal
    distribution around its moment on the average path."""
    normal: list[tuple[float, float]] = []  # (moment, 1 / (spread x sqrt 2))
    empirical: list[tuple[Sequence[float], int, int, float]] = []  # times, start, count, elapsed
    for opening in openings:
        left = opening.residual
        if left is not None and len(left.times) - left.start >= 2:
            empirical.append((left.times, left.start, len(left.times) - left.start, left.elapsed_s))
        else:
            normal.append((opening.at_s, 1 / (max(opening.spread_s, MIN_SPREAD_S) * math.sqrt(2))))

    def by(t: float) -> float:
        total = 0.0
        for at_s, scale in normal:
            x = (at_s - t) * scale
            if x < NEGLIGIBLE_Z:  # else the chance is below 1e-5
                total += 1.0 if x < -NEGLIGIBLE_Z else 0.5 * math.erfc(x)
        for times, start, count, elapsed_s in empirical:
            total += (bisect.bisect_right(times, elapsed_s + t) - start) / count
        return total

    return by


def median_wait_s(path: Path) -> float:
    """When the expected number of openings reaches the ticket's turn plus the median offset:
    the median of the moment its own opening comes."""
    if path.path_s <= 0 or not path.openings:
        return 0.0
    target = path.turn + median_offset(path.counters_opening)
    expected = expected_openings(path.openings)
    if expected(0.0) >= target:
        return 0.0
    low, high = 0.0, path.path_s * 1.25 + 10.0
    while expected(high) < target and high < HORIZON_S:
        low, high = high, high * 2
    while high - low > max(1.0, 0.005 * high):
        middle = (low + high) / 2
        if expected(middle) >= target:
            high = middle
        else:
            low = middle
    return (low + high) / 2


def wait_range(
    median_s: float, calls_before: int, serving: int = 1, cv: float = CV_WITHOUT_HISTORY
) -> WaitEstimate:
    """The quote with `median_s`: the range a Gamma around it (see the constants), for a ticket
    called after `calls_before` calls by the `serving` counters that can call it; `cv` is that
    of its type's service time."""
    serving = max(serving, 1)
    between_calls = 1 - (1 - min(cv, 1.0) ** 2) / serving  # cv^2 of the time between calls
    shape = 1 / (between_calls / (calls_before + 1) + PATH_ERROR**2)
    to_median = median_s / gamma_quantile_ratio(shape, 0.0)
    low = min(median_s, to_median * gamma_quantile_ratio(shape, -RANGE_Z))
    high = max(median_s, to_median * gamma_quantile_ratio(shape, RANGE_Z))
    return WaitEstimate(median_s=round(median_s), low_s=round(low), high_s=round(high))


def quote(path: Path) -> WaitEstimate:
    """The quote for the ticket the replay placed on `path`."""
    return wait_range(median_wait_s(path), path.calls_before, path.serving, path.cv)


def new_ticket_place(hall: Hall, service: str, priority: str = Priority.NORMAL) -> Place:
    """The place of a ticket taken now, in a hall read without it: behind every waiting ticket
    of its type that it would not pass (the same class or better; among equals it came last)."""
    rank = Place(service=service, ahead=0, priority=priority).rank
    ahead = sum(g.count for g in hall.waiting if g.service == service and g.rank <= rank)
    return Place(service=service, ahead=ahead, priority=priority)


def estimate_wait_s(hall: Hall, place: Place) -> int:
    """Seconds until a counter calls the ticket at `place` (its median)."""
    return estimate_wait(hall, place).median_s


def estimate_wait(hall: Hall, place: Place) -> WaitEstimate:
    """The wait of the ticket at `place`, replaying the calling order from now on."""
    path = replay(hall, place)
    if path is None:
        return WaitEstimate(round(HORIZON_S), round(HORIZON_S), round(HORIZON_S))
    return quote(path)


# -- the replay ------------------------------------------------------------------------------


@dataclass
class _Arrivals:
    """Customers still to come of one type and class at their recent rate: the k-th after
    k / rate seconds."""

    service: str
    rank: Rank
    every_s: float
    next_s: float


@dataclass
class _Counter:
    """A counter during the replay: when it is free next, the variance of that moment, and
    (until its first call) what is left of its current customer."""

    profile: tuple[str, ...]
    free_at: float = 0.0
    variance: float = 0.0
    first: Residual | None = None

    def opening(self) -> Opening:
        return Opening(self.free_at, math.sqrt(self.variance), self.first)

    def take(self, hall: Hall, service: str) -> None:
        """It calls a customer of `service`, who keeps it for the type's time per ticket."""
        time, variance = hall.take(service)
        self.free_at += time
        self.variance += variance
        self.first = None


def _queue_before(hall: Hall, place: Place) -> dict[Group, int]:
    """Waiting tickets that may be called before ours, by (type, rank). Of its own type, only
    the `ahead` ones: the others come after it at every counter."""
    queue: dict[Group, int] = {}
    better = 0
    for group in hall.waiting:
        if group.service == place.service:
            if group.rank >= place.rank:
                continue
            better += group.count
        key = (group.service, group.rank)
        queue[key] = queue.get(key, 0) + group.count
    own = (place.service, place.rank)
    queue[own] = max(0, place.ahead - better)
    return queue


def _arrivals(hall: Hall, place: Place) -> list[_Arrivals]:
    """Customers still to come, by type and class; of our own type only those who pass us."""
    streams = []
    for service, rates in sorted(hall.arrival_rates().items()):
        for priority, rate in rates.items():
            rank = class_rank(LANE_NORMAL, False, priority)
            if rate <= 0 or (service == place.service and rank >= place.rank):
                continue  # of our type and not of a better class: behind us everywhere
            streams.append(_Arrivals(service, rank, 1 / rate, 1 / rate))
    return streams


def _counters_now(hall: Hall, place: Place) -> list[_Counter]:
    """Every counter that will call again, free now or when its customer is expected to leave.
    Nobody serves the type (before opening, all signed out): as if one counter for it opened,
    halfway through a customer, so that the estimate still grows with the queue."""
    counters = []
    for counter in hall.counters:
        state = _Counter(counter.profile)
        if counter.current_service is not None:
            left = hall.remaining(counter.current_service, counter.elapsed_s)
            state.free_at, state.variance, state.first = left.mean_s, left.spread_s**2, left
        counters.append(state)
    if not any(place.service in c.profile for c in counters):
        mean = hall.mean_handling_s(place.service)
        counters.append(_Counter((place.service,), mean / 2, mean**2 / 12))
    return counters


def replay(hall: Hall, place: Place) -> Path | None:
    """Replay the calling order on average values until a counter calls the ticket at `place`,
    noting the openings on the way; None if no counter calls it within the horizon."""
    queue = _queue_before(hall, place)
    streams = _arrivals(hall, place)
    ours = (place.service, place.rank)
    counters = _counters_now(hall, place)
    heap = [(c.free_at, i) for i, c in enumerate(counters)]
    heapq.heapify(heap)
    serving = sum(1 for c in counters if place.service in c.profile)
    openings: list[Opening] = []
    calls = 0  # of other tickets, before ours, by counters that can call ours
    for _ in range(MAX_CALLS):
        if not heap:
            break
        now, i = heapq.heappop(heap)
        if now > HORIZON_S:
            break
        counter = counters[i]
        _admit(streams, queue, now)
        called = _call(queue, counter.profile, ours)
        if called is None:
            # Idle until a customer it serves arrives.
            upcoming = [s.next_s for s in streams if s.service in counter.profile]
            if upcoming:
                counter.free_at, counter.variance, counter.first = min(upcoming), 0.0, None
                heapq.heappush(heap, (counter.free_at, i))
            continue
        if called == OURS or called[0] == place.service:
            openings.append(counter.opening())
        if called == OURS:
            counter.take(hall, place.service)
            turn = len(openings) - 1
            after = _openings_after(hall, queue, ours, counters)
            return Path(
                path_s=now,
                calls_before=calls,
                serving=serving,
                cv=hall.cv(place.service),
                openings=(*openings, *(o for _, o in after)),
                turn=turn,
                counters_opening=len({i for i, _ in after} | {i}),
            )
        queue[called] -= 1
        if place.service in counter.profile:
            calls += 1
        counter.take(hall, called[0])
        heapq.heappush(heap, (counter.free_at, i))
    return None


def _admit(streams: list[_Arrivals], queue: dict[Group, int], until_s: float) -> None:
    """Every arrival due by `until_s`, counted at once: a burst of issues makes a high rate, and
    adding its arrivals one by one would cost the request a loop per customer."""
    for stream in streams:
        if stream.next_s <= until_s:
            due = math.floor((until_s - stream.next_s) / stream.every_s) + 1
            key = (stream.service, stream.rank)
            queue[key] = queue.get(key, 0) + due
            stream.next_s += due * stream.every_s


def _openings_after(
    hall: Hall, queue: Mapping[Group, int], ours: Group, counters: Sequence[_Counter]
) -> list[tuple[int, Opening]]:
    """The next OPENINGS_AFTER openings of every counter that would call a ticket like ours
    next, once the replay has called it, by counter."""
    service = ours[0]
    after = []
    for i, counter in enumerate(counters):
        if service not in counter.profile:
            continue
        called = _call(queue, counter.profile, ours)
        if called is None or (called != OURS and called[0] != service):
            continue  # it has its own queue to serve first
        state = _Counter(counter.profile, counter.free_at, counter.variance, counter.first)
        for _ in range(OPENINGS_AFTER):
            after.append((i, state.opening()))
            state.take(hall, service)
    return after


OURS: Literal["ours"] = "ours"  # what _call returns when it calls our ticket


def _call(
    queue: Mapping[Group, int], profile: Sequence[str], ours: Group
) -> Group | Literal["ours"] | None:
    """What a counter with `profile` calls next (app.queue.ordering.choose_group): a group of
    waiting tickets, our ticket (OURS), or nothing. Our ticket comes after the tickets of its
    own group, which are the ones ahead of it."""
    groups = [group for group, count in queue.items() if count > 0]
    groups.append(ours)
    called = choose_group(groups, profile)
    if called == ours and queue.get(ours, 0) <= 0:
        return OURS
    return called

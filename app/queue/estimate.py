"""Estimated wait of a waiting ticket: a replay of the hall's calling order, on average values.

Each counter frees up when its current customer is expected to leave, then calls what the real
rule would call (app.queue.ordering) and is taken for that type's mean time per ticket;
customers still to come arrive at their recent rates. Following the real rule is the point: a
counter helps another type only once its own queue is empty, and a `special` ticket of a
fallback type still goes before the counter's own `normal` ones. The model in full, what it
does not foresee and its measured error: docs/estimate.md.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
# The median wait (what minimises the absolute error) lies below the average path: by
# MEDIAN_FACTOR for a long queue, and further within the first round of service, when the first
# of several busy counters frees up much sooner than the soonest of their expected times:
# median = path x (MEDIAN_FACTOR - FIRST_ROUND_DISCOUNT x exp(-ROUND_DECAY x rounds)), where
# rounds = (calls before ours + 1) / counters that can call it. Fitted on the simulated hall
# (docs/estimate.md), like the range below.
MEDIAN_FACTOR = 0.85
FIRST_ROUND_DISCOUNT = 0.7
ROUND_DECAY = 3.0
# The range: the 10th and 90th percentile of a Gamma with that median. Its relative variance
# 1 / shape is that of the calls before ours, cv^2 / (calls + 1) (Whitt 1999: the spread falls
# like 1/sqrt(n + 1)), plus PATH_ERROR^2 for what the path itself gets wrong (service times and
# arrival rates read from a short history). cv is that of the time between calls: the type's
# service time with one counter, tending to 1 (Poisson) as more counters take turns.
RANGE_Z = 1.2816  # the standard normal's 90th percentile
PATH_ERROR = 0.25
CV_WITHOUT_HISTORY = 1.0  # as if exponential


@dataclass(frozen=True)
class Done:
    """A recently finished ticket of a business type."""

    handling_s: float  # counter time: from its (last) call to done
    priority: str
    age_s: float  # how long ago it finished


@dataclass(frozen=True)
class TypeHistory:
    """Recent finished tickets of one business type, newest first."""

    done: tuple[Done, ...] = ()

    def mean_handling_s(self, default_s: float) -> float:
        if not self.done:
            return default_s
        return sum(d.handling_s for d in self.done) / len(self.done)

    def cv(self) -> float:
        """The coefficient of variation of the recent tickets' counter time."""
        if len(self.done) < 2:
            return CV_WITHOUT_HISTORY
        times = [d.handling_s for d in self.done]
        mean = sum(times) / len(times)
        if mean <= 0:
            return CV_WITHOUT_HISTORY
        return math.sqrt(sum((t - mean) ** 2 for t in times) / len(times)) / mean

    def remaining_s(self, elapsed_s: float, default_s: float) -> float:
        """Expected time left for a customer at the counter since `elapsed_s`: the mean residual
        of the recent tickets that took longer than that."""
        mean = self.mean_handling_s(default_s)
        longer = [d.handling_s - elapsed_s for d in self.done if d.handling_s > elapsed_s]
        if longer:
            return sum(longer) / len(longer)
        if not self.done:
            return max(mean - elapsed_s, OVERRUN_FRACTION * mean)
        return OVERRUN_FRACTION * mean

    def rates_per_s(self, window_s: float) -> dict[str, float]:
        """Tickets served per second lately, by priority class: in a steady hall, the rate at
        which they arrive. Counted over `window_s`, or over the span of the history when all of
        it is more recent than that."""
        recent = [d for d in self.done if d.age_s <= window_s]
        if not recent:
            return {}
        span = window_s
        if len(recent) == len(self.done):
            oldest = max(d.age_s for d in recent)
            span = min(window_s, oldest * (len(recent) + 1) / len(recent))
        span = max(span, 1.0)
        rates: dict[str, float] = {}
        for d in recent:
            rates[d.priority] = rates.get(d.priority, 0.0) + 1 / span
        return rates


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
    rate_window_s: float = 1800.0
    # Means already worked out: the replay asks for them at every simulated call.
    _means: dict[str, float] = field(default_factory=dict, compare=False, repr=False)

    def mean_handling_s(self, service: str) -> float:
        mean = self._means.get(service)
        if mean is None:
            history = self.history.get(service, TypeHistory())
            mean = max(history.mean_handling_s(self.default_service_s), MIN_HANDLING_S)
            self._means[service] = mean
        return mean

    def cv(self, service: str) -> float:
        return self.history.get(service, TypeHistory()).cv()

    def remaining_s(self, service: str, elapsed_s: float) -> float:
        history = self.history.get(service, TypeHistory())
        return history.remaining_s(elapsed_s, self.default_service_s)


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


def gamma_quantile_ratio(shape: float, z: float) -> float:
    """A quantile of Gamma(shape) over its mean, by Wilson and Hilferty's cube-root normal
    approximation (within a few percent of the exact value from shape 1 up)."""
    third = 1.0 / (9.0 * shape)
    return max(0.0, 1.0 - third + z * math.sqrt(third)) ** 3


def wait_estimate(
    path_s: float, calls_before: int, serving: int = 1, cv: float = CV_WITHOUT_HISTORY
) -> WaitEstimate:
    """The quote for a ticket the average-path replay calls at `path_s`, after `calls_before`
    calls by the `serving` counters that can call it; `cv` is that of its type's service time.
    The median below the path, the range a Gamma around the median (see the constants)."""
    serving = max(serving, 1)
    rounds = (calls_before + 1) / serving
    factor = MEDIAN_FACTOR - FIRST_ROUND_DISCOUNT * math.exp(-ROUND_DECAY * rounds)
    median = path_s * factor
    between_calls = 1 - (1 - min(cv, 1.0) ** 2) / serving  # cv^2 of the time between calls
    shape = 1 / (between_calls / (calls_before + 1) + PATH_ERROR**2)
    to_median = median / gamma_quantile_ratio(shape, 0.0)
    low = min(median, to_median * gamma_quantile_ratio(shape, -RANGE_Z))
    high = max(median, to_median * gamma_quantile_ratio(shape, RANGE_Z))
    return WaitEstimate(median_s=round(median), low_s=round(low), high_s=round(high))


def new_ticket_place(hall: Hall, service: str, priority: str = Priority.NORMAL) -> Place:
    """The place of a ticket taken now, in a hall read without it: behind every waiting ticket
    of its type that it would not pass (the same class or better; among equals it came last)."""
    rank = Place(service=service, ahead=0, priority=priority).rank
    ahead = sum(g.count for g in hall.waiting if g.service == service and g.rank <= rank)
    return Place(service=service, ahead=ahead, priority=priority)


@dataclass
class _Arrivals:
    """Customers still to come of one type and class at their recent rate: the k-th after
    k / rate seconds."""

    service: str
    rank: Rank
    every_s: float
    next_s: float


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
    for service, history in sorted(hall.history.items()):
        for priority, rate in sorted(history.rates_per_s(hall.rate_window_s).items()):
            rank = class_rank(LANE_NORMAL, False, priority)
            if rate <= 0 or (service == place.service and rank >= place.rank):
                continue  # of our type and not of a better class: behind us everywhere
            streams.append(_Arrivals(service, rank, 1 / rate, 1 / rate))
    return streams


def estimate_wait_s(hall: Hall, place: Place) -> int:
    """Seconds until a counter calls the ticket at `place` (its median)."""
    return estimate_wait(hall, place).median_s


@dataclass(frozen=True)
class Path:
    """Where the average-path replay calls the ticket, and what the quote needs to know."""

    path_s: float  # when it is called
    calls_before: int  # calls before it by the counters that can call it
    serving: int  # counters that can call it
    cv: float  # its type's service-time coefficient of variation, from history


def estimate_wait(hall: Hall, place: Place) -> WaitEstimate:
    """The wait of the ticket at `place`, replaying the calling order from now on."""
    path = replay(hall, place)
    if path is None:
        return WaitEstimate(round(HORIZON_S), round(HORIZON_S), round(HORIZON_S))
    return wait_estimate(path.path_s, path.calls_before, path.serving, path.cv)


def replay(hall: Hall, place: Place) -> Path | None:
    """Replay the calling order on average values until a counter calls the ticket at `place`;
    None if none does within the horizon."""
    queue = _queue_before(hall, place)
    streams = _arrivals(hall, place)
    ours = (place.service, place.rank)

    # (free at, tie-break, profile) of every counter that will call again.
    counters: list[tuple[float, int, tuple[str, ...]]] = []
    for i, counter in enumerate(hall.counters):
        free_at = 0.0
        if counter.current_service is not None:
            free_at = hall.remaining_s(counter.current_service, counter.elapsed_s)
        counters.append((free_at, i, counter.profile))
    if not any(place.service in profile for _, _, profile in counters):
        # Nobody serves the type now: as if one counter for it opened, halfway through a
        # customer.
        counters.append((hall.mean_handling_s(place.service) / 2, len(counters), (place.service,)))
    heapq.heapify(counters)
    serving = sum(1 for _, _, profile in counters if place.service in profile)

    def admit(until_s: float) -> None:
        for stream in streams:
            while stream.next_s <= until_s:
                key = (stream.service, stream.rank)
                queue[key] = queue.get(key, 0) + 1
                stream.next_s += stream.every_s

    calls = 0  # of other tickets, before ours, by counters that can call ours
    for _ in range(MAX_CALLS):
        if not counters:
            break
        now, i, profile = heapq.heappop(counters)
        if now > HORIZON_S:
            break
        admit(now)
        called = _call(queue, profile, ours)
        if isinstance(called, str):  # OURS: a counter calls our ticket
            return Path(now, calls, serving, hall.cv(place.service))
        if called is None:
            # Idle until a customer it serves arrives.
            upcoming = [s.next_s for s in streams if s.service in profile]
            if upcoming:
                heapq.heappush(counters, (min(upcoming), i, profile))
            continue
        queue[called] -= 1
        if place.service in profile:
            calls += 1
        heapq.heappush(counters, (now + hall.mean_handling_s(called[0]), i, profile))
    return None


OURS: Literal["ours"] = "ours"  # what _call returns when it calls our ticket


def _call(
    queue: Mapping[Group, int], profile: Sequence[str], ours: Group
) -> Group | Literal["ours"] | None:
    """What a counter with `profile` calls next (app.queue.ordering.choose_group): a group of
    waiting tickets, our ticket (OURS), or nothing. Our ticket comes after the tickets of its
    own group, which are the ones ahead of it."""
    called = choose_group([*(g for g, n in queue.items() if n > 0), ours], profile)
    if called == ours and queue.get(ours, 0) <= 0:
        return OURS
    return called

"""The hall engine: a fast discrete-event simulation of a service hall that calls customers by
the real rule (app.queue.ordering.choose_group).

Customers of each business type arrive as a Poisson stream whose rate may change per period,
with a priority drawn from the type's mix; counters with profiles open and close per period and,
when free, call what the real rule calls. A called customer walks up (optional) and is served
for a lognormal (or exponential) time, or never comes (a no-show keeps the counter for
`no_show_s`). After the last period no one new arrives, and the counters of the last period serve
whoever still waits. The run can start from a snapshot of a hall (busy counters, waiting
tickets) instead of an empty one: the oracle replays the future of a ticket this way.

Each type draws its customers (arrival gaps, priorities, service and walk times, no-shows) from a
stream of its own, seeded from `rng`: the same periods give the same customers whatever the
counters do, so two staffing plans are compared on the same day (common random numbers).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from statistics import NormalDist

from app.core.vocabulary import Priority
from app.queue.ordering import LANE_NORMAL, Group, choose_group, class_rank

_STANDARD_NORMAL = NormalDist()


@dataclass(frozen=True)
class ServiceTime:
    """A business type's time at the counter once the customer is there."""

    mean_s: float
    # Lognormal with this coefficient of variation; exponential=True: exponential (cv 1).
    cv: float = 1.0
    exponential: bool = False

    @cached_property
    def _mu_sigma(self) -> tuple[float, float]:
        sigma2 = math.log(1 + self.cv**2)
        return math.log(self.mean_s) - sigma2 / 2, math.sqrt(sigma2)

    def draw(self, rng: random.Random) -> float:
        if self.exponential:
            return rng.expovariate(1 / self.mean_s)
        mu, sigma = self._mu_sigma
        return rng.lognormvariate(mu, sigma)

    def residual(self, rng: random.Random, elapsed_s: float) -> float:
        """Time still to go for a customer served for `elapsed_s` so far: a draw of the service
        time given that it is longer than that, minus `elapsed_s` (inverse transform)."""
        if self.exponential or elapsed_s <= 0:
            return self.draw(rng)
        mu, sigma = self._mu_sigma
        done = _STANDARD_NORMAL.cdf((math.log(elapsed_s) - mu) / sigma)
        u = min(done + (1 - done) * rng.random(), 1 - 1e-12)
        return max(0.0, math.exp(mu + sigma * _STANDARD_NORMAL.inv_cdf(u)) - elapsed_s)


@dataclass(frozen=True)
class Period:
    start_s: float  # seconds since the start of the simulated day
    end_s: float
    arrivals_per_hour: Mapping[str, float]  # business type -> Poisson rate in this period
    open_counters: tuple[str, ...]  # codes of the counters open (calling) in this period


@dataclass(frozen=True)
class Served:
    service: str
    priority: str
    arrived_s: float
    called_s: float  # first call; wait = called_s - arrived_s; math.inf if never called
    counter: str = ""  # "" if never called
    no_show: bool = False

    @property
    def wait_s(self) -> float:
        return self.called_s - self.arrived_s


@dataclass(frozen=True)
class BusyCounter:
    """A counter's customer at the snapshot."""

    service: str
    elapsed_s: float  # since the customer was called
    served_s: float | None = None  # since service began; None while walking up (or not coming)


@dataclass(frozen=True)
class WaitingCustomer:
    service: str
    priority: str = Priority.NORMAL
    arrived_s: float = 0.0  # when they took their ticket; <= 0, before the snapshot


@dataclass(frozen=True)
class Snapshot:
    """A hall at time 0: who is at which counter, and who waits, in the order they came."""

    busy: Mapping[str, BusyCounter] = field(default_factory=dict)
    waiting: tuple[WaitingCustomer, ...] = ()


@dataclass(frozen=True)
class Behaviour:
    """How customers come to the counter once called."""

    walk_s: tuple[float, float] = (0.0, 0.0)  # uniform walk-up time
    no_show_rate: float = 0.0
    no_show_s: float = 90.0  # how long the counter waits for one who never comes


@dataclass(frozen=True)
class HallModel:
    """A hall as the oracle and the benchmark take it: what `simulate_hall` needs besides the
    periods, at steady rates."""

    counters: Mapping[str, tuple[str, ...]]
    service_times: Mapping[str, ServiceTime]
    priorities: Mapping[str, Sequence[tuple[str, float]]]
    arrivals_per_hour: Mapping[str, float]
    behaviour: Behaviour
    starvation_guard_s: Mapping[str, float] = field(default_factory=dict)

    def steady(self, minutes: float) -> list[Period]:
        """One period of `minutes` at these rates, every counter open."""
        return [Period(0.0, minutes * 60.0, self.arrivals_per_hour, tuple(self.counters))]

    def simulate(
        self,
        periods: Sequence[Period],
        rng: random.Random,
        snapshot: Snapshot | None = None,
        stop_after: int | None = None,
    ) -> list[Served]:
        return simulate_hall(
            periods,
            self.counters,
            self.service_times,
            rng,
            priorities=self.priorities,
            starvation_guard_s=self.starvation_guard_s,
            behaviour=self.behaviour,
            snapshot=snapshot,
            stop_after=stop_after,
        )


NORMAL_ONLY: tuple[tuple[str, float], ...] = ((Priority.NORMAL, 1.0),)
# Event kinds, in the heap as (time, order, kind, subject).
_PERIOD, _ARRIVAL, _FREE = 0, 1, 2


@dataclass(slots=True)
class _Customer:
    service: str
    priority: str
    arrived_s: float
    counter_s: float  # how long they keep the counter once called (walk + service, or no-show)
    no_show: bool = False


def simulate_hall(
    periods: Sequence[Period],
    counters: Mapping[str, tuple[str, ...]],
    service_times: Mapping[str, ServiceTime],
    rng: random.Random,
    *,
    priorities: Mapping[str, Sequence[tuple[str, float]]] | None = None,
    starvation_guard_s: Mapping[str, float] | None = None,
    behaviour: Behaviour | None = None,
    snapshot: Snapshot | None = None,
    stop_after: int | None = None,
) -> list[Served]:
    """Simulate the hall through `periods` and answer every customer, by arrival time.

    `counters`: code -> profile (own type first). `priorities`: type -> [(priority, share)]
    (default all normal). `starvation_guard_s`: type -> max_wait_s, the overdue rule.
    `snapshot`: start from that hall instead of an empty one. `stop_after`: the index of a
    customer of `snapshot.waiting`; the run stops at their call, which is then the last record
    (what the oracle replays). Customers never called (no counter serves their type in the last
    period) have `called_s` = math.inf.
    """
    engine = _Engine(
        periods=_checked(periods, counters),
        counters=counters,
        service_times=service_times,
        priorities=priorities or {},
        guard=starvation_guard_s or {},
        behaviour=behaviour or Behaviour(),
    )
    return engine.run(rng, snapshot or Snapshot(), stop_after)


def _checked(periods: Sequence[Period], counters: Mapping[str, tuple[str, ...]]) -> list[Period]:
    if not periods:
        raise ValueError("at least one period is needed")
    for before, after in itertools.pairwise(periods):
        if after.start_s != before.end_s:
            raise ValueError("periods must follow one another without gaps")
    for period in periods:
        if period.end_s <= period.start_s:
            raise ValueError("a period must end after it starts")
        unknown = set(period.open_counters) - set(counters)
        if unknown:
            raise ValueError(f"unknown counters open: {sorted(unknown)}")
    return list(periods)


@dataclass
class _Engine:
    periods: list[Period]
    counters: Mapping[str, tuple[str, ...]]
    service_times: Mapping[str, ServiceTime]
    priorities: Mapping[str, Sequence[tuple[str, float]]]
    guard: Mapping[str, float]
    behaviour: Behaviour
    events: list[tuple[float, int, int, str]] = field(default_factory=list)
    order: int = 0
    queues: dict[tuple[str, str], deque[_Customer]] = field(default_factory=dict)
    open: set[str] = field(default_factory=set)
    idle: set[str] = field(default_factory=set)
    busy: set[str] = field(default_factory=set)
    current: Period | None = None
    streams: dict[str, random.Random] = field(default_factory=dict)
    generation: dict[str, int] = field(default_factory=dict)
    takers: dict[str, list[str]] = field(default_factory=dict)
    served: list[Served] = field(default_factory=list)
    watched: _Customer | None = None
    stopped: bool = False

    def schedule(self, at_s: float, kind: int, subject: str) -> None:
        self.order += 1
        heapq.heappush(self.events, (at_s, self.order, kind, subject))

    def run(self, rng: random.Random, snapshot: Snapshot, stop_after: int | None) -> list[Served]:
        types = sorted(
            set(self.service_times)
            | {t for p in self.periods for t in p.arrivals_per_hour}
            | {t for profile in self.counters.values() for t in profile}
        )
        for service in types:
            self.streams[service] = random.Random(rng.getrandbits(64))
            self.generation[service] = 0
        # Idle counters that may take an arriving customer, in the order their clerks would: the
        # type's own counters first (its place in the profile), then in the order given.
        order = {code: i for i, code in enumerate(self.counters)}
        for t in types:
            serving = [c for c, profile in self.counters.items() if t in profile]
            self.takers[t] = sorted(serving, key=lambda c: (self.counters[c].index(t), order[c]))
        self.start_from(snapshot, rng, stop_after)
        self.begin_period(0, self.periods[0].start_s)
        for i, period in enumerate(self.periods[1:], start=1):
            self.schedule(period.start_s, _PERIOD, str(i))
        self.schedule(self.periods[-1].end_s, _PERIOD, str(len(self.periods)))
        while self.events and not self.stopped:
            now, _, kind, subject = heapq.heappop(self.events)
            if kind == _ARRIVAL:
                self.arrive(subject, now)
            elif kind == _FREE:
                self.free(subject, now)
            else:
                self.begin_period(int(subject), now)
        if self.stopped:
            return self.served
        for queue in self.queues.values():
            for customer in queue:
                self.served.append(
                    Served(customer.service, customer.priority, customer.arrived_s, math.inf)
                )
        return sorted(self.served, key=lambda s: s.arrived_s)

    def start_from(self, snapshot: Snapshot, rng: random.Random, stop_after: int | None) -> None:
        """The snapshot's hall at the first period's start: its busy counters free up after a
        draw of what their customer still needs, its waiting customers queue in their order."""
        start_s = self.periods[0].start_s
        for code, busy in snapshot.busy.items():
            if code not in self.counters:
                raise ValueError(f"unknown busy counter: {code}")
            self.busy.add(code)
            self.schedule(start_s + self.residual(busy, rng), _FREE, code)
        for i, waiting in enumerate(snapshot.waiting):
            customer = self.customer(waiting.service, waiting.priority, start_s + waiting.arrived_s)
            self.queue(customer).append(customer)
            if i == stop_after:
                self.watched = customer
        if stop_after is not None and self.watched is None:
            raise ValueError("stop_after must be the index of a waiting customer")

    def residual(self, busy: BusyCounter, rng: random.Random) -> float:
        """What a busy counter's customer still needs: the rest of their service, or of their
        walk (given that they have not come yet, they may be a no-show) and a whole service."""
        service_time = self.service_times[busy.service]
        if busy.served_s is not None:
            return service_time.residual(rng, busy.served_s)
        low, high = self.behaviour.walk_s
        elapsed = busy.elapsed_s
        span = max(high - low, 1e-9)
        still_walking = 1.0 if elapsed <= low else max(0.0, (high - elapsed) / span)
        no_show = self.behaviour.no_show_rate
        p_no_show = no_show / (no_show + (1 - no_show) * still_walking) if no_show > 0 else 0.0
        if high <= elapsed or rng.random() < p_no_show:
            return max(0.0, self.behaviour.no_show_s - elapsed)
        walk_left = rng.uniform(max(low, elapsed), high) - elapsed
        return walk_left + service_time.draw(rng)

    def customer(self, service: str, priority: str, arrived_s: float) -> _Customer:
        """A new customer of `service`: what they will do is drawn now, from the type's stream."""
        stream = self.streams[service]
        behaviour = self.behaviour
        counter_s = stream.uniform(*behaviour.walk_s) + self.service_times[service].draw(stream)
        if behaviour.no_show_rate > 0 and stream.random() < behaviour.no_show_rate:
            return _Customer(service, priority, arrived_s, behaviour.no_show_s, no_show=True)
        return _Customer(service, priority, arrived_s, counter_s)

    def queue(self, customer: _Customer) -> deque[_Customer]:
        key = (customer.service, customer.priority)
        queue = self.queues.get(key)
        if queue is None:
            queue = self.queues[key] = deque()
        return queue

    def begin_period(self, index: int, now: float) -> None:
        """Counters open and close; arrivals go on at the period's rates (none after the last)."""
        if index == len(self.periods):
            for service in self.generation:
                self.generation[service] += 1  # the pending arrivals never come
            return
        period = self.current = self.periods[index]
        closing = self.open - set(period.open_counters)
        self.open = set(period.open_counters)
        self.idle -= closing
        for service in self.generation:
            self.generation[service] += 1
            self.next_arrival(service, now, period.arrivals_per_hour.get(service, 0.0))
        for code in period.open_counters:  # a counter that opens calls at once
            if code not in self.busy and code not in self.idle:
                self.call(code, now)

    def next_arrival(self, service: str, now: float, per_hour: float) -> None:
        if per_hour > 0:
            gap = self.streams[service].expovariate(per_hour / 3600)
            self.schedule(now + gap, _ARRIVAL, f"{service} {self.generation[service]}")

    def arrive(self, subject: str, now: float) -> None:
        service, generation = subject.rsplit(" ", 1)
        if int(generation) != self.generation[service]:
            return  # drawn at an earlier period's rate
        assert self.current is not None
        self.next_arrival(service, now, self.current.arrivals_per_hour.get(service, 0.0))
        shares = self.priorities.get(service, NORMAL_ONLY)
        customer = self.customer(service, draw_priority(self.streams[service], shares), now)
        self.queue(customer).append(customer)
        for code in self.takers[service]:
            if code in self.idle:
                self.call(code, now)
                return

    def free(self, code: str, now: float) -> None:
        self.busy.discard(code)
        if code in self.open:
            self.call(code, now)

    def call(self, code: str, now: float) -> None:
        """The counter calls what the rule calls, or waits idle."""
        profile = self.counters[code]
        groups: dict[Group, deque[_Customer]] = {}
        for (service, priority), queue in self.queues.items():
            if queue and service in profile:
                guard = self.guard.get(service)
                overdue = guard is not None and now - queue[0].arrived_s >= guard
                groups[(service, class_rank(LANE_NORMAL, overdue, priority))] = queue
        chosen = choose_group(groups, profile)
        if chosen is None:
            self.idle.add(code)
            return
        self.idle.discard(code)
        self.busy.add(code)
        customer = groups[chosen].popleft()
        self.served.append(
            Served(customer.service, customer.priority, customer.arrived_s, now, code,
                   customer.no_show)
        )  # fmt: skip
        if customer is self.watched:
            self.stopped = True
        self.schedule(now + customer.counter_s, _FREE, code)


def draw_priority(rng: random.Random, shares: Sequence[tuple[str, float]]) -> str:
    """A priority class drawn from [(priority, share)]."""
    draw = rng.random()
    for priority, share in shares:
        draw -= share
        if draw < 0:
            return priority
    return shares[-1][0]

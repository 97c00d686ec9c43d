"""The expected share of customers called within their type's target wait, in one hour, with a
given set of counters open (docs/staffing.md). Pure: no database.

Where each open counter serves just one of the types expected that hour, the hall is one
M/M/c queue per type and Erlang C answers. Otherwise the hall simulation (app.simulation.hall)
does, with the real calling rule: replications of the hour, each starting from the hall that
the same replication of the hour before left under its plan (who still waits, which counters
are still busy), so that a queue carried over from a busy hour is there; everyone who came in
the hour is followed until called.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Literal

from app.simulation.hall import (
    BusyCounter,
    Period,
    Served,
    ServiceTime,
    Snapshot,
    WaitingCustomer,
    simulate_hall,
)
from app.staffing.erlang import share_within

HOUR_S = 3600.0
# Replications of a simulated hour: SHOWN_REPLICATIONS for a share to show. A search runs them
# in batches until every share is decided, DECIDED_Z standard errors (from the spread between
# replications) above or below what it must reach, or DECIDE_REPLICATIONS have run.
BATCH = 8
SHOWN_REPLICATIONS = 24
DECIDE_REPLICATIONS = 64
DECIDED_Z = 2.0
# What each type expected must get: the level less this (docs/staffing.md: a small type's
# share in one hour is too uncertain to hold it to the level itself, but none may starve).
TYPE_SLACK = 0.15
# Types expected less often than this in an hour need a counter that serves them, not a share:
# a share of one customer in four hours says nothing.
MIN_ARRIVALS_FOR_LEVEL = 1.0
# Seeds are fixed, so that the same forecast gives the same plan.
SEED = 20261124

Method = Literal["erlang_c", "simulation", "none"]
# Per replication, the hall as the hour begins (empty: nobody waits, every counter is free).
Carried = tuple[Snapshot, ...]


@dataclass(frozen=True)
class Hall:
    """The branch as the plan sees it: its counters with their profiles (every counter, in
    code order), each type's target wait and starvation guard, and the service level."""

    counters: Mapping[str, tuple[str, ...]]
    targets_s: Mapping[str, float]
    level: float  # 0..1
    guards_s: Mapping[str, float] = field(default_factory=dict)
    min_open: int = 0  # the branch's minimum of open counters


@dataclass(frozen=True)
class Demand:
    """An hour as forecast: arrivals per type in the hour, service times and priority mixes,
    and which part of the hour is open. `follows` says whether the branch was open in the hour
    just before (its queue then carries over)."""

    label: str
    arrivals: Mapping[str, float]
    service_times: Mapping[str, ServiceTime]
    priorities: Mapping[str, Sequence[tuple[str, float]]] = field(default_factory=dict)
    open_from_s: float = 0.0
    open_until_s: float = HOUR_S
    follows: bool = False

    @property
    def open_s(self) -> float:
        return self.open_until_s - self.open_from_s

    @property
    def expected(self) -> float:
        return sum(n for n in self.arrivals.values() if n > 0)

    def types(self) -> list[str]:
        """The types expected in the hour."""
        return sorted(t for t, n in self.arrivals.items() if n > 0)

    def per_hour(self) -> dict[str, float]:
        """Arrival rates while open, per hour of open time."""
        scale = HOUR_S / self.open_s
        return {t: n * scale for t, n in self.arrivals.items() if n > 0}

    def required(self, level: float) -> Required:
        """The level over all customers; each type expected at least MIN_ARRIVALS_FOR_LEVEL
        times, the level less TYPE_SLACK."""
        floor = max(0.0, level - TYPE_SLACK)
        types = {t: floor for t in self.types() if self.arrivals[t] >= MIN_ARRIVALS_FOR_LEVEL}
        return Required(level, types)


@dataclass(frozen=True)
class Required:
    """What an hour's shares must reach (0..1): over all its customers, and per type."""

    overall: float
    by_service: dict[str, float]


@dataclass(frozen=True)
class Outcome:
    """What a set of open counters gives in an hour: the expected share called within target,
    per type expected and over all customers (0..1), and the types no open counter serves."""

    counters: tuple[str, ...]
    by_service: dict[str, float]
    overall: float | None  # None: nobody is expected
    method: Method
    unserved: tuple[str, ...] = ()
    complete: bool = True  # False: a search's simulation, stopped before SHOWN_REPLICATIONS
    # The simulated replications (each hour's customers, by arrival), to carry the hall over.
    runs: tuple[list[Served], ...] = field(default=(), repr=False, compare=False)

    def meets(self, required: Required) -> bool:
        if self.unserved or (self.overall or 0.0) < required.overall:
            return False
        return all(self.by_service.get(t, 1.0) >= s for t, s in required.by_service.items())


def split_by_type(
    hall: Hall, demand: Demand, open_counters: Sequence[str]
) -> dict[str, int] | None:
    """Counters per type when each open counter serves just one of the hour's types (the hall
    is then one Erlang C queue per type); None when profiles overlap."""
    types = set(demand.types())
    split = dict.fromkeys(types, 0)
    for code in open_counters:
        served = types.intersection(hall.counters[code])
        if len(served) > 1:
            return None
        for t in served:
            split[t] += 1
    return split


def evaluate(
    hall: Hall,
    demand: Demand,
    open_counters: Sequence[str],
    carried: Carried = (),
    required: Required | None = None,
    resume: Outcome | None = None,
) -> Outcome:
    """The expected shares with `open_counters` open in the hour, starting from `carried`.
    With `required`, a simulation stops as soon as its batches decide whether it is met;
    `resume`: a search's simulation of the same counters to go on from."""
    counters = tuple(open_counters)
    types = demand.types()
    if not types:
        return Outcome(counters, {}, None, "none")
    served = {t for c in counters for t in hall.counters[c]}
    unserved = tuple(t for t in types if t not in served)
    split = split_by_type(hall, demand, counters)
    if split is not None:
        rates = {t: r / HOUR_S for t, r in demand.per_hour().items()}
        shares = {
            t: share_within(split[t], rates[t], demand.service_times[t].mean_s, hall.targets_s[t])
            for t in types
        }
        overall = sum(shares[t] * rates[t] for t in types) / sum(rates.values())
        return Outcome(counters, shares, overall, "erlang_c", unserved)
    if unserved and required is not None:
        # Short of what is required whatever a simulation says: nobody calls these customers.
        return Outcome(counters, dict.fromkeys(unserved, 0.0), None, "none", unserved, False)
    return simulate(hall, demand, counters, carried, required, resume)


@dataclass
class _Tally:
    """Customers of the hour called within target, and all of them, per type and replication."""

    types: list[str]
    within: list[dict[str, int]] = field(default_factory=list)
    came: list[dict[str, int]] = field(default_factory=list)

    def add(self, served: Sequence[Served], targets_s: Mapping[str, float]) -> None:
        within, came = dict.fromkeys(self.types, 0), dict.fromkeys(self.types, 0)
        for customer in served:
            if customer.arrived_s >= 0 and customer.service in came:
                came[customer.service] += 1
                within[customer.service] += customer.wait_s <= targets_s[customer.service]
        self.within.append(within)
        self.came.append(came)

    def share(self, types: Sequence[str]) -> tuple[float, float]:
        """The share within target of these types' customers, and its standard error."""
        within = [sum(w[t] for t in types) for w in self.within]
        came = [sum(c[t] for t in types) for c in self.came]
        return ratio_share(within, came)

    def decided(self, required: Required) -> bool:
        """Every share is clearly above what it needs, or one is clearly below."""
        checks = [(self.types, required.overall)]
        checks += [([t], needed) for t, needed in required.by_service.items()]
        undecided = False
        for types, needed in checks:
            share, error = self.share(types)
            if share + DECIDED_Z * error < needed:
                return True
            undecided = undecided or share - DECIDED_Z * error < needed
        return not undecided


def ratio_share(within: Sequence[int], came: Sequence[int]) -> tuple[float, float]:
    """Customers within target over customers, added up over replications, and the standard
    error of that ratio from the spread between replications (1.0 with fewer than two)."""
    total = sum(came)
    if not total:
        return 1.0, 0.0
    share = sum(within) / total
    n = len(came)
    if n < 2:
        return share, 1.0
    spread = sum((w - share * c) ** 2 for w, c in zip(within, came, strict=True)) / (n - 1)
    return share, math.sqrt(spread / n) / (total / n)


def simulate(
    hall: Hall,
    demand: Demand,
    counters: tuple[str, ...],
    carried: Carried = (),
    required: Required | None = None,
    resume: Outcome | None = None,
) -> Outcome:
    """The hour simulated: replication r starts from `carried[r]` (cycled) and its own seed,
    the same for every set of counters, so that the same customers come (common random
    numbers: two sets of counters are compared on the same hours). The seed differs from hour
    to hour: a replication that was unlucky in one hour must not be unlucky again in the next,
    on top of the queue it carried over."""
    periods = [Period(0.0, demand.open_s, demand.per_hour(), counters)]
    types = demand.types()
    tally = _Tally(types)
    runs: list[list[Served]] = list(resume.runs) if resume is not None else []
    for served in runs:
        tally.add(served, hall.targets_s)
    # A search asks just enough to decide; an answer to show (required None), a set number.
    total = SHOWN_REPLICATIONS if required is None else DECIDE_REPLICATIONS
    for replication in range(len(runs), total):
        if replication and replication % BATCH == 0 and required and tally.decided(required):
            break
        served = simulate_hall(
            periods,
            hall.counters,
            demand.service_times,
            random.Random(f"{SEED}:{demand.label}:{replication}"),
            priorities=demand.priorities,
            starvation_guard_s=hall.guards_s,
            snapshot=carried[replication % len(carried)] if carried else None,
        )
        runs.append(served)
        tally.add(served, hall.targets_s)
    shares = {t: tally.share([t])[0] for t in types}
    overall = tally.share(types)[0]
    complete = len(runs) >= SHOWN_REPLICATIONS
    return Outcome(counters, shares, overall, "simulation", (), complete, tuple(runs))


def still_serving(service_time: ServiceTime, elapsed_s: float) -> float:
    """The chance that a customer called `elapsed_s` ago is still at the counter: the service
    time's survival function (lognormal, as the engine draws it, or exponential)."""
    if service_time.exponential or service_time.cv <= 0:
        return math.exp(-elapsed_s / service_time.mean_s) if service_time.exponential else 0.0
    if elapsed_s <= 0:
        return 1.0
    sigma = math.sqrt(math.log(1 + service_time.cv**2))
    mu = math.log(service_time.mean_s) - sigma**2 / 2
    return 1.0 - NormalDist(mu, sigma).cdf(math.log(elapsed_s))


def hall_at_end(
    served: Sequence[Served],
    end_s: float,
    counters: Mapping[str, tuple[str, ...]],
    service_times: Mapping[str, ServiceTime],
    rng: random.Random,
) -> Snapshot:
    """The hall when a simulated hour ends at `end_s`, as the next hour starts from it: who
    still waits (in the order they came) and which counters still have a customer.

    A counter that calls again after `end_s` was busy until then (nobody new comes after the
    hour, so an idle counter never calls again). For one that does not, the simulation does
    not say when its last customer left, only that the counter was busy whenever a customer
    it serves was waiting since its last call: it is busy with the chance that its customer
    stays until `end_s`, given that they stayed that long. Its customer's time left is then
    drawn by the engine."""
    waiting = tuple(
        WaitingCustomer(s.service, s.priority, s.arrived_s - end_s)
        for s in served
        if s.arrived_s < end_s < s.called_s
    )
    last: dict[str, Served] = {}
    calls_again: set[str] = set()
    for s in served:
        if s.counter and s.called_s > end_s:
            calls_again.add(s.counter)
        elif s.counter and (s.counter not in last or last[s.counter].called_s < s.called_s):
            last[s.counter] = s
    busy = {}
    for code, call in sorted(last.items()):
        elapsed = end_s - call.called_s
        service_time = service_times[call.service]
        # The latest moment before `end_s` at which one of its types waited since its call.
        waited = [
            min(s.called_s, end_s) - call.called_s
            for s in served
            if s.service in counters[code] and s.arrived_s < s.called_s
            and s.arrived_s < end_s and s.called_s > call.called_s
        ]  # fmt: skip
        stayed = max(waited, default=0.0)
        lasted = still_serving(service_time, stayed)
        chance = still_serving(service_time, elapsed) / lasted if lasted > 0 else 1.0
        if code in calls_again or rng.random() < chance:
            busy[code] = BusyCounter(call.service, elapsed, served_s=elapsed)
    return Snapshot(busy=busy, waiting=waiting)


def carry_over(hall: Hall, demand: Demand, outcome: Outcome, carried: Carried) -> Carried:
    """The halls the next hour starts from, one per replication of this hour under `outcome`'s
    counters (simulated now if `outcome` came from Erlang C or stopped early)."""
    if not demand.types():
        return ()  # nobody expected: the counters open catch up with whoever waited
    runs = outcome.runs
    if outcome.method != "simulation" or not outcome.complete:
        runs = simulate(hall, demand, outcome.counters, carried).runs
    return tuple(
        hall_at_end(
            served,
            demand.open_s,
            hall.counters,
            demand.service_times,
            random.Random(f"{SEED}:{demand.label}:end:{replication}"),
        )
        for replication, served in enumerate(runs)
    )

"""The staffing plan of a day, hour by hour: which counters to open so that the expected share
of customers called within their type's target wait reaches the branch's service level, for
every business type expected that hour (docs/staffing.md). Pure: no database.

Which counters: the hour's opening order (`opening_order`) hands counters to the types by their
load not yet covered; the plan opens its first k, for the fewest k whose shares reach the level
(app.staffing.evaluate): the level over all the hour's customers, and for each type the level
less a slack. A type that cannot reach its share even with every counter open is "short": it
must then get within SHORT_SLACK of what every counter gives it, and the plan says so; when
the level over all customers is out of reach, every counter opens. Hours follow one another:
each starts from the halls the hour before left under its plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.staffing.erlang import counters_needed
from app.staffing.evaluate import (
    HOUR_S,
    Carried,
    Demand,
    Hall,
    Outcome,
    Required,
    carry_over,
    evaluate,
)

SHORT_SLACK = 0.05


@dataclass(frozen=True)
class HourPlan:
    demand: Demand
    order: tuple[str, ...]  # the opening order of the hour
    needed: int  # fewest counters that reach what is required (0: nobody is expected)
    recommended: int  # what to open: `needed`, at least the floor
    outcome: Outcome  # with the recommended counters
    carried: Carried = ()  # the halls the hour starts from, one per replication
    # False: not even every counter reaches what is required; `short` names the types that
    # fall short of their own share then (the rest is the level over all customers).
    reachable: bool = True
    short: tuple[str, ...] = ()
    required: Required | None = None  # what the count was chosen to reach

    @property
    def binding(self) -> bool:
        """The service level, not the branch's floor, decides the count."""
        return self.needed == self.recommended and self.needed > 0

    @property
    def counters(self) -> tuple[str, ...]:
        return self.order[: self.recommended]


def opening_order(hall: Hall, demand: Demand) -> tuple[str, ...]:
    """The order in which the hour's counters open: each next counter goes to the type with the
    most load (Erlangs) not yet covered by a counter, and is the one that has that type
    earliest in its profile (its own type first), then the one that helps more of the hour's
    types, then by code. Counters that serve none of the hour's types come last."""
    types = demand.types()
    remaining = {
        t: demand.arrivals[t] * demand.service_times[t].mean_s / demand.open_s for t in types
    }
    unused = list(hall.counters)
    order: list[str] = []
    while unused:
        servable = [t for t in types if any(t in hall.counters[c] for c in unused)]
        if not servable:
            break
        wanted = max(servable, key=lambda t: (remaining[t], -types.index(t)))

        def fit(code: str, wanted: str = wanted) -> tuple[int, int, str]:
            profile = hall.counters[code]
            helps = sum(1 for t in profile if t in remaining)
            return (profile.index(wanted), -helps, code)

        chosen = min((c for c in unused if wanted in hall.counters[c]), key=fit)
        order.append(chosen)
        unused.remove(chosen)
        remaining[wanted] -= 1.0
    return (*order, *unused)


def plan_hour(hall: Hall, demand: Demand, carried: Carried = ()) -> HourPlan:
    """The fewest counters of the hour's opening order that give the hour what it requires."""
    order = opening_order(hall, demand)
    floor = min(len(order), max(hall.min_open, 1))
    required = demand.required(hall.level)
    tried: dict[int, Outcome] = {}

    def outcome(k: int, precise: bool = False) -> Outcome:
        if k not in tried:
            tried[k] = evaluate(hall, demand, order[:k], carried, None if precise else required)
        elif precise and not tried[k].complete:
            tried[k] = evaluate(hall, demand, order[:k], carried, None, resume=tried[k])
        return tried[k]

    if not demand.types():
        return HourPlan(demand, order, 0, floor, outcome(floor), carried)
    everyone = len(order)
    k = min(max(1, first_guess(hall, demand, order)), everyone)
    if outcome(k).meets(required):
        while k > 1 and outcome(k - 1).meets(required):
            k -= 1
    else:
        while k < everyone and not outcome(k).meets(required):
            k += 1
    # A search's quick answer is checked with every replication before it is given.
    while k < everyone and not outcome(k, precise=True).meets(required):
        k += 1
    short: tuple[str, ...] = ()
    reachable = outcome(k, precise=True).meets(required)
    if not reachable:
        best = outcome(everyone)
        short = tuple(t for t, s in required.by_service.items() if best.by_service[t] < s)
        if short and (best.overall or 0.0) >= required.overall:
            # Ask of the short types what every counter gives them, less the slack.
            for t in short:
                required.by_service[t] = best.by_service[t] - SHORT_SLACK
            while k > 1 and outcome(k - 1, precise=True).meets(required):
                k -= 1
    recommended = max(k, floor)
    best_guess = outcome(recommended, precise=True)
    return HourPlan(demand, order, k, recommended, best_guess, carried, reachable, short, required)


def first_guess(hall: Hall, demand: Demand, order: tuple[str, ...]) -> int:
    """Where the search starts: enough counters to serve every type expected, and as many as
    the whole hour's load would need in one perfectly pooled Erlang C queue (an optimistic
    count, so the search mostly goes up by one or two)."""
    types = demand.types()
    cover = len(order)
    for i in range(1, len(order) + 1):
        if set(types) <= {t for c in order[:i] for t in hall.counters[c]}:
            cover = i
            break
    rates = {t: r / HOUR_S for t, r in demand.per_hour().items()}
    total = sum(rates.values())
    mean_s = sum(rates[t] * demand.service_times[t].mean_s for t in types) / total
    target = min(hall.targets_s[t] for t in types)
    pooled = counters_needed(total, mean_s, target, hall.level) or len(order)
    return max(cover, pooled)


def plan_day(hall: Hall, demands: Sequence[Demand]) -> list[HourPlan]:
    """The plan of every hour in order; an hour that follows an open hour starts from the halls
    that hour left under its own plan."""
    plans: list[HourPlan] = []
    for demand in demands:
        carried: Carried = ()
        if demand.follows and plans:
            previous = plans[-1]
            carried = carry_over(hall, previous.demand, previous.outcome, previous.carried)
        plans.append(plan_hour(hall, demand, carried))
    return plans


def what_if(hall: Hall, plan: HourPlan, count: int) -> Outcome:
    """The expected shares in a planned hour with the first `count` counters of its opening
    order open instead of the recommended ones (the hour before as planned)."""
    return evaluate(hall, plan.demand, plan.order[:count], plan.carried)

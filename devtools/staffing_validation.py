"""The staffing plan checked in the simulated hall (docs/staffing.md, "Validation").

A day of the default simulated hall (app.simulation.default_hall: its business types, rates,
service times and counters with overlapping profiles), its rates shaped by the hour
(DAY_PROFILE), is planned by app.staffing.plan. Then the hall simulation runs the whole day
many times, with independent seeds, following the plan hour after hour (each hour starts with
the queue the one before left): the share of each hour's customers called within target must
reach the level within 5 points. In every hour where the level decided the count, the day runs
again with one counter fewer in that hour (the last of the hour's opening order): the hour must
then miss the level (over all customers, or a type its own share).

Used by tests/test_staffing_plan.py; `python -m devtools.staffing_validation` prints the
figures and the time the plan takes for docs/staffing.md.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from app.simulation.default_hall import hall_model
from app.simulation.hall import Period, simulate_hall
from app.staffing.evaluate import Demand, Hall, ratio_share
from app.staffing.plan import HourPlan, plan_day

# A weekday from 09:00 to 19:00: the default hall's rates times these.
DAY_PROFILE = (0.5, 0.8, 1.0, 1.1, 0.9, 0.7, 0.8, 1.0, 0.9, 0.6)
LEVEL = 0.8
# One target for every type: the default hall serves its VIPs at one counter, which no count
# of counters brings to 80% within the standards' 3 minutes (docs/staffing.md).
TARGET_S = 600.0
GUARD_S = 1800.0
TOLERANCE = 0.05
# One counter fewer "misses" an hour also when it reaches what the plan asked by less than this
# many standard errors: the simulated days cannot tell that from a miss.
NEAR_MISS_ERRORS = 2.0
ALL = "*"  # the key of the share over all customers
VALIDATION_SEED = 10**6  # far from the plan's own seeds


def default_day(load: float = 1.0) -> tuple[Hall, list[Demand]]:
    model = hall_model(load=load)
    types = sorted(model.service_times)
    hall = Hall(
        counters=model.counters,
        targets_s=dict.fromkeys(types, TARGET_S),
        level=LEVEL,
        guards_s=dict.fromkeys(types, GUARD_S),
    )
    demands = [
        Demand(
            label=f"{9 + i:02d}:00",
            arrivals={t: rate * factor for t, rate in model.arrivals_per_hour.items()},
            service_times=model.service_times,
            priorities=model.priorities,
            follows=i > 0,
        )
        for i, factor in enumerate(DAY_PROFILE)
    ]
    return hall, demands


Shares = dict[str, tuple[float, float]]  # type (or ALL) -> share within target, standard error


def simulate_day(
    hall: Hall,
    demands: Sequence[Demand],
    open_by_hour: Sequence[tuple[str, ...]],
    replications: int,
) -> list[Shares]:
    """Per hour, the share of its customers called within target, per type and over all, with
    its standard error over the replications."""
    periods = [
        Period(i * 3600.0, (i + 1) * 3600.0, d.per_hour(), tuple(open_by_hour[i]))
        for i, d in enumerate(demands)
    ]
    keys = [(i, key) for i, d in enumerate(demands) for key in (*d.types(), ALL)]
    within: dict[tuple[int, str], list[int]] = {key: [] for key in keys}
    came: dict[tuple[int, str], list[int]] = {key: [] for key in keys}
    for replication in range(replications):
        for counts in (*within.values(), *came.values()):
            counts.append(0)
        for customer in simulate_hall(
            periods,
            hall.counters,
            demands[0].service_times,
            random.Random(VALIDATION_SEED + replication),
            priorities=demands[0].priorities,
            starvation_guard_s=hall.guards_s,
        ):
            hour = int(customer.arrived_s // 3600)
            good = customer.wait_s <= hall.targets_s[customer.service]
            for counted in ((hour, customer.service), (hour, ALL)):
                came[counted][-1] += 1
                within[counted][-1] += good
    shares: list[Shares] = [{} for _ in demands]
    for index, key in keys:
        shares[index][key] = ratio_share(within[(index, key)], came[(index, key)])
    return shares


@dataclass(frozen=True)
class HourCheck:
    plan: HourPlan
    following: Shares  # the days run following the plan
    one_fewer: Shares | None  # with one counter fewer in this hour (binding hours)

    def wanted(self) -> dict[str, float]:
        """What the plan asked of the hour: the level over all customers, each type its own
        share; where not even every counter reaches that, what the plan expects instead."""
        plan = self.plan
        required = plan.required or plan.demand.required(LEVEL)
        wanted = {ALL: required.overall, **required.by_service}
        if not plan.reachable:
            expected = {ALL: plan.outcome.overall or 0.0, **plan.outcome.by_service}
            wanted = {key: min(share, expected[key]) for key, share in wanted.items()}
        return wanted

    @property
    def holds(self) -> bool:
        """Following the plan reaches what it asked within TOLERANCE."""
        return all(self.following[key][0] >= s - TOLERANCE for key, s in self.wanted().items())

    def misses(self, shares: Shares, errors: float = 0.0) -> bool:
        """`shares` fall short of what the plan asked, or reach it by less than this many
        standard errors (a miss and a near miss cannot be told apart)."""
        return any(shares[key][0] - errors * shares[key][1] < s for key, s in self.wanted().items())


def check_plan(
    hall: Hall, demands: Sequence[Demand], plans: Sequence[HourPlan], replications: int = 200
) -> list[HourCheck]:
    following = [p.counters for p in plans]
    shares = simulate_day(hall, demands, following, replications)
    checks = []
    for i, plan in enumerate(plans):
        fewer = None
        if plan.binding and plan.recommended > 1:
            changed = list(following)
            changed[i] = plan.order[: plan.recommended - 1]
            fewer = simulate_day(hall, demands, changed, replications)[i]
        checks.append(HourCheck(plan, shares[i], fewer))
    return checks


def timed_plan(hall: Hall, demands: Sequence[Demand], runs: int = 5) -> tuple[float, float]:
    """The median and the longest CPU time of `runs` plans of the day, in seconds (CPU time:
    the machines are shared, and a plan is pure computation)."""
    times = []
    for _ in range(runs):
        started = time.process_time()
        plan_day(hall, demands)
        times.append(time.process_time() - started)
    return statistics.median(times), max(times)


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.1f}"


def _worst(shares: Shares) -> str:
    share, service = min((s, t) for t, (s, _) in shares.items() if t != ALL)
    return f"{service} {_pct(share)}"


def _one_fewer(check: HourCheck) -> str:
    if check.one_fewer is None:
        return "-"
    verdict = "misses"
    if not check.misses(check.one_fewer):
        near = check.misses(check.one_fewer, NEAR_MISS_ERRORS)
        verdict = "near miss" if near else "REACHES"
    return f"{_pct(check.one_fewer[ALL][0])} ({_worst(check.one_fewer)}): {verdict}"


def main() -> None:
    """The tables of docs/staffing.md, "Validation"."""
    for load in (0.8, 1.0, 1.2):
        hall, demands = default_day(load)
        median, longest = timed_plan(hall, demands)
        plans = plan_day(hall, demands)
        print(
            f"\nLoad {load}: the plan of the day in {median:.2f} s of CPU (longest {longest:.2f})"
        )
        print(
            "| hour | open | short | planned % | following % (worst type) | one fewer % | holds |"
        )
        print("|---|---|---|---|---|---|---|")
        for check in check_plan(hall, demands, plans):
            p, shares = check.plan, check.following
            print(
                f"| {p.demand.label} | {p.recommended} | {', '.join(p.short) or '-'} | "
                f"{_pct(p.outcome.overall)} | {_pct(shares[ALL][0])} ({_worst(shares)}) | "
                f"{_one_fewer(check)} | {'yes' if check.holds else 'NO'} |"
            )


if __name__ == "__main__":
    main()

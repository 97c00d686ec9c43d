"""The oracle: the best wait estimate there is without knowing the future itself.

It knows everything about the hall at the ticket's issue (who is at which counter and for how
long, who waits and in what order) and the TRUE distributions of arrivals and service times,
and replays the hall's future `replays` times with the engine. The median of the ticket's waits
is the quote that minimises the mean absolute error; the 10th and 90th percentile are the range.
What is left of its error is the randomness of the future, which no estimate can remove
(Whitt 1999: about 1/sqrt(n + 1) of the wait for a customer with n ahead).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from app.simulation.hall import HallModel, Snapshot

REPLAYS = 61
HORIZON_S = 12 * 3600.0  # long enough for any ticket of a hall that keeps up


@dataclass(frozen=True)
class Quantiles:
    """Seconds until the ticket is called: the median, and the 10th and 90th percentile."""

    median_s: float
    low_s: float
    high_s: float


def quantile(ordered: list[float], q: float) -> float:
    """The q-quantile of sorted values, interpolated between the two nearest."""
    if not ordered:
        raise ValueError("no values")
    position = q * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def oracle_wait(
    model: HallModel,
    snapshot: Snapshot,
    rng: random.Random,
    *,
    ticket: int = -1,
    replays: int = REPLAYS,
) -> Quantiles:
    """The wait from the snapshot's moment until `snapshot.waiting[ticket]` (the last one, the
    ticket just issued, by default) is called, over `replays` futures of the hall."""
    index = ticket % len(snapshot.waiting)
    if not any(snapshot.waiting[index].service in p for p in model.counters.values()):
        return Quantiles(HORIZON_S, HORIZON_S, HORIZON_S)  # no counter serves the type
    periods = model.steady(HORIZON_S / 60)
    waits = []
    for _ in range(replays):
        served = model.simulate(periods, rng, snapshot=snapshot, stop_after=index)
        waits.append(served[-1].called_s)  # the run stops at the ticket's call
    waits.sort()
    return Quantiles(quantile(waits, 0.5), quantile(waits, 0.1), quantile(waits, 0.9))

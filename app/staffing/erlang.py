"""The share of customers called within target where one type is served by its own counters:
Erlang C (M/M/c, first come first served), from app.simulation.queueing, where the formulas
live (docs/staffing.md):

    share within target T = 1 - C(c, a) * exp(-(c mu - lambda) T)
"""

from __future__ import annotations

import math

from app.simulation.queueing import wait_longer_than

# How many counters `counters_needed` tries before it gives up on a level.
MAX_COUNTERS = 1000


def share_within(servers: int, arrivals_per_s: float, service_s: float, target_s: float) -> float:
    """The share of customers called within `target_s` of arriving (0..1) with `servers`
    counters; 0 when they cannot keep up (in the long run the queue grows without end)."""
    if arrivals_per_s <= 0:
        return 1.0
    if servers <= 0:
        return 0.0
    return 1.0 - wait_longer_than(target_s, servers, arrivals_per_s, 1.0 / service_s)


def counters_needed(
    arrivals_per_s: float, service_s: float, target_s: float, level: float
) -> int | None:
    """The fewest counters whose share within `target_s` reaches `level` (0..1); 0 when nobody
    comes, None if not even MAX_COUNTERS do."""
    if arrivals_per_s <= 0:
        return 0
    # Fewer counters than the load can never keep up: start just above it.
    servers = max(1, math.floor(arrivals_per_s * service_s) + 1)
    while servers <= MAX_COUNTERS:
        if share_within(servers, arrivals_per_s, service_s, target_s) >= level:
            return servers
        servers += 1
    return None

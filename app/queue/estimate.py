"""Estimated wait for a waiting ticket (a first model: the measured one comes with the reports).

The counters that serve a business type work through the tickets ahead in parallel: with `n`
of them, each finishing a customer every `service_s` seconds on average, the k-th ticket in line
waits about (k / n) service times, plus half a service time for the customers already at the
counters to finish. A free counter takes the first tickets at once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capacity:
    """What serves one business type right now."""

    counters: int  # open (or paused) counters whose profile includes the type
    free_counters: int  # of those, open with nobody at the counter
    service_s: float  # mean recent service time of the type


def estimate_wait_s(waiting_ahead: int, capacity: Capacity) -> int:
    if capacity.free_counters > waiting_ahead:
        return 0
    counters = max(capacity.counters, 1)
    return round(capacity.service_s * (waiting_ahead / counters + 0.5))

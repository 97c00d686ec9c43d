"""The classic wait estimates that hallq's must beat (Ibrahim & Whitt 2009), as pure functions
of what a hall knows at a ticket's issue.

- LES, "last to enter service": quote the wait of the customer of the same business type who
  was called last. Before anyone of the type has been called it quotes 0 (the hall has just
  opened: nobody has waited yet).
- QL, "queue length": (people ahead + 1) / the rate at which the counters serving the type
  finish customers, counting every counter whose profile has the type as if it served only
  that type; 0 when one of them is idle (the ticket is called at once).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.simulation.hall import Behaviour, Served, ServiceTime


def les_quote(calls: Sequence[Served], service: str) -> float:
    """LES: the wait of the last customer of `service` among `calls` (in the order called)."""
    for served in reversed(calls):
        if served.service == service:
            return served.wait_s
    return 0.0


def serving_rate_per_s(
    service: str,
    counters: Mapping[str, Sequence[str]],
    service_times: Mapping[str, ServiceTime],
    behaviour: Behaviour | None = None,
) -> float:
    """Customers of `service` finished per second if every counter with the type in its
    profile served only it: each takes the mean walk up plus the mean service time."""
    serving = sum(1 for profile in counters.values() if service in profile)
    walk_s = sum(behaviour.walk_s) / 2 if behaviour is not None else 0.0
    return serving / (walk_s + service_times[service].mean_s)


def ql_quote(ahead: int, rate_per_s: float, idle_counter: bool = False) -> float:
    """QL: (ahead + 1) / rate, or 0 with a counter for the type idle."""
    if idle_counter:
        return 0.0
    if rate_per_s <= 0:
        return float("inf")
    return (ahead + 1) / rate_per_s

"""Queueing formulas for the M/M/c queue (Poisson arrivals, exponential service times, c
identical counters, first come first served): the Erlang C formula and what follows from it.
The engine's tests check it against them; staffing uses them where one type is served."""

from __future__ import annotations

import math


def erlang_c(counters: int, offered_load: float) -> float:
    """The probability that a customer has to wait, C(c, a), with `counters` = c and
    `offered_load` a = arrival rate / service rate of one counter (in Erlangs). 1 when a >= c
    (the queue grows without bound). Through the Erlang B recursion, stable for any c."""
    if counters <= 0 or offered_load >= counters:
        return 1.0
    if offered_load <= 0:
        return 0.0
    blocking = 1.0
    for k in range(1, counters + 1):
        blocking = offered_load * blocking / (k + offered_load * blocking)
    return counters * blocking / (counters - offered_load * (1 - blocking))


def wait_longer_than(t_s: float, counters: int, arrival_rate: float, service_rate: float) -> float:
    """P(wait > t) in M/M/c: C(c, a) e^{-(c mu - lambda) t}; rates per second."""
    if counters * service_rate <= arrival_rate:
        return 1.0
    waits = erlang_c(counters, arrival_rate / service_rate)
    return waits * math.exp(-(counters * service_rate - arrival_rate) * t_s)


def mean_wait_s(counters: int, arrival_rate: float, service_rate: float) -> float:
    """E[wait] in M/M/c: C(c, a) / (c mu - lambda); math.inf if the counters cannot keep up."""
    if counters * service_rate <= arrival_rate:
        return math.inf
    waits = erlang_c(counters, arrival_rate / service_rate)
    return waits / (counters * service_rate - arrival_rate)

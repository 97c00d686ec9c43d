"""The wait estimate over random halls gives exactly what it gave before its replay was made
cheaper (docs/decisions.md): tests/data/estimate_golden.json holds the quotes of the replay as it
was, for the halls `random_hall` draws. Regenerate it only when the model itself changes:
`python -m tests.test_estimate_golden > tests/data/estimate_golden.json`."""

from __future__ import annotations

import json
import random
from pathlib import Path

from app.core.vocabulary import Priority
from app.queue.estimate import (
    CounterNow,
    Hall,
    Issued,
    Place,
    TypeHistory,
    WaitingGroup,
    estimate_wait,
    new_ticket_place,
)
from app.queue.ordering import LANE_FRONT, LANE_HELD, LANE_NORMAL, class_rank

GOLDEN = Path(__file__).parent / "data" / "estimate_golden.json"
HALLS = 300
SERVICES = ("a", "b", "c", "v")
PRIORITIES: tuple[str, ...] = (Priority.NORMAL, Priority.VIP, Priority.SPECIAL)


def random_hall(rng: random.Random) -> Hall:
    """Up to 12 counters of random profiles, some busy; waiting tickets of every class; a
    history that may be empty, short or long, and arrivals that may be capped."""
    services = SERVICES[: rng.randint(1, len(SERVICES))]
    counters = []
    for i in range(rng.randint(0, 10)):
        profile = tuple(rng.sample(services, rng.randint(1, len(services))))
        busy = rng.choice((None, *services)) if rng.random() < 0.7 else None
        elapsed = rng.choice((0.0, rng.uniform(0, 120), rng.uniform(0, 1500)))
        counters.append(CounterNow(str(i + 1), profile, busy, elapsed if busy else 0.0))
    waiting = []
    for service in services:
        for _ in range(rng.randint(0, 4)):
            lane = rng.choice((LANE_NORMAL, LANE_NORMAL, LANE_FRONT, LANE_HELD))
            rank = class_rank(lane, rng.random() < 0.2, rng.choice(PRIORITIES))
            waiting.append(WaitingGroup(service, rank, rng.randint(1, 40)))
    history = {}
    for service in services:
        if rng.random() < 0.15:
            continue
        times = tuple(rng.expovariate(1 / rng.uniform(60, 600)) for _ in range(rng.randint(0, 50)))
        by_priority = {p: rng.randint(0, 12) for p in PRIORITIES if rng.random() < 0.5}
        issued = Issued(by_priority, rng.uniform(0, 2400), capped=rng.random() < 0.3)
        history[service] = TypeHistory(times, issued)
    return Hall(
        tuple(counters),
        tuple(waiting),
        history,
        default_service_s=rng.choice((120.0, 300.0)),
    )


def random_places(rng: random.Random, hall: Hall) -> list[Place]:
    """A new normal ticket of each type (as the queue view quotes), and a waiting one."""
    services = sorted({g.service for g in hall.waiting} | set(hall.history) | {"a"})
    places = [new_ticket_place(hall, service) for service in services]
    lane = rng.choice((LANE_NORMAL, LANE_FRONT, LANE_HELD))
    places.append(
        Place(
            rng.choice(services),
            rng.randint(0, 60),
            rng.choice(PRIORITIES),
            lane,
            rng.random() < 0.2,
        )
    )
    return places


def quotes() -> list[list[int]]:
    rng = random.Random(20261205)
    result = []
    for _ in range(HALLS):
        hall = random_hall(rng)
        for place in random_places(rng, hall):
            estimate = estimate_wait(hall, place)
            result.append([estimate.median_s, estimate.low_s, estimate.high_s])
    return result


def test_random_halls_are_quoted_as_before() -> None:
    expected = json.loads(GOLDEN.read_text())
    got = quotes()
    assert len(got) == len(expected)
    differ = [i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b]
    assert not differ, f"{len(differ)} quotes differ, first at {differ[:5]}"


def test_the_random_halls_cover_the_replays_cases() -> None:
    """Quotes of every kind: at once, within the horizon, and given up at it."""
    medians = [median for median, _, _ in json.loads(GOLDEN.read_text())]
    assert 0 in medians and 12 * 3600 in medians
    assert len(set(medians)) > len(medians) // 3


if __name__ == "__main__":
    print(json.dumps(quotes()))

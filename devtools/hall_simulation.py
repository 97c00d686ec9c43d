"""A simulated service hall that drives the real hallq service through its API.

Customers of several business types arrive (Poisson, mostly `normal`, some `vip` and `special`),
take a number, and are called by clerks at counters with different profiles who press `next`,
`start`, `recall` and `no-show` as a real clerk would. Service times are lognormal per type (or
exponential). Time is a `ManualClock` moved from event to event, so a few simulated hours take a
few seconds and the same seed gives the same hall.

For every ticket issued after the warm-up, the `estimated_wait_s` of the issue response is
compared with the actual wait (issue -> first call): `SimulationResult.mae_ratio` is the mean
absolute error divided by the mean actual wait (figure B6, docs/performance.md: at most 0.25).

Used by `tests/test_hall_simulation.py` and by the benchmark (`make bench`, B6); it takes an
httpx client on an app, its clock and an admin's headers, nothing from pytest.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx

from app.core.clock import ManualClock


@dataclass(frozen=True)
class HallType:
    """A business type of the simulated hall and how its customers behave."""

    code: str
    name: str
    prefix: str
    per_hour: float  # Poisson arrival rate
    mean_service_s: float
    cv: float  # coefficient of variation of the (lognormal) service time
    priorities: tuple[tuple[str, float], ...] = (("normal", 0.90), ("vip", 0.06), ("special", 0.04))


# A mid-sized telecom hall: ~110 customers an hour on 8 counters; the counters are busy (a
# customer called or at the counter) ~80% of the time, walking up and no-shows included.
DEFAULT_TYPES: tuple[HallType, ...] = (
    HallType("a", "综合业务", "A", per_hour=50, mean_service_s=270, cv=0.6),
    HallType("b", "缴费充值", "B", per_hour=44, mean_service_s=100, cv=0.5),
    HallType("c", "新开户", "C", per_hour=5.5, mean_service_s=540, cv=0.4),
    HallType(
        "v", "全球通VIP", "V", per_hour=11.5, mean_service_s=240, cv=0.6, priorities=(("vip", 1.0),)
    ),
)
DEFAULT_COUNTERS: dict[str, tuple[str, ...]] = {
    "1": ("a", "b"),
    "2": ("a", "b"),
    "3": ("a", "c"),
    "4": ("b", "a"),
    "5": ("b", "a"),
    "6": ("c", "a"),
    "7": ("v", "a"),
    "8": ("a", "b"),
}


@dataclass(frozen=True)
class ErrorFigures:
    tickets: int
    mae_s: float
    mean_actual_wait_s: float
    mae_ratio: float  # mae_s / mean_actual_wait_s
    mean_estimate_s: float = 0.0

    @classmethod
    def of(cls, pairs: Sequence[tuple[float, float]]) -> ErrorFigures:
        """From (estimated, actual) pairs."""
        if not pairs:
            return cls(tickets=0, mae_s=0.0, mean_actual_wait_s=0.0, mae_ratio=0.0)
        mae = sum(abs(est - act) for est, act in pairs) / len(pairs)
        mean_actual = sum(act for _, act in pairs) / len(pairs)
        return cls(
            tickets=len(pairs),
            mae_s=mae,
            mean_actual_wait_s=mean_actual,
            mae_ratio=mae / mean_actual if mean_actual > 0 else 0.0,
            mean_estimate_s=sum(est for est, _ in pairs) / len(pairs),
        )


@dataclass(frozen=True)
class SimulationResult:
    tickets: int  # measured tickets (issued after the warm-up, before the end)
    mae_s: float
    mean_actual_wait_s: float
    mae_ratio: float
    by_service: dict[str, ErrorFigures]
    by_priority: dict[str, ErrorFigures]
    issued: int  # every ticket issued, warm-up and drain included
    no_shows: int
    utilisation: float  # time counters had a customer called or at the counter / time open
    requests: int
    records: tuple[TicketRecord, ...] = ()  # every measured ticket, for a closer look


@dataclass(frozen=True)
class TicketRecord:
    service: str
    priority: str
    waiting_ahead: int
    issued_s: float  # simulated seconds since the start
    estimated_wait_s: float
    actual_wait_s: float


@dataclass
class _Counter:
    code: str
    profile: tuple[str, ...]
    ticket: str | None = None  # id of the called or served ticket
    busy_since: float = 0.0
    busy_s: float = 0.0


@dataclass
class _Ticket:
    id: str
    service: str
    priority: str
    issued_s: float
    estimate_s: float
    measured: bool
    ahead: int = 0
    called_s: float | None = None


@dataclass
class _Hall:
    client: httpx.AsyncClient
    clock: ManualClock
    headers: Mapping[str, str]
    base: str
    start: Any  # datetime of t = 0
    requests: int = 0
    events: list[tuple[float, int, str, str]] = field(default_factory=list)
    order: int = 0

    def at(self, t: float) -> None:
        self.clock.set(self.start + timedelta(seconds=t))

    def schedule(self, t: float, kind: str, subject: str) -> None:
        self.order += 1
        heapq.heappush(self.events, (t, self.order, kind, subject))

    async def put(self, path: str, json: Any) -> None:
        """Configure the branch; not counted in `requests`, which are the hall's operations."""
        response = await self.client.put(f"{self.base}{path}", json=json, headers=self.headers)
        assert response.status_code in (200, 201), response.text

    async def post(self, path: str, json: Any = None) -> httpx.Response:
        self.requests += 1
        response = await self.client.post(f"{self.base}{path}", json=json, headers=self.headers)
        if response.status_code not in (200, 201, 204):
            raise AssertionError(f"POST {path}: {response.status_code} {response.text}")
        return response


def _service_time(rng: random.Random, hall_type: HallType, exponential: bool) -> float:
    if exponential:
        return rng.expovariate(1 / hall_type.mean_service_s)
    sigma2 = math.log(1 + hall_type.cv**2)
    return rng.lognormvariate(math.log(hall_type.mean_service_s) - sigma2 / 2, math.sqrt(sigma2))


def _priority(rng: random.Random, hall_type: HallType) -> str:
    draw = rng.random()
    for priority, share in hall_type.priorities:
        draw -= share
        if draw < 0:
            return priority
    return hall_type.priorities[-1][0]


async def run_hall_simulation(
    client: httpx.AsyncClient,
    clock: ManualClock,
    *,
    seed: int,
    minutes: int = 240,
    warmup_minutes: int = 30,
    branch: str = "sim",
    types: Sequence[HallType] = DEFAULT_TYPES,
    counters: Mapping[str, Sequence[str]] = DEFAULT_COUNTERS,
    no_show_rate: float = 0.03,
    walk_s: tuple[float, float] = (10.0, 40.0),
    exponential: bool = False,
    load: float = 1.0,
    headers: Mapping[str, str],
) -> SimulationResult:
    """Run the hall for `minutes` of simulated time on `clock` and measure the wait estimate.

    Tickets issued in [warmup_minutes, minutes) are measured; arrivals go on after `minutes`
    (so that the last measured tickets wait in a loaded hall) until every measured ticket has
    been called. The branch `branch` is created (always open) with `types` and `counters`,
    through requests with `headers` (an admin's).
    """
    rng = random.Random(seed)
    hall = _Hall(client, clock, headers, f"/api/v1/branches/{branch}", clock.now())
    hall.at(0)
    desks = await _open_branch(hall, branch, types, counters)
    simulation = _Simulation(
        hall=hall,
        rng=rng,
        by_code={t.code: t for t in types},
        desks=desks,
        warmup_s=warmup_minutes * 60.0,
        end_s=minutes * 60.0,
        no_show_rate=no_show_rate,
        walk_s=walk_s,
        exponential=exponential,
        load=load,
    )
    for t in types:
        simulation.schedule_arrival(0.0, t)
    await simulation.run()
    return simulation.result()


async def _open_branch(
    hall: _Hall, branch: str, types: Sequence[HallType], counters: Mapping[str, Sequence[str]]
) -> dict[str, _Counter]:
    """Create the branch with its business types and counters, and open every counter."""
    await hall.put("", {"name": f"Simulated hall {branch}", "timezone": "Asia/Shanghai"})
    for t in types:
        await hall.put(f"/services/{t.code}", {"name": t.name, "prefix": t.prefix})
    desks: dict[str, _Counter] = {}
    for code, profile in counters.items():
        await hall.put(f"/counters/{code}", {"name": f"{code}号窗口", "services": list(profile)})
        await hall.post(f"/counters/{code}/open")
        desks[code] = _Counter(code, tuple(profile))
    return desks


@dataclass
class _Simulation:
    """The hall from event to event: its counters and tickets, and the draws (from one seeded
    `rng`, in a fixed order) that decide what customers and clerks do next."""

    hall: _Hall
    rng: random.Random
    by_code: dict[str, HallType]
    desks: dict[str, _Counter]
    warmup_s: float
    end_s: float
    no_show_rate: float
    walk_s: tuple[float, float]
    exponential: bool
    load: float
    tickets: dict[str, _Ticket] = field(default_factory=dict)
    no_shows: int = 0

    def schedule_arrival(self, after_s: float, hall_type: HallType) -> None:
        """The next customer of `hall_type`: Poisson arrivals at the type's rate times `load`."""
        gap_s = self.rng.expovariate(self.load * hall_type.per_hour / 3600)
        self.hall.schedule(after_s + gap_s, "arrive", hall_type.code)

    async def run(self) -> None:
        """Play the events in time order until none is left (arrivals stop by themselves)."""
        hall = self.hall
        while hall.events:
            now, _, kind, subject = heapq.heappop(hall.events)
            hall.at(now)
            if kind == "arrive":
                await self.arrive(subject, now)
            elif kind == "start":
                await self.start(self.desks[subject], now)
            elif kind == "recall":
                await hall.post(f"/counters/{subject}/recall")
            elif kind == "no_show":
                await self.no_show(self.desks[subject], now)
            elif kind == "done":
                await self.press_next(self.desks[subject], now)

    async def arrive(self, service: str, now: float) -> None:
        """A customer takes a number; an idle clerk who serves the type calls at once."""
        if now >= self.end_s and self.every_measured_ticket_called():
            return  # stop arrivals, which ends the run
        hall_type = self.by_code[service]
        priority = _priority(self.rng, hall_type)
        response = await self.hall.post("/tickets", {"service": service, "priority": priority})
        body = response.json()
        self.tickets[body["id"]] = _Ticket(
            id=body["id"],
            service=service,
            priority=priority,
            issued_s=now,
            estimate_s=float(body["estimated_wait_s"]),
            measured=self.warmup_s <= now < self.end_s,
            ahead=body["waiting_ahead"],
        )
        self.schedule_arrival(now, hall_type)
        for desk in self.idle_desks_for(service):
            if await self.press_next(desk, now):
                break

    def every_measured_ticket_called(self) -> bool:
        return all(t.called_s is not None for t in self.tickets.values() if t.measured)

    def idle_desks_for(self, service: str) -> list[_Counter]:
        """Idle counters whose profile has `service`, in the order their clerks would call: the
        type's own counters first (its place in the profile), then by counter number."""
        return sorted(
            (d for d in self.desks.values() if d.ticket is None and service in d.profile),
            key=lambda d: (d.profile.index(service), int(d.code) if d.code.isdigit() else 0),
        )

    async def start(self, desk: _Counter, now: float) -> None:
        """The called customer reaches the counter: service starts, and its end is drawn."""
        await self.hall.post(f"/counters/{desk.code}/start")
        ticket = self.tickets[desk.ticket or ""]
        service_s = _service_time(self.rng, self.by_code[ticket.service], self.exponential)
        self.hall.schedule(now + service_s, "done", desk.code)

    async def no_show(self, desk: _Counter, now: float) -> None:
        """The called customer never came: the clerk marks it and calls the next one."""
        await self.hall.post(f"/counters/{desk.code}/no-show")
        self.no_shows += 1
        desk.busy_s += now - desk.busy_since
        desk.ticket = None
        await self.press_next(desk, now)

    async def press_next(self, desk: _Counter, now: float) -> bool:
        """`next`: completes the counter's ticket (if any) and calls the best waiting one."""
        if desk.ticket is not None:
            desk.busy_s += now - desk.busy_since
            desk.ticket = None
        response = await self.hall.post(f"/counters/{desk.code}/next")
        if response.status_code == 204:
            return False
        self.called(desk, response.json(), now)
        return True

    def called(self, desk: _Counter, body: dict[str, Any], now: float) -> None:
        """The counter has just called a ticket: the customer comes, or not."""
        ticket = self.tickets[body["ticket"]["id"]]
        assert ticket.called_s is None, "a ticket was called twice"
        ticket.called_s = now
        desk.ticket, desk.busy_since = ticket.id, now
        if self.rng.random() < self.no_show_rate:
            self.hall.schedule(now + 45, "recall", desk.code)
            self.hall.schedule(now + 90, "no_show", desk.code)
        else:
            self.hall.schedule(now + self.rng.uniform(*self.walk_s), "start", desk.code)

    def result(self) -> SimulationResult:
        """The estimate's error over the measured tickets, and how busy the hall was."""
        last_s = (self.hall.clock.now() - self.hall.start).total_seconds()
        for desk in self.desks.values():
            if desk.ticket is not None:  # still busy at the end: count up to the last event
                desk.busy_s += last_s - desk.busy_since
        measured = [t for t in self.tickets.values() if t.measured]
        pairs = [(t.estimate_s, (t.called_s or 0.0) - t.issued_s) for t in measured]
        overall = ErrorFigures.of(pairs)
        by_service: dict[str, list[tuple[float, float]]] = defaultdict(list)
        by_priority: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for ticket, pair in zip(measured, pairs, strict=True):
            by_service[ticket.service].append(pair)
            by_priority[ticket.priority].append(pair)
        open_s = len(self.desks) * max(last_s, 1.0)
        return SimulationResult(
            tickets=overall.tickets,
            mae_s=overall.mae_s,
            mean_actual_wait_s=overall.mean_actual_wait_s,
            mae_ratio=overall.mae_ratio,
            by_service={k: ErrorFigures.of(v) for k, v in sorted(by_service.items())},
            by_priority={k: ErrorFigures.of(v) for k, v in sorted(by_priority.items())},
            issued=len(self.tickets),
            no_shows=self.no_shows,
            utilisation=sum(d.busy_s for d in self.desks.values()) / open_s,
            requests=self.hall.requests,
            records=tuple(
                TicketRecord(t.service, t.priority, t.ahead, t.issued_s, est, act)
                for t, (est, act) in zip(measured, pairs, strict=True)
            ),
        )

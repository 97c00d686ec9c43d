"""A simulated service hall that drives the real hallq service through its API.

Customers of several business types arrive (Poisson, mostly `normal`, some `vip` and `special`),
take a number, and are called by clerks at counters with different profiles who press `next`,
`start`, `recall` and `no-show` as a real clerk would. Service times are lognormal per type (or
exponential). Time is a `ManualClock` moved from event to event, so a few simulated hours take a
few seconds and the same seed gives the same hall. The hall itself (types, counters, behaviour)
is app.simulation.default_hall's.

For every ticket issued after the warm-up, the quote of the issue response (`estimated_wait_s`
and `estimated_wait_range_s`, the estimate under test, fed by the real SQL history) is compared
with the actual wait (issue -> first call), and so are, on the same ticket, the oracle's quote
(app.simulation.oracle: replays of the hall as it was at the issue, with the true distributions)
and the classic baselines LES and QL (app.simulation.baselines). `SimulationResult` gives the
mean absolute error of each and how often the quoted range held the actual wait (figure B6,
docs/estimate.md).

Used by `tests/test_hall_simulation.py` and by the benchmark (`make bench`, B6); it takes an
httpx client on an app, its clock and an admin's headers, nothing from pytest.
"""

from __future__ import annotations

import heapq
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx

from app.core.clock import ManualClock
from app.simulation.baselines import les_quote, ql_quote, serving_rate_per_s
from app.simulation.default_hall import (
    DEFAULT_COUNTERS,
    DEFAULT_TYPES,
    HallType,
    hall_model,
)
from app.simulation.hall import (
    Behaviour,
    BusyCounter,
    HallModel,
    Served,
    Snapshot,
    WaitingCustomer,
    draw_priority,
)
from app.simulation.oracle import REPLAYS, oracle_wait

# A customer who does not come is recalled after half of this and marked a no-show after it.
NO_SHOW_S = 90.0


ESTIMATORS = ("hallq", "oracle", "les", "ql")


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
class TicketRecord:
    """A measured ticket: what each estimator quoted at its issue, and what happened."""

    service: str
    priority: str
    waiting_ahead: int
    issued_s: float  # simulated seconds since the start
    estimated_wait_s: float  # hallq's quote (the median)
    actual_wait_s: float
    range_s: tuple[float, float] = (0.0, 0.0)  # hallq's estimated_wait_range_s
    oracle_s: float = 0.0
    oracle_range_s: tuple[float, float] = (0.0, 0.0)
    les_s: float = 0.0
    ql_s: float = 0.0

    def quote(self, estimator: str) -> float:
        return {
            "hallq": self.estimated_wait_s,
            "oracle": self.oracle_s,
            "les": self.les_s,
            "ql": self.ql_s,
        }[estimator]

    @property
    def in_range(self) -> bool:
        return self.range_s[0] <= self.actual_wait_s <= self.range_s[1]

    @property
    def in_oracle_range(self) -> bool:
        return self.oracle_range_s[0] <= self.actual_wait_s <= self.oracle_range_s[1]


@dataclass(frozen=True)
class SimulationResult:
    tickets: int  # measured tickets (issued after the warm-up, before the end)
    mae_s: float  # hallq's
    mean_actual_wait_s: float
    mae_ratio: float
    by_service: dict[str, ErrorFigures]
    by_priority: dict[str, ErrorFigures]
    issued: int  # every ticket issued, warm-up and drain included
    no_shows: int
    utilisation: float  # time counters had a customer called or at the counter / time open
    requests: int
    records: tuple[TicketRecord, ...] = ()  # every measured ticket, for a closer look
    by_estimator: dict[str, ErrorFigures] = field(default_factory=dict)  # ESTIMATORS
    coverage: float = 0.0  # share of actual waits inside hallq's quoted range
    oracle_coverage: float = 0.0  # the same for the oracle's 10th-90th percentile

    def mae_vs(self, estimator: str) -> float:
        """hallq's mean absolute error over that of `estimator` (oracle, les, ql)."""
        other = self.by_estimator[estimator].mae_s
        return self.mae_s / other if other > 0 else float("inf")


@dataclass
class _Counter:
    code: str
    profile: tuple[str, ...]
    ticket: str | None = None  # id of the called or served ticket
    busy_since: float = 0.0  # when it called its ticket
    started_s: float | None = None  # when that customer reached the counter
    busy_s: float = 0.0


@dataclass
class _Ticket:
    id: str
    service: str
    priority: str
    issued_s: float
    estimate_s: float
    range_s: tuple[float, float]
    measured: bool
    ahead: int = 0
    called_s: float | None = None
    snapshot: Snapshot | None = None  # the hall at its issue, for the oracle
    les_s: float = 0.0
    ql_s: float = 0.0


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
    oracle_replays: int = REPLAYS,
    headers: Mapping[str, str],
) -> SimulationResult:
    """Run the hall for `minutes` of simulated time on `clock` and measure the wait estimate.

    Tickets issued in [warmup_minutes, minutes) are measured; arrivals go on after `minutes`
    (so that the last measured tickets wait in a loaded hall) until every measured ticket has
    been called. The branch `branch` is created (always open) with `types` and `counters`,
    through requests with `headers` (an admin's). The oracle replays each measured ticket's
    future `oracle_replays` times (0: no oracle).
    """
    rng = random.Random(seed)
    hall = _Hall(client, clock, headers, f"/api/v1/branches/{branch}", clock.now())
    hall.at(0)
    desks = await _open_branch(hall, branch, types, counters)
    behaviour = Behaviour(walk_s=walk_s, no_show_rate=no_show_rate, no_show_s=NO_SHOW_S)
    simulation = _Simulation(
        hall=hall,
        rng=rng,
        by_code={t.code: t for t in types},
        desks=desks,
        warmup_s=warmup_minutes * 60.0,
        end_s=minutes * 60.0,
        model=hall_model(types, counters, load=load, exponential=exponential, behaviour=behaviour),
    )
    for t in types:
        simulation.schedule_arrival(0.0, t)
    await simulation.run()
    return simulation.result(seed, oracle_replays)


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
    model: HallModel  # the same hall for the engine: the oracle's truth
    tickets: dict[str, _Ticket] = field(default_factory=dict)
    calls: list[Served] = field(default_factory=list)  # first calls, in order (for LES)
    no_shows: int = 0

    def schedule_arrival(self, after_s: float, hall_type: HallType) -> None:
        """The next customer of `hall_type`: Poisson arrivals at the model's rate."""
        gap_s = self.rng.expovariate(self.model.arrivals_per_hour[hall_type.code] / 3600)
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
        priority = draw_priority(self.rng, hall_type.priorities)
        response = await self.hall.post("/tickets", {"service": service, "priority": priority})
        body = response.json()
        low, high = body["estimated_wait_range_s"]
        ticket = _Ticket(
            id=body["id"],
            service=service,
            priority=priority,
            issued_s=now,
            estimate_s=float(body["estimated_wait_s"]),
            range_s=(float(low), float(high)),
            measured=self.warmup_s <= now < self.end_s,
            ahead=body["waiting_ahead"],
        )
        self.tickets[body["id"]] = ticket
        idle = self.idle_desks_for(service)
        if ticket.measured:
            self.note_baselines(ticket, now, bool(idle))
        self.schedule_arrival(now, hall_type)
        for desk in idle:
            if await self.press_next(desk, now):
                break

    def note_baselines(self, ticket: _Ticket, now: float, idle_counter: bool) -> None:
        """What the oracle and the baselines know at the issue: the hall, the last calls."""
        ticket.snapshot = self.snapshot(now)
        ticket.les_s = les_quote(self.calls, ticket.service)
        m = self.model
        rate = serving_rate_per_s(ticket.service, m.counters, m.service_times, m.behaviour)
        ticket.ql_s = ql_quote(ticket.ahead, rate, idle_counter)

    def snapshot(self, now: float) -> Snapshot:
        """The hall now, as the engine takes it (the ticket just issued is the last waiting)."""
        busy = {}
        for desk in self.desks.values():
            if desk.ticket is not None:
                served_s = None if desk.started_s is None else now - desk.started_s
                service = self.tickets[desk.ticket].service
                busy[desk.code] = BusyCounter(service, now - desk.busy_since, served_s)
        waiting = tuple(
            WaitingCustomer(t.service, t.priority, t.issued_s - now)
            for t in self.tickets.values()
            if t.called_s is None
        )
        return Snapshot(busy=busy, waiting=waiting)

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
        desk.started_s = now
        service_s = self.model.service_times[ticket.service].draw(self.rng)
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
        self.calls.append(Served(ticket.service, ticket.priority, ticket.issued_s, now, desk.code))
        desk.ticket, desk.busy_since, desk.started_s = ticket.id, now, None
        behaviour = self.model.behaviour
        if self.rng.random() < behaviour.no_show_rate:
            self.hall.schedule(now + NO_SHOW_S / 2, "recall", desk.code)
            self.hall.schedule(now + NO_SHOW_S, "no_show", desk.code)
        else:
            self.hall.schedule(now + self.rng.uniform(*behaviour.walk_s), "start", desk.code)

    def result(self, seed: int, oracle_replays: int) -> SimulationResult:
        """Each estimator's error over the measured tickets, and how busy the hall was."""
        last_s = (self.hall.clock.now() - self.hall.start).total_seconds()
        for desk in self.desks.values():
            if desk.ticket is not None:  # still busy at the end: count up to the last event
                desk.busy_s += last_s - desk.busy_since
        measured = [t for t in self.tickets.values() if t.measured]
        records = tuple(self.record(t, seed, i, oracle_replays) for i, t in enumerate(measured))
        overall = ErrorFigures.of([(r.estimated_wait_s, r.actual_wait_s) for r in records])
        open_s = len(self.desks) * max(last_s, 1.0)
        return SimulationResult(
            tickets=overall.tickets,
            mae_s=overall.mae_s,
            mean_actual_wait_s=overall.mean_actual_wait_s,
            mae_ratio=overall.mae_ratio,
            by_service=_figures_by(records, lambda r: r.service),
            by_priority=_figures_by(records, lambda r: r.priority),
            issued=len(self.tickets),
            no_shows=self.no_shows,
            utilisation=sum(d.busy_s for d in self.desks.values()) / open_s,
            requests=self.hall.requests,
            records=records,
            by_estimator={
                name: ErrorFigures.of([(r.quote(name), r.actual_wait_s) for r in records])
                for name in ESTIMATORS
            },
            coverage=_share(r.in_range for r in records),
            oracle_coverage=_share(r.in_oracle_range for r in records),
        )

    def record(self, ticket: _Ticket, seed: int, index: int, oracle_replays: int) -> TicketRecord:
        """A measured ticket with the oracle's quote, replayed from the hall at its issue (its
        own seeded stream, so that the quote does not depend on the other tickets')."""
        oracle, oracle_range = 0.0, (0.0, 0.0)
        if oracle_replays > 0 and ticket.snapshot is not None:
            rng = random.Random(seed * 1_000_003 + index)
            quote = oracle_wait(self.model, ticket.snapshot, rng, replays=oracle_replays)
            oracle, oracle_range = quote.median_s, (quote.low_s, quote.high_s)
        return TicketRecord(
            service=ticket.service,
            priority=ticket.priority,
            waiting_ahead=ticket.ahead,
            issued_s=ticket.issued_s,
            estimated_wait_s=ticket.estimate_s,
            actual_wait_s=(ticket.called_s or 0.0) - ticket.issued_s,
            range_s=ticket.range_s,
            oracle_s=oracle,
            oracle_range_s=oracle_range,
            les_s=ticket.les_s,
            ql_s=ticket.ql_s,
        )


def _figures_by(
    records: Sequence[TicketRecord], key: Callable[[TicketRecord], str]
) -> dict[str, ErrorFigures]:
    pairs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in records:
        pairs[key(r)].append((r.estimated_wait_s, r.actual_wait_s))
    return {k: ErrorFigures.of(v) for k, v in sorted(pairs.items())}


def _share(flags: Iterable[bool]) -> float:
    values = list(flags)
    return sum(values) / len(values) if values else 0.0

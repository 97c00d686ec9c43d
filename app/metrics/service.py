"""Reading the SPEC §4 metric values from the database.

Gauges are counted from the current rows at scrape time. Counters and histograms are counted
from the branch event log (`branch_events`), which is append-only and numbered per branch in
commit order, so every process that reads it arrives at the same totals and a total can only
grow. Each process keeps per-branch cursors (the last `seq` it has counted) and adds only the
events after them on each refresh: a full scan happens once per process, in bounded chunks,
a few per scrape and the rest in the background (app/metrics/collector.py).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.accuracy.service import ERROR_BUCKETS
from app.core.vocabulary import AlertKind, CounterState, TicketStatus, sql_list
from app.events.catalog import (
    TICKET_SERVICE,
    EventType,
    TicketCalled,
    TicketCompleted,
    TicketExpired,
    TicketIssued,
    data_path,
)
from app.queue.ordering import WAITING_FOR_TYPE, type_cutoffs_cte
from app.stream.presence import PRESENCE_STALE_S
from app.tickets.models import FINISHED
from app.webhooks.service import read_backlog, read_delivery_totals

# hallq_tickets_finished_total's `outcome`: the final status of a ticket.
OUTCOMES = FINISHED

# Bucket upper bounds (seconds). Waits: the hall standards' 3 and 10 minutes are bounds, so
# "share within target" can be read off the buckets. Service times: a few minutes typically.
WAIT_BUCKETS: tuple[float, ...] = (30, 60, 120, 180, 300, 600, 900, 1200, 1800, 2700, 3600, 7200)
SERVICE_BUCKETS: tuple[float, ...] = (30, 60, 120, 180, 300, 450, 600, 900, 1200, 1800, 3600)

# Events counted per statement (over all branches) while catching up, so that the first
# refresh of a process over a long history runs as short statements (docs/metrics.md).
CATCH_UP_CHUNK = 25_000


# -- gauges -------------------------------------------------------------------------------------

_WAITING = text(
    f"""
    WITH {type_cutoffs_cte("TRUE")}
    SELECT tc.branch, tc.code, count(t.id) AS waiting, min(t.issued_at) AS oldest
    FROM type_cutoffs tc
    LEFT JOIN tickets t ON {WAITING_FOR_TYPE}
    GROUP BY tc.branch, tc.code
    """  # noqa: S608 - constant fragments
)

_COUNTERS = text(
    """
    SELECT b.code, st.state, count(c.code) AS n
    FROM branches b
    CROSS JOIN unnest(CAST(:states AS text[])) AS st(state)
    LEFT JOIN counters c ON c.branch = b.code AND c.state = st.state
    GROUP BY b.code, st.state
    """
)

_ALERTS = text(
    """
    SELECT b.code, k.kind, count(a.id) AS n
    FROM branches b
    CROSS JOIN unnest(CAST(:kinds AS text[])) AS k(kind)
    LEFT JOIN alerts a ON a.branch = b.code AND a.kind = k.kind AND a.cleared_at IS NULL
    GROUP BY b.code, k.kind
    """
)

_STREAM_CLIENTS = text(
    """
    SELECT b.code, coalesce(sum(p.clients) FILTER (WHERE s.heartbeat_at >= :fresh_since), 0)
    FROM branches b
    LEFT JOIN stream_presence p ON p.branch = b.code
    LEFT JOIN stream_processes s ON s.process_id = p.process_id
    GROUP BY b.code
    """
)

_EVENT_SEQS = text("SELECT code, event_seq FROM branches")

# Fields of event data the metrics read, checked against the event catalog's models
# (app/events/catalog.py) when this module is imported.
# The events that end a ticket, for hallq_tickets_finished_total.
FINISHING = (
    EventType.TICKET_COMPLETED,
    EventType.TICKET_NO_SHOW,
    EventType.TICKET_CANCELLED,
    EventType.TICKET_EXPIRED,
)
ISSUED, CALLED = EventType.TICKET_ISSUED, EventType.TICKET_CALLED
_TICKET_PRIORITY = data_path(TicketIssued, "ticket", "priority")
_WAIT_S = data_path(TicketCalled, "wait_s")
_SERVICE_S = data_path(TicketCompleted, "service_s")
# A no-show that the close-out expires finished once already, as a no-show.
_EXPIRED_FROM = data_path(TicketExpired, "previous_status")
_FINISHED_AGAIN = (
    f"(type = '{EventType.TICKET_EXPIRED}' AND {_EXPIRED_FROM} = '{TicketStatus.NO_SHOW}')"
)

# `bucket` is an index into the bucket bounds (len(bounds) = +Inf only): the number of bounds
# below the value, so that a value equal to a bound counts in that bound's bucket (`le`).
# width_bucket(x, ascending) counts the thresholds <= x; over the negated bounds that is the
# number of bounds >= v, and the other n - that many bounds are below v.
_EVENT_TOTALS = text(
    f"""
    WITH ranges AS (
        SELECT * FROM unnest(CAST(:branches AS text[]), CAST(:lo AS bigint[]),
                             CAST(:hi AS bigint[])) AS r(branch, lo, hi)
    ),
    ev AS (
        SELECT e.branch, e.seq, e.type, e.ticket_id, e.at, e.data
        FROM ranges r
        JOIN branch_events e ON e.branch = r.branch AND e.seq > r.lo AND e.seq <= r.hi
        WHERE e.type IN {sql_list((ISSUED, CALLED, *FINISHING))}
    ),
    first_calls AS (
        SELECT e.branch, e.ticket_id, e.{TICKET_SERVICE} AS service,
               e.{_TICKET_PRIORITY} AS priority,
               CAST(e.{_WAIT_S} AS float8) AS v
        FROM ev e
        WHERE e.type = '{EventType.TICKET_CALLED}' AND e.{_WAIT_S} IS NOT NULL
          -- A scalar subquery, not NOT EXISTS: it stays one index probe per call counted
          -- (ix_branch_events_ticket_id), where an anti-join may hash every call ever made.
          AND e.seq = (
              SELECT min(p.seq) FROM branch_events p
              WHERE p.ticket_id = e.ticket_id AND p.branch = e.branch
                AND p.type = '{EventType.TICKET_CALLED}'
                -- a ticket's calls lie between its issue (this call's `at` less its wait)
                -- and this call: bounds on `at` prune the probe to a week or two, not the
                -- whole history; a day's margin either way for clocks that disagree
                AND p.at >= e.at - make_interval(secs => CAST(e.{_WAIT_S} AS float8))
                            - interval '1 day'
                AND p.at <= e.at + interval '1 day'
          )
    ),
    -- the quote's error of a first call whose quote was kept before it (app/accuracy); a quote
    -- kept after the call is counted by its flush, in estimate_late_errors
    estimate_errors AS (
        SELECT f.branch, q.service, q.waited_s - q.quoted_s AS v
        FROM first_calls f
        JOIN estimate_quotes q ON q.ticket_id = f.ticket_id
        WHERE q.quoted_s IS NOT NULL AND q.waited_s IS NOT NULL AND NOT q.quoted_after_call
    ),
    services_done AS (
        SELECT e.branch, e.{TICKET_SERVICE} AS service,
               CAST(e.{_SERVICE_S} AS float8) AS v
        FROM ev e
        WHERE e.type = '{EventType.TICKET_COMPLETED}' AND e.{_SERVICE_S} IS NOT NULL
    )
    SELECT 'issued' AS kind, branch, {TICKET_SERVICE} AS service,
           {_TICKET_PRIORITY} AS label, -1 AS bucket, count(*) AS n,
           CAST(0 AS float8) AS total
    FROM ev WHERE type = '{EventType.TICKET_ISSUED}'
    GROUP BY 2, 3, 4, 5
    UNION ALL
    SELECT 'finished', branch, {TICKET_SERVICE},
           CASE type WHEN '{EventType.TICKET_COMPLETED}' THEN '{TicketStatus.DONE}'
                     WHEN '{EventType.TICKET_NO_SHOW}' THEN '{TicketStatus.NO_SHOW}'
                     WHEN '{EventType.TICKET_EXPIRED}' THEN '{TicketStatus.EXPIRED}'
                     ELSE '{TicketStatus.CANCELLED}' END,
           -1, count(*), CAST(0 AS float8)
    FROM ev WHERE type IN {sql_list(FINISHING)} AND NOT {_FINISHED_AGAIN}
    GROUP BY 2, 3, 4, 5
    UNION ALL
    SELECT 'wait', branch, service, priority,
           CAST(:n_wait AS int) - width_bucket(-v, CAST(:neg_wait AS float8[])), count(*), sum(v)
    FROM first_calls
    GROUP BY 2, 3, 4, 5
    UNION ALL
    SELECT 'service', branch, service, '',
           CAST(:n_service AS int) - width_bucket(-v, CAST(:neg_service AS float8[])),
           count(*), sum(v)
    FROM services_done
    GROUP BY 2, 3, 4, 5
    UNION ALL
    SELECT 'estimate', branch, service, '',
           CAST(:n_error AS int) - width_bucket(-v, CAST(:neg_error AS float8[])),
           count(*), CAST(0 AS float8)
    FROM estimate_errors
    GROUP BY 2, 3, 4, 5
    """  # noqa: S608 - constant fragments
)

# The errors of tickets quoted after their first call: totals the quote writer keeps, read
# whole at every refresh (a row per branch, type and bucket that ever had one).
_LATE_ERRORS = text(
    """
    SELECT l.branch, l.service, l.le, l.n
    FROM estimate_late_errors l JOIN branches b ON b.code = l.branch
    """
)


def _negated(bounds: tuple[float, ...]) -> list[float]:
    return sorted(-b for b in bounds)


@dataclass
class Histogram:
    """Per-bucket (not cumulative) counts; index len(bounds) is the +Inf bucket."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def add(self, bucket: int, n: int, total: float) -> None:
        self.counts[min(max(bucket, 0), len(self.bounds))] += n
        self.total += total

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, cumulative count) pairs, ending with +Inf."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


LabelKey = tuple[str, ...]


@dataclass
class Totals:
    """The counters and histograms, as counted from the event log up to `cursors`."""

    cursors: dict[str, int] = field(default_factory=dict)
    issued: dict[LabelKey, int] = field(default_factory=lambda: defaultdict(int))
    finished: dict[LabelKey, int] = field(default_factory=lambda: defaultdict(int))
    wait: dict[LabelKey, Histogram] = field(default_factory=dict)
    service: dict[LabelKey, Histogram] = field(default_factory=dict)
    # hallq_estimate_error_seconds: counted with the first calls (up to `cursors`) ...
    estimate: dict[LabelKey, Histogram] = field(default_factory=dict)
    # ... and, for quotes kept after the call, as the database's totals stood at the refresh
    late_estimate: dict[LabelKey, Histogram] = field(default_factory=dict)

    def wait_hist(self, key: LabelKey) -> Histogram:
        if key not in self.wait:
            self.wait[key] = Histogram(WAIT_BUCKETS)
        return self.wait[key]

    def service_hist(self, key: LabelKey) -> Histogram:
        if key not in self.service:
            self.service[key] = Histogram(SERVICE_BUCKETS)
        return self.service[key]

    def estimate_hist(self, key: LabelKey) -> Histogram:
        """Both parts of the estimate error's histogram of (branch, service), added up."""
        hist = Histogram(ERROR_BUCKETS)
        for part in (self.estimate.get(key), self.late_estimate.get(key)):
            if part is not None:
                hist.counts = [a + b for a, b in zip(hist.counts, part.counts, strict=True)]
        return hist

    def forget(self, branch: str) -> None:
        """Drop a branch (deleted, or its log restarted): its series start again."""
        self.cursors.pop(branch, None)
        for table in (self.issued, self.finished, self.wait, self.service, self.estimate):
            for key in [k for k in table if k[0] == branch]:
                del table[key]

    async def catch_up(self, session: AsyncSession, max_events: int | None = None) -> bool:
        """Count the events committed since the last call, at most about `max_events` of
        them (None: all); True when the count reached the branches' heads. Within a branch
        events commit in seq order (see app.events.service), so the events at or below the
        branch's committed `event_seq` are all visible and none can appear below a cursor
        later."""
        heads = {code: int(seq) for code, seq in (await session.execute(_EVENT_SEQS)).all()}
        await self._read_late_estimates(session)
        for branch in list(self.cursors):
            if branch not in heads or heads[branch] < self.cursors[branch]:
                self.forget(branch)
        counted = 0
        while max_events is None or counted < max_events:
            todo = self._next_chunk(heads)
            if not todo:
                return True
            await self._count(session, todo)
            counted += sum(hi - lo for _, lo, hi in todo)
        return not self._next_chunk(heads)

    def _next_chunk(self, heads: dict[str, int]) -> list[tuple[str, int, int]]:
        """(branch, after seq, up to seq) ranges of at most CATCH_UP_CHUNK events in all."""
        todo: list[tuple[str, int, int]] = []
        room = CATCH_UP_CHUNK
        for branch, head in sorted(heads.items()):
            lo = self.cursors.get(branch, 0)
            if head > lo and room > 0:
                hi = min(head, lo + room)
                todo.append((branch, lo, hi))
                room -= hi - lo
        return todo

    async def _count(self, session: AsyncSession, todo: list[tuple[str, int, int]]) -> None:
        rows = await session.execute(
            _EVENT_TOTALS,
            {
                "branches": [b for b, _, _ in todo],
                "lo": [lo for _, lo, _ in todo],
                "hi": [hi for _, _, hi in todo],
                "n_wait": len(WAIT_BUCKETS),
                "neg_wait": _negated(WAIT_BUCKETS),
                "n_service": len(SERVICE_BUCKETS),
                "neg_service": _negated(SERVICE_BUCKETS),
                "n_error": len(ERROR_BUCKETS),
                "neg_error": _negated(ERROR_BUCKETS),
            },
        )
        # All rows are fetched before anything is counted: a failing statement leaves the
        # totals and cursors as they were.
        for kind, branch, service, label, bucket, n, total in rows.all():
            key: LabelKey = (branch, service or "", label or "")
            if kind == "issued":
                self.issued[key] += int(n)
            elif kind == "finished":
                self.finished[key] += int(n)
            elif kind == "wait":
                self.wait_hist(key).add(int(bucket), int(n), float(total))
            elif kind == "estimate":
                hist = self.estimate.setdefault((branch, service), Histogram(ERROR_BUCKETS))
                hist.add(int(bucket), int(n), float(total))
            else:
                self.service_hist((branch, service or "")).add(int(bucket), int(n), float(total))
        for branch, _, hi in todo:
            self.cursors[branch] = hi

    async def _read_late_estimates(self, session: AsyncSession) -> None:
        late: dict[LabelKey, Histogram] = {}
        for branch, service, le, n in (await session.execute(_LATE_ERRORS)).all():
            hist = late.setdefault((branch, service), Histogram(ERROR_BUCKETS))
            hist.add(bisect_left(ERROR_BUCKETS, float(le)), int(n), 0.0)
        self.late_estimate = late


@dataclass
class Gauges:
    waiting: dict[LabelKey, int]
    longest_wait_s: dict[LabelKey, float]
    counters: dict[LabelKey, int]
    alerts: dict[LabelKey, int]
    stream_clients: dict[LabelKey, int]
    services: list[LabelKey]  # every (branch, service), for zero-valued counter series
    webhook_backlog: dict[LabelKey, int]  # (webhook,) -> events not yet delivered
    webhook_deliveries: dict[LabelKey, int]  # (outcome,) -> attempts


async def read_gauges(session: AsyncSession, now: datetime) -> Gauges:
    waiting: dict[LabelKey, int] = {}
    longest: dict[LabelKey, float] = {}
    for branch, service, n, oldest in (await session.execute(_WAITING, {"now": now})).all():
        waiting[(branch, service)] = int(n)
        longest[(branch, service)] = (
            max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        )
    counters: dict[LabelKey, int] = {
        (b, state): int(n)
        for b, state, n in (await session.execute(_COUNTERS, {"states": list(CounterState)})).all()
    }
    alerts: dict[LabelKey, int] = {
        (b, kind): int(n)
        for b, kind, n in (await session.execute(_ALERTS, {"kinds": list(AlertKind)})).all()
    }
    clients: dict[LabelKey, int] = {
        (b,): int(n)
        for b, n in (
            await session.execute(
                _STREAM_CLIENTS, {"fresh_since": now - timedelta(seconds=PRESENCE_STALE_S)}
            )
        ).all()
    }
    # _WAITING has a row for every configured business type, waiting or not.
    services: list[LabelKey] = list(waiting)
    backlog: dict[LabelKey, int] = {
        (webhook,): n for webhook, n in (await read_backlog(session)).items()
    }
    delivered, failed = await read_delivery_totals(session)
    deliveries: dict[LabelKey, int] = {("delivered",): delivered, ("failed",): failed}
    return Gauges(waiting, longest, counters, alerts, clients, services, backlog, deliveries)


__all__ = [
    "ERROR_BUCKETS",
    "OUTCOMES",
    "SERVICE_BUCKETS",
    "WAIT_BUCKETS",
    "Gauges",
    "Histogram",
    "Totals",
    "read_gauges",
]

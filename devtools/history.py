"""Generated history of a branch, shaped like the real one, for the period reports: the tests'
invariants over several weeks (tests/test_reports_period.py) and the year of a busy branch that
`make bench` measures (bench/b7_reports.py).

One SQL statement writes the tickets and one their events, set-based, so a year of 250,000
tickets loads in seconds. The branch, its business types and its counters must exist (the
tickets' foreign keys); the clerks are `s<counter>`, signed in at counter `<counter>` from 08:55
to 17:30 each day, the even counters paused 12:00-12:30. Ticket `g` of the history (0-based,
`per_day` per business day from `first`) is issued between 09:00 and 16:00 and ends, by `g`:

| g % 50 | ends |
|---|---|
| 0, 1 | cancelled while waiting, 5 min after its issue |
| 2, 3, 4 | a no-show: called, recalled, marked no-show (and expired at the close-out) |
| 5, 6 | expired while waiting, at the day's close-out |
| 7 | expired while called at its counter, at the close-out |
| 8, 9 | transferred to business type `a` while served, then called at another counter and served |
| 10 | a no-show re-queued, called again at another counter and served |
| else | served (half of them with `start` pressed) |

Two in five of the tickets served are rated 1..5. Eight in nine tickets (all but g % 9 = 4)
had their quoted wait kept (app/accuracy): the median its wait + (g * 37) % 601 - 300 (at least
0), the range 0.6 to 1.6 times that. Events are numbered in time order after the branch's
`event_seq`, which is moved past them, as are the ticket number sequences.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Protocol

from app.branches.hours import Schedule
from app.core.partitions import PARTITIONED, WEEK, week_start

# What the statements need from a connection: asyncpg's `execute(query, *args)` and `fetch`.


class Executor(Protocol):
    async def execute(self, query: str, *args: Any) -> Any: ...

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...


_EXISTING_SQL = "SELECT relname FROM pg_class WHERE relname = ANY (CAST($1 AS text[]))"


async def make_weeks(conn: Executor, first: date, last: date) -> list[str]:
    """Make the weekly partitions of both history tables for business dates `first` to `last`
    (and a day either side: an event's UTC date is within a day of its business date) before a
    bulk load, as housekeeping would have made them over the years, so that the rows land in
    their weeks and not in the default partition; the names made. A week the default partition
    holds rows of is left to housekeeping, which moves them first (app/core/partitions.py). On
    a schema without partitions (before migration 0019) nothing is made."""
    kind = "SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass('tickets')"
    if not (await conn.fetch(kind))[0][0]:
        return []
    monday, last_monday = (
        week_start(first - timedelta(days=1)),
        week_start(last + timedelta(days=1)),
    )
    weeks = [monday + n * WEEK for n in range((last_monday - monday) // WEEK + 1)]
    made = []
    for table in PARTITIONED:
        held_sql = f"SELECT DISTINCT {table.week_sql} FROM {table.default}"
        held = {row[0] for row in await conn.fetch(held_sql)}
        names = [table.partition(week) for week in weeks]
        exist = {row[0] for row in await conn.fetch(_EXISTING_SQL, names)}
        for week, name in zip(weeks, names, strict=True):
            if week not in held and name not in exist:
                await conn.execute(table.partition_of_sql(week))
                made.append(name)
    return made


SERVICES = ("a", "b", "v")
_DAY_START = Schedule.day_start_sql("b", "p.day")

# One row per ticket: who, when, how it ends. $1 branch, $2 first date, $3 days, $4 per day,
# $5 counters.
_PLAN = f"""
    SELECT g, p.day, k, svc, k / 3 + 1 AS seq,
           CAST(md5($1 || ':' || p.day || ':' || k) AS uuid) AS id,
           CASE WHEN g % 50 IN (0, 1) THEN 'cancelled'
                WHEN g % 50 IN (2, 3, 4) THEN 'no_show'
                WHEN g % 50 IN (5, 6) THEN 'expired_waiting'
                WHEN g % 50 = 7 THEN 'expired_called'
                WHEN g % 50 IN (8, 9) THEN 'transferred'
                WHEN g % 50 = 10 THEN 'requeued'
                ELSE 'done' END AS fate,
           CASE WHEN g % 20 = 0 THEN 'special' WHEN g % 10 = 5 THEN 'vip'
                ELSE 'normal' END AS prio,
           CAST(1 + g % CAST($5 AS int) AS text) AS ctr,
           CAST(1 + (g + 1) % CAST($5 AS int) AS text) AS ctr2,
           {_DAY_START} + interval '9 hours'
               + make_interval(secs => 25200.0 * k / CAST($4 AS int)) AS issued,
           {_DAY_START} + interval '1 day' - interval '1 microsecond' AS day_end,
           60 + (CAST(g AS bigint) * 7919) % 900 AS wait_s,
           120 + (CAST(g AS bigint) * 104729) % 480 AS service_s,
           CASE WHEN g % 5 < 2 THEN (ARRAY[5, 5, 5, 4, 4, 4, 3, 5, 2, 1])[g / 5 % 10 + 1]
           END AS rating
    FROM generate_series(0, CAST($3 AS int) * CAST($4 AS int) - 1) AS g
    JOIN branches b ON b.code = $1
    CROSS JOIN LATERAL (
        SELECT CAST($2 AS date) + g / CAST($4 AS int) AS day, g % CAST($4 AS int) AS k,
               (ARRAY{list(SERVICES)})[g % CAST($4 AS int) % 3 + 1] AS svc
    ) AS p
"""

# The moments of each ticket's story (NULL where its fate has no such step).
_TIMES = f"""
    SELECT plan.*,
           issued + make_interval(secs => wait_s) AS called,
           CASE WHEN fate = 'transferred'
                THEN issued + make_interval(secs => wait_s + 30 + service_s / 2) END AS moved,
           CASE WHEN fate = 'transferred'
                THEN issued + make_interval(secs => wait_s + 150 + service_s / 2)
                WHEN fate = 'requeued'
                THEN issued + make_interval(secs => wait_s + 600) END AS called2,
           CASE WHEN fate IN ('done', 'transferred', 'requeued')
                THEN issued + make_interval(secs => wait_s + 630 + service_s) END AS finished
    FROM ({_PLAN}) AS plan
"""

TICKETS_SQL = f"""
    INSERT INTO tickets (id, branch, service, issued_service, business_date, seq, number,
                         priority, channel, status, issued_at, lane, queued_at, counter, staff,
                         called_at, last_called_at, served_at, finished_at, rating, rated_at)
    SELECT id, $1, CASE WHEN fate = 'transferred' THEN 'a' ELSE svc END, svc, day, seq,
           upper(svc) || CASE WHEN seq < 1000 THEN lpad(CAST(seq AS text), 3, '0')
                              ELSE CAST(seq AS text) END, prio, 'kiosk',
           CASE fate WHEN 'cancelled' THEN 'cancelled' WHEN 'no_show' THEN 'expired'
                     WHEN 'expired_waiting' THEN 'expired' WHEN 'expired_called' THEN 'expired'
                     ELSE 'done' END,
           issued, 1, issued,
           CASE WHEN fate IN ('transferred', 'requeued') THEN ctr2
                WHEN fate IN ('done', 'no_show', 'expired_called') THEN ctr END,
           CASE WHEN fate IN ('transferred', 'requeued') THEN 's' || ctr2
                WHEN fate IN ('done', 'no_show', 'expired_called') THEN 's' || ctr END,
           CASE WHEN fate NOT IN ('cancelled', 'expired_waiting') THEN called END,
           coalesce(called2, CASE WHEN fate NOT IN ('cancelled', 'expired_waiting')
                                  THEN called END),
           CASE WHEN finished IS NOT NULL THEN coalesce(called2, called) END,
           CASE WHEN fate = 'cancelled' THEN issued + interval '5 minutes'
                WHEN fate IN ('no_show', 'expired_waiting', 'expired_called') THEN day_end
                ELSE finished END,
           CASE WHEN finished IS NOT NULL THEN rating END,
           CASE WHEN finished IS NOT NULL AND rating IS NOT NULL
                THEN finished + interval '1 minute' END
    FROM ({_TIMES}) AS t
"""


# The quotes kept, and the waits of the tickets called. One in seventeen was written after its
# first call (which only the metrics tell apart).
QUOTES_SQL = f"""
    INSERT INTO estimate_quotes (ticket_id, branch, service, quoted_s, low_s, high_s, waited_s,
                                 quoted_after_call)
    SELECT id, $1, svc, q.median, round(q.median * 0.6), round(q.median * 1.6),
           CASE WHEN fate NOT IN ('cancelled', 'expired_waiting') THEN wait_s END, g % 17 = 0
    FROM ({_PLAN}) AS plan
    CROSS JOIN LATERAL (
        SELECT greatest(0, wait_s + (CAST(g AS bigint) * 37) % 601 - 300) AS median
    ) AS q
    WHERE g % 9 <> 4
"""


def _ref(service: str) -> str:
    """The ticket as events name it, under business type `service` (SQL)."""
    return (
        "jsonb_build_object('id', t.id, 'number', t.number, 'service', "
        f"{service}, 'priority', t.priority)"
    )


def _counter(code: str) -> str:
    return f"jsonb_build_object('code', {code}, 'name', {code})"


def _call(code: str, service: str, wait: str) -> str:
    return (
        f"jsonb_build_object('ticket', {_REF_ISSUED if service == 'svc' else _REF_NOW}, "
        f"'counter', {_counter(code)}, 'announcement', jsonb_build_object("
        "'zh', '请' || t.number || '号到' || " + code + " || '号窗口办理', "
        "'en', 'Ticket ' || t.number || ', please go to counter ' || " + code + f"), "
        f"'wait_s', {wait})"
    )


_REF_ISSUED = _ref("t.issued_service")
_REF_NOW = _ref("t.service")

# (type, at, counter, staff, data, when): one event kind of a ticket's story.
_TICKET_EVENTS: list[tuple[str, str, str, str, str, str]] = [
    (
        "ticket.issued",
        "x.issued",
        "NULL",
        "NULL",
        "jsonb_build_object('ticket', "
        + _REF_ISSUED[: -len(")")]
        + ", 'channel', 'kiosk', 'issued_at', x.issued))",
        "true",
    ),
    (
        "ticket.called",
        "x.called",
        "x.ctr",
        "'s' || x.ctr",
        _call("x.ctr", "svc", "x.wait_s"),
        "x.fate NOT IN ('cancelled', 'expired_waiting')",
    ),
    (
        "ticket.recalled",
        "x.called + interval '1 minute'",
        "x.ctr",
        "'s' || x.ctr",
        _call("x.ctr", "svc", "x.wait_s").replace("'wait_s', x.wait_s", "'recall_count', 1"),
        "x.fate IN ('no_show', 'requeued')",
    ),
    (
        "ticket.serving",
        "x.called + interval '30 seconds'",
        "x.ctr",
        "'s' || x.ctr",
        f"jsonb_build_object('ticket', {_REF_ISSUED}, 'counter', {_counter('x.ctr')})",
        "x.fate = 'transferred' OR (x.fate = 'done' AND x.g % 2 = 0)",
    ),
    (
        "ticket.no_show",
        "x.called + interval '2 minutes'",
        "x.ctr",
        "'s' || x.ctr",
        f"jsonb_build_object('ticket', {_REF_ISSUED}, 'counter', {_counter('x.ctr')}, "
        "'recall_count', 1)",
        "x.fate IN ('no_show', 'requeued')",
    ),
    (
        "ticket.requeued",
        "x.called + interval '5 minutes'",
        "NULL",
        "NULL",
        f"jsonb_build_object('ticket', {_REF_ISSUED}, 'requeue_after', 2)",
        "x.fate = 'requeued'",
    ),
    (
        "ticket.transferred",
        "x.moved",
        "x.ctr",
        "'s' || x.ctr",
        f"jsonb_build_object('ticket', {_REF_NOW}, 'from', jsonb_build_object('counter', x.ctr,"
        " 'service', x.svc, 'status', 'serving'), 'to', jsonb_build_object('service', 'a',"
        " 'counter', NULL, 'position', 'front'))",
        "x.fate = 'transferred'",
    ),
    (
        "ticket.called",
        "x.called2",
        "x.ctr2",
        "'s' || x.ctr2",
        _call("x.ctr2", "now", "extract(epoch FROM x.called2 - x.issued)"),
        "x.called2 IS NOT NULL",
    ),
    (
        "ticket.completed",
        "x.finished",
        "CASE WHEN x.called2 IS NULL THEN x.ctr ELSE x.ctr2 END",
        "'s' || CASE WHEN x.called2 IS NULL THEN x.ctr ELSE x.ctr2 END",
        f"jsonb_build_object('ticket', {_REF_NOW}, 'counter', "
        + _counter("CASE WHEN x.called2 IS NULL THEN x.ctr ELSE x.ctr2 END")
        + ", 'service_s', 0)",
        "x.finished IS NOT NULL",
    ),
    (
        "ticket.rated",
        "x.finished + interval '1 minute'",
        "CASE WHEN x.called2 IS NULL THEN x.ctr ELSE x.ctr2 END",
        "'s' || CASE WHEN x.called2 IS NULL THEN x.ctr ELSE x.ctr2 END",
        f"jsonb_build_object('ticket', {_REF_NOW}, 'score', t.rating, 'counter', "
        "CASE WHEN x.called2 IS NULL THEN x.ctr ELSE x.ctr2 END, 'has_comment', false)",
        "x.finished IS NOT NULL AND t.rating IS NOT NULL",
    ),
    (
        "ticket.cancelled",
        "x.issued + interval '5 minutes'",
        "NULL",
        "NULL",
        f"jsonb_build_object('ticket', {_REF_ISSUED})",
        "x.fate = 'cancelled'",
    ),
    (
        "ticket.expired",
        "x.day_end",
        "CASE WHEN x.fate <> 'expired_waiting' THEN x.ctr END",
        "CASE WHEN x.fate <> 'expired_waiting' THEN 's' || x.ctr END",
        f"jsonb_build_object('ticket', {_REF_ISSUED}, 'previous_status', "
        "CASE x.fate WHEN 'expired_called' THEN 'called' WHEN 'no_show' THEN 'no_show' "
        "ELSE 'waiting' END, 'counter', "
        "CASE WHEN x.fate <> 'expired_waiting' THEN " + _counter("x.ctr") + " END)",
        "x.fate IN ('expired_waiting', 'expired_called', 'no_show')",
    ),
]

# The counters' day: signed in at 08:55, the even ones paused 12:00-12:30, closed at 17:30.
# $1 branch, $2 first date, $3 days.
_COUNTER_DAYS = f"""
    SELECT c.code, {Schedule.day_start_sql("b", "d.day")} AS day_start,
           CAST(substring(c.code FROM '[0-9]+') AS int) % 2 = 0 AS pauses,
           c.services
    FROM counters c
    JOIN branches b ON b.code = c.branch
    CROSS JOIN LATERAL (
        SELECT CAST($2 AS date) + n AS day FROM generate_series(0, CAST($3 AS int) - 1) AS n
    ) AS d
    WHERE c.branch = $1
"""


def _counter_event(offset: str, state: str, signed_in: bool, when: str = "true") -> str:
    staff = "'s' || cd.code" if signed_in else "NULL"
    data = (
        "jsonb_build_object('counter', jsonb_build_object('code', cd.code, 'name', cd.code, "
        f"'state', '{state}', 'services', to_jsonb(cd.services), 'staff', {staff}, "
        "'current', NULL))"
    )
    return (
        f"SELECT 'counter.changed', cd.day_start + interval '{offset}', NULL::uuid, cd.code, "
        f"'s' || cd.code, {data}, 0 FROM ({_COUNTER_DAYS}) AS cd WHERE {when}"
    )


def events_sql() -> str:
    """Every event of the generated history: the tickets' (read back from `tickets` with the
    plan) and the counters', numbered in time order after the branch's `event_seq`."""
    ticket_parts = [
        f"SELECT '{kind}', {at}, x.id, {counter}, {staff}, {data}, {order} "
        f"FROM ({_TIMES}) AS x JOIN tickets t ON t.id = x.id WHERE {when}"
        for order, (kind, at, counter, staff, data, when) in enumerate(_TICKET_EVENTS, start=1)
    ]
    counter_parts = [
        _counter_event("8 hours 55 minutes", "open", True),
        _counter_event("12 hours", "paused", True, "cd.pauses"),
        _counter_event("12 hours 30 minutes", "open", True, "cd.pauses"),
        _counter_event("17 hours 30 minutes", "closed", False),
    ]
    union = "\nUNION ALL\n".join(ticket_parts + counter_parts)
    return f"""
    INSERT INTO branch_events (branch, seq, type, at, ticket_id, counter, staff, data)
    SELECT $1, base.event_seq + row_number() OVER (ORDER BY e.at, e.ticket_id, e.ord),
           e.type, e.at, e.ticket_id, e.counter, e.staff, e.data
    FROM ({union}) AS e(type, at, ticket_id, counter, staff, data, ord)
    CROSS JOIN (SELECT event_seq FROM branches WHERE code = $1) AS base
    """


AFTER_SQL = [
    "UPDATE branches SET event_seq = (SELECT max(seq) FROM branch_events WHERE branch = $1)"
    " WHERE code = $1",
    """
    INSERT INTO ticket_sequences (branch, service, business_date, last_value)
    SELECT branch, issued_service, business_date, max(seq) FROM tickets WHERE branch = $1
    GROUP BY branch, issued_service, business_date
    ON CONFLICT (branch, service, business_date)
    DO UPDATE SET last_value = greatest(ticket_sequences.last_value, excluded.last_value)
    """,
]


@dataclass(frozen=True)
class History:
    branch: str
    first: date
    days: int
    per_day: int
    counters: int  # counters "1".."n" must exist, serving the generated business types

    async def load(self, conn: Executor) -> None:
        """Write the history into `branch` through an asyncpg connection, in one transaction
        if the caller opened one, into the weeks' partitions (`make_weeks`)."""
        await make_weeks(conn, self.first, self.first + timedelta(days=self.days - 1))
        await conn.execute(TICKETS_SQL, self.branch, self.first, self.days, self.per_day,
                           self.counters)  # fmt: skip
        await conn.execute(QUOTES_SQL, self.branch, self.first, self.days, self.per_day,
                           self.counters)  # fmt: skip
        # The events are read back from the new tickets: plan that with their statistics.
        await conn.execute("ANALYZE tickets")
        await conn.execute(events_sql(), self.branch, self.first, self.days, self.per_day,
                           self.counters)  # fmt: skip
        for statement in AFTER_SQL:
            await conn.execute(statement, self.branch)

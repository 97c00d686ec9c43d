"""The figures of a branch over a run of business days, in SQL over the branch history: one
code path for the daily report (a run of one day) and the period report.

docs/reports.md defines every figure. Each fact counts on the business day its event happened
(an expiry on the day the ticket was issued), for the business type, counter and clerk the
event names. The statements read the window's events once, in order per ticket, instead of
looking each ticket's history up again for every fact: what came before an event of a ticket
(its earlier calls, where its visit at the counter began) and after it (a re-queue after a
no-show) is found with window functions over the events from a day before the window to a day
after it. A ticket whose issue lies further back (a customer served across a whole day) is
looked up in the full history instead, so the answers are exact either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.branches.hours import Schedule
from app.core.vocabulary import CounterState, TicketStatus, sql_list
from app.events.catalog import (
    TICKET_SERVICE,
    CounterChanged,
    EventType,
    TicketExpired,
    TicketRated,
    TicketTransferred,
    data_path,
)

# Fields of event data the report reads, checked against the event catalog's models
# (app/events/catalog.py) when this module is imported.
_FROM_SERVICE = data_path(TicketTransferred, "from", "service")
_FROM_COUNTER = data_path(TicketTransferred, "from", "counter")
_COUNTER_STATE = data_path(CounterChanged, "counter", "state")
_COUNTER_STAFF = data_path(CounterChanged, "counter", "staff")
_EXPIRED_FROM = data_path(TicketExpired, "previous_status")
_SCORE = data_path(TicketRated, "score")

CALLED, ISSUED = EventType.TICKET_CALLED, EventType.TICKET_ISSUED
COMPLETED, NO_SHOW = EventType.TICKET_COMPLETED, EventType.TICKET_NO_SHOW
RATED, REQUEUED = EventType.TICKET_RATED, EventType.TICKET_REQUEUED
TRANSFERRED = EventType.TICKET_TRANSFERRED
# The moments a ticket's visit at a counter starts being counted as service: the clerk
# pressed `start` (serving), else the last call or recall (`complete` from `called`). The latest
# of them before the visit ends is where the clerk's time with the customer began.
_VISIT_STARTS = (EventType.TICKET_CALLED, EventType.TICKET_RECALLED, EventType.TICKET_SERVING)
_VISIT_ENDS = (EventType.TICKET_COMPLETED, EventType.TICKET_TRANSFERRED)
# The ticket events read in order: an issue (so that a ticket's whole story is known to be in
# the window), the visit starts and ends, no-shows and re-queues.
_STORY = (
    EventType.TICKET_ISSUED,
    *_VISIT_STARTS,
    *_VISIT_ENDS,
    EventType.TICKET_NO_SHOW,
    EventType.TICKET_REQUEUED,
    EventType.TICKET_RATED,
)
# The events whose business type a fact is counted under.
_SERVICE_READ = (EventType.TICKET_CALLED, EventType.TICKET_COMPLETED, EventType.TICKET_NO_SHOW)
_SIGNED_IN = (CounterState.OPEN, CounterState.PAUSED, CounterState.CLOSING)
_OPEN = (CounterState.OPEN, CounterState.CLOSING)

# The business day of an event: its local time less the branch's `day_starts_at`.
_EVENT_DAY = Schedule.business_date_sql("b", "x.at")

# Fallbacks for a ticket issued before the window (its earlier events are not in it).
_EARLIER_CALL = f"""
    EXISTS (SELECT 1 FROM branch_events p
            WHERE p.branch = :branch AND p.ticket_id = x.ticket_id
              AND p.type = '{CALLED}' AND p.seq < x.seq)
"""
_VISIT_START_IN_HISTORY = f"""
    (SELECT p.at FROM branch_events p
     WHERE p.branch = :branch AND p.ticket_id = x.ticket_id
       AND p.type IN {sql_list(_VISIT_STARTS)} AND p.seq < x.seq
     ORDER BY p.seq DESC LIMIT 1)
"""
_ISSUED_AT_IN_TICKETS = "(SELECT t.issued_at FROM tickets t WHERE t.id = x.ticket_id)"
_RATING_IN_TICKETS = "(SELECT t.rating FROM tickets t WHERE t.id = x.ticket_id)"
_REQUEUED_IN_HISTORY = f"""
    EXISTS (SELECT 1 FROM branch_events r
            WHERE r.branch = :branch AND r.ticket_id = x.ticket_id
              AND r.type = '{EventType.TICKET_REQUEUED}' AND r.seq > x.seq)
"""

# The events of the tickets' stories from a day before the window to a day after it, narrowed
# to what the figures read, each with what they need to know about the ticket's other events:
# whether its issue is in the window (then its whole story up to here is), how many calls came
# before it, the latest visit start before it (packed as [seq, microseconds since the epoch],
# so that one ordered pass finds the latest by seq), its last re-queue, its issue time (the
# issue event is written with the ticket's `issued_at`) and its rating (the rating event carries
# the ticket's score).
_STORY_CTES = f"""
    story AS MATERIALIZED (
        SELECT e.seq, e.type, e.at, e.ticket_id, e.counter, e.staff,
               CASE WHEN e.type IN {sql_list(_SERVICE_READ)} THEN e.{TICKET_SERVICE} END
                   AS service,
               CASE WHEN e.type = '{TRANSFERRED}' THEN e.{_FROM_SERVICE} END AS from_service,
               CASE WHEN e.type = '{TRANSFERRED}' THEN e.{_FROM_COUNTER} END AS from_counter,
               CASE WHEN e.type = '{RATED}' THEN CAST(e.{_SCORE} AS int) END AS score
        FROM branch_events e
        WHERE e.branch = :branch AND e.type IN {sql_list(_STORY)}
          AND e.at >= :lookback AND e.at < :horizon
    ),
    told AS MATERIALIZED (
        SELECT s.seq, s.type, s.at, s.ticket_id, s.counter, s.staff, s.service,
               s.from_service, s.from_counter,
               bool_or(s.type = '{ISSUED}') OVER whole AS whole_story,
               max(s.at) FILTER (WHERE s.type = '{ISSUED}') OVER whole AS issued_at,
               max(s.score) OVER whole AS rating,
               max(s.seq) FILTER (WHERE s.type = '{REQUEUED}') OVER whole AS last_requeue,
               count(*) FILTER (WHERE s.type = '{CALLED}') OVER before AS calls_before,
               max(ARRAY[s.seq, CAST(extract(epoch FROM s.at) * 1000000 AS bigint)])
                   FILTER (WHERE s.type IN {sql_list(_VISIT_STARTS)}) OVER before AS visit
        FROM story s
        WINDOW whole AS (PARTITION BY s.ticket_id),
               before AS (PARTITION BY s.ticket_id ORDER BY s.seq
                          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
    ),
    -- the ends of visits at a counter, with where the visit began
    visits AS MATERIALIZED (
        SELECT x.type, x.at, x.counter, x.staff, x.service, x.from_service, x.from_counter,
               CASE WHEN x.whole_story
                    THEN timestamptz 'epoch' + x.visit[2] * interval '1 microsecond'
                    ELSE {_VISIT_START_IN_HISTORY} END AS visit_at,
               CASE WHEN x.whole_story THEN x.rating ELSE {_RATING_IN_TICKETS} END AS rating
        FROM told x
        WHERE x.type IN {sql_list(_VISIT_ENDS)}
    )
"""

# The facts of the window, one row each: issues, first calls, completions, final no-shows,
# cancels, transfers away, and the expiries of the window's tickets; each on its business day.
# A first call of a ticket whose quote was kept (app/accuracy) carries the quote's error
# (actual - quoted) and whether the wait fell inside the quoted range.
_FACTS_CTES = f"""
    facts AS (
        SELECT 'issued' AS kind, t.issued_service AS service, NULL::text AS counter,
               NULL::text AS staff, t.issued_at AS at, t.business_date AS day,
               NULL::float8 AS wait_s, NULL::float8 AS service_s, NULL::int AS rating,
               NULL::float8 AS error_s, NULL::bool AS in_range
        FROM tickets t
        WHERE t.branch = :branch AND t.business_date BETWEEN :first AND :last
        UNION ALL
        -- first calls (the waits), under the type the ticket was issued for: no transfer can
        -- come before a ticket's first call, so the call's type is that one
        SELECT 'called', x.service, x.counter, x.staff, x.at, NULL, w.wait_s, NULL, NULL,
               w.wait_s - q.quoted_s, w.wait_s BETWEEN q.low_s AND q.high_s
        FROM told x
        CROSS JOIN LATERAL (
            SELECT extract(epoch FROM x.at - CASE WHEN x.whole_story THEN x.issued_at
                                                  ELSE {_ISSUED_AT_IN_TICKETS} END)::float8
                AS wait_s
        ) AS w
        LEFT JOIN estimate_quotes q ON q.ticket_id = x.ticket_id
        WHERE x.type = '{CALLED}' AND x.at >= :start AND x.at < :end
          AND CASE WHEN x.whole_story THEN x.calls_before = 0 ELSE NOT {_EARLIER_CALL} END
        UNION ALL
        -- a no-show counts once it is final: the customer was not re-queued afterwards
        SELECT 'no_show', x.service, x.counter, x.staff, x.at, NULL, NULL, NULL, NULL, NULL,
               NULL
        FROM told x
        WHERE x.type = '{NO_SHOW}' AND x.at >= :start AND x.at < :end
          AND CASE WHEN x.whole_story THEN coalesce(x.last_requeue < x.seq, true)
                   ELSE NOT {_REQUEUED_IN_HISTORY} END
        UNION ALL
        SELECT 'served', v.service, v.counter, v.staff, v.at, NULL, NULL,
               extract(epoch FROM v.at - v.visit_at)::float8, v.rating, NULL, NULL
        FROM visits v
        WHERE v.type = '{COMPLETED}' AND v.at >= :start AND v.at < :end
        UNION ALL
        -- transferred away from this type, counter and clerk
        SELECT 'transferred', v.from_service, v.from_counter, v.staff, v.at, NULL, NULL, NULL,
               NULL, NULL, NULL
        FROM visits v
        WHERE v.type = '{TRANSFERRED}' AND v.at >= :start AND v.at < :end
        UNION ALL
        -- cancelled under the type it was waiting for; never at a counter
        SELECT 'cancelled', e.{TICKET_SERVICE}, NULL, NULL, e.at, NULL, NULL, NULL, NULL, NULL,
               NULL
        FROM branch_events e
        WHERE e.branch = :branch AND e.type = '{EventType.TICKET_CANCELLED}'
          AND e.at >= :start AND e.at < :end
        UNION ALL
        -- expired at a close-out, on the day it was issued; a no-show that expired ended as a
        -- no-show and counts there
        SELECT 'expired', e.{TICKET_SERVICE}, e.counter, e.staff, e.at, t.business_date,
               NULL, NULL, NULL, NULL, NULL
        FROM branch_events e
        JOIN tickets t ON t.id = e.ticket_id
        WHERE e.branch = :branch AND e.type = '{EventType.TICKET_EXPIRED}'
          AND e.at >= :start  -- never before its issue: keeps to ix_branch_events_branch_type_at
          AND t.business_date BETWEEN :first AND :last
          AND e.{_EXPIRED_FROM} <> '{TicketStatus.NO_SHOW}'
    ),
    located AS (
        SELECT x.kind, x.service, x.counter, x.staff, x.wait_s, x.service_s, x.rating,
               x.error_s, x.in_range, coalesce(x.day, {_EVENT_DAY}) AS day,
               extract(hour FROM x.at AT TIME ZONE b.timezone)::int AS hour
        FROM facts x
        CROSS JOIN (SELECT timezone, day_starts_at FROM branches WHERE code = :branch) b
    ),
    -- Per day: per business type, and per counter and clerk split by business type (so that
    -- the share within target can use each type's current target), plus the local hours.
    -- The waits go along, sorted, for the percentile of any run of days.
    counted AS (
        SELECT day,
            CASE WHEN GROUPING(counter) = 0 THEN 'counter'
                 WHEN GROUPING(staff) = 0 THEN 'staff'
                 WHEN GROUPING(hour) = 0 THEN 'hour'
                 ELSE 'service' END AS scope,
            CASE WHEN GROUPING(counter) = 0 THEN counter
                 WHEN GROUPING(staff) = 0 THEN staff
                 WHEN GROUPING(hour) = 0 THEN hour::text
                 ELSE service END AS code,
            CASE WHEN GROUPING(hour) = 0 THEN '' ELSE service END AS service,
            count(*) FILTER (WHERE kind = 'issued') AS issued,
            count(*) FILTER (WHERE kind = 'called') AS called,
            count(*) FILTER (WHERE kind = 'served') AS served,
            count(*) FILTER (WHERE kind = 'no_show') AS no_show,
            count(*) FILTER (WHERE kind = 'cancelled') AS cancelled,
            count(*) FILTER (WHERE kind = 'transferred') AS transferred,
            count(*) FILTER (WHERE kind = 'expired') AS expired,
            coalesce(array_agg(wait_s ORDER BY wait_s) FILTER (WHERE wait_s IS NOT NULL),
                     ARRAY[]::float8[]) AS waits,
            coalesce(sum(service_s), 0)::float8 AS service_sum,
            count(service_s) AS service_n,
            coalesce(sum(rating), 0) AS rating_sum,
            count(rating) AS ratings,
            count(*) FILTER (WHERE rating >= 4) AS satisfied,
            count(error_s) AS estimates,
            coalesce(sum(abs(error_s)), 0)::float8 AS estimate_abs_error_s,
            coalesce(sum(error_s), 0)::float8 AS estimate_error_s,
            count(*) FILTER (WHERE in_range) AS estimate_in_range
        FROM located
        GROUP BY GROUPING SETS ((day, service), (day, counter, service), (day, staff, service),
                                (day, hour))
    )
"""

# Time at the counters, per day: per counter and per clerk signed in there, the spans of each
# state (from its counter.changed events, starting from the state it was in when the window
# began, cut at the business days' boundaries and clipped to now), and per counter the time a
# customer was at it while it was open (visit start -> completion or transfer away).
_SPAN_FIRST_DAY = f"CAST({Schedule.business_date_sql('b', 'x.s')} AS timestamp)"
# The end of a span is not in it: a span that ends at midnight touches one day.
_SPAN_END = "x.e - interval '1 microsecond'"
_SPAN_LAST_DAY = f"CAST({Schedule.business_date_sql('b', _SPAN_END)} AS timestamp)"
_TIME_CTES = f"""
    days AS (
        SELECT CAST(g AS date) AS day,
               {Schedule.day_start_sql("b", "CAST(g AS date)")} AS ds,
               {Schedule.day_start_sql("b", "CAST(g AS date) + 1")} AS de
        FROM generate_series(CAST(:first AS timestamp), CAST(:last AS timestamp),
                             interval '1 day') AS g
        CROSS JOIN (SELECT timezone, day_starts_at FROM branches WHERE code = :branch) b
    ),
    states AS (
        SELECT c.code AS counter, before.seq, before.at, before.state, before.clerk
        FROM counters c
        CROSS JOIN LATERAL (
            SELECT e.seq, e.at, e.{_COUNTER_STATE} AS state, e.{_COUNTER_STAFF} AS clerk
            FROM branch_events e
            WHERE e.branch = c.branch AND e.type = '{EventType.COUNTER_CHANGED}'
              AND e.counter = c.code
              AND e.at < :start
            ORDER BY e.at DESC, e.seq DESC LIMIT 1
        ) before
        WHERE c.branch = :branch
        UNION ALL
        SELECT e.counter, e.seq, e.at, e.{_COUNTER_STATE}, e.{_COUNTER_STAFF}
        FROM branch_events e
        WHERE e.branch = :branch AND e.type = '{EventType.COUNTER_CHANGED}'
          AND e.at >= :start AND e.at < :end
    ),
    spans AS (
        SELECT counter, state, clerk, greatest(at, :start) AS s,
               least(coalesce(lead(at) OVER (PARTITION BY counter ORDER BY seq), :until),
                     :until) AS e
        FROM states
    ),
    -- each span cut at the days' boundaries: joined to the days it touches, found by
    -- equality (a range join would compare every span with every day)
    day_spans AS (
        SELECT d.day, x.counter, x.state, x.clerk,
               greatest(x.s, d.ds) AS s, least(x.e, d.de) AS e
        FROM spans x
        CROSS JOIN (SELECT timezone, day_starts_at FROM branches WHERE code = :branch) b
        CROSS JOIN LATERAL generate_series({_SPAN_FIRST_DAY}, {_SPAN_LAST_DAY},
                                           interval '1 day') AS touched
        JOIN days d ON d.day = CAST(touched AS date)
        WHERE x.e > x.s
    ),
    open_time AS (
        SELECT day, counter, range_agg(tstzrange(s, e)) AS open
        FROM day_spans WHERE state IN {sql_list(_OPEN)} AND e > s
        GROUP BY day, counter
    ),
    busy AS (
        SELECT d.day, x.counter,
               range_agg(tstzrange(greatest(x.s, d.ds), least(x.e, d.de))) AS busy
        FROM (
            SELECT v.counter, greatest(v.visit_at, :start) AS s, least(v.at, :until) AS e
            FROM visits v
            WHERE v.at > :start AND v.visit_at IS NOT NULL
        ) AS x
        CROSS JOIN (SELECT timezone, day_starts_at FROM branches WHERE code = :branch) b
        CROSS JOIN LATERAL generate_series({_SPAN_FIRST_DAY}, {_SPAN_LAST_DAY},
                                           interval '1 day') AS touched
        JOIN days d ON d.day = CAST(touched AS date)
        WHERE x.e > x.s
        GROUP BY d.day, x.counter
    ),
    timed AS (
        SELECT o.day, 'counter' AS scope, o.counter AS code,
               (SELECT coalesce(sum(extract(epoch FROM upper(r) - lower(r))), 0)::float8
                FROM unnest(o.open) AS r) AS open_s,
               (SELECT coalesce(sum(extract(epoch FROM upper(r) - lower(r))), 0)::float8
                FROM unnest(o.open * b.busy) AS r) AS serving_s,
               0::float8 AS signed_in_s, 0::float8 AS paused_s
        FROM open_time o LEFT JOIN busy b USING (day, counter)
        UNION ALL
        SELECT day, 'staff', clerk, 0, 0,
               coalesce(sum(extract(epoch FROM e - s))
                        FILTER (WHERE state IN {sql_list(_SIGNED_IN)}), 0)::float8,
               coalesce(sum(extract(epoch FROM e - s))
                        FILTER (WHERE state = '{CounterState.PAUSED}'), 0)::float8
        FROM day_spans WHERE clerk IS NOT NULL
        GROUP BY day, clerk
    )
"""

# What `DAY_PARTS_SQL` answers, in this order: the columns of `report_rollups` too.
PART_COLUMNS = (
    "day",
    "scope",
    "code",
    "service",
    "issued",
    "called",
    "served",
    "no_show",
    "cancelled",
    "transferred",
    "expired",
    "waits",
    "service_sum",
    "service_n",
    "rating_sum",
    "ratings",
    "satisfied",
    "open_s",
    "serving_s",
    "signed_in_s",
    "paused_s",
    "estimates",
    "estimate_abs_error_s",
    "estimate_error_s",
    "estimate_in_range",
)

# The additive parts of the figures of every business day of the window, by scope (service,
# counter, staff, hour), code and business type; time at the counters comes in rows of its
# own, with business type ''. One statement, so that the window's story is read once.
_PARTS_SELECT = """
    SELECT day, scope, code, service, issued, called, served, no_show, cancelled, transferred,
           expired, waits, service_sum, service_n, rating_sum, ratings, satisfied,
           0::float8 AS open_s, 0::float8 AS serving_s, 0::float8 AS signed_in_s,
           0::float8 AS paused_s, estimates, estimate_abs_error_s, estimate_error_s,
           estimate_in_range
    FROM counted
    WHERE code IS NOT NULL
    UNION ALL
    SELECT day, scope, code, '', 0, 0, 0, 0, 0, 0, 0, ARRAY[]::float8[], 0, 0, 0, 0, 0,
           open_s, serving_s, signed_in_s, paused_s, 0, 0, 0, 0
    FROM timed
"""
DAY_PARTS_SQL = text(f"WITH {_STORY_CTES}, {_FACTS_CTES}, {_TIME_CTES} {_PARTS_SELECT}")

# The same parts written to the rollups (app/reports/rollups.py) without leaving the server;
# the hours are the daily report's curve only, always computed afresh.
_COLUMNS = ", ".join(PART_COLUMNS)
ROLLUP_SQL = text(
    f"""
    WITH {_STORY_CTES}, {_FACTS_CTES}, {_TIME_CTES}
    INSERT INTO report_rollups (branch, {_COLUMNS})
    SELECT :branch, {_COLUMNS} FROM ({_PARTS_SELECT}) AS parts
    WHERE scope <> 'hour'
    ON CONFLICT DO NOTHING
    """
)


@dataclass(frozen=True)
class Window:
    """Business days `first` to `last` of a branch: from the start of the first to the start
    of the day after the last. `until` = min(end, now): open spans and visits still going on are
    counted up to here (events themselves are taken from the whole window: none can be later
    than now)."""

    first: date
    last: date
    start: datetime
    end: datetime
    until: datetime

    @classmethod
    def of(cls, first: date, last: date, schedule: Schedule, now: datetime) -> Window:
        start = schedule.day_start(first)
        end = schedule.day_start(last + timedelta(days=1))
        return cls(first, last, start, end, min(end, now))

    def params(self, branch: str) -> dict[str, Any]:
        return {
            "branch": branch,
            "first": self.first,
            "last": self.last,
            "start": self.start,
            "end": self.end,
            "until": self.until,
            # A ticket's story is read from a day before the window (its issue and calls come on
            # its own business day) to a day after it (a visit at a counter ends, and a no-show
            # is re-queued, at most that late); `_STORY_CTES` looks further for older tickets.
            "lookback": self.start - timedelta(days=1),
            "horizon": self.end + timedelta(days=1),
        }


async def day_parts(session: AsyncSession, branch: str, window: Window) -> list[Any]:
    """The parts of the figures of every day of `window`, computed from the history now."""
    # A long window's story is sorted in memory, not on disk: the setting ends with the
    # caller's transaction.
    await session.execute(text("SET LOCAL work_mem = '256MB'"))
    return list((await session.execute(DAY_PARTS_SQL, window.params(branch))).all())

"""`next` as one statement (`next_sql`), run on its own and autocommitted, as issuing is: the
counter's row and the branch row are locked only while it runs, never across a round trip to a
busy Python process. How it is used: next_call.py; why: docs/decisions.md, "next in one round
trip".

In order:
- `locked`, `current`: the counter, with its branch, and its current ticket, each locked (and
  read as last committed: a row lock re-reads the row);
- `verdict`, `go`: may this principal press `next` here, is the counter open, is what Python
  rendered the call from (the counter's name and profile, the branch's grace and announcement
  settings: `CallConfig`) still true, and is the current ticket visible to this statement's
  snapshot. Unless all hold nothing is written, and the row says which did not;
- `completed`: the current ticket, if called or serving, is done;
- `picked`, `claimed`: the calling order's pick and claim (app/queue/ordering.py, its own SQL);
- `moved`: the counter's current ticket and call count;
- `happened`, `event_seqs`, `logged`: ticket.completed, ticket.called and counter.changed with
  their data built here from what only the statement knows (app/events/service.py:
  `append_events_sql`). The call's words come pre-rendered with the number left open
  (app/counters/announcement.py: `CallPattern`); the audio's version is hashed here;
- `counters_after`: the counters as the call leaves them (its own write in place of the row it
  changed, which the snapshot still shows as it was);
- `after`: whether the statement's snapshot saw everything committed before its own commit (no
  event seq was handed out between them); only then are the tickets its call brought near
  read here, by the near check's own SQL over the waiting tickets but the one it called, and
  `counters_after` (app/queue/near.py: `near_front_cte`): what a read after the commit would
  find. The hall
  for their estimates is read after the commit, only when there are any (next_call.py).
  `near_count` says how many there are to a caller that reads no JSON (the benchmark's
  pgbench).
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

from sqlalchemy import TextClause, text

from app.accuracy.service import keep_first_call_sql
from app.core.partitions import from_week_sql
from app.core.vocabulary import CounterState, TicketStatus
from app.counters.announcement import announcement_sql
from app.events.catalog import EventType
from app.events.service import append_events_sql
from app.queue.near import NEAR_BRANCH_CTE, UNTOLD_JSON, near_front_cte
from app.queue.ordering import TYPE_CUTOFFS_CTE, claim_picked_sql, pick_next_cte

NOW = "CAST(:now AS timestamptz)"
# Who the history names: the acting staff member, else the clerk signed in here.
_STAFF = "(SELECT coalesce(CAST(:principal_staff AS text), staff) FROM locked)"
_CALL_MAY_COMPLETE = f"('{TicketStatus.CALLED}', '{TicketStatus.SERVING}')"


def seconds_sql(interval: str) -> str:
    """`round(interval.total_seconds(), 3)` as Python writes it in JSON: up to three decimals,
    and one for whole seconds ("12.0"). (Python rounds the float, PostgreSQL the exact value:
    they can differ by 0.001 s for a time on a half millisecond.)"""
    rounded = f"round(extract(epoch FROM {interval}), 3)"
    whole = f"round({rounded}, 1)"
    return f"CASE WHEN {rounded} = trunc({rounded}) THEN {whole} ELSE trim_scale({rounded}) END"


def ticket_ref_sql(t: str) -> str:
    """`TicketRef` of the ticket row `t` as jsonb."""
    return (
        f"jsonb_build_object('id', {t}.id, 'number', {t}.number, 'service', {t}.service,"
        f" 'priority', {t}.priority)"
    )


def counter_view_sql(c: str, current: str) -> str:
    """`CounterView` of the counter row `c` as jsonb; `current` is the ticket row its current
    ticket is read from (none: null)."""
    fields = "'id', cur.id, 'number', cur.number, 'service', cur.service, 'priority', cur.priority"
    current_json = f"(SELECT jsonb_build_object({fields}, 'status', cur.status) FROM {current} cur)"  # noqa: S608
    return (
        f"jsonb_build_object('code', {c}.code, 'name', {c}.name, 'state', {c}.state,"
        f" 'services', to_jsonb({c}.services), 'staff', {c}.staff, 'current', {current_json})"
    )


_COUNTER_REF = "jsonb_build_object('code', CAST(:counter AS text), 'name', locked.name)"
_HAPPENED = f"""
    happened AS (
        SELECT 1 AS k, '{EventType.TICKET_COMPLETED}' AS type, completed.id AS ticket_id,
               jsonb_build_object(
                   'ticket', {ticket_ref_sql("completed")}, 'counter', {_COUNTER_REF},
                   'service_s', {seconds_sql(f"{NOW} - completed.served_at")}) AS data
        FROM completed, locked
        UNION ALL
        SELECT 2, '{EventType.TICKET_CALLED}', claimed.id,
               jsonb_build_object(
                   'ticket', {ticket_ref_sql("claimed")}, 'counter', {_COUNTER_REF},
                   'announcement', {announcement_sql("claimed.number")},
                   'wait_s', {seconds_sql(f"{NOW} - claimed.issued_at")}, 'picked', false)
        FROM claimed, locked
        UNION ALL
        SELECT 3, '{EventType.COUNTER_CHANGED}', NULL,
               jsonb_build_object('counter', {counter_view_sql("moved", "claimed")})
        FROM moved
    )"""  # noqa: S608 - constant fragments
_LOG = append_events_sql(
    branch=":branch",
    count="(SELECT count(*) FROM happened)",
    when="EXISTS (SELECT FROM go)",
    rows=f"""
        SELECT row_number() OVER (ORDER BY k), type, {NOW}, ticket_id, CAST(:counter AS text),
               {_STAFF}, data
        FROM happened""",  # noqa: S608 - a constant fragment
)


# The queue as the call leaves it, for the near check's read of the front after it: the
# statement's snapshot does not show its own writes. Of the tickets it changed only the one it
# claimed was waiting (`_TAKEN`: the front passes over it); the counter it moved is read from
# its RETURNING in place of the table's row (`counters_after`). These are the statement's only
# writes to the two tables; a new one must be accounted for here (tests/test_next_statement.py
# compares the front with a read after).
_PROFILE = "CAST(:profile AS text[])"
_TAKEN = "t.id IN (SELECT id FROM claimed UNION ALL SELECT id FROM completed)"
_COUNTERS_AFTER = """
    counters_after AS NOT MATERIALIZED (
        SELECT * FROM counters
        WHERE NOT (branch = :branch AND code = :counter AND EXISTS (SELECT FROM moved))
        UNION ALL SELECT * FROM moved
    )"""


@lru_cache(maxsize=4)
def next_sql(week: date | None) -> TextClause:
    """`next` planned over the tickets partitions from `week` on (`live_week` of the call's
    time), or over every week (None). A counter whose current ticket is older than `week`
    makes the statement write nothing (`current_planned` false); next_call.py then runs it
    over every week. Cached: one text per week, prepared once per connection."""
    return text(_next_sql_text(week))


def _next_sql_text(week: date | None) -> str:
    return f"""
    WITH {NEAR_BRANCH_CTE},
    {TYPE_CUTOFFS_CTE},
    seen AS MATERIALIZED (SELECT event_seq FROM branches WHERE code = :branch),
    locked AS MATERIALIZED (
        SELECT c.name, c.state, c.services, c.staff, c.current_ticket_id,
               c.current_business_date, b.requeue_after,
               b.announcement_zh, b.announcement_en, b.announcement_mode, b.announcement_rate
        FROM counters c JOIN branches b ON b.code = c.branch
        WHERE c.branch = :branch AND c.code = :counter
        FOR UPDATE OF c
    ),
    -- The current ticket, by its primary key: the one partition its date names.
    current AS MATERIALIZED (
        SELECT t.id, t.business_date, t.status FROM tickets t
        WHERE t.id = (SELECT current_ticket_id FROM locked)
          AND t.business_date = (SELECT current_business_date FROM locked)
          AND {from_week_sql("t.business_date", week)}
        FOR UPDATE OF t
    ),
    verdict AS MATERIALIZED (
        SELECT l.name = :counter_name AND l.services = CAST(:profile AS text[])
               AND l.requeue_after = :requeue_after
               AND l.announcement_zh IS NOT DISTINCT FROM CAST(:zh_template AS text)
               AND l.announcement_en IS NOT DISTINCT FROM CAST(:en_template AS text)
               AND l.announcement_mode = :mode AND l.announcement_rate = :rate AS config_ok,
               coalesce(:any_counter OR (l.staff = CAST(:clerk AS text)
                                         AND l.state <> '{CounterState.CLOSED}'), false)
                 AS operator_ok,
               l.state = '{CounterState.OPEN}' AS state_ok,
               l.current_ticket_id IS NULL OR EXISTS (SELECT FROM current) AS current_seen,
               l.current_business_date IS NULL
                 OR {from_week_sql("l.current_business_date", week)} AS current_planned
        FROM locked l
    ),
    go AS MATERIALIZED (
        SELECT FROM verdict
        WHERE config_ok AND operator_ok AND state_ok AND current_seen AND current_planned
    ),
    -- By the key's values (not a join), so that only the current ticket's partition is read.
    completed AS (
        UPDATE tickets SET
            status = '{TicketStatus.DONE}',
            served_at = coalesce(tickets.served_at, tickets.last_called_at, {NOW}),
            finished_at = {NOW}
        WHERE tickets.id = (SELECT id FROM current WHERE status IN {_CALL_MAY_COMPLETE})
          AND tickets.business_date = (SELECT business_date FROM current)
          AND {from_week_sql("tickets.business_date", week)}
          AND EXISTS (SELECT FROM go)
        RETURNING tickets.*
    ),
    {pick_next_cte(when="EXISTS (SELECT FROM go)", week=week)},
    claimed AS ({claim_picked_sql(staff=_STAFF, week=week)} RETURNING tickets.*),
    -- A first call's wait, kept beside the ticket's quote (app/accuracy/service.py).
    kept AS ({keep_first_call_sql("claimed")}),
    moved AS (
        UPDATE counters SET
            current_ticket_id = (SELECT id FROM claimed),
            current_business_date = (SELECT business_date FROM claimed),
            calls = counters.calls + (SELECT count(*) FROM claimed),
            updated_at = {NOW}
        FROM go
        WHERE counters.branch = :branch AND counters.code = :counter
        RETURNING counters.*
    ),
    {_HAPPENED},
    {_LOG},
    {_COUNTERS_AFTER},
    {near_front_cte(_PROFILE, taken=_TAKEN, counters="counters_after", week=week)},
    after AS MATERIALIZED (
        SELECT fresh,
               CASE WHEN fresh AND EXISTS (SELECT FROM claimed) THEN {UNTOLD_JSON} END AS untold
        FROM (SELECT (SELECT event_seq FROM seen) = (SELECT before FROM event_seqs) AS fresh)
             AS f
    )
    SELECT claimed.*,
           locked.name IS NOT NULL AS counter_found, locked.name AS counter_name,
           locked.state AS counter_state, locked.services AS counter_services,
           locked.staff AS counter_staff, locked.requeue_after AS branch_requeue_after,
           locked.announcement_zh AS branch_zh, locked.announcement_en AS branch_en,
           locked.announcement_mode AS branch_mode, locked.announcement_rate AS branch_rate,
           verdict.config_ok, verdict.operator_ok, verdict.state_ok, verdict.current_seen,
           verdict.current_planned,
           (SELECT array_agg(seq ORDER BY seq) FROM logged) AS logged_seqs,
           (SELECT array_agg(envelope ORDER BY seq) FROM logged) AS logged_envelopes,
           after.fresh, after.untold,
           coalesce(json_array_length(after.untold), 0) AS near_count
    FROM (SELECT) AS one
    LEFT JOIN locked ON TRUE
    LEFT JOIN verdict ON TRUE
    LEFT JOIN claimed ON TRUE
    CROSS JOIN after
    """  # noqa: S608 - constant fragments; every value is a bound parameter

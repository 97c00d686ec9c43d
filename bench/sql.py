"""The SQL the benchmark runs directly: pgbench scripts (the raw-database reference) and fast
bulk loads (a pre-filled queue for B2, a million tickets of history for B5).

The pgbench scripts do what hallq's transactions do, statement for statement where it matters:
`PICK_NEXT_SQL` is taken verbatim from app/queue/ordering.py (SQLAlchemy's `:name` parameters are
pgbench's `:name` variables), the sequence upsert and the event insert are the same statements as
in app/tickets/issuing.py and app/events/service.py. Two variants of each:

- `core`: only the writes that make the operation (what a hand-written service would send);
  the ratio to it is printed beside each figure.
- `full`: every statement hallq sends for one request, verbatim but for its parameters: for
  issuing `issue_sql`, for `next` `next_sql` and, as hallq decides from its answer, the near
  statements of app/queue/near_after_commit.py; hallq's token and configuration reads come
  from its cache. The gap between `full` and hallq is hallq's own CPU (Python, HTTP, JSON), the
  gap between `core` and `full` is the cost of hallq's statements over the bare writes.

Both notify their events after the commit with hallq's own statement (app/events/notifier.py:
`notify_sql`, autocommitted, without waiting for a WAL flush): the event insert returns the
notification payload, and that statement NOTIFYs it. hallq sends the notifications of many
requests in one such statement; here every pgbench transaction sends its own, so the reference
does a little more than hallq there.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from app.core.partitions import live_week
from app.counters.announcement import AUDIO_FORMAT, NUMBER_MARK, VERSION_MARK
from app.counters.next_statement import next_sql
from app.events.notifier import CHANNEL, notify_sql
from app.events.service import append_events_sql
from app.queue.estimate import RATE_WINDOW_S
from app.queue.near_after_commit import NEAR_TELL_SQL, near_read_sql
from app.queue.ordering import PICK_NEXT_SQL
from app.queue.service import hall_sql
from app.tickets.issuing import issue_sql, issue_week

SERVICES = ("a", "b", "v")  # prefixes A, B, V
_RATE_WINDOW_S = str(RATE_WINDOW_S)  # the hall read's window for arrival rates


def number_sql(service: str, seq: str) -> str:
    """`A001`: the prefix and at least 3 digits, as `issue_sql` (app/tickets/issuing.py)."""
    return (
        f"upper({service}) || CASE WHEN {seq} < 1000 THEN lpad(CAST({seq} AS text), 3, '0')"
        f" ELSE CAST({seq} AS text) END"
    )


def one_line(sql: str) -> str:
    """pgbench reads a meta-command's SQL (here `\\gset`) from one line: the SQL without its
    `--` comments (they would comment out the rest of the line), on one line."""
    return " ".join(re.sub(r"--[^\n]*", "", sql).split())


def notify_lines(payloads: str) -> list[str]:
    """hallq's post-commit notification of `payloads` (SQL for a text[] of pgbench variables)."""
    return [notify_sql(f"'{CHANNEL}'", payloads) + ";"]


NOTIFY_ONE = notify_lines("ARRAY[CAST(:notification AS text)]")


# -- B1: issuing -----------------------------------------------------------------------------

# pgbench expressions of the drawn business type and priority (85% normal, 10% vip, 5% special).
_ISSUE_SERVICE = "(ARRAY['a','b','v'])[:s]"
_ISSUE_PRIORITY = "CASE WHEN :pr <= 17 THEN 'normal' WHEN :pr <= 19 THEN 'vip' ELSE 'special' END"


def issue_script(*, prefix: str, branches: int, full: bool) -> str:
    """One ticket issued at a random branch `<prefix>01..` and business type, by one of 1,000
    kiosk tokens. Variable: day (the business date).

    `core`: the sequence upsert, the ticket insert and the event insert, in a transaction.
    `full`: hallq's own issuing statement, autocommitted as hallq runs it (`issue_sql` of this
    week, verbatim but for its parameters: the per-token count, the key claim, the three writes
    and the hall read for the position and estimate); hallq's token and configuration reads
    come from its cache, so it sends nothing else."""
    branch = f"'{prefix}' || lpad(CAST(:b AS text), 2, '0')"
    draws = _issue_draws(branches)
    if full:
        # Autocommitted, as hallq runs it: no BEGIN/COMMIT.
        lines = [*draws, _full_issue_statement(branch), *NOTIFY_ONE]
    else:
        lines = [*draws, "BEGIN;", *_core_issue_writes(branch), "COMMIT;", *NOTIFY_ONE]
    return "\n".join(lines) + "\n"


def _issue_draws(branches: int) -> list[str]:
    """The pgbench variables one issue draws: branch, business type, priority, kiosk token and
    idempotency key."""
    return [
        f"\\set b random(1, {branches})",
        "\\set s random(1, 3)",
        "\\set pr random(1, 20)",
        "\\set kiosk random(1, 1000)",
        "\\set key random(1, 1000000000000)",
    ]


def _full_issue_statement(branch: str) -> str:
    """`issue_sql` of this week with pgbench expressions for its parameters, on one line for
    `\\gset`."""
    service, priority = _ISSUE_SERVICE, _ISSUE_PRIORITY
    values = {
        "branch": branch,
        "service": service,
        "priority": priority,
        "business_date": ":day",
        "ticket_id": "gen_random_uuid()",
        "code": "substr(md5(CAST(random() AS text)), 1, 20)",  # the ticket's public key
        "prefix": f"upper({service})",
        "channel": "'kiosk'",
        "phone": "NULL",
        "now": "now()",
        "idempotency_key": "'k' || CAST(:key AS text)",  # one per press, like the kiosk page
        "token_id": "'pgbench-kiosk-' || CAST(:kiosk AS text)",
        "window_start": "date_trunc('minute', now())",
        "per_minute": "60",
        "n": "50",  # the estimate's history (HALLQ_ESTIMATE_HISTORY)
        "rate_window_s": _RATE_WINDOW_S,
        # The event data as hallq encodes it before the number is known.
        "event_data": "jsonb_build_object('ticket', jsonb_build_object('id', 'x', 'number',"
        f" NULL, 'service', {service}, 'priority', {priority}, 'channel', 'kiosk',"
        " 'issued_at', now()))",
    }
    now = datetime.now(UTC)
    # The UTC date: never after the bench branches' business date (Asia/Shanghai).
    issuing = issue_sql(issue_week(now, now.date())).text
    statement = re.sub(r"(?<!:):([a-z_]+)\b", lambda m: f"({values[m[1]]})", issuing)
    return one_line(statement) + " \\gset"


def _core_issue_writes(branch: str) -> list[str]:
    """The three writes of an issue, as a hand-written service would send them."""
    service, priority = _ISSUE_SERVICE, _ISSUE_PRIORITY
    return [
        # the sequence upsert
        "INSERT INTO ticket_sequences AS seqs (branch, service, business_date, last_value)"
        f" VALUES ({branch}, {service}, CAST(:day AS date), 1)"
        " ON CONFLICT (branch, service, business_date)"
        " DO UPDATE SET last_value = seqs.last_value + 1"
        " RETURNING last_value AS seq \\gset",
        # the ticket insert (ON CONFLICT on the idempotency key, unique per business date:
        # docs/partitioning.md; RETURNING the row)
        "INSERT INTO tickets (id, branch, service, issued_service, business_date, seq, number,"
        " priority, channel, status, issued_at, lane, queued_at)"
        f" VALUES (gen_random_uuid(), {branch}, {service}, {service}, CAST(:day AS date), :seq,"
        f" {number_sql(service, ':seq')}, {priority}, 'kiosk', 'waiting', now(), 1, now())"
        " ON CONFLICT (branch, idempotency_key, business_date) WHERE idempotency_key IS NOT NULL"
        " DO NOTHING"
        " RETURNING id AS tid, number AS num, priority AS prio, service AS svc \\gset",
        # record_events(): the branch row's event_seq and the event row, in one statement
        one_line(
            "WITH "
            + append_events_sql(
                branch=branch,
                count="1",
                rows="SELECT 1, 'ticket.issued', now(), CAST(:tid AS uuid), NULL, NULL,"
                " jsonb_build_object('ticket', jsonb_build_object('id', CAST(:tid AS text),"
                " 'number', CAST(:num AS text), 'service', CAST(:svc AS text),"
                " 'priority', CAST(:prio AS text), 'channel', 'kiosk', 'issued_at', now()))",
            )
            + " SELECT envelope AS notification FROM logged \\gset"
        ),
    ]


# -- B2: next ----------------------------------------------------------------------------------


def _pick_next_sql() -> str:
    sql = PICK_NEXT_SQL.text
    # `:now` is the transaction's now() in pgbench (hallq passes its clock's time).
    return one_line(sql.replace("CAST(:now AS timestamptz)", "now()").replace(":now", "now()"))


def next_script(*, full: bool) -> str:
    """One `next` at counter <client_id + 1> of branch :branch, clerk s<counter>.

    `core`: the essential pick-and-claim, as a hand-written service would send it: lock the
    counter, complete its current ticket, pick-and-claim, update the counter, record the three
    events (ticket.completed, ticket.called, counter.changed), in a transaction.
    `full`: hallq's own statements, autocommitted as hallq runs them (app/counters/next_call.py):
    `next_sql`, then, as hallq decides from its answer, the hall read (`hall_sql`) and
    `NEAR_TELL_SQL` when its call brought tickets near, or `near_read_sql` (and
    `NEAR_TELL_SQL` if it finds any) when a change committed while it ran. Verbatim but for
    their parameters; the near events carry a fixed estimate where hallq computes one in
    Python."""
    if full:
        # Each way ends with one notification of the events it wrote (hallq's notifier may send
        # a call's and its near events in one batch or two).
        call = notify_lines("CAST(:logged_envelopes AS text[])")
        both = notify_lines(
            "CAST(:logged_envelopes AS text[]) || CAST(NULLIF(:t_logged_envelopes, '') AS text[])"
        )
        lines = ["\\set counter :client_id + 1", _full_next_statement() + " \\gset"]
        lines += ["\\if :fresh", "\\if :near_count > 0", _hall_read(), _tell(":untold"), *both]
        lines += ["\\else"]
        lines += [*call, "\\endif", "\\else", _near_read() + " \\gset r_"]
        lines += ["\\if :r_near_count > 0", _tell(":r_untold"), *both, "\\else", *call]
        lines += ["\\endif", "\\endif"]
        return "\n".join(lines) + "\n"
    lines = ["\\set counter :client_id + 1", "BEGIN;"]
    lines.append(
        "SELECT services AS profile, staff, coalesce(CAST(current_ticket_id AS text), '') AS cur,"
        " coalesce(CAST(current_business_date AS text), '') AS cur_date,"
        " calls FROM counters WHERE branch = :branch AND code = CAST(:counter AS text)"
        " FOR UPDATE \\gset"
    )
    lines += [
        "UPDATE tickets SET status = 'done', served_at = coalesce(served_at, last_called_at),"
        " finished_at = now() WHERE id = CAST(NULLIF(:cur, '') AS uuid)"
        " AND business_date = CAST(NULLIF(:cur_date, '') AS date);",
        _pick_next_sql().replace(
            "SELECT called.* FROM called",
            "SELECT called.id AS picked, called.business_date AS picked_date,"
            " called.number AS num, called.service AS svc,"
            " called.priority AS prio FROM called",
        )
        + " \\gset",
        "UPDATE counters SET current_ticket_id = CAST(:picked AS uuid),"
        " current_business_date = CAST(:picked_date AS date), calls = :calls + 1,"
        " updated_at = now() WHERE branch = :branch AND code = CAST(:counter AS text);",
        one_line(
            "WITH "
            + append_events_sql(branch=":branch", count="3", rows=_NEXT_EVENTS)
            + " SELECT array_agg(envelope ORDER BY seq) AS notifications FROM logged \\gset"
        ),
        "COMMIT;",
        *notify_lines("CAST(:notifications AS text[])"),
    ]
    return "\n".join(lines) + "\n"


def _with_values(sql: str, values: dict[str, str]) -> str:
    """`sql` with each `:name` parameter replaced by the pgbench expression `values[name]`,
    on one line."""
    return one_line(re.sub(r"(?<!:):([a-z_]+)\b", lambda m: f"({values[m[1]]})", sql))


# The call's words, with the number left open as hallq renders them for a counter named as its
# code (app/counters/announcement.py: `call_pattern`), by the branch's default templates.
_MARK = f"chr({ord(NUMBER_MARK)})"
_ZH = f"'请' || {_MARK} || '号到' || CAST(:counter AS text) || '号窗口办理'"
_EN = f"'Ticket ' || {_MARK} || ', please go to counter ' || CAST(:counter AS text)"


def _full_next_statement() -> str:
    """`next_sql` of this week with pgbench expressions for its parameters. hallq passes the
    counter's name and profile from its cache; here they are read from the row."""
    counter = "CAST(:counter AS text)"
    row = f"FROM counters WHERE branch = :branch AND code = {counter}"
    values = {
        "branch": ":branch",
        "counter": counter,
        "now": "now()",
        "counter_name": f"SELECT name {row}",
        "profile": f"SELECT services {row}",
        "requeue_after": ":requeue_after",
        "zh_template": "NULL",
        "en_template": "NULL",
        "mode": "'auto'",
        "rate": "1.0",
        "any_counter": "false",
        "clerk": f"'s' || {counter}",
        "principal_staff": f"'s' || {counter}",
        "zh_words": _ZH,
        "en_words": _EN,
        "audio_path": f"'/api/v1/branches/' || :branch || '/announcements/' || {_MARK} || '/'"
        f" || {counter} || '/' || chr({ord(VERSION_MARK)}) || '.wav'",
        "audio_material": f'\'["{AUDIO_FORMAT}", "\' || {_ZH} || \'", "\' || {_EN}'
        ' || \'", "1.00"]\'',
        "number_mark": _MARK,
        "version_mark": f"chr({ord(VERSION_MARK)})",
    }
    return _with_values(next_sql(live_week(datetime.now(UTC))).text, values)


# The hall read's parameters (app/queue/service.py: `hall_params`).
_HALL_VALUES = {
    "branch": ":branch",
    "now": "now()",
    "n": "50",
    "rate_window_s": _RATE_WINDOW_S,
    "ticket_id": "NULL",
}


def _hall_read() -> str:
    """`hall_sql` of this week, the hall read for the near estimates (its answer is not used
    here)."""
    return _with_values(hall_sql(live_week(datetime.now(UTC))).text, _HALL_VALUES) + ";"


def _near_read() -> str:
    """`near_read_sql` of this week for the counter's types."""
    values = {
        **_HALL_VALUES,
        "services": "SELECT services FROM counters WHERE branch = :branch"
        " AND code = CAST(:counter AS text)",
    }
    return _with_values(near_read_sql(live_week(datetime.now(UTC))).text, values)


def _tell(untold: str) -> str:
    """`NEAR_TELL_SQL` for the tickets of an `untold` JSON variable, \\gset with prefix t_."""
    each = f"FROM json_array_elements(CAST({untold} AS json)) AS j"
    data = (
        "CAST(json_build_object('ticket', json_build_object('id', j->>0, 'number', j->>1,"
        " 'service', j->>2, 'priority', j->>3), 'waiting_ahead', CAST(j->>4 AS int),"
        " 'estimated_wait_s', 600) AS text)"
    )
    values = {
        "branch": ":branch",
        "now": "now()",
        "ids": f"SELECT array_agg(CAST(j->>0 AS uuid)) {each}",
        "datas": f"SELECT array_agg({data}) {each}",
    }
    return _with_values(NEAR_TELL_SQL.text, values) + " \\gset t_"


# The three events of a `next` (ticket.completed, ticket.called, counter.changed).
_NEXT_EVENTS = (
    "SELECT e.ord, e.type, now(), e.ticket_id, CAST(:counter AS text), CAST(:staff AS text),"
    " e.data FROM (VALUES"
    " (1, 'ticket.completed', CAST(NULLIF(:cur, '') AS uuid),"
    "  jsonb_build_object('ticket', jsonb_build_object('id', CAST(:cur AS text)))),"
    " (2, 'ticket.called', CAST(:picked AS uuid), jsonb_build_object("
    "  'ticket', jsonb_build_object('id', CAST(:picked AS text), 'number', CAST(:num AS text),"
    "  'service', CAST(:svc AS text), 'priority', CAST(:prio AS text)),"
    "  'counter', jsonb_build_object('code', CAST(:counter AS text), 'name', 'x'),"
    "  'announcement', jsonb_build_object('zh', '请' || CAST(:num AS text) || '号到窗口办理',"
    "  'en', 'Ticket ' || CAST(:num AS text) || ', please go to the counter'))),"
    " (3, 'counter.changed', NULL, jsonb_build_object('counter', jsonb_build_object("
    "  'code', CAST(:counter AS text), 'state', 'open', 'current', CAST(:picked AS text)))))"
    " AS e(ord, type, ticket_id, data)"
)


# -- bulk loads --------------------------------------------------------------------------------


def prefill_queue_sql(count: int) -> str:
    """`count` waiting tickets in branch $1 for business date $2, issued over the half hour
    before $3: 60% a, 30% b, 10% v; 5% special, 10% vip. Numbers go on from the branch's."""
    n = int(count)
    issued = f"CAST($3 AS timestamptz) - make_interval(secs => 1800.0 * ({n} - i) / {n})"
    return f"""
    WITH g AS (
        SELECT i,
               CASE WHEN i % 10 < 6 THEN 'a' WHEN i % 10 < 9 THEN 'b' ELSE 'v' END AS svc,
               CASE WHEN i % 20 = 0 THEN 'special' WHEN i % 10 = 5 THEN 'vip'
                    ELSE 'normal' END AS prio
        FROM generate_series(1, {n}) AS i
    ), numbered AS (
        SELECT i, svc, prio,
               row_number() OVER (PARTITION BY svc ORDER BY i)
               + coalesce((SELECT max(seq) FROM tickets t WHERE t.branch = $1
                           AND t.issued_service = g.svc AND t.business_date = $2), 0) AS seq
        FROM g
    )
    INSERT INTO tickets (id, branch, service, issued_service, business_date, seq, number,
                         priority, channel, status, issued_at, lane, queued_at)
    SELECT gen_random_uuid(), $1, svc, svc, $2, seq, {number_sql("svc", "seq")}, prio, 'kiosk',
           'waiting', {issued}, 1, {issued}
    FROM numbered
    """


SEQUENCES_FROM_TICKETS_SQL = """
    INSERT INTO ticket_sequences (branch, service, business_date, last_value)
    SELECT branch, issued_service, business_date, max(seq) FROM tickets WHERE branch = $1
    GROUP BY branch, issued_service, business_date
    ON CONFLICT (branch, service, business_date)
    DO UPDATE SET last_value = greatest(ticket_sequences.last_value, excluded.last_value)
"""


def history_tickets_sql(count: int, per_day: int) -> str:
    """`count` finished tickets of branch $1 on the `ceil(count / per_day)` business days that
    end with $2 (a date): 93% done, 7% no-show, served at counters 1-5 between 09:00 and 17:00
    Asia/Shanghai. Ids are md5($3:g) ($3 names the chunk), so the events can refer to them."""
    days = -(-count // per_day)
    return f"""
    INSERT INTO tickets (id, branch, service, issued_service, business_date, seq, number,
                         priority, channel, status, issued_at, lane, queued_at, counter, staff,
                         called_at, last_called_at, served_at, finished_at)
    SELECT CAST(md5($3 || ':' || g) AS uuid), $1, svc, svc, day, seq,
           {number_sql("svc", "seq")}, prio, 'kiosk', status, issued, 1, issued, ctr, 's' || ctr,
           issued + make_interval(secs => wait_s), issued + make_interval(secs => wait_s),
           CASE WHEN status = 'done' THEN issued + make_interval(secs => wait_s + 40) END,
           issued + make_interval(secs => wait_s + 40 + service_s)
    FROM (
        SELECT g, day, svc, k / 3 + 1 AS seq,
               CASE WHEN g % 20 = 0 THEN 'special' WHEN g % 10 = 5 THEN 'vip'
                    ELSE 'normal' END AS prio,
               CASE WHEN g % 14 = 3 THEN 'no_show' ELSE 'done' END AS status,
               (day + time '09:00') AT TIME ZONE 'Asia/Shanghai'
                   + make_interval(secs => 28800.0 * k / {per_day}) AS issued,
               CAST(1 + g % 5 AS text) AS ctr,
               60 + (CAST(g AS bigint) * 7919) % 900 AS wait_s,
               120 + (CAST(g AS bigint) * 104729) % 480 AS service_s
        FROM generate_series(0, {int(count) - 1}) AS g
        CROSS JOIN LATERAL (
            SELECT CAST($2 AS date) - ({days} - 1 - g / {per_day}) AS day,
                   g % {per_day} AS k,
                   (ARRAY['a', 'b', 'v'])[g % {per_day} % 3 + 1] AS svc
        ) AS p
    ) AS rows
    """


def history_events_sql(count: int) -> str:
    """Three events per history ticket of chunk $3 (issued, called, completed or no-show),
    numbered after $2; the caller moves the branch's event_seq past them afterwards.
    ($1, the branch, is unused here but keeps the parameters of both statements the same.)"""
    return f"""
    INSERT INTO branch_events (branch, seq, type, at, ticket_id, counter, staff, data)
    SELECT CAST($1 AS text), $2 + g * 3 + e.ord, e.type,
           CASE e.ord WHEN 1 THEN t.issued_at WHEN 2 THEN t.called_at ELSE t.finished_at END,
           t.id, CASE WHEN e.ord > 1 THEN t.counter END, CASE WHEN e.ord > 1 THEN t.staff END,
           CASE e.ord
             WHEN 1 THEN jsonb_build_object('ticket', jsonb_build_object(
                 'id', t.id, 'number', t.number, 'service', t.service, 'priority', t.priority,
                 'channel', 'kiosk', 'issued_at', t.issued_at))
             WHEN 2 THEN jsonb_build_object('ticket', jsonb_build_object(
                 'id', t.id, 'number', t.number, 'service', t.service, 'priority', t.priority),
                 'counter', jsonb_build_object('code', t.counter, 'name', t.counter),
                 'announcement', jsonb_build_object(
                     'zh', '请' || t.number || '号到' || t.counter || '号窗口办理',
                     'en', 'Ticket ' || t.number || ', please go to counter ' || t.counter),
                 'wait_s', extract(epoch FROM t.called_at - t.issued_at))
             ELSE jsonb_build_object('ticket', jsonb_build_object(
                 'id', t.id, 'number', t.number, 'service', t.service, 'priority', t.priority),
                 'counter', jsonb_build_object('code', t.counter, 'name', t.counter))
           END
    FROM generate_series(0, {int(count) - 1}) AS g
    JOIN tickets t ON t.id = CAST(md5($3 || ':' || g) AS uuid)
    CROSS JOIN LATERAL (VALUES (1, 'ticket.issued'), (2, 'ticket.called'),
        (3, CASE WHEN t.status = 'done' THEN 'ticket.completed' ELSE 'ticket.no_show' END))
        AS e(ord, type)
    """

"""The calling order: which waiting ticket a counter calls next. The rule lives here, once.

For a counter with profile [own type, fallback types...], among the waiting tickets whose type is
in the profile (and that were not transferred to another counter), the one called next is the
smallest by this key, compared left to right. Only tickets of the branch's current business day
wait: one left over from an earlier day is never called, counted or placed, even before the
close-out expires it (SPEC §5; `WAITING_FOR_TYPE` below).

1. lane: 0 front (transferred "to the front", or a re-queued no-show whose grace is over),
   1 normal, 2 re-queued no-show still held back. A re-queued no-show is held back until the
   counters serving its type have made `requeue_after` other calls since it came back, then
   goes to the front: it is called after at most `requeue_after` other tickets.
2. overdue: a ticket that has waited `max_wait_s` of its type (the starvation guard) goes before
   tickets that have not, whatever their priority class.
3. priority class: special, then vip, then normal.
4. the type's place in the counter's profile: own type before fallbacks.
5. queued_at: first come, first served. It is the issue time, or the moment of a transfer or
   re-queue (a transferred ticket keeps its number and issue time for waits and reports).
6. issued_at, then the daily number's sequence (issue order), then id, so that the order is
   total and the same in Python and in SQL.

`calling_order_key` is the readable, testable statement of the rule. `CALLING_ORDER_SQL` is the
same rule as an ORDER BY, used by `PICK_NEXT_SQL`, which chooses and claims the ticket in one
statement with FOR UPDATE SKIP LOCKED: two counters pressing next at once never get the same
ticket, and a ticket being cancelled or transferred at that instant is simply passed over.
Tests check that the SQL orders exactly as the function does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from uuid import UUID

from sqlalchemy import text

from app.accuracy.service import keep_first_call_sql
from app.branches.hours import Schedule
from app.core.partitions import from_week_sql, live_dates_sql
from app.core.vocabulary import Priority

# Priority classes, first called first.
PRIORITY_ORDER = (Priority.SPECIAL, Priority.VIP, Priority.NORMAL)
PRIORITY_RANK: dict[str, int] = {priority: rank for rank, priority in enumerate(PRIORITY_ORDER)}

LANE_FRONT = 0
LANE_NORMAL = 1
LANE_HELD = 2


@dataclass(frozen=True)
class QueuedTicket:
    """What the calling order needs to know about a waiting ticket."""

    id: UUID
    service: str
    priority: str
    lane: int
    issued_at: datetime
    queued_at: datetime
    max_wait_s: int | None  # its business type's starvation guard
    seq: int = 0  # its daily number's sequence
    target_counter: str | None = None
    # For a held re-queued ticket: calls made by the counters serving its type since re-queue.
    calls_since_requeue: int = 0


OrderKey = tuple[int, int, int, int, datetime, datetime, int, str]


def effective_lane(ticket: QueuedTicket, requeue_after: int) -> int:
    if ticket.lane == LANE_HELD and ticket.calls_since_requeue >= requeue_after:
        return LANE_FRONT
    return ticket.lane


def is_overdue(ticket: QueuedTicket, now: datetime) -> bool:
    return ticket.max_wait_s is not None and ticket.issued_at <= now - timedelta(
        seconds=ticket.max_wait_s
    )


def class_rank(lane: int, overdue: bool, priority: str) -> tuple[int, int, int]:
    """The first part of the calling order: lane, then overdue tickets, then priority class."""
    return (lane, 0 if overdue else 1, PRIORITY_RANK[priority])


Rank = tuple[int, int, int]  # class_rank: (lane, 0 if overdue else 1, priority rank)
Group = tuple[str, Rank]  # waiting tickets of one business type that share a class


def choose_group(groups: Iterable[Group], profile: Sequence[str]) -> Group | None:
    """What a counter with `profile` calls next, told by groups of waiting tickets: the group
    first by the calling order's first four parts (class, then the type's place in the
    profile); within a group, first come first served. The wait estimate's replay and the hall
    simulation (app.simulation) both call through this, so they follow the same rule as
    `calling_order_key`. None if no group is of a type in the profile."""
    best: tuple[Rank, int] | None = None
    chosen: Group | None = None
    for group in groups:
        service, rank = group
        if service in profile:
            key = (rank, profile.index(service))
            if best is None or key < best:
                best, chosen = key, group
    return chosen


def calling_order_key(
    ticket: QueuedTicket, *, now: datetime, profile: Sequence[str], requeue_after: int
) -> OrderKey:
    return (
        *class_rank(
            effective_lane(ticket, requeue_after), is_overdue(ticket, now), ticket.priority
        ),
        profile.index(ticket.service) if ticket.service in profile else len(profile),
        ticket.queued_at,
        ticket.issued_at,
        ticket.seq,
        str(ticket.id),
    )


def callable_by(ticket: QueuedTicket, counter: str, profile: Sequence[str]) -> bool:
    """A counter only calls types in its profile, and not tickets sent to another counter."""
    return ticket.service in profile and ticket.target_counter in (None, counter)


def choose_next(
    waiting: Iterable[QueuedTicket],
    *,
    counter: str,
    profile: Sequence[str],
    now: datetime,
    requeue_after: int,
) -> QueuedTicket | None:
    """The ticket `counter` calls next, or None if nobody waits for it."""
    candidates = [t for t in waiting if callable_by(t, counter, profile)]
    if not candidates:
        return None
    return min(
        candidates,
        key=lambda t: calling_order_key(t, now=now, profile=profile, requeue_after=requeue_after),
    )


# -- The same rule in SQL -----------------------------------------------------------------------
# `t` is a waiting ticket, `s` its business type. Parameters: :branch, :now, :requeue_after, and
# :profile (text[]) where the counter matters.


def _calls_by_serving_counters(counters: str) -> str:
    """Calls made by the counters that serve t's type; compared with the count when t was
    re-queued."""
    return (
        f"(SELECT coalesce(sum(c.calls), 0) FROM {counters} c"
        " WHERE c.branch = t.branch AND t.service = ANY(c.services))"
    )


def effective_lane_sql(requeue_after: str = ":requeue_after", counters: str = "counters") -> str:
    """`effective_lane` in SQL; `requeue_after` is the SQL that gives the branch's grace
    (a bound parameter by default, or e.g. a column of a joined branches row), `counters` the
    relation the calls are counted in (the table, or `next`'s counters as its call leaves them:
    app/counters/next_statement.py)."""
    return (
        f"CASE WHEN t.lane = {LANE_HELD}"
        f" AND {_calls_by_serving_counters(counters)} - t.requeue_base >= {requeue_after}"
        f" THEN {LANE_FRONT} ELSE t.lane END"
    )


EFFECTIVE_LANE_SQL = effective_lane_sql()


def type_cutoffs_cte(branches: str = "s.branch = :branch") -> str:
    """The CTE `type_cutoffs`: each business type `s` of the branches where `branches` holds
    (one branch by default), with its starvation-guard cutoff and its branch's business day.

    Every query of the calling order and of the waiting counts joins it as `tc`: a ticket
    issued at or before its type's cutoff is overdue (NULL where the type has no `max_wait_s`),
    and a ticket of an earlier business day than `tc.business_date` does not wait any more,
    even before the close-out has expired it (SPEC §5). Materialised, so that the planner never
    looks the type up once per waiting ticket (it did while the statistics lagged behind a
    fast-growing queue: docs/performance.md). Parameters: :now, and :branch by default."""
    return f"""
    type_cutoffs AS MATERIALIZED (
        SELECT s.branch, s.code,
               CASE WHEN s.max_wait_s IS NOT NULL
                    THEN CAST(:now AS timestamptz) - make_interval(secs => s.max_wait_s) END
                 AS overdue_before,
               {Schedule.business_date_sql("b")} AS business_date
        FROM services s JOIN branches b ON b.code = s.branch
        WHERE {branches}
    )"""


TYPE_CUTOFFS_CTE = type_cutoffs_cte()
# `t` waits for type `tc`: the one definition of a waiting ticket, business day included.
# The constant lower bound on the date lets PostgreSQL read only the live partitions
# (app/core/partitions.py); the type's own business date is never earlier.
WAITING_FOR_TYPE = (
    "t.branch = tc.branch AND t.service = tc.code AND t.status = 'waiting'"
    f" AND t.business_date >= tc.business_date AND {live_dates_sql('t')}"
)
TYPE_CUTOFFS_JOIN = f"JOIN type_cutoffs tc ON {WAITING_FOR_TYPE}"
# A "plain" waiting ticket: in the normal lane and queued when it was issued (never transferred
# or re-queued). Among the plain tickets of one type and priority class the calling order is
# (issued_at, seq, id): overdue means issued at or before a cutoff, so it only puts the earlier
# issued first. The index ix_tickets_waiting_plain holds them in that order.
PLAIN_SQL = f"t.lane = {LANE_NORMAL} AND t.queued_at = t.issued_at"
NOT_PLAIN_SQL = f"(t.lane <> {LANE_NORMAL} OR t.queued_at <> t.issued_at)"
# 0 for an overdue ticket, else 1.
OVERDUE_SQL = "CASE WHEN t.issued_at <= tc.overdue_before THEN 0 ELSE 1 END"
# PRIORITY_RANK in SQL: CASE t.priority WHEN 'special' THEN 0 WHEN 'vip' THEN 1 ELSE 2 END
PRIORITY_SQL = (
    "CASE t.priority"
    + "".join(f" WHEN '{p}' THEN {PRIORITY_RANK[p]}" for p in PRIORITY_ORDER[:-1])
    + f" ELSE {PRIORITY_RANK[PRIORITY_ORDER[-1]]} END"
)


def type_front_candidates_sql(service: str, first: str, week: date | None = None) -> str:
    """The waiting tickets (rows of `tickets`) of type `service` (SQL) that can be among its
    first `first` (SQL) in calling order, whatever the counters: every one that is not plain,
    and the first `first` plain ones of each priority class (by the index, not a sort of the
    whole queue). Weeks from `week` on (`pick_next_cte`). Needs the CTE `type_cutoffs`;
    parameters :branch, :now."""
    classes = ", ".join(f"'{p}'" for p in PRIORITY_ORDER)
    return f"""
        SELECT p.*
        FROM type_cutoffs tc
        CROSS JOIN unnest(ARRAY[{classes}]) AS pc(priority)
        CROSS JOIN LATERAL (
            SELECT t.* FROM tickets t
            WHERE {WAITING_FOR_TYPE} AND t.priority = pc.priority AND {PLAIN_SQL}
              AND {from_week_sql("t.business_date", week)}
            ORDER BY t.issued_at, t.seq, t.id
            LIMIT {first}
        ) AS p
        WHERE tc.branch = :branch AND tc.code = {service}
        UNION ALL
        SELECT t.* FROM tickets t {TYPE_CUTOFFS_JOIN}
        WHERE tc.branch = :branch AND tc.code = {service} AND {NOT_PLAIN_SQL}
          AND {from_week_sql("t.business_date", week)}"""


def type_order_sql(requeue_after: str = ":requeue_after", counters: str = "counters") -> str:
    """The key without the profile position: the order within one business type.
    `requeue_after` and `counters` as for `effective_lane_sql`."""
    return (
        f"{effective_lane_sql(requeue_after, counters)}, {OVERDUE_SQL}, {PRIORITY_SQL},"
        " t.queued_at, t.issued_at, t.seq, t.id"
    )


TYPE_ORDER_SQL = type_order_sql()
CALLING_ORDER_SQL = (
    f"{EFFECTIVE_LANE_SQL}, {OVERDUE_SQL}, {PRIORITY_SQL},"
    " array_position(CAST(:profile AS text[]), t.service), t.queued_at, t.issued_at, t.seq, t.id"
)

# Choose and claim in one statement. The row lock is taken while walking the calling order, so
# the claim cannot race another counter's; rows locked by others are skipped, never waited for.
# `next` runs the same two fragments inside its own statement (app/counters/next_call.py); the
# service desk's call of a chosen ticket sets the same columns (counters/calls.py).


def pick_next_cte(when: str = "TRUE", week: date | None = None) -> str:
    """The CTE `picked`: the id of the ticket counter :counter (profile :profile) calls next,
    locked; none unless `when` (SQL) holds. Only the partitions from `week` on are planned
    (`from_week_sql`). Parameters: :branch, :counter, :profile, :now, :requeue_after, and the
    CTE `type_cutoffs`."""
    return f"""
    picked AS (
        SELECT t.id, t.business_date
        FROM tickets t
        {TYPE_CUTOFFS_JOIN}
        WHERE t.branch = :branch
          AND t.status = 'waiting'
          AND t.service = ANY(CAST(:profile AS text[]))
          AND (t.target_counter IS NULL OR t.target_counter = :counter)
          AND {when} AND {from_week_sql("t.business_date", week)}
        ORDER BY {CALLING_ORDER_SQL}
        LIMIT 1
        FOR UPDATE OF t SKIP LOCKED
    )"""


def claim_picked_sql(staff: str = ":staff", week: date | None = None) -> str:
    """The UPDATE that makes the `picked` ticket called at :counter by `staff` (SQL), without
    its RETURNING clause; `week` as for `pick_next_cte`."""
    return f"""
    UPDATE tickets SET
        status = 'called',
        counter = :counter,
        staff = {staff},
        called_at = coalesce(tickets.called_at, CAST(:now AS timestamptz)),
        last_called_at = :now,
        lane = {LANE_NORMAL},
        target_counter = NULL,
        requeue_base = NULL
    FROM picked
    WHERE tickets.id = picked.id AND tickets.business_date = picked.business_date
      AND {live_dates_sql("tickets")} AND {from_week_sql("tickets.business_date", week)}"""


# A first call's wait is kept beside the ticket's quote by the same statement
# (app/accuracy/service.py).
PICK_NEXT_SQL = text(
    f"WITH {TYPE_CUTOFFS_CTE}, {pick_next_cte()},"
    f" called AS ({claim_picked_sql()} RETURNING tickets.*),"
    f" kept AS ({keep_first_call_sql('called')})"
    " SELECT called.* FROM called"
)

# Every waiting ticket of a type, in calling order, with its 1-based position.
TYPE_POSITIONS_SQL = f"""
    SELECT t.id, row_number() OVER (ORDER BY {TYPE_ORDER_SQL}) AS position
    FROM tickets t
    {TYPE_CUTOFFS_JOIN}
    WHERE t.branch = :branch AND t.service = :service AND t.status = 'waiting'
"""

# The 1-based position of one waiting ticket within its type.
POSITION_OF_SQL = text(
    f"WITH {TYPE_CUTOFFS_CTE}"
    f" SELECT position FROM ({TYPE_POSITIONS_SQL}) AS ranked WHERE ranked.id = :ticket_id"
)

# The service desk's list of waiting tickets (SPEC §6): every waiting ticket of the branch (or of
# the type :service; NULL for all), type after type in the order of their prefixes, each type in
# calling order with its 1-based position, its effective lane and whether it is overdue (for its
# wait estimate). Built from the fragments above, so "waiting" and the order are the calling
# order's own. One page (:limit, :offset) of ticket rows, each with the total; an empty page is
# one row with the total and no ticket. Parameters: :branch, :now, :requeue_after, :service,
# :limit, :offset.
WAITING_PAGE_SQL = text(
    f"""
    WITH {TYPE_CUTOFFS_CTE},
    ranked AS (
        SELECT t.id, t.service,
               row_number() OVER (PARTITION BY t.service ORDER BY {TYPE_ORDER_SQL}) AS position,
               {EFFECTIVE_LANE_SQL} AS lane,
               {OVERDUE_SQL} = 0 AS overdue
        FROM tickets t
        {TYPE_CUTOFFS_JOIN}
        WHERE t.branch = :branch AND t.status = 'waiting'
          AND (CAST(:service AS text) IS NULL OR t.service = CAST(:service AS text))
    ),
    page AS (
        SELECT r.id, r.position, r.lane, r.overdue,
               row_number() OVER (ORDER BY svc.prefix, svc.code, r.position) AS ord
        FROM ranked r
        JOIN services svc ON svc.branch = :branch AND svc.code = r.service
        ORDER BY ord
        LIMIT :limit OFFSET :offset
    )
    SELECT t.*, page.position, page.lane AS effective_lane, page.overdue, total.total
    FROM (SELECT count(*) AS total FROM ranked) AS total
    LEFT JOIN page ON TRUE
    LEFT JOIN tickets t ON t.id = page.id AND {live_dates_sql("t")}
    ORDER BY page.ord
    """
)

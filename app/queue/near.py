"""Turn is near (SPEC §9): `ticket.near` once per ticket, computed where the queue changes.

A waiting ticket is near when at most the branch's `notify_ahead` tickets of its business type
are ahead of it in calling order (its `waiting_ahead`, the position the API shows, minus one).
Only the first `notify_ahead + 1` tickets of a type in calling order can be near, so after a
change to a type's queue (a call, a cancel, a transfer into it, a re-queue, a priority change,
an issue that lands near the front) `NEAR_SQL` reads just those, with the calling order's own
SQL and a LIMIT (a bounded top-N sort over the type's waiting rows, as `next`'s pick does), and
marks the ones not marked before (`tickets.near_notified_at`). Nothing is computed per waiting
ticket, and nothing at all for a change that leaves the front of the queue alone except that one
bounded read.

Exactly once, and none missed under concurrent changes:
- it runs after the transaction's own events are recorded, so it holds the branch row lock
  (app/events/service.py) and its statement sees everything the branch's earlier writers
  committed: two counters calling at once take turns here, and the second one sees the first's
  call, so a ticket that moved up two places is seen by one of them;
- the mark is `UPDATE ... WHERE near_notified_at IS NULL` on rows claimed `FOR UPDATE SKIP
  LOCKED`: a row another transaction holds is passed over (that transaction removes it from the
  queue, or changes it and runs this check itself when it reaches the branch lock), so this
  never waits for a ticket lock while holding the branch row (locks stay counter -> tickets ->
  branch row for everyone else).
Time alone also reorders a queue (the starvation guard makes a ticket overdue): such a ticket is
marked at the next change of its type. `next`, one statement, checks after its commit instead
(near_after_commit.py). Details: docs/phone.md, docs/decisions.md.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.partitions import live_dates_sql
from app.core.settings import Settings
from app.core.vocabulary import Priority
from app.events.catalog import TicketNear, TicketRef
from app.events.service import NewEvent, record_events
from app.queue.estimate import Hall, Place, estimate_wait_s
from app.queue.ordering import (
    OVERDUE_SQL,
    PRIORITY_SQL,
    TYPE_CUTOFFS_CTE,
    TYPE_CUTOFFS_JOIN,
    effective_lane_sql,
    type_front_candidates_sql,
    type_order_sql,
)
from app.queue.service import load_hall

NEAR_BRANCH_CTE = """
    near_branch AS MATERIALIZED (
        SELECT notify_ahead, requeue_after FROM branches WHERE code = :branch
    )"""
_REQUEUE_AFTER = "(SELECT requeue_after FROM near_branch)"
_FRONT = "coalesce((SELECT notify_ahead + 1 FROM near_branch), 0)"  # tickets near, per type


def near_front_cte(
    services: str = "CAST(:services AS text[])",
    *,
    taken: str = "FALSE",
    counters: str = "counters",
    week: date | None = None,
) -> str:
    """The CTE `front`: the first `notify_ahead + 1` waiting tickets of each type in
    `services` (SQL for a text[]), in calling order (`type_order_sql`, limited: a bounded sort),
    numbered within the type by the same key's parts (`ahead`). Only the tickets that can be in
    a type's front are sorted (`type_front_candidates_sql`). `next` passes the queue as its
    call leaves it (app/counters/next_statement.py): `taken`, SQL true of a ticket its
    statement took out of the queue (which its snapshot still shows waiting: one more of each
    class is read for it), and `counters`, the counters' relation with its own change. Needs
    the CTEs `near_branch` and `type_cutoffs`; parameters :branch and :now; `week` as for
    `pick_next_cte`."""
    candidates = type_front_candidates_sql("svc.code", f"{_FRONT} + 1", week)
    return f"""
    front AS MATERIALIZED (
        SELECT top.id, top.number, top.service, top.priority, top.near_notified_at, top.lane,
               top.overdue,
               row_number() OVER (
                   PARTITION BY top.service
                   ORDER BY top.lane, top.overdue, top.prio, top.queued_at, top.issued_at,
                            top.seq, top.id
               ) - 1 AS ahead
        FROM unnest({services}) AS svc(code)
        CROSS JOIN LATERAL (
            SELECT t.id, t.number, t.service, t.priority, t.near_notified_at, t.queued_at,
                   t.issued_at, t.seq,
                   {effective_lane_sql(_REQUEUE_AFTER, counters)} AS lane,
                   {OVERDUE_SQL} AS overdue,
                   {PRIORITY_SQL} AS prio
            FROM ({candidates}) AS t
            {TYPE_CUTOFFS_JOIN}
            WHERE t.branch = :branch AND t.service = svc.code AND t.status = 'waiting'
              AND NOT ({taken})
            ORDER BY {type_order_sql(_REQUEUE_AFTER, counters)}
            LIMIT {_FRONT}
        ) AS top
    )"""  # noqa: S608 - constant fragments


# Mark the tickets of the CTE `claimed` (ids, locked) as told, returning their ids.
MARK_CLAIMED_CTE = f"""
    marked AS (
        UPDATE tickets SET near_notified_at = CAST(:now AS timestamptz)
        FROM claimed
        WHERE tickets.id = claimed.id AND {live_dates_sql("tickets")}
        RETURNING tickets.id
    )"""  # noqa: S608 - a constant fragment

# The tickets of `front` not told yet, as JSON: [id, number, service, priority, ahead, lane,
# overdue] each, by type and place (`near_candidates` reads them).
UNTOLD_JSON = """(
    SELECT json_agg(json_build_array(f.id, f.number, f.service, f.priority, f.ahead, f.lane,
                                     f.overdue = 0)
                    ORDER BY f.service, f.ahead)
    FROM front f WHERE f.near_notified_at IS NULL)"""

# After a change to the types in `:services`: their front's tickets not yet marked are claimed
# and marked. Parameters: :branch, :now, :services (text[]). The branch's notify_ahead and
# requeue_after are read from its row, which the caller's transaction holds locked.
NEAR_SQL = text(
    f"""
    WITH {NEAR_BRANCH_CTE},
    {TYPE_CUTOFFS_CTE},
    {near_front_cte()},
    claimed AS (
        -- By primary key, a handful of rows. No status test here: `front` read waiting tickets,
        -- and while this transaction holds the branch row nobody commits a change of status
        -- (every such change records its event under that lock first); a row someone is
        -- changing now is locked, and skipped.
        SELECT t.id FROM front JOIN tickets t ON t.id = front.id AND {live_dates_sql("t")}
        WHERE front.near_notified_at IS NULL AND t.near_notified_at IS NULL
        FOR UPDATE OF t SKIP LOCKED
    ),
    {MARK_CLAIMED_CTE}
    SELECT front.id, front.number, front.service, front.priority,
           front.ahead, front.lane, front.overdue = 0 AS overdue
    FROM marked JOIN front ON front.id = marked.id
    ORDER BY front.service, front.ahead
    """  # noqa: S608 - constant fragments; every value is a bound parameter
)

LOCK_BRANCH_SQL = text("SELECT 1 FROM branches WHERE code = :branch FOR NO KEY UPDATE")


@dataclass(frozen=True)
class NearTicket:
    """A waiting ticket now near and not told yet: who it is and its place in its type."""

    ref: TicketRef
    place: Place

    def event(self, hall: Hall) -> NewEvent:
        """Its `ticket.near`, the estimate from `hall` (as the ticket's API view gives it)."""
        data = TicketNear(
            ticket=self.ref,
            waiting_ahead=self.place.ahead,
            estimated_wait_s=estimate_wait_s(hall, self.place),
        )
        return NewEvent(data, ticket_id=self.ref.id)


def near_ticket(
    ticket_id: uuid.UUID | str,
    number: str,
    service: str,
    priority: str,
    ahead: int,
    lane: int,
    overdue: bool,
) -> NearTicket:
    """A `NearTicket` from a row of `NEAR_SQL` or an item of `UNTOLD_JSON`."""
    ref = TicketRef(
        id=uuid.UUID(str(ticket_id)), number=number, service=service, priority=Priority(priority)
    )
    place = Place(
        service=service, ahead=int(ahead), priority=priority, lane=int(lane), overdue=bool(overdue)
    )
    return NearTicket(ref, place)


def untold(value: Any) -> list[NearTicket]:
    """The tickets of an `UNTOLD_JSON` column (NULL: none)."""
    if value is None:
        return []
    items = json.loads(value) if isinstance(value, str) else value
    return [near_ticket(*item) for item in items]


async def lock_branch(session: AsyncSession, branch: str) -> None:
    """Take the branch row lock as `record_events` does, for a transaction that records no
    other event before `record_near`."""
    await session.execute(LOCK_BRANCH_SQL, {"branch": branch})


async def record_near(
    session: AsyncSession,
    branch: str,
    services: Iterable[str],
    now: datetime,
    settings: Settings,
) -> list[int]:
    """Mark the waiting tickets of `services` that are near and not marked yet, and record a
    `ticket.near` for each. Call it after this transaction's `record_events` (or `lock_branch`):
    it relies on holding the branch row. Returns the events' seqs."""
    codes = sorted(set(services))
    if not codes:
        return []
    rows = (
        await session.execute(NEAR_SQL, {"branch": branch, "now": now, "services": codes})
    ).all()
    if not rows:
        return []
    hall = (await load_hall(session, branch, now, settings)).hall
    events = [near_ticket(*row).event(hall) for row in rows]
    return await record_events(session, branch, now, events)

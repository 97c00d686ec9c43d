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
marked at the next change of its type. Details: docs/phone.md, docs/decisions.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from app.core.vocabulary import Priority
from app.events.catalog import TicketNear, TicketRef
from app.events.service import NewEvent, record_events
from app.queue.estimate import Place, estimate_wait_s
from app.queue.ordering import (
    OVERDUE_SQL,
    PRIORITY_SQL,
    TYPE_CUTOFFS_CTE,
    TYPE_CUTOFFS_JOIN,
    effective_lane_sql,
    type_order_sql,
)
from app.queue.service import load_hall

_REQUEUE_AFTER = "(SELECT requeue_after FROM near_branch)"
# The first `notify_ahead + 1` waiting tickets of each type in `:services`, in calling order
# (`type_order_sql`, limited: a bounded sort), numbered within the type by the same key's
# parts; those not yet marked are claimed and marked.
# Parameters: :branch, :now, :services (text[]). The branch's notify_ahead and requeue_after
# are read from its row, which the caller's transaction holds locked.
NEAR_SQL = text(
    f"""
    WITH near_branch AS MATERIALIZED (
        SELECT notify_ahead, requeue_after FROM branches WHERE code = :branch
    ),
    {TYPE_CUTOFFS_CTE},
    front AS MATERIALIZED (
        SELECT top.id, top.near_notified_at, top.lane, top.overdue,
               row_number() OVER (
                   PARTITION BY top.service
                   ORDER BY top.lane, top.overdue, top.prio, top.queued_at, top.issued_at,
                            top.seq, top.id
               ) - 1 AS ahead
        FROM unnest(CAST(:services AS text[])) AS svc(code)
        CROSS JOIN LATERAL (
            SELECT t.id, t.service, t.near_notified_at, t.queued_at, t.issued_at, t.seq,
                   {effective_lane_sql(_REQUEUE_AFTER)} AS lane,
                   {OVERDUE_SQL} AS overdue,
                   {PRIORITY_SQL} AS prio
            FROM tickets t
            {TYPE_CUTOFFS_JOIN}
            WHERE t.branch = :branch AND t.service = svc.code AND t.status = 'waiting'
            ORDER BY {type_order_sql(_REQUEUE_AFTER)}
            LIMIT coalesce((SELECT notify_ahead + 1 FROM near_branch), 0)
        ) AS top
    ),
    claimed AS (
        -- By primary key, a handful of rows. No status test here: `front` read waiting tickets,
        -- and while this transaction holds the branch row nobody commits a change of status
        -- (every such change records its event under that lock first); a row someone is
        -- changing now is locked, and skipped.
        SELECT t.id FROM front JOIN tickets t ON t.id = front.id
        WHERE front.near_notified_at IS NULL AND t.near_notified_at IS NULL
        FOR UPDATE OF t SKIP LOCKED
    ),
    marked AS (
        UPDATE tickets SET near_notified_at = CAST(:now AS timestamptz)
        FROM claimed
        WHERE tickets.id = claimed.id
        RETURNING tickets.id, tickets.number, tickets.service, tickets.priority
    )
    SELECT marked.id, marked.number, marked.service, marked.priority,
           front.ahead, front.lane, front.overdue = 0 AS overdue
    FROM marked JOIN front ON front.id = marked.id
    ORDER BY marked.service, front.ahead
    """  # noqa: S608 - constant fragments; every value is a bound parameter
)

LOCK_BRANCH_SQL = text("SELECT 1 FROM branches WHERE code = :branch FOR NO KEY UPDATE")


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
    loaded = await load_hall(session, branch, now, settings)
    events = []
    for row in rows:
        place = Place(
            service=row.service,
            ahead=int(row.ahead),
            priority=row.priority,
            lane=int(row.lane),
            overdue=bool(row.overdue),
        )
        ref = TicketRef(
            id=row.id, number=row.number, service=row.service, priority=Priority(row.priority)
        )
        events.append(
            NewEvent(
                TicketNear(
                    ticket=ref,
                    waiting_ahead=place.ahead,
                    estimated_wait_s=estimate_wait_s(loaded.hall, place),
                ),
                ticket_id=row.id,
            )
        )
    return await record_events(session, branch, now, events)

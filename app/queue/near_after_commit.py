"""Turn is near, checked after the change committed: for `next`, which makes its call in one
autocommitted statement (app/counters/next_call.py), and tells the tickets its call brought near
in two more, only when there are any: the hall read for their estimates, and the telling.

`record_near` (near.py) runs inside the changing transaction, after its `record_events`: holding
the branch row, its read sees everything committed before it. Here the change is committed
already, so what the check needs is a read whose snapshot comes after that commit: either the
changing statement's own read, when it knows that nothing else committed between its snapshot and
its commit (its caller's business: `next` compares the branch's event seq), or `near_read_sql`,
run after it. Then `NEAR_TELL_SQL` marks those still waiting and untold and records their
`ticket.near` with the estimates computed here from the hall read after the commit
(`near_read_sql`'s own, or `hall_after_commit`'s): never a hall patched to look as it will.

A crash between the change and the telling leaves those tickets untold until the next change of
their type, as for a ticket that time alone brings near (docs/decisions.md, "next in one round
trip"). Exactly once holds as before: the mark is claimed under the row lock
(`near_notified_at IS NULL`, `FOR UPDATE SKIP LOCKED`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from functools import cache

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.database import execute_alone
from app.core.partitions import live_dates_sql, live_week
from app.core.settings import Settings
from app.events.catalog import EventType, encode_data
from app.events.notifier import notify_after_commit
from app.events.service import append_events_sql
from app.queue.estimate import Hall
from app.queue.near import (
    MARK_CLAIMED_CTE,
    NEAR_BRANCH_CTE,
    UNTOLD_JSON,
    NearTicket,
    near_front_cte,
    untold,
)
from app.queue.service import HALL_CTE, hall_columns, hall_from_row, hall_params, hall_sql


# The untold front of the types in :services (`untold`, and how many: `near_count`) and, only
# if there are any, the hall for their estimates (`hall_columns`, NULL otherwise). Reads only.
# Parameters: :branch, :now, :services (text[]), :ticket_id (NULL), :n. Over the tickets
# partitions from `week` on (`live_week` of :now), as `hall_sql`: one text per week.
@cache
def near_read_sql(week: date | None) -> TextClause:
    return text(
        f"""
    WITH {NEAR_BRANCH_CTE},
    {HALL_CTE},
    {near_front_cte(week=week)}
    SELECT untold.tickets AS untold, coalesce(json_array_length(untold.tickets), 0) AS near_count,
           hall.*
    FROM (SELECT {UNTOLD_JSON} AS tickets) AS untold
    LEFT JOIN LATERAL (
        SELECT {hall_columns(week)} WHERE untold.tickets IS NOT NULL
        OFFSET 0  -- not pulled up into the join: the hall is read only where the filter holds
    ) AS hall ON TRUE
    """  # noqa: S608 - constant fragments; every value is a bound parameter
    )


# Tell the tickets :ids (uuid[]) with the `ticket.near` data :datas (text[], the same order):
# those still waiting and untold are claimed, marked and their events appended, in the given
# order; the others are left alone (called meanwhile, or told by a concurrent check). Returns
# the events' seqs and envelopes (one row of two arrays, NULL if none was told). Parameters:
# :branch, :now, :ids, :datas.
_LOG_TOLD = append_events_sql(
    branch=":branch",
    count="(SELECT count(*) FROM marked)",
    when="EXISTS (SELECT FROM marked)",
    rows=f"""
        SELECT row_number() OVER (ORDER BY told.ord), '{EventType.TICKET_NEAR}',
               CAST(:now AS timestamptz), told.id, NULL, NULL, CAST(told.data AS jsonb)
        FROM told JOIN marked ON marked.id = told.id""",  # noqa: S608 - a constant fragment
)
NEAR_TELL_SQL = text(
    f"""
    WITH told AS (
        SELECT g.id, g.data, g.ord
        FROM unnest(CAST(:ids AS uuid[]), CAST(:datas AS text[])) WITH ORDINALITY
             AS g(id, data, ord)
    ),
    claimed AS (
        SELECT t.id FROM told JOIN tickets t ON t.id = told.id AND {live_dates_sql("t")}
        WHERE t.branch = :branch AND t.status = 'waiting' AND t.near_notified_at IS NULL
        FOR UPDATE OF t SKIP LOCKED
    ),
    {MARK_CLAIMED_CTE},
    {_LOG_TOLD}
    SELECT array_agg(seq ORDER BY seq) AS logged_seqs,
           array_agg(envelope ORDER BY seq) AS logged_envelopes
    FROM logged
    """  # noqa: S608 - constant fragments; every value is a bound parameter
)


def tell_params(
    branch: str, now: datetime, near: list[NearTicket], hall: Hall
) -> dict[str, object]:
    """`NEAR_TELL_SQL`'s parameters: each ticket with its event's data."""
    return {
        "branch": branch,
        "now": now,
        "ids": [ticket.ref.id for ticket in near],
        "datas": [encode_data(ticket.event(hall).data) for ticket in near],
    }


async def tell_near(
    session: AsyncSession,
    branch: str,
    now: datetime,
    near: list[NearTicket],
    hall: Hall,
    settings: Settings,
) -> None:
    """Mark and tell `near` (those still waiting and untold), in a statement of its own."""
    if not near:
        return
    params = tell_params(branch, now, near, hall)
    row = (await execute_alone(session, NEAR_TELL_SQL, params, settings))[0]
    logged = zip(row.logged_seqs or [], row.logged_envelopes or [], strict=True)
    notify_after_commit(session, branch, list(logged))
    await session.commit()


async def hall_after_commit(
    session: AsyncSession, branch: str, now: datetime, settings: Settings
) -> Hall:
    """The hall for the estimates of tickets a committed change brought near: `hall_sql`
    of the live week, in a statement of its own (one round trip)."""
    statement, params = hall_sql(live_week(now)), hall_params(branch, now, settings)
    row = (await execute_alone(session, statement, params, settings))[0]
    await session.commit()
    return hall_from_row(row, settings).hall


async def check_near(
    session: AsyncSession,
    branch: str,
    services: Iterable[str],
    now: datetime,
    settings: Settings,
) -> None:
    """The near check after a committed change of `services`' queues: read their untold
    front (with the hall, if any is untold), then tell them."""
    params = {**hall_params(branch, now, settings), "services": sorted(set(services))}
    statement = near_read_sql(live_week(now))
    row = (await execute_alone(session, statement, params, settings))[0]
    await session.commit()
    near = untold(row.untold)
    if near:
        await tell_near(session, branch, now, near, hall_from_row(row, settings).hall, settings)

"""Where a ticket stands: its position and estimated wait, from the hall read in one round trip."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any, Protocol

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.partitions import from_week_sql, live_dates_sql, live_week, recent_dates_sql
from app.core.settings import Settings
from app.queue.estimate import (
    RATE_WINDOW_S,
    CounterNow,
    Hall,
    Issued,
    Place,
    TypeHistory,
    WaitEstimate,
    WaitingGroup,
    estimate_wait,
)
from app.queue.ordering import (
    OVERDUE_SQL,
    POSITION_OF_SQL,
    TYPE_CUTOFFS_CTE,
    TYPE_CUTOFFS_JOIN,
    class_rank,
    effective_lane_sql,
)


class WaitingTicket(Protocol):
    """What placing a ticket in the queue reads of it (a `tickets` row)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def branch(self) -> str: ...
    @property
    def service(self) -> str: ...
    @property
    def priority(self) -> str: ...
    @property
    def lane(self) -> int: ...


async def position_of(
    session: AsyncSession, ticket: WaitingTicket, now: datetime, requeue_after: int
) -> int | None:
    result = await session.execute(
        POSITION_OF_SQL,
        {
            "branch": ticket.branch,
            "service": ticket.service,
            "ticket_id": ticket.id,
            "now": now,
            "requeue_after": requeue_after,
        },
    )
    position = result.scalar_one_or_none()
    return int(position) if position is not None else None


# -- the wait estimate (app/queue/estimate.py) ---------------------------------------------------
# Everything the estimate needs, in one round trip: counters that will call again with the time
# their customer has been there, the waiting tickets grouped by their place in the calling order
# (`mine` marks the group of the ticket being estimated; `waited_s`: since its first was issued,
# exact to the microsecond, for the queue view's longest wait), the last `:n` finished tickets of
# every type (newest first, through ix_tickets_done_recent), and of its last `:n` issued tickets
# (newest first, through the unique index on the daily number) how many of each class came in
# the last `:rate_window_s`, how many were read and how far back they go. The effective lane is
# the calling order's own SQL, with the branch's `requeue_after` read from the branch row
# (`HALL_CTE`). The branch row and the business types with their overdue cutoffs (`type_cutoffs`,
# the calling order's own, also for the history) are read once, materialised, not once per
# waiting ticket. `hall_columns` is a select list, so that issuing a ticket reads the hall in its
# own statement (`next` reads it with `load_hall`, after its commit: app/counters/next_call.py).
# Parameters: :branch, :now, :ticket_id, :n, :rate_window_s. Composed from constant fragments
# only; every value is a bound parameter. `hall_columns(week)` also names the live week as a
# constant (`from_week_sql`), so that even a generic plan holds only the weeks read.
HISTORY_DAYS = 28  # the history read: this many days before the live dates
HALL_CTE = f"""
    hall_branch AS MATERIALIZED (SELECT requeue_after FROM branches WHERE code = :branch),
    {TYPE_CUTOFFS_CTE}"""  # noqa: S608 - constant fragments


def hall_columns(week: date | None) -> str:
    """The hall's select list over the tickets partitions from `week` on (`live_week` of :now;
    the history from `HISTORY_DAYS` before it), or over every week (None)."""
    history = None if week is None else week - timedelta(days=HISTORY_DAYS)
    return f"""
      (SELECT coalesce(json_agg(json_build_array(
                  c.code, c.services, t.service,
                  extract(epoch FROM CAST(:now AS timestamptz)
                                     - coalesce(t.last_called_at, t.called_at)))
              ORDER BY c.code), '[]')
       FROM counters c
       LEFT JOIN tickets t
         ON t.id = c.current_ticket_id AND t.business_date = c.current_business_date
            AND {live_dates_sql("t")} AND {from_week_sql("t.business_date", week)}
       WHERE c.branch = :branch AND c.state IN ('open', 'paused')) AS hall_counters,
      (SELECT coalesce(json_agg(json_build_array(g.service, g.lane, g.overdue, g.priority,
                                                 g.n, g.mine, g.waited_s)), '[]')
       FROM (
         SELECT t.service,
                {effective_lane_sql("hall_branch.requeue_after")} AS lane,
                {OVERDUE_SQL} = 0 AS overdue,
                t.priority, count(*) AS n,
                coalesce(bool_or(t.id = CAST(:ticket_id AS uuid)), false) AS mine,
                extract(epoch FROM CAST(:now AS timestamptz) - min(t.issued_at)) AS waited_s
         FROM tickets t
         {TYPE_CUTOFFS_JOIN}
         CROSS JOIN hall_branch
         WHERE t.branch = :branch AND t.status = 'waiting'
           AND {from_week_sql("t.business_date", week)}
         GROUP BY 1, 2, 3, 4
       ) AS g) AS hall_waiting,
      (SELECT coalesce(json_agg(json_build_array(tc.code, r.handling_s)), '[]')
       FROM type_cutoffs tc
       CROSS JOIN LATERAL (
         SELECT extract(epoch FROM t.finished_at - coalesce(t.last_called_at, t.served_at))
                  AS handling_s
         FROM tickets t
         WHERE t.branch = :branch AND t.service = tc.code AND t.status = 'done'
           AND {recent_dates_sql("t", HISTORY_DAYS)}
           AND {from_week_sql("t.business_date", history)}
         ORDER BY t.finished_at DESC
         LIMIT :n
       ) AS r) AS hall_history,
      (SELECT coalesce(json_agg(json_build_array(tc.code, i.priority, i.n, i.read, i.reach_s)),
                       '[]')
       FROM type_cutoffs tc
       CROSS JOIN LATERAL (
         SELECT r.priority, count(*) FILTER (WHERE r.age_s <= :rate_window_s) AS n,
                count(*) AS read, max(r.age_s) AS reach_s
         FROM (
           SELECT t.priority,
                  extract(epoch FROM CAST(:now AS timestamptz) - t.issued_at) AS age_s
           FROM tickets t
           WHERE t.branch = :branch AND t.issued_service = tc.code
             AND {recent_dates_sql("t", HISTORY_DAYS)}
             AND {from_week_sql("t.business_date", history)}
           ORDER BY t.business_date DESC, t.seq DESC
           LIMIT :n
         ) AS r
         GROUP BY r.priority
       ) AS i) AS hall_issued
"""  # noqa: S608


@cache
def hall_sql(week: date | None) -> TextClause:
    """The hall read over the weeks from `week` on: one text per week, prepared once per
    connection (and once more when the week turns)."""
    return text(f"WITH {HALL_CTE} SELECT {hall_columns(week)}")


@dataclass(frozen=True)
class HallNow:
    hall: Hall
    mine: tuple[int, bool] | None  # (lane, overdue) of the estimated ticket's group
    # By type with tickets waiting: seconds since the first of them was issued.
    longest_wait_s: Mapping[str, float] = field(default_factory=dict)


def _as_list(value: Any) -> list[Any]:
    return json.loads(value) if isinstance(value, str) else list(value)


def hall_from_row(row: Any, settings: Settings) -> HallNow:
    """The hall from a row carrying `hall_columns`."""
    counters = tuple(
        CounterNow(
            code=code,
            profile=tuple(profile),
            current_service=current,
            elapsed_s=max(0.0, float(elapsed)) if current is not None else 0.0,
        )
        for code, profile, current, elapsed in _as_list(row.hall_counters)
    )
    waiting = []
    mine = None
    longest: dict[str, float] = {}
    for service, lane, overdue, priority, count, is_mine, waited_s in _as_list(row.hall_waiting):
        waiting.append(WaitingGroup(service, class_rank(lane, overdue, priority), count))
        if is_mine:
            mine = (lane, overdue)
        longest[service] = max(longest.get(service, 0.0), float(waited_s))
    handling: dict[str, list[float]] = {}
    for service, handling_s in _as_list(row.hall_history):
        handling.setdefault(service, []).append(max(0.0, float(handling_s)))
    issued: dict[str, dict[str, int]] = {}
    read: dict[str, int] = {}
    reach: dict[str, float] = {}
    for service, priority, count, read_count, reach_s in _as_list(row.hall_issued):
        issued.setdefault(service, {})[priority] = int(count)
        read[service] = read.get(service, 0) + int(read_count)
        reach[service] = max(reach.get(service, 0.0), float(reach_s))
    hall = Hall(
        counters=counters,
        waiting=tuple(waiting),
        history={
            service: TypeHistory(
                tuple(handling.get(service, ())),
                Issued(
                    issued.get(service, {}),
                    reach.get(service, 0.0),
                    capped=read.get(service, 0) >= settings.estimate_history,
                ),
            )
            for service in handling.keys() | issued.keys()
        },
        default_service_s=float(settings.default_service_time_s),
    )
    return HallNow(hall, mine, longest)


def hall_params(
    branch: str, now: datetime, settings: Settings, ticket_id: uuid.UUID | None = None
) -> dict[str, Any]:
    return {
        "branch": branch,
        "now": now,
        "ticket_id": ticket_id,
        "n": settings.estimate_history,
        "rate_window_s": RATE_WINDOW_S,
    }


async def load_hall(
    session: AsyncSession,
    branch: str,
    now: datetime,
    settings: Settings,
    ticket_id: uuid.UUID | None = None,
) -> HallNow:
    statement = hall_sql(live_week(now))
    row = (await session.execute(statement, hall_params(branch, now, settings, ticket_id))).one()
    return hall_from_row(row, settings)


async def estimate_for_position(
    session: AsyncSession, ticket: WaitingTicket, position: int, now: datetime, settings: Settings
) -> WaitEstimate:
    """The estimated wait of a waiting ticket at `position` (1-based) in its type's order."""
    loaded = await load_hall(session, ticket.branch, now, settings, ticket_id=ticket.id)
    lane, overdue = loaded.mine if loaded.mine is not None else (ticket.lane, False)
    place = Place(
        service=ticket.service,
        ahead=position - 1,
        priority=ticket.priority,
        lane=lane,
        overdue=overdue,
    )
    return estimate_wait(loaded.hall, place)

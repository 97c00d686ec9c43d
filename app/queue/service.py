"""The queue as people see it: positions, estimated waits, and the branch's queue view."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts.service import active_alerts, alert_out
from app.core.settings import Settings
from app.counters.schemas import CounterOut, CurrentTicket
from app.queue.estimate import (
    CounterNow,
    Done,
    Hall,
    Place,
    TypeHistory,
    WaitingGroup,
    estimate_wait_s,
    new_ticket_place,
)
from app.queue.ordering import (
    OVERDUE_SQL,
    POSITION_OF_SQL,
    TYPE_CUTOFFS_CTE,
    TYPE_CUTOFFS_JOIN,
    class_rank,
    effective_lane_sql,
)
from app.queue.schemas import QueueView, RecentCall, ServiceQueue
from app.tickets.models import Ticket


async def position_of(
    session: AsyncSession, ticket: Ticket, now: datetime, requeue_after: int
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


_COUNTERS_WITH_CURRENT = text(
    """
    SELECT c.code, c.name, c.state, c.services, c.staff,
           t.id AS ticket_id, t.number, t.service, t.priority, t.status
    FROM counters c
    LEFT JOIN tickets t ON t.id = c.current_ticket_id
    WHERE c.branch = :branch
    """
)


def _natural(code: str) -> tuple[object, ...]:
    """Counter "2" before "10"."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", code))


async def list_counters(session: AsyncSession, branch: str) -> list[CounterOut]:
    rows = (await session.execute(_COUNTERS_WITH_CURRENT, {"branch": branch})).mappings().all()
    counters = [
        CounterOut(
            code=row["code"],
            name=row["name"],
            state=row["state"],
            services=list(row["services"]),
            staff=row["staff"],
            current=CurrentTicket(
                id=row["ticket_id"],
                number=row["number"],
                service=row["service"],
                priority=row["priority"],
                status=row["status"],
            )
            if row["ticket_id"] is not None
            else None,
        )
        for row in rows
    ]
    return sorted(counters, key=lambda c: _natural(c.code))


# -- the wait estimate (app/queue/estimate.py) ---------------------------------------------------
# Everything the estimate needs, in one round trip: counters that will call again with the time
# their customer has been there, the waiting tickets grouped by their place in the calling order
# (`mine` marks the group of the ticket being estimated), and the last `:n` finished tickets of
# every type (newest first, through ix_tickets_done_recent). The effective lane is the calling
# order's own SQL, with the branch's `requeue_after` read from the branch row (`HALL_CTE`).
# The branch row and the business types with their overdue cutoffs (`type_cutoffs`, the calling
# order's own, also for the history) are read once, materialised, not once per waiting ticket.
# `HALL_COLUMNS` is a select list, so that issuing a ticket reads the hall in its own statement.
# Parameters: :branch, :now, :ticket_id, :n. Composed from constant fragments only; every value
# is a bound parameter.
HALL_CTE = f"""
    hall_branch AS MATERIALIZED (SELECT requeue_after FROM branches WHERE code = :branch),
    {TYPE_CUTOFFS_CTE}"""  # noqa: S608 - constant fragments
HALL_COLUMNS = f"""
      (SELECT coalesce(json_agg(json_build_array(
                  c.code, c.services, t.service,
                  extract(epoch FROM CAST(:now AS timestamptz)
                                     - coalesce(t.last_called_at, t.called_at)))
              ORDER BY c.code), '[]')
       FROM counters c LEFT JOIN tickets t ON t.id = c.current_ticket_id
       WHERE c.branch = :branch AND c.state IN ('open', 'paused')) AS hall_counters,
      (SELECT coalesce(json_agg(json_build_array(g.service, g.lane, g.overdue, g.priority,
                                                 g.n, g.mine)), '[]')
       FROM (
         SELECT t.service,
                {effective_lane_sql("hall_branch.requeue_after")} AS lane,
                {OVERDUE_SQL} = 0 AS overdue,
                t.priority, count(*) AS n,
                coalesce(bool_or(t.id = CAST(:ticket_id AS uuid)), false) AS mine
         FROM tickets t
         {TYPE_CUTOFFS_JOIN}
         CROSS JOIN hall_branch
         WHERE t.branch = :branch AND t.status = 'waiting'
         GROUP BY 1, 2, 3, 4
       ) AS g) AS hall_waiting,
      (SELECT coalesce(json_agg(json_build_array(tc.code, r.handling_s, r.priority, r.age_s)),
                       '[]')
       FROM type_cutoffs tc
       CROSS JOIN LATERAL (
         SELECT extract(epoch FROM t.finished_at - coalesce(t.last_called_at, t.served_at))
                  AS handling_s,
                t.priority,
                extract(epoch FROM CAST(:now AS timestamptz) - t.finished_at) AS age_s
         FROM tickets t
         WHERE t.branch = :branch AND t.service = tc.code AND t.status = 'done'
         ORDER BY t.finished_at DESC
         LIMIT :n
       ) AS r) AS hall_history
"""  # noqa: S608
_HALL_SQL = text(f"WITH {HALL_CTE} SELECT {HALL_COLUMNS}")


@dataclass(frozen=True)
class HallNow:
    hall: Hall
    mine: tuple[int, bool] | None  # (lane, overdue) of the estimated ticket's group


def _as_list(value: Any) -> list[Any]:
    return json.loads(value) if isinstance(value, str) else list(value)


def hall_from_row(row: Any, settings: Settings) -> HallNow:
    """The hall from a row carrying `HALL_COLUMNS`."""
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
    for service, lane, overdue, priority, count, is_mine in _as_list(row.hall_waiting):
        waiting.append(WaitingGroup(service, class_rank(lane, overdue, priority), count))
        if is_mine:
            mine = (lane, overdue)
    done: dict[str, list[Done]] = {}
    for service, handling_s, priority, age_s in _as_list(row.hall_history):
        done.setdefault(service, []).append(
            Done(max(0.0, float(handling_s)), priority, max(0.0, float(age_s)))
        )
    hall = Hall(
        counters=counters,
        waiting=tuple(waiting),
        history={service: TypeHistory(tuple(items)) for service, items in done.items()},
        default_service_s=float(settings.default_service_time_s),
    )
    return HallNow(hall, mine)


def hall_params(
    branch: str, now: datetime, settings: Settings, ticket_id: uuid.UUID | None = None
) -> dict[str, Any]:
    return {"branch": branch, "now": now, "ticket_id": ticket_id, "n": settings.estimate_history}


async def load_hall(
    session: AsyncSession,
    branch: str,
    now: datetime,
    settings: Settings,
    ticket_id: uuid.UUID | None = None,
) -> HallNow:
    row = (await session.execute(_HALL_SQL, hall_params(branch, now, settings, ticket_id))).one()
    return hall_from_row(row, settings)


async def estimate_for_position(
    session: AsyncSession, ticket: Ticket, position: int, now: datetime, settings: Settings
) -> int:
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
    return estimate_wait_s(loaded.hall, place)


_WAITING_BY_SERVICE = text(
    """
    SELECT s.code, s.name, s.prefix, count(t.id) AS waiting, min(t.issued_at) AS oldest
    FROM services s
    LEFT JOIN tickets t ON t.branch = s.branch AND t.service = s.code AND t.status = 'waiting'
    WHERE s.branch = :branch
    GROUP BY s.code, s.name, s.prefix
    ORDER BY s.prefix, s.code
    """
)

_RECENT_CALLS = text(
    """
    SELECT seq, at, type, data FROM branch_events
    WHERE branch = :branch AND type IN ('ticket.called', 'ticket.recalled')
    ORDER BY seq DESC
    LIMIT :n
    """
)


async def recent_calls(session: AsyncSession, branch: str, n: int = 10) -> list[RecentCall]:
    rows = (await session.execute(_RECENT_CALLS, {"branch": branch, "n": n})).mappings().all()
    return [
        RecentCall(
            seq=row["seq"],
            at=row["at"],
            type=row["type"],
            ticket=row["data"].get("ticket", {}),
            counter=row["data"].get("counter", {}),
            announcement=row["data"].get("announcement"),
        )
        for row in rows
    ]


async def queue_view(
    session: AsyncSession, branch: str, now: datetime, settings: Settings
) -> QueueView:
    waiting_rows = (await session.execute(_WAITING_BY_SERVICE, {"branch": branch})).all()
    hall = (await load_hall(session, branch, now, settings)).hall
    counters = await list_counters(session, branch)
    services = []
    for code, name, prefix, waiting, oldest in waiting_rows:
        # The wait of a normal ticket taken now.
        services.append(
            ServiceQueue(
                service=code,
                name=name,
                prefix=prefix,
                waiting=waiting,
                longest_wait_s=max(0, int((now - oldest).total_seconds())) if oldest else 0,
                estimated_wait_s=estimate_wait_s(hall, new_ticket_place(hall, code)),
            )
        )
    return QueueView(
        branch=branch,
        services=services,
        counters=counters,
        recent_calls=await recent_calls(session, branch),
        alerts=[alert_out(alert) for alert in await active_alerts(session, branch)],
    )

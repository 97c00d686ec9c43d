"""The queue as people see it: positions, estimated waits, and the branch's queue view."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from app.counters.schemas import CounterOut, CurrentTicket
from app.queue.estimate import Capacity, estimate_wait_s
from app.queue.ordering import POSITION_OF_SQL
from app.queue.schemas import QueueView, RecentCall, ServiceQueue
from app.tickets.models import Ticket

# Counters that will call again: a paused counter comes back, a closing one does not.
SERVING_STATES = ("open", "paused")


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


_RECENT_SERVICE_TIME = text(
    """
    SELECT avg(extract(epoch FROM recent.finished_at - recent.served_at))
    FROM (
        SELECT finished_at, served_at FROM tickets
        WHERE branch = :branch AND service = :service AND status = 'done'
          AND served_at IS NOT NULL
        ORDER BY finished_at DESC
        LIMIT :n
    ) AS recent
    """
)

_SERVICE_TIMES = text(
    """
    SELECT s.code, (
        SELECT avg(extract(epoch FROM recent.finished_at - recent.served_at))
        FROM (
            SELECT finished_at, served_at FROM tickets t
            WHERE t.branch = s.branch AND t.service = s.code AND t.status = 'done'
              AND t.served_at IS NOT NULL
            ORDER BY t.finished_at DESC
            LIMIT :n
        ) AS recent
    )
    FROM services s WHERE s.branch = :branch
    """
)

_COUNTERS_WITH_CURRENT = text(
    """
    SELECT c.code, c.name, c.state, c.services, c.staff,
           t.id AS ticket_id, t.number, t.service, t.priority, t.status
    FROM counters c
    LEFT JOIN tickets t ON t.id = c.current_ticket_id
    WHERE c.branch = :branch
    """
)

_CAPACITY = text(
    """
    SELECT count(*) FILTER (WHERE state IN ('open', 'paused')),
           count(*) FILTER (WHERE state = 'open' AND current_ticket_id IS NULL)
    FROM counters
    WHERE branch = :branch AND :service = ANY(services)
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


def capacity_from_counters(
    counters: Sequence[CounterOut], service: str, service_s: float
) -> Capacity:
    serving = [c for c in counters if service in c.services and c.state in SERVING_STATES]
    free = [c for c in serving if c.state == "open" and c.current is None]
    return Capacity(counters=len(serving), free_counters=len(free), service_s=service_s)


async def estimate_for_position(
    session: AsyncSession, branch: str, service: str, position: int, settings: Settings
) -> int:
    mean = (
        await session.execute(
            _RECENT_SERVICE_TIME,
            {"branch": branch, "service": service, "n": settings.estimate_history},
        )
    ).scalar_one_or_none()
    counters, free = (
        await session.execute(_CAPACITY, {"branch": branch, "service": service})
    ).one()
    capacity = Capacity(
        counters=counters,
        free_counters=free,
        service_s=float(mean) if mean is not None else settings.default_service_time_s,
    )
    return estimate_wait_s(position - 1, capacity)


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
    service_times: dict[str, float | None] = dict(
        (
            await session.execute(
                _SERVICE_TIMES, {"branch": branch, "n": settings.estimate_history}
            )
        ).all()
    )
    counters = await list_counters(session, branch)
    services = []
    for code, name, prefix, waiting, oldest in waiting_rows:
        mean = service_times.get(code)
        capacity = capacity_from_counters(
            counters, code, float(mean) if mean is not None else settings.default_service_time_s
        )
        services.append(
            ServiceQueue(
                service=code,
                name=name,
                prefix=prefix,
                waiting=waiting,
                longest_wait_s=max(0, int((now - oldest).total_seconds())) if oldest else 0,
                estimated_wait_s=estimate_wait_s(waiting, capacity),
            )
        )
    return QueueView(
        branch=branch,
        services=services,
        counters=counters,
        recent_calls=await recent_calls(session, branch),
        alerts=[],
    )

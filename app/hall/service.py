"""The hall at a glance (the queue view): waiting per business type, counters with their
current ticket, recent calls and active alerts. Screens get it as the stream's snapshot."""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts.service import active_alerts, alert_out
from app.core.settings import Settings
from app.counters.service import list_counters
from app.events.catalog import EventType
from app.hall.schemas import QueueView, RecentCall, ServiceQueue
from app.queue.estimate import estimate_wait_s, new_ticket_place
from app.queue.service import load_hall

log = logging.getLogger("hallq.hall")

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
    WHERE branch = :branch AND type IN (:called, :recalled)
    ORDER BY seq DESC
    LIMIT :n
    """
)


async def recent_calls(session: AsyncSession, branch: str, n: int = 10) -> list[RecentCall]:
    params = {
        "branch": branch,
        "n": n,
        "called": EventType.TICKET_CALLED,
        "recalled": EventType.TICKET_RECALLED,
    }
    calls = []
    for seq, at, type_, data in await session.execute(_RECENT_CALLS, params):
        try:
            calls.append(RecentCall.model_validate({**data, "seq": seq, "at": at, "type": type_}))
        except ValidationError:
            # One unreadable record must not take the hall view (and every screen) down.
            log.warning("recent calls: event %s of branch %s is unreadable", seq, branch)
    return calls


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

"""The hall at a glance (the queue view): waiting per business type, counters with their
current ticket, recent calls, active alerts and current notices. Screens get it as the stream's
snapshot."""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts.service import active_alerts, alert_out
from app.branches.hours import Schedule
from app.core.partitions import live_dates_sql
from app.core.settings import Settings
from app.core.vocabulary import TicketStatus
from app.counters.service import list_counters
from app.events.catalog import EventType
from app.hall.schemas import QueueView, RecentCall, ServiceQueue
from app.notices.service import current_notices
from app.queue.estimate import estimate_wait, new_ticket_place
from app.queue.ordering import TYPE_CUTOFFS_CTE, WAITING_FOR_TYPE
from app.queue.service import load_hall

log = logging.getLogger("hallq.hall")

_WAITING_BY_SERVICE = text(
    f"""
    WITH {TYPE_CUTOFFS_CTE}
    SELECT s.code, s.name, s.prefix, count(t.id) AS waiting, min(t.issued_at) AS oldest
    FROM services s
    JOIN type_cutoffs tc ON tc.branch = s.branch AND tc.code = s.code
    LEFT JOIN tickets t ON {WAITING_FOR_TYPE}
    WHERE s.branch = :branch
    GROUP BY s.code, s.name, s.prefix
    ORDER BY s.prefix, s.code
    """  # noqa: S608 - constant fragments
)

# The calls of today's business day whose tickets did not expire: a screen never shows a
# number of an earlier day, nor one the close-out expired (SPEC §5). Each type's latest calls
# of today come from ix_branch_events_branch_type_at read backwards from the newest, bounded by
# the day's start (a scalar subquery, computed once, so the index can use it); a few more
# than shown, since the expired ones are dropped after.
_TODAY = Schedule.business_date_sql("b")
_DAY_BEGAN = (
    f"(SELECT {Schedule.day_start_sql('b', _TODAY)} FROM branches b WHERE b.code = :branch)"  # noqa: S608
)
_CALLS_OF_TYPE = f"""
    SELECT e.seq, e.at, e.type, e.data, e.ticket_id FROM branch_events e
    WHERE e.branch = :branch AND e.type = {{type}} AND e.at >= {_DAY_BEGAN}
      AND e.at >= CAST(:now AS timestamptz) - interval '3 days' -- the weeks read (a constant)
    ORDER BY e.at DESC LIMIT :scan"""  # noqa: S608 - constant fragments
_RECENT_CALLS = text(
    f"""
    SELECT c.seq, c.at, c.type, c.data
    FROM (({_CALLS_OF_TYPE.format(type=":called")})
          UNION ALL ({_CALLS_OF_TYPE.format(type=":recalled")})) AS c
    JOIN tickets t ON t.id = c.ticket_id
    WHERE t.status <> '{TicketStatus.EXPIRED}'
      AND t.business_date >= (SELECT {_TODAY} FROM branches b WHERE b.code = :branch)
      AND {live_dates_sql("t")}
    ORDER BY c.seq DESC
    LIMIT :n
    """  # noqa: S608 - constant fragments
)


async def recent_calls(
    session: AsyncSession, branch: str, now: datetime, n: int = 10
) -> list[RecentCall]:
    params = {
        "branch": branch,
        "now": now,
        "scan": 3 * n,
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
    waiting_rows = (
        await session.execute(_WAITING_BY_SERVICE, {"branch": branch, "now": now})
    ).all()
    hall = (await load_hall(session, branch, now, settings)).hall
    counters = await list_counters(session, branch)
    services = []
    for code, name, prefix, waiting, oldest in waiting_rows:
        # The wait of a normal ticket taken now.
        estimate = estimate_wait(hall, new_ticket_place(hall, code))
        services.append(
            ServiceQueue(
                service=code,
                name=name,
                prefix=prefix,
                waiting=waiting,
                longest_wait_s=max(0, int((now - oldest).total_seconds())) if oldest else 0,
                estimated_wait_s=estimate.median_s,
                estimated_wait_range_s=estimate.range_s,
            )
        )
    notices = await current_notices(session, branch, now)
    return QueueView(
        branch=branch,
        services=services,
        counters=counters,
        recent_calls=await recent_calls(session, branch, now),
        alerts=[alert_out(alert) for alert in await active_alerts(session, branch)],
        notices=notices.notices,
        notices_change_at=notices.change_at,
    )

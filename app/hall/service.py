"""The hall at a glance (the queue view): waiting per business type, counters with their
current ticket, recent calls, active alerts and current notices. Screens get it as the stream's
snapshot."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

from pydantic import ValidationError
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.alerts.service import ACTIVE_ALERTS_COLUMN, alerts_in_column
from app.branches.hours import Schedule
from app.branches.service import SERVICES_COLUMN
from app.core.database import execute_alone
from app.core.partitions import (
    BRANCH_EVENTS,
    from_week_sql,
    live_dates_sql,
    live_week,
    week_start,
)
from app.core.settings import Settings
from app.core.vocabulary import TicketStatus
from app.counters.service import counters_column, counters_from_rows, held_before_column
from app.events.catalog import EventType
from app.events.service import CURRENT_SEQ_COLUMN
from app.hall.schemas import QueueView, RecentCall, ServiceQueue
from app.notices.service import NOTICES_COLUMN, current_in_column
from app.queue.estimate import estimate_wait, new_ticket_place
from app.queue.service import HALL_CTE, HallNow, hall_columns, hall_from_row, hall_params

log = logging.getLogger("hallq.hall")

# The calls of today's business day whose tickets did not expire: a screen never shows a
# number of an earlier day, nor one the close-out expired (SPEC §5). Each type's latest calls
# of today come from ix_branch_events_branch_type_at read backwards from the newest, bounded by
# the day's start (a scalar subquery, computed once, so the index can use it); a few more
# than shown, since the expired ones are dropped after.
RECENT_CALLS = 10
_TODAY = Schedule.business_date_sql("b")
_DAY_BEGAN = (
    f"(SELECT {Schedule.day_start_sql('b', _TODAY)} FROM branches b WHERE b.code = :branch)"  # noqa: S608
)
_CALLS_READ = timedelta(days=3)  # the branch_events weeks read: `calls_week`


def _calls_of_type(type_: str, calls_week: date) -> str:
    return f"""
    SELECT e.seq, e.at, e.type, e.data, e.ticket_id FROM branch_events e
    WHERE e.branch = :branch AND e.type = {type_} AND e.at >= {_DAY_BEGAN}
      AND e.at >= CAST(:now AS timestamptz) - interval '{_CALLS_READ.days} days'
      AND e.at >= {BRANCH_EVENTS.bound(calls_week)}
    ORDER BY e.at DESC LIMIT :recent_scan"""  # noqa: S608 - constant fragments


def _recent_calls_sql(week: date | None, calls_week: date) -> str:
    return f"""
    (SELECT array_agg(ROW(r.seq, r.at, r.type, r.data) ORDER BY r.seq DESC)
     FROM (SELECT c.seq, c.at, c.type, c.data
           FROM (({_calls_of_type(":called", calls_week)})
                 UNION ALL ({_calls_of_type(":recalled", calls_week)})) AS c
           JOIN tickets t ON t.id = c.ticket_id
           WHERE t.status <> '{TicketStatus.EXPIRED}'
             AND t.business_date >= (SELECT {_TODAY} FROM branches b WHERE b.code = :branch)
             AND {live_dates_sql("t")} AND {from_week_sql("t.business_date", week)}
           ORDER BY c.seq DESC
           LIMIT :recent_calls) AS r)"""  # noqa: S608 - constant fragments


# The whole view in one statement, so in one snapshot and one round trip: the branch's seq,
# then each part as one value (arrays of records), its SQL kept beside its domain's. The weeks
# read are constants (`from_week_sql`): even a generic plan holds only those partitions.
@cache
def _queue_view_sql(week: date | None, calls_week: date) -> TextClause:
    """The view over the tickets partitions from `week` on (None: every week, for a counter
    that holds an older ticket: `held_before`) and the branch_events from `calls_week` on."""
    return text(
        f"""
    WITH {HALL_CTE}
    SELECT {CURRENT_SEQ_COLUMN} AS seq,
           {SERVICES_COLUMN} AS services,
           {hall_columns(week)},
           {counters_column(week)} AS counters,
           {held_before_column(week)} AS held_before,
           {NOTICES_COLUMN} AS notices,
           {_recent_calls_sql(week, calls_week)} AS recent_calls,
           {ACTIVE_ALERTS_COLUMN} AS alerts
    """
    )


def _recent_calls(rows: Iterable[Sequence[Any]] | None, branch: str) -> list[RecentCall]:
    calls = []
    for seq, at, type_, data in rows or ():
        try:
            calls.append(RecentCall.model_validate({**data, "seq": seq, "at": at, "type": type_}))
        except ValidationError:
            # One unreadable record must not take the hall view (and every screen) down.
            log.warning("recent calls: event %s of branch %s is unreadable", seq, branch)
    return calls


def _services(rows: Iterable[Sequence[Any]] | None, hall: HallNow) -> list[ServiceQueue]:
    """Each business type (`SERVICES_COLUMN`'s rows) with its waiting tickets from the hall."""
    services = []
    for code, name, prefix in rows or ():
        # The wait of a normal ticket taken now.
        estimate = estimate_wait(hall.hall, new_ticket_place(hall.hall, code))
        services.append(
            ServiceQueue(
                service=code,
                name=name,
                prefix=prefix,
                waiting=sum(g.count for g in hall.hall.waiting if g.service == code),
                longest_wait_s=max(0, int(hall.longest_wait_s.get(code, 0))),
                estimated_wait_s=estimate.median_s,
                estimated_wait_range_s=estimate.range_s,
            )
        )
    return services


async def queue_view(
    session: AsyncSession, branch: str, now: datetime, settings: Settings
) -> tuple[int, QueueView]:
    """The view, and the seq of the branch's last event it includes (0: no such branch), from
    one statement run alone; the caller ends with `session.commit()` (`execute_alone`)."""
    params = {
        **hall_params(branch, now, settings),
        "recent_scan": 3 * RECENT_CALLS,
        "recent_calls": RECENT_CALLS,
        "called": EventType.TICKET_CALLED,
        "recalled": EventType.TICKET_RECALLED,
    }
    week: date | None = live_week(now)
    calls_week = week_start((now - _CALLS_READ).astimezone(UTC).date())
    [row] = await execute_alone(session, _queue_view_sql(week, calls_week), params, settings)
    if row.held_before:  # rare: a counter left open over days
        week = None
        [row] = await execute_alone(session, _queue_view_sql(week, calls_week), params, settings)
    notices = current_in_column(row.notices, now)
    view = QueueView(
        branch=branch,
        services=_services(row.services, hall_from_row(row, settings)),
        counters=counters_from_rows(row.counters),
        recent_calls=_recent_calls(row.recent_calls, branch),
        alerts=alerts_in_column(row.alerts),
        notices=notices.notices,
        notices_change_at=notices.change_at,
    )
    return row.seq or 0, view

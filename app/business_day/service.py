"""The end of a business day (日结, SPEC §5): `close_out_day` expires what is left over,
completes what is being served and closes the counters, in one transaction.

Locks follow the counter actions' order (counters, then tickets, then the branch row in
`record_events`), so a close-out never deadlocks with a clerk: each counter still open is
locked and closed first, then a `next` on it waits and finds it closed, and no ticket can be
called after it expired. The automatic close-out claims its (branch, day) row in
`day_closeouts` first; the unique index lets one process of many win it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.permissions import Principal, Role
from app.branches.hours import Schedule
from app.branches.service import get_branch, schedule_of
from app.business_day.models import DayCloseout
from app.business_day.schemas import DayClosed
from app.core.clock import Clock
from app.core.vocabulary import CounterState, TicketStatus, sql_list
from app.counters.action import begin_action, complete_current, update_ticket
from app.counters.models import Counter
from app.counters.service import counter_out
from app.events.catalog import CounterChanged, TicketExpired, TicketRef
from app.events.service import NewEvent, record_events
from app.tickets.models import UNFINISHED, Ticket
from app.tickets.service import ticket_ref

log = logging.getLogger("hallq.business_day")

# Who the automatic close-out acts as: the system, allowed to close any counter.
AUTOMATIC = Principal(role=Role.ADMIN, token_id="automatic close-out")  # noqa: S106 - a name

EXPIRING = (TicketStatus.WAITING, TicketStatus.CALLED, TicketStatus.NO_SHOW)
# The automatic close-out is dated this much before the boundary: the end of the closed day.
LAST_INSTANT = timedelta(microseconds=1)

# Tickets left over away from any counter (waiting, no-show) expire in one statement; the
# called and served ones are dealt with at their counter, or left to the clerk of a counter the
# automatic close-out leaves open. `:before` limits it to earlier business days (the automatic
# close-out); NULL takes every day (the manager's).
_EXPIRE_LEFT_OVER = text(
    f"""
    UPDATE tickets t SET status = '{TicketStatus.EXPIRED}', finished_at = :now
    FROM (
        SELECT id, business_date, status FROM tickets
        WHERE branch = :branch AND status IN {sql_list(EXPIRING)}
          AND (CAST(:before AS date) IS NULL OR business_date < :before)
          AND NOT EXISTS (
              SELECT 1 FROM counters c
              WHERE c.branch = tickets.branch AND c.current_ticket_id = tickets.id)
        ORDER BY id
        FOR UPDATE
    ) AS old
    WHERE t.id = old.id AND t.business_date = old.business_date
    RETURNING t.id, t.number, t.service, t.priority, old.status AS previous_status,
              t.counter, t.staff
    """  # noqa: S608 - constant fragments
)


@dataclass
class _CloseOut:
    """A close-out in progress: the events to write and what it did."""

    session: AsyncSession
    principal: Principal
    now: datetime
    events: list[NewEvent]
    expired: int = 0
    completed: int = 0
    counters_closed: int = 0

    def result(self) -> DayClosed:
        return DayClosed(
            expired=self.expired, completed=self.completed, counters_closed=self.counters_closed
        )

    async def close_counter(
        self, branch: str, code: str, untouched_before: datetime | None
    ) -> None:
        """Complete or expire the counter's current ticket, then close it and sign its clerk
        out. With `untouched_before` (the automatic close-out), a counter found at work since
        then, now that it is locked, is left alone."""
        action = await begin_action(self.session, branch, code, self.principal, self.now)
        if action.counter.state == CounterState.CLOSED:
            return  # closed meanwhile
        if untouched_before and last_touched(action.counter, action.current) >= untouched_before:
            return  # its clerk is at work on the new day
        clerk = action.counter.staff
        ticket = action.current
        if ticket is not None and ticket.status == TicketStatus.SERVING:
            await complete_current(action)
            self.completed += 1
        elif ticket is not None and ticket.status == TicketStatus.CALLED:
            await update_ticket(
                self.session, ticket, status=TicketStatus.EXPIRED, finished_at=self.now
            )
            action.ticket_event(
                ticket,
                TicketExpired(
                    ticket=ticket_ref(ticket),
                    previous_status=TicketStatus.CALLED,
                    counter=action.counter_ref(),
                ),
            )
            self.expired += 1
        action.current = None
        await action.set_counter(
            state=CounterState.CLOSED,
            staff=None,
            current_ticket_id=None,
            current_business_date=None,
            pause_reason=None,
        )
        self.events.extend(action.events)
        self.events.append(
            NewEvent(
                CounterChanged(counter=counter_out(action.counter, None)),
                counter=code,
                staff=clerk,
            )
        )
        self.counters_closed += 1

    async def expire_left_over(self, branch: str, before: date | None) -> None:
        params = {"branch": branch, "now": self.now, "before": before}
        for row in (await self.session.execute(_EXPIRE_LEFT_OVER, params)).all():
            self.events.append(_expired_event(row))
            self.expired += 1


def last_touched(counter: Counter, current: Ticket | None) -> datetime:
    """When the counter was last used: its state or row changed, or its ticket was called or
    started (`LAST_TOUCHED_SQL` in SQL)."""
    moments = [counter.state_since, counter.updated_at]
    if current is not None:
        moments += [m for m in (current.last_called_at, current.served_at) if m is not None]
    return max(moments)


# `last_touched` of counter `c` joined with its current ticket `t` (greatest() skips NULLs).
LAST_TOUCHED_SQL = "greatest(c.state_since, c.updated_at, t.last_called_at, t.served_at)"


def _expired_event(row: Any) -> NewEvent:
    ticket = TicketRef(id=row.id, number=row.number, service=row.service, priority=row.priority)
    return NewEvent(
        TicketExpired(ticket=ticket, previous_status=row.previous_status),
        ticket_id=row.id,
        counter=row.counter,
        staff=row.staff,
    )


# The counters a close-out closes, locked in code order. The manager's (:before NULL) locks
# every counter of the branch, closed ones too, so that none opens while it runs; the automatic
# one only those not closed and untouched since before the boundary.
_COUNTERS_TO_CLOSE = text(
    f"""
    SELECT c.code, c.state FROM counters c
    LEFT JOIN tickets t
      ON t.id = c.current_ticket_id AND t.business_date = c.current_business_date
    WHERE c.branch = :branch
      AND (CAST(:before AS timestamptz) IS NULL
           OR (c.state <> '{CounterState.CLOSED}' AND {LAST_TOUCHED_SQL} < :before))
    ORDER BY c.code
    FOR UPDATE OF c
    """  # noqa: S608 - constant fragments
)


async def _counters_to_close(
    session: AsyncSession, branch: str, untouched_before: datetime | None
) -> list[str]:
    params = {"branch": branch, "before": untouched_before}
    rows = (await session.execute(_COUNTERS_TO_CLOSE, params)).all()
    return [code for code, state in rows if state != CounterState.CLOSED]


async def _run_close_out(
    session: AsyncSession,
    branch: str,
    principal: Principal,
    now: datetime,
    before: tuple[date, datetime] | None,
) -> _CloseOut:
    """Counters first (in code order, as locks are taken), then the tickets left over.
    `before`: the automatic close-out's business day and its start; None for the manager's.

    The automatic close-out is dated at the last instant of the day it closes, not when a
    process got to it: a counter left open stops counting as open there, even after a night
    the server was down, and what it completes counts on that day."""
    today, began = before if before else (None, None)
    at = began - LAST_INSTANT if began else now
    # The tickets' clerks are named in the history, not whoever closed the day.
    run = _CloseOut(session, replace(principal, staff=None), at, events=[])
    for code in await _counters_to_close(session, branch, began):
        await run.close_counter(branch, code, began)
    await run.expire_left_over(branch, today)
    await record_events(session, branch, at, run.events)
    return run


async def close_out_day(
    session: AsyncSession, branch: str, principal: Principal, now: datetime
) -> DayClosed:
    """The duty manager's close-out: ends the business day now. Idempotent: run again, it
    finds nothing left and answers zeros. Commits."""
    schedule = schedule_of(await get_branch(session, branch))
    result = (await _run_close_out(session, branch, principal, now, before=None)).result()
    session.add(
        DayCloseout(
            branch=branch,
            business_date=schedule.business_date(now),
            automatic=False,
            closed_at=now,
            **result.model_dump(),
        )
    )
    await session.commit()
    log.info("branch %s closed out its day: %s", branch, result)
    return result


async def close_out_earlier_days(
    session: AsyncSession, branch: str, schedule: Schedule, now: datetime
) -> DayClosed | None:
    """The automatic close-out of the business days before today's: once per branch and day
    however many processes try (None for those that lost the claim). Commits."""
    today = schedule.business_date(now)
    claim = (
        insert(DayCloseout)
        .values(
            branch=branch,
            business_date=today - timedelta(days=1),
            automatic=True,
            closed_at=now,
        )
        .on_conflict_do_nothing(
            index_elements=["branch", "business_date"], index_where=text("automatic")
        )
        .returning(DayCloseout.id)
    )
    claimed = await session.scalar(claim)
    if claimed is None:
        await session.rollback()
        return None
    began = (today, schedule.day_start(today))
    result = (await _run_close_out(session, branch, AUTOMATIC, now, before=began)).result()
    await session.execute(
        update(DayCloseout).where(DayCloseout.id == claimed).values(**result.model_dump())
    )
    await session.commit()
    log.info("branch %s: earlier business days closed out: %s", branch, result)
    return result


# Branches with something left from an earlier business day: a ticket not finished (found
# through the small partial index ix_tickets_unfinished) or a counter left as it was before
# today began. Parameters: :now.
_DUE = text(
    f"""
    WITH days AS (
        SELECT b.code, {Schedule.business_date_sql("b")} AS today,
               {Schedule.day_start_sql("b", Schedule.business_date_sql("b"))} AS today_began
        FROM branches b
    )
    SELECT d.code FROM days d
    WHERE EXISTS (
            SELECT 1 FROM tickets t
            WHERE t.branch = d.code AND t.status IN {sql_list(UNFINISHED)}
              AND t.business_date < d.today)
       OR EXISTS (
            SELECT 1 FROM counters c
            LEFT JOIN tickets t
      ON t.id = c.current_ticket_id AND t.business_date = c.current_business_date
            WHERE c.branch = d.code AND c.state <> '{CounterState.CLOSED}'
              AND {LAST_TOUCHED_SQL} < d.today_began)
    ORDER BY d.code
    """  # noqa: S608 - constant fragments
)


async def close_out_all_branches(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock
) -> int:
    """The automatic close-out, for every branch whose earlier days left something over;
    returns how many branches this process closed out. A branch that fails is logged and
    tried again next round."""
    now = clock.now()
    async with sessionmaker() as session:
        due = list(await session.scalars(_DUE, {"now": now}))
    closed = 0
    for branch in due:
        try:
            async with sessionmaker() as session:
                schedule = schedule_of(await get_branch(session, branch))
                if await close_out_earlier_days(session, branch, schedule, now) is not None:
                    closed += 1
        except Exception as exc:  # one branch must not stop the others
            log.warning("automatic close-out of branch %s failed: %s", branch, type(exc).__name__)
    return closed

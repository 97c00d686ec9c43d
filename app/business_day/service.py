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
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.permissions import Principal, Role
from app.branches.hours import Schedule
from app.branches.service import get_branch, schedule_of
from app.business_day.models import DayCloseout
from app.business_day.schemas import DayClosed
from app.core.clock import Clock
from app.core.vocabulary import CounterState, TicketStatus, sql_list
from app.counters.action import CounterAction, begin_action, complete_current, update_ticket
from app.counters.models import Counter
from app.counters.service import counter_out
from app.events.catalog import CounterChanged, TicketExpired, TicketRef
from app.events.service import NewEvent, record_events
from app.tickets.models import UNFINISHED
from app.tickets.service import ticket_ref

log = logging.getLogger("hallq.business_day")

# Who the automatic close-out acts as: the system, allowed to close any counter.
AUTOMATIC = Principal(role=Role.ADMIN, token_id="automatic close-out")  # noqa: S106 - a name

EXPIRING = (TicketStatus.WAITING, TicketStatus.CALLED, TicketStatus.NO_SHOW)
# The automatic close-out is dated this much before the boundary: the end of the closed day.
LAST_INSTANT = timedelta(microseconds=1)

# Tickets left over away from any counter (waiting, no-show) expire in one statement; the
# called and served ones were dealt with at their counter. `:before` limits it to earlier
# business days (the automatic close-out); NULL takes every day (the manager's).
_EXPIRE_LEFT_OVER = text(
    f"""
    UPDATE tickets t SET status = '{TicketStatus.EXPIRED}', finished_at = :now
    FROM (
        SELECT id, status FROM tickets
        WHERE branch = :branch AND status IN {sql_list(EXPIRING)}
          AND (CAST(:before AS date) IS NULL OR business_date < :before)
        ORDER BY id
        FOR UPDATE
    ) AS old
    WHERE t.id = old.id
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

    async def close_counter(self, branch: str, code: str) -> None:
        """Complete or expire the counter's current ticket, then close it and sign out."""
        action = await begin_action(self.session, branch, code, self.principal, self.now)
        if action.counter.state == CounterState.CLOSED:
            return  # closed meanwhile
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
            state=CounterState.CLOSED, staff=None, current_ticket_id=None, pause_reason=None
        )
        self.events.extend(action.events)
        self.events.append(_counter_changed(action))
        self.counters_closed += 1

    async def expire_left_over(self, branch: str, before: date | None) -> None:
        params = {"branch": branch, "now": self.now, "before": before}
        for row in (await self.session.execute(_EXPIRE_LEFT_OVER, params)).all():
            self.events.append(_expired_event(row))
            self.expired += 1


def _counter_changed(action: CounterAction) -> NewEvent:
    return NewEvent(
        CounterChanged(counter=counter_out(action.counter, None)),
        counter=action.counter.code,
        staff=action.staff,
    )


def _expired_event(row: Any) -> NewEvent:
    ticket = TicketRef(id=row.id, number=row.number, service=row.service, priority=row.priority)
    return NewEvent(
        TicketExpired(ticket=ticket, previous_status=row.previous_status),
        ticket_id=row.id,
        counter=row.counter,
        staff=row.staff,
    )


async def _counters_to_close(
    session: AsyncSession, branch: str, opened_before: datetime | None
) -> list[str]:
    """Counters not closed; with `opened_before`, only those untouched since before it (the
    automatic close-out leaves alone a counter whose clerk is at work on the new day)."""
    query = select(Counter.code).where(
        Counter.branch == branch, Counter.state != CounterState.CLOSED
    )
    if opened_before is not None:
        query = query.where(func.greatest(Counter.state_since, Counter.updated_at) < opened_before)
    return list(await session.scalars(query.order_by(Counter.code)))


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
    at = before[1] - LAST_INSTANT if before else now
    run = _CloseOut(session, principal, at, events=[])
    for code in await _counters_to_close(session, branch, before[1] if before else None):
        await run.close_counter(branch, code)
    await run.expire_left_over(branch, before[0] if before else None)
    await record_events(session, branch, at, run.events)
    return run


async def close_out_day(
    session: AsyncSession, branch: str, principal: Principal, now: datetime
) -> DayClosed:
    """The duty manager's close-out: ends the business day now. Idempotent: run again, it
    finds nothing left and answers zeros. Commits."""
    schedule = schedule_of(await get_branch(session, branch))
    run = await _run_close_out(session, branch, principal, now, before=None)
    session.add(
        DayCloseout(
            branch=branch,
            business_date=schedule.business_date(now),
            automatic=False,
            closed_at=now,
            **run.result().model_dump(),
        )
    )
    await session.commit()
    log.info("branch %s closed out its day: %s", branch, run.result())
    return run.result()


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
            business_date=date.fromordinal(today.toordinal() - 1),
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
    run = await _run_close_out(
        session, branch, AUTOMATIC, now, before=(today, schedule.day_start(today))
    )
    await session.execute(
        update(DayCloseout).where(DayCloseout.id == claimed).values(**run.result().model_dump())
    )
    await session.commit()
    log.info("branch %s: earlier business days closed out: %s", branch, run.result())
    return run.result()


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
            WHERE c.branch = d.code AND c.state <> '{CounterState.CLOSED}'
              AND greatest(c.state_since, c.updated_at) < d.today_began)
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

"""The service desk (SPEC §6): finding tickets by number or status, and changing a waiting
ticket's priority class. Calling a chosen ticket to a counter is a counter action
(app/counters/calls.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Boolean, Integer, column, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.permissions import Principal
from app.branches.models import Branch, Service
from app.branches.service import get_branch, schedule_of
from app.core.errors import conflict, unprocessable
from app.core.settings import Settings
from app.core.vocabulary import Priority, TicketStatus
from app.counters.action import update_ticket
from app.desk.schemas import PAGE_DEFAULT, FoundTickets, PriorityIn, TicketPage, canonical_number
from app.events.catalog import TicketPrioritised
from app.events.service import NewEvent, record_events
from app.queue.estimate import Place, estimate_wait
from app.queue.near import record_near
from app.queue.ordering import WAITING_PAGE_SQL
from app.queue.service import load_hall
from app.tickets.models import Ticket
from app.tickets.schemas import TicketOut
from app.tickets.service import (
    lock_ticket,
    placed_ticket_out,
    refuse_earlier_day,
    ticket_detail,
    ticket_out,
    ticket_ref,
)


@dataclass(frozen=True)
class TicketQuery:
    """What `GET /branches/{branch}/tickets` asks: a number, or one status's tickets."""

    number: str | None = None
    status: TicketStatus | None = None
    service: str | None = None
    day: date | None = None
    limit: int | None = None
    offset: int | None = None

    def check(self) -> None:
        """422 unless exactly one of number and status is given, with only the parameters
        that mean something for it."""
        if (self.number is None) == (self.status is None):
            raise unprocessable("invalid-query", "give either number or status (exactly one)")
        extra = {"service": self.service, "limit": self.limit, "offset": self.offset}
        if self.number is not None and any(v is not None for v in extra.values()):
            given = ", ".join(k for k, v in extra.items() if v is not None)
            raise unprocessable(
                "invalid-query", f"{given}: only with status; a number names one ticket a day"
            )
        if self.status == TicketStatus.WAITING and self.day is not None:
            raise unprocessable(
                "invalid-query",
                "date: not with status=waiting, which is the queue now (only today's tickets wait)",
            )


async def find_tickets(
    session: AsyncSession, branch_code: str, query: TicketQuery, now: datetime, settings: Settings
) -> FoundTickets | TicketPage:
    query.check()
    branch = await get_branch(session, branch_code)
    day = query.day or schedule_of(branch).business_date(now)
    if query.number is not None:
        return await _by_number(session, branch, canonical_number(query.number), day, now, settings)
    assert query.status is not None
    if query.service is not None:
        await _check_service(session, branch.code, query.service)
    limit = query.limit or PAGE_DEFAULT
    offset = query.offset or 0
    if query.status == TicketStatus.WAITING:
        return await _waiting(session, branch, query.service, limit, offset, now, settings)
    return await _by_status(session, branch, query, day, limit, offset)


async def _check_service(session: AsyncSession, branch: str, service: str) -> None:
    if await session.get(Service, (branch, service)) is None:
        raise unprocessable(
            "unknown-service", f"business type {service} does not exist in branch {branch}"
        )


async def _by_number(
    session: AsyncSession, branch: Branch, number: str, day: date, now: datetime, settings: Settings
) -> FoundTickets:
    # One ticket a day, unless a prefix moved from one type to another during the day.
    found = await session.scalars(
        select(Ticket)
        .where(Ticket.branch == branch.code, Ticket.business_date == day, Ticket.number == number)
        .order_by(Ticket.issued_at, Ticket.id)
    )
    return FoundTickets(
        tickets=[await ticket_detail(session, t, now, settings, notes=True) for t in found]
    )


async def _waiting(
    session: AsyncSession,
    branch: Branch,
    service: str | None,
    limit: int,
    offset: int,
    now: datetime,
    settings: Settings,
) -> TicketPage:
    """The waiting tickets in calling order per type, each placed and estimated from one read
    of the hall (the estimate of `ticket_out`, without reading the hall once per ticket)."""
    statement = select(
        Ticket,
        column("position", Integer),
        column("effective_lane", Integer),
        column("overdue", Boolean),
        column("total", Integer),
    ).from_statement(WAITING_PAGE_SQL)
    params = {
        "branch": branch.code,
        "now": now,
        "requeue_after": branch.requeue_after,
        "service": service,
        "limit": limit,
        "offset": offset,
    }
    rows = (await session.execute(statement, params)).all()
    hall = (await load_hall(session, branch.code, now, settings)).hall
    total = rows[0].total if rows else 0
    tickets = []
    for ticket, position, lane, overdue, _total in rows:
        if ticket is None:  # the empty page's one row: only the total
            continue
        place = Place(ticket.service, position - 1, ticket.priority, lane, overdue)
        tickets.append(placed_ticket_out(ticket, position, estimate_wait(hall, place)))
    return TicketPage(tickets=tickets, total=total)


async def _by_status(
    session: AsyncSession, branch: Branch, query: TicketQuery, day: date, limit: int, offset: int
) -> TicketPage:
    """A status's tickets of the business day `day`, newest first."""
    where = [
        Ticket.branch == branch.code,
        Ticket.business_date == day,
        Ticket.status == query.status,
    ]
    if query.service is not None:
        where.append(Ticket.service == query.service)
    total = await session.scalar(select(func.count()).select_from(Ticket).where(*where))
    page = await session.scalars(
        select(Ticket)
        .where(*where)
        .order_by(Ticket.issued_at.desc(), Ticket.seq.desc(), Ticket.id)
        .limit(limit)
        .offset(offset)
    )
    return TicketPage(
        tickets=[placed_ticket_out(t, None, None) for t in page], total=int(total or 0)
    )


async def prioritise(
    session: AsyncSession,
    ticket_id: uuid.UUID,
    body: PriorityIn,
    *,
    principal: Principal,
    now: datetime,
    settings: Settings,
) -> TicketOut:
    """Move a waiting ticket to another priority class. It keeps its number and issue time and
    takes its place by the new class; the reason goes to its history only. The same class
    again changes nothing (200, no event)."""
    # Locked, so that a `next`, `call` or cancel either happens before (409 here) or after.
    ticket = await lock_ticket(session, ticket_id)
    if ticket.status != TicketStatus.WAITING:
        raise conflict(
            "invalid-transition",
            f"ticket {ticket.number} is {ticket.status}; only a waiting ticket changes priority",
            ticket_status=ticket.status,
        )
    branch = await get_branch(session, ticket.branch)
    refuse_earlier_day(ticket, branch, now)
    before = ticket.priority
    if before != body.priority:
        await update_ticket(session, ticket, priority=body.priority)
        event = TicketPrioritised(
            ticket=ticket_ref(ticket), from_=Priority(before), to=body.priority
        )
        await record_events(
            session,
            ticket.branch,
            now,
            [NewEvent(event, ticket_id=ticket.id, staff=principal.staff, note=body.reason)],
        )
        await record_near(session, ticket.branch, [ticket.service], now, settings)
    await session.commit()
    return await ticket_out(session, ticket, now, settings, requeue_after=branch.requeue_after)

"""Tickets once issued: reading them (with position and estimate), cancelling, re-queueing.
Issuing is in issuing.py, ratings in ratings.py."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.branches.models import Branch
from app.branches.service import get_branch, schedule_of
from app.core.errors import conflict, not_found
from app.core.settings import Settings
from app.core.vocabulary import TicketStatus
from app.events.catalog import (
    TicketCancelled,
    TicketRef,
    TicketRequeued,
)
from app.events.models import BranchEvent
from app.events.service import NewEvent, record_events
from app.queue.estimate import WaitEstimate
from app.queue.near import record_near
from app.queue.ordering import LANE_FRONT, LANE_HELD
from app.queue.service import (
    estimate_for_position,
    position_of,
)
from app.tickets.models import Ticket
from app.tickets.schemas import (
    HistoryEntry,
    TicketDetail,
    TicketOut,
    mask_phone,
)


def ticket_ref(ticket: Ticket) -> TicketRef:
    """How a ticket appears inside events: never with the phone number."""
    return TicketRef(
        id=ticket.id, number=ticket.number, service=ticket.service, priority=ticket.priority
    )


async def get_ticket(session: AsyncSession, ticket_id: uuid.UUID) -> Ticket:
    """The ticket `ticket_id`, of whatever business date (every partition's key is read:
    docs/partitioning.md)."""
    ticket = await session.scalar(select(Ticket).where(Ticket.id == ticket_id))
    if ticket is None:
        raise not_found(f"ticket {ticket_id}")
    return ticket


async def lock_ticket(
    session: AsyncSession, ticket_id: uuid.UUID, business_date: date | None = None
) -> Ticket:
    """The ticket, locked for this transaction and re-read (another transaction may just have
    changed it); 404 if there is none. With its `business_date` (the partition key), one
    partition is read instead of every week's."""
    by_key = [Ticket.id == ticket_id]
    if business_date is not None:
        by_key.append(Ticket.business_date == business_date)
    ticket = await session.scalar(
        select(Ticket).where(*by_key).with_for_update().execution_options(populate_existing=True)
    )
    if ticket is None:
        raise not_found(f"ticket {ticket_id}")
    return ticket


async def ticket_out(
    session: AsyncSession,
    ticket: Ticket,
    now: datetime,
    settings: Settings,
    *,
    requeue_after: int | None = None,
) -> TicketOut:
    position = estimated = None
    if ticket.status == TicketStatus.WAITING:
        if requeue_after is None:
            requeue_after = (await get_branch(session, ticket.branch)).requeue_after
        position = await position_of(session, ticket, now, requeue_after)
        if position is not None:
            estimated = await estimate_for_position(session, ticket, position, now, settings)
    return placed_ticket_out(ticket, position, estimated)


def placed_ticket_out(
    ticket: Ticket, position: int | None, estimated: WaitEstimate | None
) -> TicketOut:
    """The ticket as the API shows it, its place in the queue (if waiting) already known."""
    return TicketOut(
        id=ticket.id,
        code=ticket.code,
        number=ticket.number,
        service=ticket.service,
        priority=ticket.priority,
        channel=ticket.channel,
        status=ticket.status,
        business_date=ticket.business_date,
        issued_at=ticket.issued_at,
        position=position,
        waiting_ahead=position - 1 if position is not None else None,
        estimated_wait_s=estimated.median_s if estimated else None,
        estimated_wait_range_s=estimated.range_s if estimated else None,
        recall_count=ticket.recall_count,
        counter=ticket.counter
        if ticket.status in (TicketStatus.CALLED, TicketStatus.SERVING)
        else None,
        called_at=ticket.called_at,
        served_at=ticket.served_at,
        finished_at=ticket.finished_at,
        phone=mask_phone(ticket.phone),
        rating=ticket.rating,
    )


async def ticket_detail(
    session: AsyncSession, ticket: Ticket, now: datetime, settings: Settings, *, notes: bool
) -> TicketDetail:
    """The ticket with its history; staff `notes` (a priority change's reason) only when the
    reader may see them, else null."""
    out = await ticket_out(session, ticket, now, settings)
    events = await session.scalars(
        select(BranchEvent)
        .where(BranchEvent.ticket_id == ticket.id, BranchEvent.branch == ticket.branch)
        .order_by(BranchEvent.seq)
    )
    history = [
        HistoryEntry(
            seq=e.seq,
            type=e.type,
            at=e.at,
            counter=e.counter,
            staff=e.staff,
            data=e.data,
            note=e.note if notes else None,
        )
        for e in events
    ]
    return TicketDetail(**out.model_dump(), history=history)


async def cancel_ticket(
    session: AsyncSession, ticket: Ticket, *, now: datetime, staff: str | None, settings: Settings
) -> TicketOut:
    """Cancel a waiting ticket (the customer left). Anything else is a 409."""
    cancelled = (
        await session.execute(
            update(Ticket)
            .where(
                Ticket.id == ticket.id,
                Ticket.business_date == ticket.business_date,
                Ticket.status == TicketStatus.WAITING,
            )
            .values(status=TicketStatus.CANCELLED, finished_at=now)
            .returning(Ticket)
        )
    ).scalar_one_or_none()
    if cancelled is None:
        ticket_id = ticket.id
        await session.rollback()
        current = await get_ticket(session, ticket_id)
        raise conflict(
            "invalid-transition",
            f"ticket {current.number} is {current.status}; only a waiting ticket can be cancelled",
            ticket_status=current.status,
        )
    await record_events(
        session,
        cancelled.branch,
        now,
        [
            NewEvent(
                TicketCancelled(ticket=ticket_ref(cancelled)),
                ticket_id=cancelled.id,
                staff=staff,
            )
        ],
    )
    await record_near(session, cancelled.branch, [cancelled.service], now, settings)
    await session.commit()
    return await ticket_out(session, cancelled, now, settings)


def refuse_earlier_day(ticket: Ticket, branch: Branch, now: datetime) -> None:
    """409 for a ticket of an earlier business day: it no longer waits (SPEC §5), whatever its
    status says before the close-out has expired it."""
    if schedule_of(branch).business_date(now) != ticket.business_date:
        raise conflict(
            "ticket-expired",
            f"ticket {ticket.number} is from {ticket.business_date.isoformat()}; "
            "take a new number today",
            ticket_status=ticket.status,
        )


_CALLS_BY_SERVING_COUNTERS = text(
    "SELECT coalesce(sum(calls), 0) FROM counters"
    " WHERE branch = :branch AND :service = ANY(services)"
)


async def requeue_ticket(
    session: AsyncSession,
    ticket_id: uuid.UUID,
    *,
    now: datetime,
    staff: str | None,
    settings: Settings,
) -> TicketOut:
    """A no-show customer turned up: waiting again, called after at most `requeue_after` other
    tickets of the counters serving its type (see app.queue.ordering)."""
    ticket = await lock_ticket(session, ticket_id)
    if ticket.status != TicketStatus.NO_SHOW:
        raise conflict(
            "invalid-transition",
            f"ticket {ticket.number} is {ticket.status}; only a no-show ticket can be re-queued",
            ticket_status=ticket.status,
        )
    branch = await get_branch(session, ticket.branch)
    refuse_earlier_day(ticket, branch, now)
    base = (
        await session.execute(
            _CALLS_BY_SERVING_COUNTERS, {"branch": ticket.branch, "service": ticket.service}
        )
    ).scalar_one()
    lane = LANE_HELD if branch.requeue_after > 0 else LANE_FRONT
    await session.execute(
        update(Ticket)
        .where(Ticket.id == ticket.id, Ticket.business_date == ticket.business_date)
        .values(
            status=TicketStatus.WAITING,
            lane=lane,
            queued_at=now,
            requeue_base=base,
            counter=None,
            staff=None,
            finished_at=None,
        )
    )
    await record_events(
        session,
        ticket.branch,
        now,
        [
            NewEvent(
                TicketRequeued(ticket=ticket_ref(ticket), requeue_after=branch.requeue_after),
                ticket_id=ticket.id,
                staff=staff,
            )
        ],
    )
    await record_near(session, ticket.branch, [ticket.service], now, settings)
    await session.commit()
    return await ticket_out(session, ticket, now, settings, requeue_after=branch.requeue_after)

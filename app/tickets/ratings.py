"""Ratings (评价器): the customer's score of a finished service."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.branches.service import get_branch, schedule_of
from app.core.errors import conflict
from app.core.settings import Settings
from app.core.vocabulary import TicketStatus
from app.events.catalog import (
    EventType,
    TicketRated,
)
from app.events.models import BranchEvent
from app.events.service import NewEvent, record_events
from app.tickets.models import Ticket
from app.tickets.schemas import (
    RatingIn,
    TicketOut,
)
from app.tickets.service import lock_ticket, ticket_out, ticket_ref


async def rate_ticket(
    session: AsyncSession,
    ticket_id: uuid.UUID,
    body: RatingIn,
    *,
    now: datetime,
    settings: Settings,
) -> TicketOut:
    """Record the customer's rating of a finished service: once, for a done ticket, on the
    business day it was served (after that the day's report is final).

    The history event names the counter and clerk who served the ticket (not whoever sent the
    rating), with the score but never the comment: comments are free text a customer may fill
    with personal details, so they stay in the tickets table and reach managers only through
    the daily report."""
    ticket = await lock_ticket(session, ticket_id)
    await _check_rateable(session, ticket, now)
    counter, staff = await _served_by(session, ticket)
    await session.execute(
        update(Ticket)
        .where(Ticket.id == ticket.id, Ticket.business_date == ticket.business_date)
        .values(rating=body.score, rating_comment=body.comment, rated_at=now)
    )
    await record_events(
        session,
        ticket.branch,
        now,
        [
            NewEvent(
                TicketRated(
                    ticket=ticket_ref(ticket),
                    score=body.score,
                    counter=counter,
                    has_comment=body.comment is not None,
                ),
                ticket_id=ticket.id,
                counter=counter,
                staff=staff,
            )
        ],
    )
    await session.commit()
    return await ticket_out(session, ticket, now, settings)


async def _check_rateable(session: AsyncSession, ticket: Ticket, now: datetime) -> None:
    """409 unless `ticket` is done, not rated yet, and was served on today's business day."""
    if ticket.status != TicketStatus.DONE:
        raise conflict(
            "invalid-transition",
            f"ticket {ticket.number} is {ticket.status}; only a done ticket can be rated",
            ticket_status=ticket.status,
        )
    if ticket.rating is not None:
        assert ticket.rated_at is not None
        raise conflict(
            "already-rated",
            f"ticket {ticket.number} was already rated at {ticket.rated_at.isoformat()}; "
            "a service is rated once",
            ticket_status=ticket.status,
        )
    schedule = schedule_of(await get_branch(session, ticket.branch))
    assert ticket.finished_at is not None
    served_on = schedule.business_date(ticket.finished_at)
    if schedule.business_date(now) != served_on:
        raise conflict(
            "rating-closed",
            f"ticket {ticket.number} was served on {served_on.isoformat()}; ratings are taken "
            "on the day of service only (that day's report is final)",
            ticket_status=ticket.status,
        )


async def _served_by(session: AsyncSession, ticket: Ticket) -> tuple[str | None, str | None]:
    """The counter and clerk of the ticket's completion in the history (the ticket row keeps
    the same; the event is the record reports use too)."""
    served_by = (
        await session.execute(
            select(BranchEvent.counter, BranchEvent.staff)
            .where(
                BranchEvent.branch == ticket.branch,
                BranchEvent.ticket_id == ticket.id,
                BranchEvent.type == EventType.TICKET_COMPLETED,
            )
            .order_by(BranchEvent.seq.desc())
            .limit(1)
        )
    ).first()
    return (served_by[0], served_by[1]) if served_by else (ticket.counter, ticket.staff)

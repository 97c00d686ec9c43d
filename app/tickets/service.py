"""Issuing, reading and cancelling tickets."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.branches.models import Branch, Service
from app.branches.service import get_branch, schedule_of
from app.core.errors import Problem, conflict, not_found, unprocessable
from app.core.settings import Settings
from app.events.models import BranchEvent
from app.events.service import (
    TICKET_CANCELLED,
    TICKET_COMPLETED,
    TICKET_ISSUED,
    TICKET_RATED,
    TICKET_REQUEUED,
    NewEvent,
    record_events,
)
from app.queue.ordering import LANE_FRONT, LANE_HELD, LANE_NORMAL
from app.queue.service import estimate_for_position, position_of
from app.tickets.models import Ticket
from app.tickets.schemas import (
    HistoryEntry,
    RatingIn,
    TicketDetail,
    TicketIn,
    TicketOut,
    mask_phone,
)


@dataclass(frozen=True)
class IssuedTicket:
    ticket: TicketOut
    replayed: bool  # an Idempotency-Key retry returned the ticket issued before


def ticket_ref(ticket: Ticket) -> dict[str, object]:
    """How a ticket appears inside events: never with the phone number."""
    return {
        "id": str(ticket.id),
        "number": ticket.number,
        "service": ticket.service,
        "priority": ticket.priority,
    }


def format_number(prefix: str, seq: int) -> str:
    return f"{prefix}{seq:03d}"


async def _branch_and_service(
    session: AsyncSession, branch: str, service: str
) -> tuple[Branch, Service]:
    row = (
        await session.execute(
            select(Branch, Service)
            .join(Service, Service.branch == Branch.code)
            .where(Branch.code == branch, Service.code == service)
        )
    ).first()
    if row is None:
        await get_branch(session, branch)  # 404 if the branch itself is missing
        raise unprocessable(
            "unknown-service", f"business type {service} does not exist in branch {branch}"
        )
    return row[0], row[1]


async def _by_idempotency_key(session: AsyncSession, branch: str, key: str) -> Ticket | None:
    return await session.scalar(
        select(Ticket).where(Ticket.branch == branch, Ticket.idempotency_key == key)
    )


def _check_replay(existing: Ticket, body: TicketIn) -> None:
    if existing.service != body.service or existing.priority != body.priority:
        raise unprocessable(
            "idempotency-key-reused",
            "this Idempotency-Key was already used for a different ticket request "
            f"({existing.service}/{existing.priority})",
        )


_NEXT_NUMBER = text(
    """
    INSERT INTO ticket_sequences AS seqs (branch, service, business_date, last_value)
    VALUES (:branch, :service, :business_date, 1)
    ON CONFLICT (branch, service, business_date)
    DO UPDATE SET last_value = seqs.last_value + 1
    RETURNING last_value
    """
)


async def issue_ticket(
    session: AsyncSession,
    branch_code: str,
    body: TicketIn,
    *,
    idempotency_key: str | None,
    now: datetime,
    settings: Settings,
) -> IssuedTicket:
    branch, service = await _branch_and_service(session, branch_code, body.service)
    if idempotency_key is not None:
        existing = await _by_idempotency_key(session, branch_code, idempotency_key)
        if existing is not None:
            _check_replay(existing, body)
            return IssuedTicket(await ticket_out(session, existing, now, settings), replayed=True)

    schedule = schedule_of(branch)
    refusal = schedule.issue_refusal(now)
    if refusal is not None:
        raise conflict(
            "branch-closed",
            refusal.describe(),
            reason=refusal.reason,
            opens_at=refusal.opens_at.isoformat() if refusal.opens_at else None,
        )
    business_date = schedule.business_date(now)

    # The sequence row lock serialises issuers of this type until commit; keep the statements
    # between here and the commit few.
    seq = (
        await session.execute(
            _NEXT_NUMBER,
            {"branch": branch_code, "service": service.code, "business_date": business_date},
        )
    ).scalar_one()
    ticket_id = uuid.uuid4()
    insert_ticket = (
        insert(Ticket)
        .values(
            id=ticket_id,
            branch=branch_code,
            service=service.code,
            issued_service=service.code,
            business_date=business_date,
            seq=seq,
            number=format_number(service.prefix, seq),
            priority=body.priority,
            channel=body.channel,
            phone=body.phone,
            status="waiting",
            issued_at=now,
            lane=LANE_NORMAL,
            queued_at=now,
            idempotency_key=idempotency_key,
        )
        .on_conflict_do_nothing(
            index_elements=["branch", "idempotency_key"],
            index_where=text("idempotency_key IS NOT NULL"),
        )
        .returning(Ticket)
    )
    ticket = (await session.execute(insert_ticket)).scalar_one_or_none()
    if ticket is None:
        # Another request with the same Idempotency-Key committed first (we waited for it on
        # the unique index). Give our number back and return theirs.
        await session.rollback()
        assert idempotency_key is not None
        existing = await _by_idempotency_key(session, branch_code, idempotency_key)
        if existing is None:  # pragma: no cover - the conflicting row was committed
            raise Problem(409, "idempotency-race", "retry the request")
        _check_replay(existing, body)
        return IssuedTicket(await ticket_out(session, existing, now, settings), replayed=True)

    await record_events(
        session,
        branch_code,
        now,
        [
            NewEvent(
                TICKET_ISSUED,
                {"ticket": {**ticket_ref(ticket), "channel": ticket.channel, "issued_at": now}},
                ticket_id=ticket.id,
            )
        ],
    )
    await session.commit()
    return IssuedTicket(
        await ticket_out(session, ticket, now, settings, requeue_after=branch.requeue_after),
        replayed=False,
    )


async def get_ticket(session: AsyncSession, ticket_id: uuid.UUID) -> Ticket:
    ticket = await session.get(Ticket, ticket_id)
    if ticket is None:
        raise not_found(f"ticket {ticket_id}")
    return ticket


async def lock_ticket(session: AsyncSession, ticket_id: uuid.UUID) -> Ticket:
    """The ticket, locked for this transaction and re-read (another transaction may just have
    changed it); 404 if there is none."""
    ticket = await session.scalar(
        select(Ticket)
        .where(Ticket.id == ticket_id)
        .with_for_update()
        .execution_options(populate_existing=True)
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
    if ticket.status == "waiting":
        if requeue_after is None:
            requeue_after = (await get_branch(session, ticket.branch)).requeue_after
        position = await position_of(session, ticket, now, requeue_after)
        if position is not None:
            estimated = await estimate_for_position(session, ticket, position, now, settings)
    return TicketOut(
        id=ticket.id,
        number=ticket.number,
        service=ticket.service,
        priority=ticket.priority,
        channel=ticket.channel,
        status=ticket.status,
        business_date=ticket.business_date,
        issued_at=ticket.issued_at,
        position=position,
        waiting_ahead=position - 1 if position is not None else None,
        estimated_wait_s=estimated,
        recall_count=ticket.recall_count,
        counter=ticket.counter if ticket.status in ("called", "serving") else None,
        called_at=ticket.called_at,
        served_at=ticket.served_at,
        finished_at=ticket.finished_at,
        phone=mask_phone(ticket.phone),
        rating=ticket.rating,
    )


async def ticket_detail(
    session: AsyncSession, ticket: Ticket, now: datetime, settings: Settings
) -> TicketDetail:
    out = await ticket_out(session, ticket, now, settings)
    events = await session.scalars(
        select(BranchEvent)
        .where(BranchEvent.ticket_id == ticket.id, BranchEvent.branch == ticket.branch)
        .order_by(BranchEvent.seq)
    )
    history = [
        HistoryEntry(seq=e.seq, type=e.type, at=e.at, counter=e.counter, staff=e.staff, data=e.data)
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
            .where(Ticket.id == ticket.id, Ticket.status == "waiting")
            .values(status="cancelled", finished_at=now)
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
                TICKET_CANCELLED,
                {"ticket": ticket_ref(cancelled)},
                ticket_id=cancelled.id,
                staff=staff,
            )
        ],
    )
    await session.commit()
    return await ticket_out(session, cancelled, now, settings)


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
    if ticket.status != "no_show":
        raise conflict(
            "invalid-transition",
            f"ticket {ticket.number} is {ticket.status}; only a no-show ticket can be re-queued",
            ticket_status=ticket.status,
        )
    branch = await get_branch(session, ticket.branch)
    if schedule_of(branch).business_date(now) != ticket.business_date:
        raise conflict(
            "ticket-expired",
            f"ticket {ticket.number} is from {ticket.business_date.isoformat()}; "
            "take a new number today",
            ticket_status=ticket.status,
        )
    base = (
        await session.execute(
            _CALLS_BY_SERVING_COUNTERS, {"branch": ticket.branch, "service": ticket.service}
        )
    ).scalar_one()
    lane = LANE_HELD if branch.requeue_after > 0 else LANE_FRONT
    await session.execute(
        update(Ticket)
        .where(Ticket.id == ticket.id)
        .values(
            status="waiting",
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
                TICKET_REQUEUED,
                {"ticket": ticket_ref(ticket), "requeue_after": branch.requeue_after},
                ticket_id=ticket.id,
                staff=staff,
            )
        ],
    )
    await session.commit()
    return await ticket_out(session, ticket, now, settings, requeue_after=branch.requeue_after)


# -- ratings (评价器) ----------------------------------------------------------------------------


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
    if ticket.status != "done":
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
    branch = await get_branch(session, ticket.branch)
    schedule = schedule_of(branch)
    assert ticket.finished_at is not None
    served_on = schedule.business_date(ticket.finished_at)
    if schedule.business_date(now) != served_on:
        raise conflict(
            "rating-closed",
            f"ticket {ticket.number} was served on {served_on.isoformat()}; ratings are taken "
            "on the day of service only (that day's report is final)",
            ticket_status=ticket.status,
        )
    # Who served it: the completion in the history (the ticket row keeps the same counter and
    # clerk; the event is the record reports use too).
    served_by = (
        await session.execute(
            select(BranchEvent.counter, BranchEvent.staff)
            .where(
                BranchEvent.branch == ticket.branch,
                BranchEvent.ticket_id == ticket.id,
                BranchEvent.type == TICKET_COMPLETED,
            )
            .order_by(BranchEvent.seq.desc())
            .limit(1)
        )
    ).first()
    counter, staff = (served_by[0], served_by[1]) if served_by else (ticket.counter, ticket.staff)
    await session.execute(
        update(Ticket)
        .where(Ticket.id == ticket.id)
        .values(rating=body.score, rating_comment=body.comment, rated_at=now)
    )
    await record_events(
        session,
        ticket.branch,
        now,
        [
            NewEvent(
                TICKET_RATED,
                {
                    "ticket": ticket_ref(ticket),
                    "score": body.score,
                    "counter": counter,
                    "has_comment": body.comment is not None,
                },
                ticket_id=ticket.id,
                counter=counter,
                staff=staff,
            )
        ],
    )
    await session.commit()
    return await ticket_out(session, ticket, now, settings)

"""The public side of a ticket (SPEC §9): read, cancel and rate it by its code; remote join.

Everything here answers strangers on the internet: an unknown code, branch or disabled join is
the same bare 404, answers carry no internal id, phone number, priority or comment, and nothing
a client sends ends in a 500."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.accuracy.writer import QuoteWriter
from app.branches.hours import Schedule
from app.branches.models import Branch, Service
from app.branches.service import online_join_of, schedule_of
from app.core.errors import Problem, conflict, unprocessable
from app.core.settings import Settings
from app.core.vocabulary import Channel, Priority, TicketStatus
from app.counters.models import Counter
from app.public.schemas import (
    JoinBranch,
    JoinedTicket,
    JoinIn,
    JoinService,
    Named,
    PublicTicket,
)
from app.queue.estimate import estimate_wait, new_ticket_place
from app.queue.service import estimate_for_position, load_hall, position_of
from app.tickets import issuing, ratings
from app.tickets import service as tickets
from app.tickets.code import looks_like_a_code
from app.tickets.models import Ticket
from app.tickets.schemas import RatingIn, TicketIn

# Remote joins one client address may make per branch and hour (SPEC §9).
JOINS_PER_ADDRESS_HOUR = 3
# What a still-unfinished ticket of an earlier business day shows (SPEC §5: it waits no more).
_UNFINISHED = (TicketStatus.WAITING, TicketStatus.CALLED, TicketStatus.NO_SHOW)


def unknown() -> Problem:
    """The one answer for a code, branch or remote join that is not there: it says nothing."""
    return Problem(404, "not-found", "not found", title="Not found")


async def ticket_by_code(session: AsyncSession, code: str) -> Ticket:
    if not looks_like_a_code(code):
        raise unknown()
    ticket = await session.scalar(select(Ticket).where(Ticket.code == code))
    if ticket is None:
        raise unknown()
    return ticket


async def public_ticket(
    session: AsyncSession, ticket: Ticket, now: datetime, settings: Settings
) -> PublicTicket:
    branch = await session.get(Branch, ticket.branch)
    service = await session.get(Service, (ticket.branch, ticket.service))
    assert branch is not None and service is not None  # foreign keys
    status = TicketStatus(ticket.status)
    if status in _UNFINISHED and schedule_of(branch).business_date(now) > ticket.business_date:
        status = TicketStatus.EXPIRED
    position = estimated = None
    if status == TicketStatus.WAITING:
        position = await position_of(session, ticket, now, branch.requeue_after)
        if position is not None:
            estimated = await estimate_for_position(session, ticket, position, now, settings)
    counter = None
    if status in (TicketStatus.CALLED, TicketStatus.SERVING) and ticket.counter is not None:
        row = await session.get(Counter, (ticket.branch, ticket.counter))
        counter = Named(code=ticket.counter, name=row.name if row else ticket.counter)
    return PublicTicket(
        number=ticket.number,
        status=status,
        service=Named(code=service.code, name=service.name),
        branch=Named(code=branch.code, name=branch.name),
        issued_at=ticket.issued_at,
        position=position,
        waiting_ahead=position - 1 if position is not None else None,
        estimated_wait_s=estimated.median_s if estimated else None,
        estimated_wait_range_s=estimated.range_s if estimated else None,
        counter=counter,
        called_at=ticket.called_at,
        near=ticket.near_notified_at is not None,
    )


async def read(session: AsyncSession, code: str, now: datetime, settings: Settings) -> PublicTicket:
    ticket = await ticket_by_code(session, code)
    return await public_ticket(session, ticket, now, settings)


async def cancel(
    session: AsyncSession, code: str, now: datetime, settings: Settings
) -> PublicTicket:
    """ "I have left": the holder cancels a waiting ticket (409 otherwise)."""
    ticket = await ticket_by_code(session, code)
    await tickets.cancel_ticket(session, ticket, now=now, staff=None, settings=settings)
    return await read(session, code, now, settings)


async def rate(
    session: AsyncSession, code: str, body: RatingIn, now: datetime, settings: Settings
) -> PublicTicket:
    """The phone as the evaluation keypad (评价器): once, for a done ticket, on its day."""
    ticket = await ticket_by_code(session, code)
    await ratings.rate_ticket(session, ticket.id, body, now=now, settings=settings)
    return await read(session, code, now, settings)


# -- remote join --------------------------------------------------------------------------------


async def _joinable_branch(session: AsyncSession, code: str) -> Branch:
    branch = await session.get(Branch, code)
    if branch is None or not online_join_of(branch).enabled:
        raise unknown()
    return branch


async def join_branch(
    session: AsyncSession, code: str, now: datetime, settings: Settings
) -> JoinBranch:
    """What /join/{branch} lists: the types open to remote join, with their waits."""
    branch = await _joinable_branch(session, code)
    allowed = online_join_of(branch).services
    types = (
        await session.scalars(
            select(Service).where(Service.branch == code).order_by(Service.prefix, Service.code)
        )
    ).all()
    hall = (await load_hall(session, code, now, settings)).hall
    services = []
    for svc in types:
        if allowed is not None and svc.code not in allowed:
            continue
        waiting = sum(g.count for g in hall.waiting if g.service == svc.code)
        estimate = estimate_wait(hall, new_ticket_place(hall, svc.code))
        services.append(
            JoinService(
                code=svc.code,
                name=svc.name,
                waiting=waiting,
                estimated_wait_s=estimate.median_s,
                estimated_wait_range_s=estimate.range_s,
                guide=svc.guide,
            )
        )
    refusal = schedule_of(branch).issue_refusal(now)
    return JoinBranch(
        branch=Named(code=branch.code, name=branch.name),
        services=services,
        open=refusal is None,
        reason=refusal.reason if refusal else None,
        opens_at=refusal.opens_at.isoformat() if refusal and refusal.opens_at else None,
    )


# Claims one remote join for the address's hour and one of the branch's day, each only while
# under its limit (`ON CONFLICT ... WHERE`: exact under concurrency). The day's claim is made
# only if the address's was.
_CLAIM = text(
    """
    WITH per_address AS (
        INSERT INTO online_joins AS j (branch, address, window_start, joins)
        VALUES (:branch, :address, :hour, 1)
        ON CONFLICT (branch, address, window_start) DO UPDATE SET joins = j.joins + 1
        WHERE j.joins < :per_address
        RETURNING joins
    ),
    per_day AS (
        INSERT INTO online_joins AS j (branch, address, window_start, joins)
        SELECT :branch, '', :day, 1 WHERE EXISTS (SELECT FROM per_address)
        ON CONFLICT (branch, address, window_start) DO UPDATE SET joins = j.joins + 1
        WHERE j.joins < :daily_limit
        RETURNING joins
    )
    SELECT EXISTS (SELECT FROM per_address) AS address_ok, EXISTS (SELECT FROM per_day) AS day_ok
    """
)
_GIVE_BACK = text(
    """
    UPDATE online_joins SET joins = joins - 1
    WHERE branch = :branch AND ((address = :address AND window_start = :hour)
                                OR (address = '' AND window_start = :day)) AND joins > 0
    """
)
_FORGET_JOINS = text("DELETE FROM online_joins WHERE window_start < :before")


def _day_key(schedule: Schedule, now: datetime) -> datetime:
    return datetime.combine(schedule.business_date(now), time(), tzinfo=UTC)


async def join(
    session: AsyncSession,
    branch_code: str,
    body: JoinIn,
    address: str,
    now: datetime,
    settings: Settings,
    quotes: QuoteWriter | None = None,
) -> JoinedTicket:
    """Issue a `normal` ticket on channel `online` (SPEC §9). Refused: not enabled (404),
    outside hours (409 branch-closed, as at the kiosk), more than three an hour from the
    address (429), the day's limit reached (409 online-join-full). Its quoted wait goes to
    `quotes`, as at the kiosk."""
    branch = await _joinable_branch(session, branch_code)
    settings_join = online_join_of(branch)
    if settings_join.services is not None and body.service not in settings_join.services:
        raise unprocessable(
            "unknown-service", f"business type {body.service} is not open to remote join"
        )
    if await session.get(Service, (branch_code, body.service)) is None:
        raise unprocessable(
            "unknown-service", f"business type {body.service} does not exist in this branch"
        )
    schedule = schedule_of(branch)
    refusal = schedule.issue_refusal(now)
    if refusal is not None:
        raise conflict(
            "branch-closed",
            refusal.describe(),
            reason=refusal.reason,
            opens_at=refusal.opens_at.isoformat() if refusal.opens_at else None,
        )
    keys = {
        "branch": branch_code,
        "address": address,
        "hour": now.replace(minute=0, second=0, microsecond=0),
        "day": _day_key(schedule, now),
    }
    claim = (
        await session.execute(
            _CLAIM,
            {
                **keys,
                "per_address": JOINS_PER_ADDRESS_HOUR,
                "daily_limit": settings_join.daily_limit,
            },
        )
    ).one()
    if not claim.address_ok:
        await session.rollback()
        retry_after = 3600 - now.minute * 60 - now.second
        raise Problem(
            429,
            "too-many-joins",
            f"at most {JOINS_PER_ADDRESS_HOUR} remote joins an hour from one address; "
            "please take a number at the kiosk",
            title="Too Many Requests",
            headers={"Retry-After": str(max(1, retry_after))},
            retry_after_s=max(1, retry_after),
        )
    if not claim.day_ok:
        await session.rollback()
        raise conflict(
            "online-join-full",
            f"today's {settings_join.daily_limit} remote joins are taken; "
            "please take a number at the kiosk",
        )
    await session.commit()
    ticket_in = TicketIn(
        service=body.service, priority=Priority.NORMAL, channel=Channel.ONLINE, phone=body.phone
    )
    try:
        issued = await issuing.issue_ticket(
            session,
            branch_code,
            ticket_in,
            idempotency_key=None,
            limited_token=None,
            now=now,
            settings=settings,
            quotes=quotes,
        )
    except Problem:
        # Refused after all (the hours changed meanwhile): the claims go back.
        await session.rollback()
        await session.execute(_GIVE_BACK, keys)
        await session.commit()
        raise
    ticket = await tickets.get_ticket(session, issued.ticket.id)
    view = await public_ticket(session, ticket, now, settings)
    return JoinedTicket(**view.model_dump(), code=ticket.code)


async def forget_old_joins(session: AsyncSession, now: datetime) -> None:
    """Counts of past hours and days (two days back: a business day may start late)."""
    async with session.begin():
        await session.execute(_FORGET_JOINS, {"before": now - timedelta(days=2)})

"""Issuing, reading and cancelling tickets."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.branches.hours import Schedule
from app.branches.models import Branch, Service
from app.branches.service import get_branch, schedule_of
from app.core.config_cache import read_through
from app.core.errors import Problem, conflict, not_found, unprocessable
from app.core.settings import Settings
from app.core.vocabulary import TicketStatus
from app.events.catalog import (
    EventType,
    IssuedTicketRef,
    TicketCancelled,
    TicketIssued,
    TicketRated,
    TicketRef,
    TicketRequeued,
    encode_data,
)
from app.events.models import BranchEvent
from app.events.notifier import notify_after_commit
from app.events.service import NewEvent, append_events_sql, record_events
from app.queue.estimate import estimate_wait_s, new_ticket_place
from app.queue.ordering import LANE_FRONT, LANE_HELD, LANE_NORMAL
from app.queue.service import (
    HALL_COLUMNS,
    HALL_CTE,
    estimate_for_position,
    hall_from_row,
    hall_params,
    position_of,
)
from app.tickets.models import Ticket
from app.tickets.rate_limit import too_many_tickets, window_start
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


def ticket_ref(ticket: Ticket) -> TicketRef:
    """How a ticket appears inside events: never with the phone number."""
    return TicketRef(
        id=ticket.id, number=ticket.number, service=ticket.service, priority=ticket.priority
    )


@dataclass(frozen=True)
class IssueConfig:
    """What issuing needs of a branch and business type; kept in the configuration cache."""

    schedule: Schedule
    service: str
    prefix: str


async def _issue_config(session: AsyncSession, branch: str, service: str) -> IssueConfig:
    async def load() -> IssueConfig | None:
        row = (
            await session.execute(
                select(Branch, Service)
                .join(Service, Service.branch == Branch.code)
                .where(Branch.code == branch, Service.code == service)
            )
        ).first()
        return None if row is None else IssueConfig(schedule_of(row[0]), service, row[1].prefix)

    config = await read_through(session, ("issue", branch, service), load)
    if config is None:
        await get_branch(session, branch)  # 404 if the branch itself is missing
        raise unprocessable(
            "unknown-service", f"business type {service} does not exist in branch {branch}"
        )
    return config


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


# Issuing is one statement, run on its own (autocommit): one round trip, and the business type's
# sequence row and the branch row (event seqs) are locked only while it runs, never across a
# round trip to this process. In order:
# - `replayed`: the ticket an Idempotency-Key already got; if there is one nothing is written;
# - `counted`: the token's issues this minute (app/tickets/rate_limit.py), when it is limited;
#   past the limit nothing else is written (the count stays: the token is refused either way);
# - `claimed`: the Idempotency-Key, claimed before a number is taken. A retry racing its
#   original waits here (primary key) until the original commits, then claims nothing and
#   issues nothing: no number is ever taken and given back, so numbers stay gap-free;
# - `numbered`, `issued`, `event_seqs`, `logged`: the next daily number of the type, the
#   ticket, and its `ticket.issued` event (app/events/service.py: append_events_sql; the number
#   is put into the event data here, where it is known);
# - the hall (app/queue/service.py), read from the statement's snapshot, without the new ticket:
#   its position and estimated wait follow from it (app/queue/estimate.py: new_ticket_place).
_LOG_ISSUED = append_events_sql(
    branch=":branch",
    count="1",
    when="EXISTS (SELECT FROM issued)",
    rows=f"""
        SELECT 1, '{EventType.TICKET_ISSUED}', CAST(:now AS timestamptz), issued.id, NULL, NULL,
               jsonb_set(CAST(:event_data AS jsonb), '{{ticket,number}}', to_jsonb(issued.number))
        FROM issued""",  # noqa: S608 - a constant fragment
)
ISSUE_SQL = text(
    f"""
    WITH {HALL_CTE},
    replayed AS (
        SELECT id FROM tickets
        WHERE branch = :branch AND idempotency_key = CAST(:idempotency_key AS text)
    ),
    counted AS (
        INSERT INTO issue_rate (token_id, window_start, issued)
        SELECT CAST(:token_id AS text), CAST(:window_start AS timestamptz), 1
        WHERE CAST(:token_id AS text) IS NOT NULL AND NOT EXISTS (SELECT FROM replayed)
        ON CONFLICT (token_id, window_start) DO UPDATE SET issued = issue_rate.issued + 1
        RETURNING issued
    ),
    allowed AS (
        SELECT WHERE NOT EXISTS (SELECT FROM replayed)
                 AND coalesce((SELECT issued FROM counted), 0) <= :per_minute
    ),
    claimed AS (
        INSERT INTO issue_keys (branch, key, claimed_at)
        SELECT :branch, CAST(:idempotency_key AS text), CAST(:now AS timestamptz) FROM allowed
        WHERE CAST(:idempotency_key AS text) IS NOT NULL
        ON CONFLICT (branch, key) DO NOTHING
        RETURNING key
    ),
    numbered AS (
        INSERT INTO ticket_sequences AS seqs (branch, service, business_date, last_value)
        SELECT :branch, :service, CAST(:business_date AS date), 1 FROM allowed
        WHERE CAST(:idempotency_key AS text) IS NULL OR EXISTS (SELECT FROM claimed)
        ON CONFLICT (branch, service, business_date)
        DO UPDATE SET last_value = seqs.last_value + 1
        RETURNING last_value
    ),
    issued AS (
        INSERT INTO tickets (id, branch, service, issued_service, business_date, seq, number,
                             priority, channel, phone, status, issued_at, lane, queued_at,
                             idempotency_key)
        SELECT CAST(:ticket_id AS uuid), :branch, :service, :service,
               CAST(:business_date AS date), last_value,
               :prefix || CASE WHEN last_value < 1000 THEN lpad(CAST(last_value AS text), 3, '0')
                               ELSE CAST(last_value AS text) END,
               :priority, :channel, CAST(:phone AS text), 'waiting', CAST(:now AS timestamptz),
               {LANE_NORMAL}, CAST(:now AS timestamptz), CAST(:idempotency_key AS text)
        FROM numbered
        RETURNING id, seq, number
    ),
    {_LOG_ISSUED}
    SELECT {HALL_COLUMNS},
           (SELECT id FROM replayed) AS replayed_id,
           (SELECT issued FROM counted) AS issued_this_minute,
           (SELECT seq FROM issued) AS seq,
           (SELECT number FROM issued) AS number,
           (SELECT seq FROM logged) AS event_seq,
           (SELECT envelope FROM logged) AS envelope
    """  # noqa: S608 - constant fragments; every value is a bound parameter
)


async def issue_ticket(
    session: AsyncSession,
    branch_code: str,
    body: TicketIn,
    *,
    idempotency_key: str | None,
    limited_token: str | None,
    now: datetime,
    settings: Settings,
) -> IssuedTicket:
    """Issue a number of `body.service`; with an Idempotency-Key already used, the ticket it got.
    `limited_token` is counted against the issue rate (None: not limited)."""
    config = await _issue_config(session, branch_code, body.service)
    schedule = config.schedule
    refusal = schedule.issue_refusal(now)
    if refusal is not None:
        # Closed: a retry of a ticket issued before still gets it; nothing new is issued.
        if idempotency_key is not None:
            existing = await _by_idempotency_key(session, branch_code, idempotency_key)
            if existing is not None:
                return await _replay(session, existing, body, now, settings)
        raise conflict(
            "branch-closed",
            refusal.describe(),
            reason=refusal.reason,
            opens_at=refusal.opens_at.isoformat() if refusal.opens_at else None,
        )
    business_date = schedule.business_date(now)
    ticket_id = uuid.uuid4()
    event_data = TicketIssued(
        ticket=IssuedTicketRef(
            id=ticket_id,
            number="",  # set by the statement, which takes it
            service=config.service,
            priority=body.priority,
            channel=body.channel,
            issued_at=now,
        )
    )
    if session.in_transaction():
        await session.commit()  # the configuration was read (a cache miss): end that read
    autocommit = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    row = (
        await autocommit.execute(
            ISSUE_SQL,
            {
                **hall_params(branch_code, now, settings),
                "idempotency_key": idempotency_key,
                "token_id": limited_token,
                "window_start": window_start(now),
                "per_minute": settings.issue_rate_per_minute,
                "service": config.service,
                "business_date": business_date,
                "ticket_id": ticket_id,
                "prefix": config.prefix,
                "priority": body.priority,
                "channel": body.channel,
                "phone": body.phone,
                "now": now,
                "event_data": encode_data(event_data),
            },
        )
    ).one()
    if row.event_seq is not None:
        notify_after_commit(session, branch_code, [(row.event_seq, row.envelope)])
    # Nothing to commit (autocommit): ends the session's transaction, and sends the notification.
    await session.commit()
    if row.replayed_id is not None:
        return await _replay(
            session, await get_ticket(session, row.replayed_id), body, now, settings
        )
    per_minute = settings.issue_rate_per_minute
    if row.issued_this_minute is not None and row.issued_this_minute > per_minute:
        raise too_many_tickets(per_minute, now)  # nothing was issued
    if row.number is None:
        # Another request with the same Idempotency-Key committed first (we waited for it on
        # the claim). Nothing was issued here; return theirs.
        assert idempotency_key is not None
        existing = await _by_idempotency_key(session, branch_code, idempotency_key)
        if existing is None:  # pragma: no cover - the conflicting row was committed
            raise Problem(409, "idempotency-race", "retry the request")
        return await _replay(session, existing, body, now, settings)

    # A new ticket is never overdue (max_wait_s is at least 1 s): its place is its class's end.
    hall = hall_from_row(row, settings).hall
    place = new_ticket_place(hall, config.service, body.priority)
    ticket = TicketOut(
        id=ticket_id,
        number=row.number,
        service=config.service,
        priority=body.priority,
        channel=body.channel,
        status=TicketStatus.WAITING,
        business_date=business_date,
        issued_at=now,
        position=place.ahead + 1,
        waiting_ahead=place.ahead,
        estimated_wait_s=estimate_wait_s(hall, place),
        recall_count=0,
        counter=None,
        called_at=None,
        served_at=None,
        finished_at=None,
        phone=mask_phone(body.phone),
        rating=None,
    )
    return IssuedTicket(ticket, replayed=False)


async def _replay(
    session: AsyncSession, existing: Ticket, body: TicketIn, now: datetime, settings: Settings
) -> IssuedTicket:
    """The ticket an Idempotency-Key already got, as it is now."""
    _check_replay(existing, body)
    return IssuedTicket(await ticket_out(session, existing, now, settings), replayed=True)


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
    if ticket.status == TicketStatus.WAITING:
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
            .where(Ticket.id == ticket.id, Ticket.status == TicketStatus.WAITING)
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
    if ticket.status != TicketStatus.NO_SHOW:
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
                BranchEvent.type == EventType.TICKET_COMPLETED,
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

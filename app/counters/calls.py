"""The clerk's buttons: recall, start, complete, no-show, transfer; and the service desk's call
of a chosen ticket, which works as next does. `next` itself is one statement (next_call.py)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accuracy.service import KEEP_CHOSEN_FIRST_CALL_SQL
from app.auth.permissions import Principal, Role, forbidden
from app.branches.models import Service
from app.core.errors import conflict, not_found, unprocessable
from app.core.settings import Settings
from app.core.vocabulary import CounterState, TicketStatus
from app.counters.action import (
    AT_COUNTER,
    ON_CALL,
    ActionResult,
    CounterAction,
    begin_action,
    begin_ticket_action,
    complete_current,
    release_current,
    state_conflict,
    update_ticket,
)
from app.counters.models import Counter
from app.counters.schemas import TransferIn
from app.events.catalog import (
    TicketCalled,
    TicketNoShow,
    TicketRecalled,
    TicketServing,
    TicketTransferred,
    TransferredFrom,
    TransferredTo,
)
from app.queue.ordering import LANE_FRONT, LANE_NORMAL
from app.tickets.models import Ticket
from app.tickets.service import refuse_earlier_day, ticket_ref


async def _at_counter(action: CounterAction, ticket: Ticket, *, picked_by_hand: bool) -> None:
    """The called ticket (already marked called) becomes the counter's current one: the call
    is counted (for re-queue grace) and announced."""
    action.current = ticket
    await action.set_counter(
        current_ticket_id=ticket.id,
        current_business_date=ticket.business_date,
        calls=action.counter.calls + 1,
    )
    action.ticket_event(
        ticket,
        TicketCalled(
            ticket=ticket_ref(ticket),
            counter=action.counter_ref(),
            announcement=action.announce(ticket),
            wait_s=round((action.now - ticket.issued_at).total_seconds(), 3),
            picked=picked_by_hand,
        ),
    )


async def call_chosen(
    session: AsyncSession,
    branch: str,
    code: str,
    principal: Principal,
    now: datetime,
    ticket_id: uuid.UUID,
    settings: Settings,
) -> ActionResult:
    """The service desk's call (SPEC §6): as `next`, but of the chosen waiting ticket. A manager
    or admin may call any waiting ticket of the branch; a clerk only where the branch allows
    it, and only what the counter could call itself."""
    action = await begin_action(session, branch, code, principal, now, settings=settings)
    if principal.role is Role.CLERK and not action.branch.clerks_may_pick:
        raise forbidden(
            f"branch {branch} does not let clerks call a chosen ticket (clerks_may_pick is "
            "false); press next, or ask the duty manager"
        )
    if action.counter.state != CounterState.OPEN:
        raise state_conflict(action.counter, "call a ticket")
    ticket = await _lock_chosen(action, ticket_id)
    if principal.role is Role.CLERK:
        _check_clerk_may_call(action, ticket)
    if action.current is not None and action.current.status in AT_COUNTER:
        await complete_current(action)
    # What PICK_NEXT_SQL sets when `next` claims a ticket, and keeps for the estimate's accuracy.
    await update_ticket(
        session,
        ticket,
        status=TicketStatus.CALLED,
        counter=code,
        staff=action.staff,
        called_at=ticket.called_at or now,
        last_called_at=now,
        lane=LANE_NORMAL,
        target_counter=None,
        requeue_base=None,
    )
    await session.execute(KEEP_CHOSEN_FIRST_CALL_SQL, {"ticket_id": ticket.id})
    await _at_counter(action, ticket, picked_by_hand=True)
    action.queues_changed.update([ticket.service, *action.counter.services])
    return await action.finish()


async def _lock_chosen(action: CounterAction, ticket_id: uuid.UUID) -> Ticket:
    """The chosen ticket of the counter's branch, locked, if it waits today; else 404 or 409.
    Only a row that is waiting is locked: FOR UPDATE then waits for a transaction holding it (a
    `next` claiming it, a cancel) and re-checks, so a ticket is never called twice; a ticket
    at another counter is never waited for, which could deadlock with that counter's holder
    (a close-out, another desk call). `next` skips the row while this call holds it."""
    mine = (Ticket.id == ticket_id, Ticket.branch == action.branch.code)
    ticket = await action.session.scalar(
        select(Ticket)
        .where(*mine, Ticket.status == TicketStatus.WAITING)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if ticket is None:
        found = await action.session.scalar(
            select(Ticket).where(*mine).execution_options(populate_existing=True)
        )
        if found is None:
            raise not_found(f"ticket {ticket_id} in branch {action.branch.code}")
        where = f" at counter {found.counter}" if found.counter else ""
        raise conflict(
            "invalid-transition",
            f"ticket {found.number} is {found.status}{where}; only a waiting ticket can be called",
            ticket_status=found.status,
        )
    refuse_earlier_day(ticket, action.branch, action.now)
    return ticket


def _check_clerk_may_call(action: CounterAction, ticket: Ticket) -> None:
    """A clerk picks only what this counter could call with `next`: a type of its profile,
    not a ticket transferred to another counter."""
    counter = action.counter
    if ticket.service not in counter.services:
        raise conflict(
            "not-in-profile",
            f"counter {counter.code} does not serve business type {ticket.service} "
            f"(ticket {ticket.number}); a clerk calls only the counter's own types",
        )
    if ticket.target_counter not in (None, counter.code):
        raise conflict(
            "transferred-elsewhere",
            f"ticket {ticket.number} was transferred to counter {ticket.target_counter}; "
            "only that counter, or a manager, may call it",
        )


async def recall(
    session: AsyncSession, branch: str, code: str, principal: Principal, now: datetime
) -> ActionResult:
    """Call the current customer again (the announcement repeats)."""
    action, ticket = await begin_ticket_action(
        session, branch, code, principal, now, verb="recall", allowed=ON_CALL
    )
    await update_ticket(session, ticket, recall_count=Ticket.recall_count + 1, last_called_at=now)
    action.ticket_event(
        ticket,
        TicketRecalled(
            ticket=ticket_ref(ticket),
            counter=action.counter_ref(),
            announcement=action.announce(ticket),
            recall_count=ticket.recall_count,
        ),
    )
    return await action.finish()


async def start_service(
    session: AsyncSession, branch: str, code: str, principal: Principal, now: datetime
) -> ActionResult:
    """The called customer has arrived: called -> serving."""
    action, ticket = await begin_ticket_action(
        session, branch, code, principal, now, verb="start", allowed=ON_CALL
    )
    await update_ticket(session, ticket, status=TicketStatus.SERVING, served_at=now)
    action.ticket_event(
        ticket, TicketServing(ticket=ticket_ref(ticket), counter=action.counter_ref())
    )
    return await action.finish()


async def complete(
    session: AsyncSession, branch: str, code: str, principal: Principal, now: datetime
) -> ActionResult:
    """Service done; the counter stays open without calling anyone."""
    action, _current = await begin_ticket_action(
        session, branch, code, principal, now, verb="complete", allowed=AT_COUNTER
    )
    done = await complete_current(action)
    await release_current(action)
    return await action.finish(done)


async def no_show(
    session: AsyncSession, branch: str, code: str, principal: Principal, now: datetime
) -> ActionResult:
    """The called customer did not come (过号). They can be re-queued if they turn up."""
    action, ticket = await begin_ticket_action(
        session, branch, code, principal, now, verb="mark no-show", allowed=ON_CALL
    )
    await update_ticket(session, ticket, status=TicketStatus.NO_SHOW, finished_at=now)
    action.ticket_event(
        ticket,
        TicketNoShow(
            ticket=ticket_ref(ticket),
            counter=action.counter_ref(),
            recall_count=ticket.recall_count,
        ),
    )
    await release_current(action)
    return await action.finish(ticket)


async def transfer(
    session: AsyncSession,
    branch: str,
    code: str,
    principal: Principal,
    now: datetime,
    body: TransferIn,
    settings: Settings,
) -> ActionResult:
    """Send the current ticket to another business type or counter. It keeps its number and
    issue time and waits at the front of the target queue (or the back, if asked)."""
    if body.service is None and body.counter is None:
        raise unprocessable("invalid-transfer", "give a target: service, counter, or both")
    action, ticket = await begin_ticket_action(
        session, branch, code, principal, now, verb="transfer", allowed=AT_COUNTER
    )
    action.settings = settings
    # Back in a queue, a ticket of an earlier business day would wait for nobody (SPEC §5).
    refuse_earlier_day(ticket, action.branch, now)

    service, target_counter = await _transfer_target(session, branch, code, ticket, body)
    from_ = TransferredFrom(counter=code, service=ticket.service, status=ticket.status)
    await update_ticket(
        session,
        ticket,
        status=TicketStatus.WAITING,
        service=service,
        lane=LANE_FRONT if body.position == "front" else LANE_NORMAL,
        queued_at=now,
        target_counter=target_counter,
        counter=None,
        staff=None,
        # Service time starts again at the next counter: the time back in the queue is a wait.
        served_at=None,
        transfer_count=Ticket.transfer_count + 1,
    )
    action.ticket_event(
        ticket,
        TicketTransferred(
            ticket=ticket_ref(ticket),
            from_=from_,
            to=TransferredTo(service=service, counter=target_counter, position=body.position),
        ),
    )
    await release_current(action)
    action.queues_changed.add(service)
    return await action.finish(ticket)


async def _transfer_target(
    session: AsyncSession, branch: str, code: str, ticket: Ticket, body: TransferIn
) -> tuple[str, str | None]:
    """The business type and counter (if any) a transfer sends the ticket to; 422 for a
    target that does not exist or cannot take it."""
    service = body.service or ticket.service
    if body.service is not None and await session.get(Service, (branch, body.service)) is None:
        raise unprocessable(
            "unknown-service", f"business type {body.service} does not exist in branch {branch}"
        )
    if body.counter is None:
        return service, None
    if body.counter == code:
        raise unprocessable("invalid-transfer", "a ticket cannot be transferred to its own counter")
    target = await session.get(Counter, (branch, body.counter))
    if target is None:
        raise unprocessable(
            "unknown-counter", f"counter {body.counter} does not exist in branch {branch}"
        )
    if service not in target.services:
        if body.service is not None:
            raise unprocessable(
                "invalid-transfer",
                f"counter {body.counter} does not serve business type {body.service}",
            )
        # Sent to a counter for another kind of business: it joins that counter's own type.
        service = target.services[0]
    return service, body.counter

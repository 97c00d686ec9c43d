"""The counter workflow: sign in, pause, close, and the clerk's buttons (next, recall, start,
complete, no-show, transfer).

Every action is one transaction that starts by locking the counter's row, so two presses on one
counter (a double click, two tabs) take turns, and ends by writing the history through
`record_events`. Locks are always taken in the same order (counter, then tickets, then the
branch row inside `record_events`), so actions never deadlock each other.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.permissions import Principal, Role, forbidden
from app.branches.models import Branch, Service
from app.branches.service import get_branch
from app.core.errors import conflict, not_found, unprocessable
from app.core.vocabulary import CounterState, TicketStatus
from app.counters.announcement import announcement
from app.counters.models import Counter
from app.counters.schemas import CounterIn, CounterOut, TransferIn
from app.events.catalog import (
    Announcement,
    CounterChanged,
    CounterRef,
    CurrentTicket,
    EventData,
    TicketCalled,
    TicketCompleted,
    TicketNoShow,
    TicketRecalled,
    TicketServing,
    TicketTransferred,
    TransferredFrom,
    TransferredTo,
)
from app.events.service import NewEvent, record_events
from app.queue.ordering import LANE_FRONT, LANE_NORMAL, PICK_NEXT_SQL
from app.tickets.models import Ticket
from app.tickets.service import lock_ticket, ticket_ref

# -- configuration ------------------------------------------------------------------------------


async def put_counter(
    session: AsyncSession, branch: str, code: str, body: CounterIn, now: datetime
) -> bool:
    """Create or update a counter's name and profile. Returns True if created."""
    await get_branch(session, branch)
    if len(set(body.services)) != len(body.services):
        raise unprocessable("invalid-profile", "a business type appears twice in services")
    known = set(
        await session.scalars(
            select(Service.code).where(Service.branch == branch, Service.code.in_(body.services))
        )
    )
    unknown = [s for s in body.services if s not in known]
    if unknown:
        raise unprocessable(
            "unknown-service",
            f"business type(s) {', '.join(unknown)} do not exist in branch {branch}",
            unknown=unknown,
        )
    stmt = (
        insert(Counter)
        .values(
            branch=branch,
            code=code,
            name=body.name,
            services=body.services,
            state=CounterState.CLOSED,
            state_since=now,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_update(
            index_elements=["branch", "code"],
            set_={"name": body.name, "services": body.services, "updated_at": now},
        )
        .returning(text("(xmax = 0)"))
    )
    created = bool((await session.execute(stmt)).scalar_one())
    counter = await _lock_counter(session, branch, code)
    await record_events(
        session,
        branch,
        now,
        [NewEvent(CounterChanged(counter=counter_out(counter, None)), counter=code)],
    )
    await session.commit()
    return created


# -- views --------------------------------------------------------------------------------------


_COUNTERS_WITH_CURRENT = text(
    """
    SELECT c.code, c.name, c.state, c.services, c.staff,
           t.id AS ticket_id, t.number, t.service, t.priority, t.status
    FROM counters c
    LEFT JOIN tickets t ON t.id = c.current_ticket_id
    WHERE c.branch = :branch
    """
)


def _natural(code: str) -> tuple[object, ...]:
    """Counter "2" before "10"."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", code))


async def list_counters(session: AsyncSession, branch: str) -> list[CounterOut]:
    rows = (await session.execute(_COUNTERS_WITH_CURRENT, {"branch": branch})).mappings().all()
    counters = [
        CounterOut(
            code=row["code"],
            name=row["name"],
            state=row["state"],
            services=list(row["services"]),
            staff=row["staff"],
            current=CurrentTicket(
                id=row["ticket_id"],
                number=row["number"],
                service=row["service"],
                priority=row["priority"],
                status=row["status"],
            )
            if row["ticket_id"] is not None
            else None,
        )
        for row in rows
    ]
    return sorted(counters, key=lambda c: _natural(c.code))


def counter_out(counter: Counter, current: Ticket | None) -> CounterOut:
    return CounterOut(
        code=counter.code,
        name=counter.name,
        state=counter.state,
        services=list(counter.services),
        staff=counter.staff,
        current=CurrentTicket(
            id=current.id,
            number=current.number,
            service=current.service,
            priority=current.priority,
            status=current.status,
        )
        if current is not None
        else None,
    )


@dataclass
class ActionResult:
    counter: CounterOut
    ticket: Ticket | None


# -- the action context -------------------------------------------------------------------------


_CounterQuery = TypeVar("_CounterQuery", bound=Select[*tuple[Any, ...]])


def _locking_counter(query: _CounterQuery, branch: str, code: str) -> _CounterQuery:
    """`query` narrowed to one counter, which it locks and re-reads (another transaction may
    just have changed it)."""
    return (
        query.where(Counter.branch == branch, Counter.code == code)
        .with_for_update(of=Counter)
        .execution_options(populate_existing=True)
    )


async def _lock_counter(session: AsyncSession, branch: str, code: str) -> Counter:
    counter = await session.scalar(_locking_counter(select(Counter), branch, code))
    if counter is None:
        raise not_found(f"counter {code} in branch {branch}")
    return counter


async def update_ticket(session: AsyncSession, ticket: Ticket, **values: object) -> None:
    """UPDATE one ticket row; the ORM applies the same values to `ticket` in memory."""
    await session.execute(update(Ticket).where(Ticket.id == ticket.id).values(**values))


@dataclass
class CounterAction:
    """One clerk action in progress: the locked counter, who acts, and the events to write."""

    session: AsyncSession
    branch: Branch
    counter: Counter
    principal: Principal
    now: datetime
    events: list[NewEvent] = field(default_factory=list)
    current: Ticket | None = None

    @property
    def staff(self) -> str | None:
        """Who the history names: the acting staff member, else the clerk signed in here."""
        return self.principal.staff or self.counter.staff

    def ticket_event(self, ticket: Ticket, data: EventData) -> None:
        self.events.append(
            NewEvent(data, ticket_id=ticket.id, counter=self.counter.code, staff=self.staff)
        )

    def counter_ref(self) -> CounterRef:
        return CounterRef(code=self.counter.code, name=self.counter.name)

    def announce(self, ticket: Ticket) -> Announcement:
        return Announcement(
            **announcement(
                ticket.number,
                self.counter.name,
                zh_template=self.branch.announcement_zh,
                en_template=self.branch.announcement_en,
            )
        )

    async def set_counter(self, **values: object) -> None:
        """Change the counter row and announce the new state to the screens."""
        values.setdefault("updated_at", self.now)
        if "state" in values and values["state"] != self.counter.state:
            values["state_since"] = self.now
        await self.session.execute(
            update(Counter)
            .where(Counter.branch == self.counter.branch, Counter.code == self.counter.code)
            .values(**values)
        )
        for key, value in values.items():
            setattr(self.counter, key, value)

    async def unchanged(self) -> ActionResult:
        """The action is a no-op (e.g. pausing a paused counter): answer with the current state."""
        result = ActionResult(counter_out(self.counter, self.current), self.current)
        # Nothing was written. Commit, not roll back, to release the locks: a rollback expires
        # the loaded rows, and answering with the current ticket would then need the database
        # again, from sync attribute access (MissingGreenlet, a 500: found by tests/test_fuzz.py).
        await self.session.commit()
        return result

    async def finish(self) -> ActionResult:
        self.events.append(
            NewEvent(
                CounterChanged(counter=counter_out(self.counter, self.current)),
                counter=self.counter.code,
                staff=self.staff,
            )
        )
        await record_events(self.session, self.branch.code, self.now, self.events)
        await self.session.commit()
        return ActionResult(counter_out(self.counter, self.current), self.current)


def _check_operator(principal: Principal, counter: Counter, *, signing_in: bool = False) -> None:
    """Managers and admins operate any counter of their branch; a clerk only the counter they
    are signed in at (and signs in with `open`)."""
    if principal.role in (Role.ADMIN, Role.MANAGER):
        return
    if principal.role is not Role.CLERK:
        raise forbidden(f"a {principal.role} token may not operate counters")
    if signing_in:
        return
    if counter.staff != principal.staff or counter.state == CounterState.CLOSED:
        raise forbidden(
            f"clerk {principal.staff} is not signed in at counter {counter.code}; open it first"
        )


async def begin_action(
    session: AsyncSession,
    branch: str,
    code: str,
    principal: Principal,
    now: datetime,
    *,
    signing_in: bool = False,
) -> CounterAction:
    # The counter locked, with its branch (templates, requeue_after) in the same round trip.
    row = (
        await session.execute(
            _locking_counter(
                select(Counter, Branch).join(Branch, Branch.code == Counter.branch), branch, code
            )
        )
    ).first()
    if row is None:
        await get_branch(session, branch)  # 404 for the branch if that is what is missing
        raise not_found(f"counter {code} in branch {branch}")
    counter, branch_row = row[0], row[1]
    _check_operator(principal, counter, signing_in=signing_in)
    current = None
    if counter.current_ticket_id is not None:
        current = await lock_ticket(session, counter.current_ticket_id)
    return CounterAction(session, branch_row, counter, principal, now, current=current)


def _state_conflict(counter: Counter, wanted: str) -> Exception:
    hints: dict[str, str] = {
        CounterState.CLOSED: "open it first",
        CounterState.PAUSED: "resume it first",
        CounterState.CLOSING: "it is closing and takes no new calls",
        CounterState.OPEN: "it is already open",
    }
    hint = hints.get(counter.state, "")
    return conflict(
        "invalid-counter-state",
        f"counter {counter.code} is {counter.state}: cannot {wanted} ({hint})",
        counter_state=counter.state,
    )


def _ticket_conflict(action: CounterAction, wanted: str, allowed: Sequence[str]) -> Exception:
    ticket = action.current
    if ticket is None:
        return conflict(
            "no-current-ticket",
            f"counter {action.counter.code} has no current ticket to {wanted}",
            counter_state=action.counter.state,
        )
    return conflict(
        "invalid-transition",
        f"ticket {ticket.number} is {ticket.status}; {wanted} needs it {' or '.join(allowed)}",
        ticket_status=ticket.status,
    )


# -- leaving the counter: the current ticket's end ----------------------------------------------


async def _release_current(action: CounterAction) -> None:
    """The counter has no current ticket any more; a closing counter closes now."""
    action.current = None
    values: dict[str, object] = {"current_ticket_id": None}
    if action.counter.state == CounterState.CLOSING:
        values.update(state=CounterState.CLOSED, staff=None, pause_reason=None)
    await action.set_counter(**values)


async def _complete_current(action: CounterAction) -> Ticket:
    ticket = action.current
    assert ticket is not None
    served_at = ticket.served_at or ticket.last_called_at or action.now
    await update_ticket(
        action.session,
        ticket,
        status=TicketStatus.DONE,
        served_at=served_at,
        finished_at=action.now,
    )
    action.ticket_event(
        ticket,
        TicketCompleted(
            ticket=ticket_ref(ticket),
            counter=action.counter_ref(),
            service_s=round((action.now - served_at).total_seconds(), 3),
        ),
    )
    return ticket


# -- state changes ------------------------------------------------------------------------------


async def open_counter(
    session: AsyncSession, branch: str, code: str, principal: Principal, now: datetime
) -> ActionResult:
    action = await begin_action(session, branch, code, principal, now, signing_in=True)
    counter = action.counter
    staff = principal.staff
    if counter.state in (CounterState.OPEN, CounterState.PAUSED) and counter.staff == staff:
        return await action.unchanged()  # already signed in here
    if counter.state in (CounterState.OPEN, CounterState.PAUSED) and counter.staff is not None:
        raise conflict(
            "counter-taken",
            f"counter {code} is {counter.state} with clerk {counter.staff} signed in; "
            "they must close it first (shift handover is a sign-out and a sign-in)",
            counter_state=counter.state,
        )
    if staff is not None:
        elsewhere = await session.scalar(
            select(Counter.code).where(
                Counter.branch == branch, Counter.staff == staff, Counter.code != code
            )
        )
        if elsewhere is not None:
            raise conflict(
                "clerk-signed-in-elsewhere",
                f"staff {staff} is signed in at counter {elsewhere}; close that counter first",
            )
    await action.set_counter(state=CounterState.OPEN, staff=staff, pause_reason=None)
    return await action.finish()


async def pause_counter(
    session: AsyncSession,
    branch: str,
    code: str,
    principal: Principal,
    now: datetime,
    reason: str | None,
) -> ActionResult:
    action = await begin_action(session, branch, code, principal, now)
    if action.counter.state == CounterState.PAUSED:
        return await action.unchanged()
    if action.counter.state != CounterState.OPEN:
        raise _state_conflict(action.counter, "pause")
    await action.set_counter(state=CounterState.PAUSED, pause_reason=reason)
    return await action.finish()


async def resume_counter(
    session: AsyncSession, branch: str, code: str, principal: Principal, now: datetime
) -> ActionResult:
    action = await begin_action(session, branch, code, principal, now)
    if action.counter.state == CounterState.OPEN:
        return await action.unchanged()
    if action.counter.state != CounterState.PAUSED:
        raise _state_conflict(action.counter, "resume")
    await action.set_counter(state=CounterState.OPEN, pause_reason=None)
    return await action.finish()


async def close_counter(
    session: AsyncSession, branch: str, code: str, principal: Principal, now: datetime
) -> ActionResult:
    """Sign out. With a customer at the counter it is `closing` until that ticket ends."""
    action = await begin_action(session, branch, code, principal, now)
    if action.counter.state == CounterState.CLOSED or (
        action.counter.state == CounterState.CLOSING and action.current is not None
    ):
        return await action.unchanged()
    if action.current is not None:
        await action.set_counter(state=CounterState.CLOSING, pause_reason=None)
    else:
        await action.set_counter(
            state=CounterState.CLOSED, staff=None, pause_reason=None, current_ticket_id=None
        )
    return await action.finish()


# -- the clerk's buttons ------------------------------------------------------------------------


async def call_next(
    session: AsyncSession, branch: str, code: str, principal: Principal, now: datetime
) -> ActionResult:
    """Complete the current ticket (if any) and call the best waiting one, atomically.
    The result's ticket is None when nobody waits for this counter."""
    action = await begin_action(session, branch, code, principal, now)
    if action.counter.state != CounterState.OPEN:
        raise _state_conflict(action.counter, "call the next ticket")
    if action.current is not None:
        await _complete_current(action)
        action.current = None
    picked = (
        await session.scalars(
            select(Ticket).from_statement(PICK_NEXT_SQL).execution_options(populate_existing=True),
            {
                "branch": branch,
                "counter": code,
                "staff": action.staff,
                "profile": list(action.counter.services),
                "now": now,
                "requeue_after": action.branch.requeue_after,
            },
        )
    ).one_or_none()
    if picked is None:
        await action.set_counter(current_ticket_id=None)
    else:
        action.current = picked
        await action.set_counter(current_ticket_id=picked.id, calls=action.counter.calls + 1)
        action.ticket_event(
            picked,
            TicketCalled(
                ticket=ticket_ref(picked),
                counter=action.counter_ref(),
                announcement=action.announce(picked),
                wait_s=round((now - picked.issued_at).total_seconds(), 3),
            ),
        )
    return await action.finish()


async def recall(
    session: AsyncSession, branch: str, code: str, principal: Principal, now: datetime
) -> ActionResult:
    """Call the current customer again (the announcement repeats)."""
    action = await begin_action(session, branch, code, principal, now)
    ticket = action.current
    if ticket is None or ticket.status != TicketStatus.CALLED:
        raise _ticket_conflict(action, "recall", [TicketStatus.CALLED])
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
    action = await begin_action(session, branch, code, principal, now)
    ticket = action.current
    if ticket is None or ticket.status != TicketStatus.CALLED:
        raise _ticket_conflict(action, "start", [TicketStatus.CALLED])
    await update_ticket(session, ticket, status=TicketStatus.SERVING, served_at=now)
    action.ticket_event(
        ticket, TicketServing(ticket=ticket_ref(ticket), counter=action.counter_ref())
    )
    return await action.finish()


async def complete(
    session: AsyncSession, branch: str, code: str, principal: Principal, now: datetime
) -> ActionResult:
    """Service done; the counter stays open without calling anyone."""
    action = await begin_action(session, branch, code, principal, now)
    ticket = action.current
    if ticket is None or ticket.status not in (TicketStatus.CALLED, TicketStatus.SERVING):
        raise _ticket_conflict(action, "complete", [TicketStatus.CALLED, TicketStatus.SERVING])
    done = await _complete_current(action)
    await _release_current(action)
    result = await action.finish()
    return ActionResult(result.counter, done)


async def no_show(
    session: AsyncSession, branch: str, code: str, principal: Principal, now: datetime
) -> ActionResult:
    """The called customer did not come (过号). They can be re-queued if they turn up."""
    action = await begin_action(session, branch, code, principal, now)
    ticket = action.current
    if ticket is None or ticket.status != TicketStatus.CALLED:
        raise _ticket_conflict(action, "mark no-show", [TicketStatus.CALLED])
    await update_ticket(session, ticket, status=TicketStatus.NO_SHOW, finished_at=now)
    action.ticket_event(
        ticket,
        TicketNoShow(
            ticket=ticket_ref(ticket),
            counter=action.counter_ref(),
            recall_count=ticket.recall_count,
        ),
    )
    await _release_current(action)
    result = await action.finish()
    return ActionResult(result.counter, ticket)


async def transfer(
    session: AsyncSession,
    branch: str,
    code: str,
    principal: Principal,
    now: datetime,
    body: TransferIn,
) -> ActionResult:
    """Send the current ticket to another business type or counter. It keeps its number and
    issue time and waits at the front of the target queue (or the back, if asked)."""
    if body.service is None and body.counter is None:
        raise unprocessable("invalid-transfer", "give a target: service, counter, or both")
    action = await begin_action(session, branch, code, principal, now)
    ticket = action.current
    if ticket is None or ticket.status not in (TicketStatus.CALLED, TicketStatus.SERVING):
        raise _ticket_conflict(action, "transfer", [TicketStatus.CALLED, TicketStatus.SERVING])

    service = body.service or ticket.service
    if body.service is not None and await session.get(Service, (branch, body.service)) is None:
        raise unprocessable(
            "unknown-service", f"business type {body.service} does not exist in branch {branch}"
        )
    target_counter = None
    if body.counter is not None:
        if body.counter == code:
            raise unprocessable(
                "invalid-transfer", "a ticket cannot be transferred to its own counter"
            )
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
        target_counter = body.counter

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
    await _release_current(action)
    result = await action.finish()
    return ActionResult(result.counter, ticket)


async def get_counter(session: AsyncSession, branch: str, code: str) -> CounterOut:
    counter = await session.get(Counter, (branch, code))
    if counter is None:
        raise not_found(f"counter {code} in branch {branch}")
    current = None
    if counter.current_ticket_id is not None:
        current = await session.get(Ticket, counter.current_ticket_id)
    return counter_out(counter, current)

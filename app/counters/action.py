"""One clerk action in progress (`CounterAction`): every action is one transaction that starts
by locking the counter's row, so two presses on one counter (a double click, two tabs) take
turns, and ends by writing the history through `record_events`. Locks are always taken in the
same order (counter, then tickets, then the branch row inside `record_events`), so actions never
deadlock each other."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.permissions import Principal, Role, forbidden
from app.branches.models import Branch
from app.branches.service import get_branch
from app.core.errors import conflict, not_found
from app.core.settings import Settings
from app.core.vocabulary import AnnouncementMode, CounterState, TicketStatus
from app.counters.announcement import announcement, with_audio
from app.counters.models import Counter
from app.counters.schemas import CounterOut
from app.counters.service import counter_out, locking_counter
from app.events.catalog import (
    CallAnnouncement,
    CounterChanged,
    CounterRef,
    EventData,
    TicketCompleted,
)
from app.events.service import NewEvent, record_events
from app.queue.near import record_near
from app.tickets.models import Ticket
from app.tickets.service import lock_ticket, ticket_ref


@dataclass
class ActionResult:
    counter: CounterOut
    ticket: Ticket | None


async def update_ticket(session: AsyncSession, ticket: Ticket, **values: object) -> None:
    """UPDATE one ticket row; the ORM applies the same values to `ticket` in memory."""
    await session.execute(
        update(Ticket)
        .where(Ticket.id == ticket.id, Ticket.business_date == ticket.business_date)
        .values(**values)
    )


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
    # Business types whose queue this action changed: `finish` checks their front for
    # tickets that are now near (SPEC §9, app/queue/near.py).
    queues_changed: set[str] = field(default_factory=set)
    settings: Settings | None = None

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

    def announce(self, ticket: Ticket) -> CallAnnouncement:
        """The call's words, and the path of their audio unless the branch's screens speak
        with browser voices only."""
        words = announcement(
            ticket.number,
            self.counter.name,
            zh_template=self.branch.announcement_zh,
            en_template=self.branch.announcement_en,
        )
        if self.branch.announcement_mode == AnnouncementMode.BROWSER:
            return words
        return with_audio(
            words,
            branch=self.branch.code,
            number=ticket.number,
            counter=self.counter.code,
            rate=self.branch.announcement_rate,
        )

    async def set_counter(self, **values: object) -> None:
        """Change the counter row (and `self.counter`); `finish` announces the new state."""
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

    async def finish_unchanged(self) -> ActionResult:
        """End a no-op action (e.g. pausing a paused counter): answer with the current state."""
        result = ActionResult(counter_out(self.counter, self.current), self.current)
        # Nothing was written. Commit, not roll back, to release the locks: a rollback would
        # expire the loaded rows that the answer still reads (docs/decisions.md, "Counters").
        await self.session.commit()
        return result

    async def finish(self, ticket: Ticket | None = None) -> ActionResult:
        """Record the events with the counter as it is now, and answer with it and `ticket` (the
        ticket the action concerned; by default the counter's current one)."""
        counter = counter_out(self.counter, self.current)
        self.events.append(
            NewEvent(CounterChanged(counter=counter), counter=self.counter.code, staff=self.staff)
        )
        await record_events(self.session, self.branch.code, self.now, self.events)
        if self.queues_changed:
            assert self.settings is not None, "an action that changes a queue needs settings"
            await record_near(
                self.session, self.branch.code, self.queues_changed, self.now, self.settings
            )
        await self.session.commit()
        return ActionResult(counter, ticket or self.current)


def check_operator(principal: Principal, counter: Counter, *, signing_in: bool = False) -> None:
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
    settings: Settings | None = None,
) -> CounterAction:
    # The counter locked, with its branch (templates, requeue_after) in the same round trip.
    row = (
        await session.execute(
            locking_counter(
                select(Counter, Branch).join(Branch, Branch.code == Counter.branch), branch, code
            )
        )
    ).first()
    if row is None:
        await get_branch(session, branch)  # 404 for the branch if that is what is missing
        raise not_found(f"counter {code} in branch {branch}")
    counter, branch_row = row[0], row[1]
    check_operator(principal, counter, signing_in=signing_in)
    current = None
    if counter.current_ticket_id is not None:
        current = await lock_ticket(
            session, counter.current_ticket_id, counter.current_business_date
        )
    return CounterAction(
        session, branch_row, counter, principal, now, current=current, settings=settings
    )


def state_conflict(counter: Counter, wanted: str) -> Exception:
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


# The current ticket's statuses an action needs: called (recall, start, no-show), or called or
# serving (complete, transfer).
ON_CALL = (TicketStatus.CALLED,)
AT_COUNTER = (TicketStatus.CALLED, TicketStatus.SERVING)


async def begin_ticket_action(
    session: AsyncSession,
    branch: str,
    code: str,
    principal: Principal,
    now: datetime,
    *,
    verb: str,
    allowed: Sequence[TicketStatus],
) -> tuple[CounterAction, Ticket]:
    """`begin_action` for an action on the counter's current ticket, which must be `allowed`."""
    action = await begin_action(session, branch, code, principal, now)
    ticket = action.current
    if ticket is None or ticket.status not in allowed:
        raise _ticket_conflict(action, verb, allowed)
    return action, ticket


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


async def release_current(action: CounterAction) -> None:
    """The counter has no current ticket any more; a closing counter closes now."""
    action.current = None
    values: dict[str, object] = {"current_ticket_id": None, "current_business_date": None}
    if action.counter.state == CounterState.CLOSING:
        values.update(state=CounterState.CLOSED, staff=None, pause_reason=None)
    await action.set_counter(**values)


async def complete_current(action: CounterAction) -> Ticket:
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

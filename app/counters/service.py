"""Counters: their configuration (name, ordered profile of business types) and how they are
shown (state, clerk, current ticket). The clerk's actions are in action.py, states.py and
calls.py."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import Select, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.branches.models import Service
from app.branches.service import get_branch
from app.core.errors import not_found, unprocessable
from app.core.partitions import from_week_sql
from app.core.vocabulary import CounterState
from app.counters.models import Counter
from app.counters.schemas import CounterIn, CounterOut
from app.events.catalog import (
    CounterChanged,
    CurrentTicket,
)
from app.events.service import NewEvent, record_events
from app.tickets.models import Ticket

# -- configuration ------------------------------------------------------------------------------


async def put_counter(
    session: AsyncSession, branch: str, code: str, body: CounterIn, now: datetime
) -> bool:
    """Create or update a counter's name and profile, and announce it (`counter.changed`);
    commits. Returns True if created."""
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


# Each counter with its current ticket: code, name, state, services, staff, then the ticket's
# id, number, service, priority and status (NULL without one); `counters_from_rows` reads them.
_COUNTER_FIELDS = (
    "c.code, c.name, c.state, c.services, c.staff, t.id, t.number, t.service, t.priority, t.status"
)


def _counters_from(week: date | None) -> str:
    """The counters of :branch, each with its current ticket by its primary key (one
    partition's index per counter) if of a week from `week` on (None: any)."""
    return f"""
    FROM counters c
    LEFT JOIN tickets t
      ON t.id = c.current_ticket_id AND t.business_date = c.current_business_date
         AND {from_week_sql("t.business_date", week)}
    WHERE c.branch = :branch"""


_COUNTERS_WITH_CURRENT = text(f"SELECT {_COUNTER_FIELDS} {_counters_from(None)}")


def counters_column(week: date | None) -> str:
    """The counters as one value, an array of records (NULL: no counter), for a statement that
    reads more than the counters (the queue view, app/hall/service.py), their current tickets
    read from the weeks from `week` on (None: every week). Parameter: :branch."""
    return f"(SELECT array_agg(ROW({_COUNTER_FIELDS})) {_counters_from(week)})"


def held_before_column(week: date | None) -> str:
    """True if a counter of :branch holds a ticket of a week before `week`: `counters_column`
    of `week` would not show it."""
    held = "FALSE" if week is None else f"NOT {from_week_sql('c.current_business_date', week)}"
    return f"(SELECT coalesce(bool_or({held}), FALSE) FROM counters c WHERE c.branch = :branch)"  # noqa: S608


def _natural(code: str) -> tuple[object, ...]:
    """Counter "2" before "10"."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", code))


def counters_from_rows(rows: Iterable[Sequence[Any]] | None) -> list[CounterOut]:
    """The counters, in natural order of their codes, from rows of `_COUNTER_FIELDS`."""
    counters = [
        CounterOut(
            code=code,
            name=name,
            state=state,
            services=list(services),
            staff=staff,
            current=CurrentTicket(
                id=ticket_id, number=number, service=service, priority=priority, status=status
            )
            if ticket_id is not None
            else None,
        )
        for code, name, state, services, staff, ticket_id, number, service, priority, status in (
            rows or ()
        )
    ]
    return sorted(counters, key=lambda c: _natural(c.code))


async def list_counters(session: AsyncSession, branch: str) -> list[CounterOut]:
    return counters_from_rows(await session.execute(_COUNTERS_WITH_CURRENT, {"branch": branch}))


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


async def get_counter(session: AsyncSession, branch: str, code: str) -> CounterOut:
    counter = await session.get(Counter, (branch, code))
    if counter is None:
        raise not_found(f"counter {code} in branch {branch}")
    current = None
    if counter.current_ticket_id is not None:
        current = await session.scalar(
            select(Ticket).where(
                Ticket.id == counter.current_ticket_id,
                Ticket.business_date == counter.current_business_date,
            )
        )
    return counter_out(counter, current)


# -- locking ---------------------------------------------------------------------------------------

_CounterQuery = TypeVar("_CounterQuery", bound=Select[*tuple[Any, ...]])


def locking_counter(query: _CounterQuery, branch: str, code: str) -> _CounterQuery:
    """`query` narrowed to one counter, which it locks and re-reads (another transaction may
    just have changed it)."""
    return (
        query.where(Counter.branch == branch, Counter.code == code)
        .with_for_update(of=Counter)
        .execution_options(populate_existing=True)
    )


async def _lock_counter(session: AsyncSession, branch: str, code: str) -> Counter:
    counter = await session.scalar(locking_counter(select(Counter), branch, code))
    if counter is None:
        raise not_found(f"counter {code} in branch {branch}")
    return counter

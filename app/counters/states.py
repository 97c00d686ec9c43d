"""Signing in and out of a counter: open, pause, resume, close."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.permissions import Principal
from app.core.errors import conflict
from app.core.vocabulary import CounterState
from app.counters.action import (
    ActionResult,
    CounterAction,
    begin_action,
    state_conflict,
)
from app.counters.models import Counter


async def open_counter(
    session: AsyncSession, branch: str, code: str, principal: Principal, now: datetime
) -> ActionResult:
    action = await begin_action(session, branch, code, principal, now, signing_in=True)
    counter = action.counter
    staff = principal.staff
    if counter.state in (CounterState.OPEN, CounterState.PAUSED) and counter.staff == staff:
        return await action.finish_unchanged()  # already signed in here
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
    return await _switch(action, CounterState.OPEN, CounterState.PAUSED, "pause", reason)


async def resume_counter(
    session: AsyncSession, branch: str, code: str, principal: Principal, now: datetime
) -> ActionResult:
    action = await begin_action(session, branch, code, principal, now)
    return await _switch(action, CounterState.PAUSED, CounterState.OPEN, "resume", None)


async def _switch(
    action: CounterAction,
    from_: CounterState,
    to: CounterState,
    verb: str,
    pause_reason: str | None,
) -> ActionResult:
    """Pause or resume: a counter already `to` stays as it is; any state but `from_` is a 409."""
    if action.counter.state == to:
        return await action.finish_unchanged()
    if action.counter.state != from_:
        raise state_conflict(action.counter, verb)
    await action.set_counter(state=to, pause_reason=pause_reason)
    return await action.finish()


async def close_counter(
    session: AsyncSession, branch: str, code: str, principal: Principal, now: datetime
) -> ActionResult:
    """Sign out. With a customer at the counter it is `closing` until that ticket ends."""
    action = await begin_action(session, branch, code, principal, now)
    if action.counter.state == CounterState.CLOSED or (
        action.counter.state == CounterState.CLOSING and action.current is not None
    ):
        return await action.finish_unchanged()
    if action.current is not None:
        await action.set_counter(state=CounterState.CLOSING, pause_reason=None)
    else:
        await action.set_counter(
            state=CounterState.CLOSED,
            staff=None,
            pause_reason=None,
            current_ticket_id=None,
            current_business_date=None,
        )
    return await action.finish()

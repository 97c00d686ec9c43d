from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.dependencies import Configurer, Operator, Picker, QueueReader
from app.auth.permissions import Principal
from app.branches.service import get_branch
from app.core.codes import BranchCode, CounterCode
from app.core.database import SessionDep
from app.core.errors import API_PROBLEMS, problem_responses
from app.counters import calls, next_call, states
from app.counters import service as counters
from app.counters.action import ActionResult
from app.counters.schemas import (
    CallIn,
    CounterActionOut,
    CounterIn,
    CounterOut,
    PauseIn,
    TransferIn,
)
from app.tickets.service import ticket_out

router = APIRouter(
    prefix="/api/v1/branches/{branch}/counters",
    tags=["counters"],
    responses=problem_responses(*API_PROBLEMS, 409),
)

ActionFn = Callable[[AsyncSession, str, str, Principal, datetime], Awaitable[ActionResult]]


async def _action_out(
    request: Request, session: AsyncSession, result: ActionResult
) -> CounterActionOut:
    """The answer to an action: the counter, and its ticket as the ticket API shows it."""
    ticket = None
    if result.ticket is not None:
        ticket = await ticket_out(
            session, result.ticket, request.app.state.clock.now(), request.app.state.settings
        )
    return CounterActionOut(counter=result.counter, ticket=ticket)


def _action_route(path: str, action: ActionFn, description: str | None = None) -> None:
    """`POST /{counter}/<path>`: an action that takes nothing but the counter (the others, with
    a body or another answer, are written out below)."""

    async def endpoint(
        branch: BranchCode,
        counter: CounterCode,
        request: Request,
        session: SessionDep,
        principal: Operator,
    ) -> CounterActionOut:
        result = await action(session, branch, counter, principal, request.app.state.clock.now())
        return await _action_out(request, session, result)

    router.add_api_route(
        f"/{{counter}}/{path}",
        endpoint,
        methods=["POST"],
        response_model=CounterActionOut,
        name=action.__name__,  # the operation id: the action function's name
        description=description,
    )


@router.get("", response_model=list[CounterOut])
async def list_branch_counters(
    branch: BranchCode, session: SessionDep, _: QueueReader
) -> list[CounterOut]:
    """Every counter with its state, clerk and current ticket."""
    await get_branch(session, branch)
    return await counters.list_counters(session, branch)


@router.put("/{counter}", response_model=CounterOut, responses={201: {"model": CounterOut}})
async def put_counter(
    branch: BranchCode,
    counter: CounterCode,
    body: CounterIn,
    request: Request,
    response: Response,
    session: SessionDep,
    _: Configurer,
) -> CounterOut:
    """Create or update a counter and its profile (201 created, 200 updated)."""
    created = await counters.put_counter(
        session, branch, counter, body, request.app.state.clock.now()
    )
    response.status_code = 201 if created else 200
    return await counters.get_counter(session, branch, counter)


@router.get("/{counter}", response_model=CounterOut)
async def get_counter(
    branch: BranchCode, counter: CounterCode, session: SessionDep, _: QueueReader
) -> CounterOut:
    return await counters.get_counter(session, branch, counter)


_action_route(
    "open",
    states.open_counter,
    "Sign in: the clerk of the token is now at this counter (a manager may open any).",
)


@router.post("/{counter}/pause", response_model=CounterActionOut)
async def pause_counter(
    branch: BranchCode,
    counter: CounterCode,
    request: Request,
    session: SessionDep,
    principal: Operator,
    body: Annotated[PauseIn | None, Body()] = None,
) -> CounterActionOut:
    """A short break: `next` is refused until resume."""
    result = await states.pause_counter(
        session,
        branch,
        counter,
        principal,
        request.app.state.clock.now(),
        body.reason if body else None,
    )
    return await _action_out(request, session, result)


_action_route("resume", states.resume_counter)


_action_route(
    "close",
    states.close_counter,
    "Sign out: closed at once, or `closing` until the current customer is done.",
)


@router.post(
    "/{counter}/next",
    response_model=CounterActionOut,
    responses={204: {"description": "nobody waits for this counter"}},
)
async def call_next(
    branch: BranchCode,
    counter: CounterCode,
    request: Request,
    session: SessionDep,
    principal: Operator,
) -> CounterActionOut | Response:
    """Complete the current ticket and call the best waiting one; 204 if nobody waits."""
    result = await next_call.call_next(
        session,
        branch,
        counter,
        principal,
        request.app.state.clock.now(),
        request.app.state.settings,
    )
    if result.ticket is None:
        return Response(status_code=204)
    return await _action_out(request, session, result)


@router.post("/{counter}/call", response_model=CounterActionOut)
async def call_chosen(
    branch: BranchCode,
    counter: CounterCode,
    body: CallIn,
    request: Request,
    session: SessionDep,
    principal: Picker,
) -> CounterActionOut:
    """The service desk calls a chosen waiting ticket here, as `next` does (the current ticket
    is completed first; the call says `picked: true`). Managers and admins: any waiting ticket
    of the branch; clerks: where the branch sets `clerks_may_pick`, a type of the counter's
    profile."""
    result = await calls.call_chosen(
        session,
        branch,
        counter,
        principal,
        request.app.state.clock.now(),
        body.ticket,
        request.app.state.settings,
    )
    return await _action_out(request, session, result)


_action_route("recall", calls.recall, "Announce the current ticket again.")


_action_route("start", calls.start_service, "The customer arrived: called -> serving.")


_action_route("complete", calls.complete, "Service done, without calling the next customer.")


_action_route("no-show", calls.no_show, "The called customer did not come.")


@router.post("/{counter}/transfer", response_model=CounterActionOut)
async def transfer(
    branch: BranchCode,
    counter: CounterCode,
    body: TransferIn,
    request: Request,
    session: SessionDep,
    principal: Operator,
) -> CounterActionOut:
    """Send the current ticket to another business type and/or counter (front or back)."""
    result = await calls.transfer(
        session,
        branch,
        counter,
        principal,
        request.app.state.clock.now(),
        body,
        request.app.state.settings,
    )
    return await _action_out(request, session, result)

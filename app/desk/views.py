"""The service desk's routes (SPEC §6): find tickets, change a ticket's priority. The call of
a chosen ticket is a counter action: `POST /branches/{b}/counters/{c}/call` (app/counters)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request

from app.auth.dependencies import PrincipalDep, TicketFinder
from app.auth.permissions import Action, check_allowed
from app.core.codes import CODE_PATTERN, BranchCode
from app.core.database import SessionDep
from app.core.errors import API_PROBLEMS, problem_responses
from app.core.vocabulary import TicketStatus
from app.desk import service as desk
from app.desk.schemas import (
    OFFSET_MAX,
    PAGE_DEFAULT,
    PAGE_MAX,
    FoundTickets,
    PriorityIn,
    TicketPage,
)
from app.tickets.schemas import TicketOut
from app.tickets.service import get_ticket

router = APIRouter(
    prefix="/api/v1", tags=["service desk"], responses=problem_responses(*API_PROBLEMS, 409)
)


@router.get("/branches/{branch}/tickets", response_model=FoundTickets | TicketPage)
async def find_tickets(
    branch: BranchCode,
    request: Request,
    session: SessionDep,
    _: TicketFinder,
    number: Annotated[
        str | None,
        Query(description="a ticket number, any case, e.g. A001 (a1 and A01 name it too)"),
    ] = None,
    status: Annotated[TicketStatus | None, Query(description="list this status")] = None,
    service: Annotated[
        str | None,
        Query(pattern=CODE_PATTERN, max_length=32, description="with status: one type only"),
    ] = None,
    day: Annotated[
        date | None,
        Query(
            alias="date",
            description="the business day (default: today in the branch); not with status=waiting",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        Query(ge=1, le=PAGE_MAX, description=f"with status: page size (default {PAGE_DEFAULT})"),
    ] = None,
    offset: Annotated[int | None, Query(ge=0, le=OFFSET_MAX, description="with status")] = None,
) -> FoundTickets | TicketPage:
    """By `number`: the ticket(s) of that number on the day, each with its history (an
    unknown number: an empty list). By `status`: that status's tickets and their `total`;
    `waiting` in calling order, business type after type (by prefix), with positions and
    estimates; any other status newest first."""
    query = desk.TicketQuery(number, status, service, day, limit, offset)
    return await desk.find_tickets(
        session, branch, query, request.app.state.clock.now(), request.app.state.settings
    )


@router.post("/tickets/{ticket_id}/priority", response_model=TicketOut)
async def prioritise_ticket(
    ticket_id: uuid.UUID,
    body: PriorityIn,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
) -> TicketOut:
    """Change a waiting ticket's priority class (manager or admin): it keeps its number and
    issue time and takes its place by the new class. The reason is kept in the history for
    staff, never on the stream. The class it already has: 200, nothing changes."""
    ticket = await get_ticket(session, ticket_id)
    check_allowed(principal, Action.PRIORITISE_TICKET, ticket.branch)
    return await desk.prioritise(
        session,
        ticket_id,
        body,
        principal=principal,
        now=request.app.state.clock.now(),
        settings=request.app.state.settings,
    )

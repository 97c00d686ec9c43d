from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from app.auth.dependencies import Issuer, PrincipalDep
from app.auth.permissions import Action, Principal, Role, check_allowed, is_allowed
from app.core.codes import BranchCode
from app.core.database import SessionDep
from app.core.errors import API_PROBLEMS, conflict, problem_responses
from app.tickets import issuing, ratings
from app.tickets import service as tickets
from app.tickets.rate_limit import limited_token
from app.tickets.schemas import IdempotencyKey, RatingIn, TicketDetail, TicketIn, TicketOut

router = APIRouter(
    prefix="/api/v1", tags=["tickets"], responses=problem_responses(*API_PROBLEMS, 409)
)


@router.post(
    "/branches/{branch}/tickets",
    status_code=201,
    response_model=TicketOut,
    responses=problem_responses(429),
)
async def issue_ticket(
    branch: BranchCode,
    body: TicketIn,
    request: Request,
    response: Response,
    session: SessionDep,
    principal: Issuer,
    idempotency_key: Annotated[IdempotencyKey | None, Header()] = None,
) -> TicketOut:
    """Issue a number. With an Idempotency-Key, a retry returns the same ticket."""
    _check_in_service(principal)
    settings = request.app.state.settings
    issued = await issuing.issue_ticket(
        session,
        branch,
        body,
        idempotency_key=idempotency_key,
        limited_token=limited_token(principal, settings.issue_rate_per_minute),
        now=request.app.state.clock.now(),  # one clock reading governs the whole request
        settings=settings,
        quotes=request.app.state.quotes,
    )
    if issued.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return issued.ticket


def _check_in_service(principal: Principal) -> None:
    """A kiosk its manager set out of service issues nothing (SPEC §7)."""
    if principal.role is Role.KIOSK and principal.out_of_service:
        raise conflict("kiosk-out-of-service", "this kiosk is out of service (暂停使用)")


@router.get("/tickets/{ticket_id}", response_model=TicketDetail)
async def get_ticket(
    ticket_id: uuid.UUID, request: Request, session: SessionDep, principal: PrincipalDep
) -> TicketDetail:
    """A ticket with its position, estimate and full history (staff notes: staff only)."""
    ticket = await tickets.get_ticket(session, ticket_id)
    check_allowed(principal, Action.READ_TICKET, ticket.branch)
    detail = await tickets.ticket_detail(
        session,
        ticket,
        request.app.state.clock.now(),
        request.app.state.settings,
        notes=is_allowed(principal, Action.READ_TICKET_NOTES, ticket.branch),
    )
    if principal.role is Role.DISPLAY:
        # The code cancels and rates the ticket (SPEC §9): for kiosks and staff, not screens.
        detail.code = None
    return detail


@router.post("/tickets/{ticket_id}/cancel", response_model=TicketOut)
async def cancel_ticket(
    ticket_id: uuid.UUID, request: Request, session: SessionDep, principal: PrincipalDep
) -> TicketOut:
    """Cancel a waiting ticket."""
    ticket = await tickets.get_ticket(session, ticket_id)
    check_allowed(principal, Action.CANCEL_TICKET, ticket.branch)
    return await tickets.cancel_ticket(
        session,
        ticket,
        now=request.app.state.clock.now(),
        staff=principal.staff,
        settings=request.app.state.settings,
    )


@router.post("/tickets/{ticket_id}/requeue", response_model=TicketOut)
async def requeue_ticket(
    ticket_id: uuid.UUID, request: Request, session: SessionDep, principal: PrincipalDep
) -> TicketOut:
    """A no-show customer turned up: back in the queue, called after a few others."""
    ticket = await tickets.get_ticket(session, ticket_id)
    check_allowed(principal, Action.REQUEUE_TICKET, ticket.branch)
    return await tickets.requeue_ticket(
        session,
        ticket_id,
        now=request.app.state.clock.now(),
        staff=principal.staff,
        settings=request.app.state.settings,
    )


@router.post("/tickets/{ticket_id}/rating", response_model=TicketOut)
async def rate_ticket(
    ticket_id: uuid.UUID,
    body: RatingIn,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
) -> TicketOut:
    """The customer rates a finished service (the counter's evaluation keypad): 1..5 with an
    optional comment, once, on the day of service."""
    ticket = await tickets.get_ticket(session, ticket_id)
    check_allowed(principal, Action.RATE_TICKET, ticket.branch)
    return await ratings.rate_ticket(
        session,
        ticket_id,
        body,
        now=request.app.state.clock.now(),
        settings=request.app.state.settings,
    )

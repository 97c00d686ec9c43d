"""The public API (SPEC §9): no token; the ticket's code is the key. Every route counts against
the client address's limit and holds a place in the public bulkhead (app/public/limits.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.core.codes import BranchCode
from app.core.database import SessionDep
from app.core.errors import problem_responses
from app.public import service
from app.public.limits import PublicClient
from app.public.schemas import JoinBranch, JoinedTicket, JoinIn, PublicTicket, TicketCode
from app.tickets.schemas import RatingIn

router = APIRouter(
    prefix="/api/v1/public",
    tags=["public"],
    responses=problem_responses(400, 404, 413, 422, 429, 503),
)


@router.get("/tickets/{code}", response_model=PublicTicket)
async def read_ticket(
    code: TicketCode, request: Request, session: SessionDep, _client: PublicClient
) -> PublicTicket:
    """The ticket as its holder's phone shows it: place, estimate, the counter when called."""
    return await service.read(
        session, code, request.app.state.clock.now(), request.app.state.settings
    )


@router.post(
    "/tickets/{code}/cancel", response_model=PublicTicket, responses=problem_responses(409)
)
async def cancel_ticket(
    code: TicketCode, request: Request, session: SessionDep, _client: PublicClient
) -> PublicTicket:
    """ "I have left": cancels a waiting ticket."""
    return await service.cancel(
        session, code, request.app.state.clock.now(), request.app.state.settings
    )


@router.post(
    "/tickets/{code}/rating", response_model=PublicTicket, responses=problem_responses(409)
)
async def rate_ticket(
    code: TicketCode,
    body: RatingIn,
    request: Request,
    session: SessionDep,
    _client: PublicClient,
) -> PublicTicket:
    """Rates a finished service 1-5, once, on the day of service (评价器)."""
    return await service.rate(
        session, code, body, request.app.state.clock.now(), request.app.state.settings
    )


@router.get("/branches/{branch}", response_model=JoinBranch)
async def join_branch(
    branch: BranchCode, request: Request, session: SessionDep, _client: PublicClient
) -> JoinBranch:
    """What the remote join page lists; 404 unless the branch has remote join enabled."""
    return await service.join_branch(
        session, branch, request.app.state.clock.now(), request.app.state.settings
    )


@router.post(
    "/branches/{branch}/tickets",
    status_code=201,
    response_model=JoinedTicket,
    responses=problem_responses(409),
)
async def join(
    branch: BranchCode,
    body: JoinIn,
    request: Request,
    session: SessionDep,
    client: PublicClient,
) -> JoinedTicket:
    """Remote join: a `normal` ticket on channel `online`, with its code."""
    state = request.app.state
    return await service.join(
        session, branch, body, client, state.clock.now(), state.settings, quotes=state.quotes
    )

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.auth.dependencies import PrincipalDep
from app.auth.models import ApiToken
from app.auth.permissions import Action, Role, check_allowed
from app.auth.seen import SeenTracker, is_online
from app.auth.service import ADMIN_TOKEN_ID
from app.core.codes import Code
from app.core.database import SessionDep
from app.core.errors import API_PROBLEMS, not_found, problem_responses
from app.tokens.pairing import device_path, pairing
from app.tokens.schemas import TokenCreate, TokenCreated, TokenPatch, TokenView
from app.tokens.service import (
    create_token,
    list_tokens,
    listed_branch,
    live_token,
    patch_token,
    revoke_token,
)

router = APIRouter(
    prefix="/api/v1/tokens", tags=["tokens"], responses=problem_responses(*API_PROBLEMS)
)


@router.post("", status_code=201, response_model=TokenCreated)
async def post_token(
    body: TokenCreate, request: Request, session: SessionDep, principal: PrincipalDep
) -> TokenCreated:
    """Create a token; the secret, and a device's pairing link and QR code, are in the
    response once and never again."""
    row, token = await create_token(session, principal, body, request.app.state.clock.now())
    path = device_path(body.role, row.branch, body.counter)
    return TokenCreated(
        id=row.id,
        token=token,
        role=body.role,
        branch=row.branch,
        staff=row.staff,
        label=row.label,
        created_at=row.created_at,
        pairing=pairing(str(request.base_url), path, token) if path else None,
    )


@router.get("", response_model=list[TokenView])
async def get_tokens(
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    branch: Annotated[Code | None, Query()] = None,
) -> list[TokenView]:
    """The devices: live tokens without their secrets, with when each was last seen."""
    rows = await list_tokens(session, listed_branch(principal, branch))
    return [_view(request, row) for row in rows]


@router.get("/self", response_model=TokenView, responses=problem_responses(404))
async def get_own_token(
    request: Request, session: SessionDep, principal: PrincipalDep
) -> TokenView:
    """The caller's own token (a kiosk asks whether it is in service). The environment's
    admin token has no row: 404."""
    check_allowed(principal, Action.READ_OWN_TOKEN, principal.branch)
    if principal.token_id == ADMIN_TOKEN_ID:
        raise not_found("a row for the environment's admin token")
    return _view(request, await live_token(session, principal.token_id))


@router.patch("/{token_id}", response_model=TokenView, responses=problem_responses(404))
async def patch_one_token(
    token_id: str,
    body: TokenPatch,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
) -> TokenView:
    """Rename a device, or set a kiosk out of service (and back)."""
    row = await patch_token(session, principal, token_id, body)
    return _view(request, row)


@router.delete("/{token_id}", status_code=204)
async def delete_token(
    token_id: str, request: Request, session: SessionDep, principal: PrincipalDep
) -> Response:
    """Revoke a token: it stops working at once, on every server process."""
    await revoke_token(session, principal, token_id, request.app.state.clock.now())
    return Response(status_code=204)


def _view(request: Request, row: ApiToken) -> TokenView:
    now: datetime = request.app.state.clock.now()
    last_seen = _last_seen(request, row)
    streaming = row.id in request.app.state.stream_limits.per_token
    return TokenView(
        id=row.id,
        role=Role(row.role),
        branch=row.branch,
        staff=row.staff,
        label=row.label,
        created_at=row.created_at,
        last_seen_at=last_seen,
        online=streaming or is_online(last_seen, now),
        out_of_service=row.out_of_service,
    )


def _last_seen(request: Request, row: ApiToken) -> datetime | None:
    """The later of the database's coarse value and this process's own sighting."""
    tracker: SeenTracker = request.app.state.seen
    seen = [t for t in (row.last_seen_at, tracker.last_seen(row.id)) if t is not None]
    return max(seen) if seen else None

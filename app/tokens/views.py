from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.auth.dependencies import PrincipalDep
from app.core.database import SessionDep
from app.core.errors import API_PROBLEMS, problem_responses
from app.tokens.schemas import TokenCreate, TokenCreated
from app.tokens.service import create_token, revoke_token

router = APIRouter(
    prefix="/api/v1/tokens", tags=["tokens"], responses=problem_responses(*API_PROBLEMS)
)


@router.post("", status_code=201, response_model=TokenCreated)
async def post_token(
    body: TokenCreate, request: Request, session: SessionDep, principal: PrincipalDep
) -> TokenCreated:
    """Create a token; the secret is in the response once and never again."""
    row, token = await create_token(session, principal, body, request.app.state.clock.now())
    return TokenCreated(
        id=row.id,
        token=token,
        role=body.role,
        branch=row.branch,
        staff=row.staff,
        label=row.label,
        created_at=row.created_at,
    )


@router.delete("/{token_id}", status_code=204)
async def delete_token(
    token_id: str, request: Request, session: SessionDep, principal: PrincipalDep
) -> Response:
    """Revoke a token: it stops working at once, on every server process."""
    await revoke_token(session, principal, token_id, request.app.state.clock.now())
    return Response(status_code=204)

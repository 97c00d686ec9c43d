from __future__ import annotations

from fastapi import APIRouter, Request

from app.auth.dependencies import PrincipalDep
from app.auth.permissions import Action, check_allowed
from app.business_day.schemas import DayClosed
from app.business_day.service import close_out_day
from app.core.codes import BranchCode
from app.core.database import SessionDep
from app.core.errors import API_PROBLEMS, problem_responses

router = APIRouter(
    prefix="/api/v1", tags=["business day"], responses=problem_responses(*API_PROBLEMS)
)


@router.post("/branches/{branch}/day/close", response_model=DayClosed)
async def close_day(
    branch: BranchCode, request: Request, session: SessionDep, principal: PrincipalDep
) -> DayClosed:
    """End the business day now (日结): expire what waits, complete what is being served,
    close every counter. Idempotent: a second call answers zeros."""
    check_allowed(principal, Action.CLOSE_DAY, branch)
    return await close_out_day(session, branch, principal, request.app.state.clock.now())

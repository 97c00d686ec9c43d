from __future__ import annotations

from fastapi import APIRouter, Request

from app.auth.dependencies import QueueReader
from app.branches.service import get_branch
from app.core.codes import BranchCode
from app.core.database import SessionDep
from app.core.errors import API_PROBLEMS, problem_responses
from app.hall.schemas import QueueView
from app.hall.service import queue_view

router = APIRouter(
    prefix="/api/v1/branches", tags=["queue"], responses=problem_responses(*API_PROBLEMS)
)


@router.get("/{branch}/queue", response_model=QueueView)
async def get_queue(
    branch: BranchCode, request: Request, session: SessionDep, _: QueueReader
) -> QueueView:
    """Waiting per business type, counters with their current ticket, recent calls, alerts."""
    await get_branch(session, branch)
    return await queue_view(
        session, branch, request.app.state.clock.now(), request.app.state.settings
    )

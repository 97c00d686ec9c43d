from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.auth.dependencies import QueueReader
from app.branches.service import get_branch
from app.core.codes import BranchCode
from app.core.database import SessionDep
from app.core.errors import API_PROBLEMS, problem_responses
from app.hall.schemas import QueueView
from app.hall.shared_view import shared_seq_view

router = APIRouter(
    prefix="/api/v1/branches", tags=["queue"], responses=problem_responses(*API_PROBLEMS)
)


@router.get("/{branch}/queue", response_model=QueueView)
async def get_queue(
    branch: BranchCode, request: Request, session: SessionDep, _: QueueReader
) -> Response:
    """Waiting per business type, counters with their current ticket, recent calls, alerts."""
    await get_branch(session, branch)
    state = request.app.state
    # Read once for all of the branch's screens (app/events/shared_reads.py), sent serialised.
    shared = await shared_seq_view(
        state.shared_reads, session, branch, state.clock.now(), state.settings
    )
    return Response(shared.json(), media_type="application/json")

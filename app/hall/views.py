from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.auth.dependencies import QueueReader
from app.core.codes import BranchCode
from app.core.database import SessionDep
from app.core.errors import API_PROBLEMS, not_found, problem_responses
from app.events.service import current_seq_alone
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
    state = request.app.state
    # The branch's seq, in one round trip, says whether it exists and whether the view read for
    # its other screens still holds (app/events/shared_reads.py); the view is sent serialised.
    seq = await current_seq_alone(session, branch, state.settings)
    if seq is None:
        raise not_found(f"branch {branch}")
    shared = await shared_seq_view(
        state.shared_reads, session, branch, state.clock.now(), state.settings, seq
    )
    return Response(shared.json(), media_type="application/json")

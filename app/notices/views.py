from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.auth.dependencies import Configurer, QueueReader
from app.core.codes import BranchCode, NoticeCode
from app.core.database import SessionDep
from app.core.errors import API_PROBLEMS, problem_responses
from app.notices import service as notices
from app.notices.schemas import NoticeIn, NoticeOut

router = APIRouter(
    prefix="/api/v1/branches", tags=["notices"], responses=problem_responses(*API_PROBLEMS)
)


@router.get("/{branch}/notices", response_model=list[NoticeOut])
async def list_notices(
    branch: BranchCode, request: Request, session: SessionDep, _: QueueReader
) -> list[NoticeOut]:
    """Every notice of the branch, in display order, with whether it is current now."""
    return await notices.list_notices(session, branch, request.app.state.clock.now())


@router.put(
    "/{branch}/notices/{notice}", response_model=NoticeOut, responses={201: {"model": NoticeOut}}
)
async def put_notice(
    branch: BranchCode,
    notice: NoticeCode,
    body: NoticeIn,
    request: Request,
    response: Response,
    session: SessionDep,
    _: Configurer,
) -> NoticeOut:
    """Create or update a notice (201 created, 200 updated); screens get `notices.changed`."""
    now = request.app.state.clock.now()
    created = await notices.put_notice(session, branch, notice, body, now)
    response.status_code = 201 if created else 200
    return notices.notice_out(await notices.get_notice(session, branch, notice), now)


@router.delete("/{branch}/notices/{notice}", status_code=204)
async def delete_notice(
    branch: BranchCode, notice: NoticeCode, request: Request, session: SessionDep, _: Configurer
) -> Response:
    """Remove a notice (404 if there is none); screens get `notices.changed`."""
    await notices.delete_notice(session, branch, notice, request.app.state.clock.now())
    return Response(status_code=204)

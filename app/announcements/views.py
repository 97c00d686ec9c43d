"""`GET /api/v1/branches/{branch}/announcements/{number}/{counter}/{version}.wav`: a call's
announcement as audio (docs/announcements.md)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from app.announcements.engine import SpeechEngine
from app.announcements.schemas import AudioVersion, TicketNumber
from app.announcements.service import find_announcement
from app.auth.dependencies import AnnouncementListener
from app.core.codes import BranchCode, CounterCode
from app.core.database import SessionDep
from app.core.errors import API_PROBLEMS, problem_responses
from app.counters.announcement import AUDIO_ROUTE

router = APIRouter(tags=["announcements"], responses=problem_responses(*API_PROBLEMS))

# The audio behind a path never changes (its version changes with the words and the rate):
# the browser may keep it, a recall plays from its cache. `private`: it is read with a token.
IMMUTABLE = "private, max-age=31536000, immutable"


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
    return any(tag in (etag, "*") for tag in candidates)


@router.get(
    AUDIO_ROUTE,
    response_class=Response,
    responses={
        200: {
            "description": "the announcement: the Chinese words, a pause, the English words",
            "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
        },
        304: {"description": "the audio the client has (If-None-Match) is current"},
        307: {"description": "the words or the rate changed since the call: the current audio"},
    },
)
async def announcement_audio(
    branch: BranchCode,
    number: TicketNumber,
    counter: CounterCode,
    version: AudioVersion,
    request: Request,
    session: SessionDep,
    _: AnnouncementListener,
) -> Response:
    """A call's announcement as audio/wav, rendered on the server: the path is the call
    event's `announcement.audio`. 503 when the speech engine is not installed."""
    found = await find_announcement(session, branch, number, counter)
    # Rendering takes a while and needs no database: give the connection back first.
    await session.close()
    if version != found.version:
        return RedirectResponse(found.path, status_code=307, headers={"Cache-Control": "no-store"})
    etag = f'"{found.version}"'
    headers = {"Cache-Control": IMMUTABLE, "ETag": etag}
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    engine: SpeechEngine = request.app.state.speech
    audio = await engine.wav(found.speech)
    return Response(audio, media_type="audio/wav", headers=headers)

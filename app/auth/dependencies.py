"""FastAPI dependencies that authenticate the caller and check the permission table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.auth.permissions import Action, Principal, check_allowed
from app.auth.seen import SeenTracker
from app.auth.service import ADMIN_TOKEN_ID, authenticate
from app.core.database import SessionDep
from app.core.settings import Settings


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def admin_secret(settings: Settings) -> str | None:
    return settings.admin_token.get_secret_value() if settings.admin_token else None


async def principal_from(
    conn: HTTPConnection, session: AsyncSession, *, query_token: bool = False
) -> Principal:
    """Who is calling: the bearer token of a request, or of a websocket, which may also carry
    it as `?token=` (browsers cannot set headers on websockets)."""
    settings: Settings = conn.app.state.settings
    raw = bearer_token(conn.headers.get("authorization"))
    if raw is None and query_token:
        raw = conn.query_params.get("token")
    principal = await authenticate(session, raw, admin_secret(settings))
    _note_seen(conn, principal)
    return principal


def _note_seen(conn: HTTPConnection, principal: Principal) -> None:
    """A device is online while it calls the API or holds a stream (whose keepalive
    authenticates again): tell the process's tracker, which writes coarsely (app/auth/seen.py)."""
    tracker = getattr(conn.app.state, "seen", None)
    if isinstance(tracker, SeenTracker) and principal.token_id != ADMIN_TOKEN_ID:
        tracker.saw(principal.token_id, conn.app.state.clock.now())


async def get_principal(request: Request, session: SessionDep) -> Principal:
    return await principal_from(request, session)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def authorize(action: Action) -> Callable[[Request, Principal], Awaitable[Principal]]:
    """A dependency that lets the caller through if they may perform `action` on the branch
    named in the path (routes without a branch check it themselves, once they know it)."""

    async def dependency(request: Request, principal: PrincipalDep) -> Principal:
        check_allowed(principal, action, request.path_params.get("branch"))
        return principal

    return dependency


# One alias per permission, to annotate route parameters: `_: Configurer`.
Configurer = Annotated[Principal, Depends(authorize(Action.CONFIGURE))]
Issuer = Annotated[Principal, Depends(authorize(Action.ISSUE_TICKET))]
QueueReader = Annotated[Principal, Depends(authorize(Action.READ_QUEUE))]
Operator = Annotated[Principal, Depends(authorize(Action.OPERATE_COUNTER))]
ReportReader = Annotated[Principal, Depends(authorize(Action.READ_REPORTS))]
RegionReportReader = Annotated[Principal, Depends(authorize(Action.READ_REGION_REPORTS))]
TallyReader = Annotated[Principal, Depends(authorize(Action.READ_STAFF_TALLY))]
SchemaReader = Annotated[Principal, Depends(authorize(Action.READ_EVENT_SCHEMA))]
TicketFinder = Annotated[Principal, Depends(authorize(Action.FIND_TICKETS))]
Picker = Annotated[Principal, Depends(authorize(Action.PICK_TICKET))]
WebhookAdmin = Annotated[Principal, Depends(authorize(Action.MANAGE_WEBHOOKS))]
AnnouncementListener = Annotated[Principal, Depends(authorize(Action.HEAR_ANNOUNCEMENTS))]
StaffingReader = Annotated[Principal, Depends(authorize(Action.READ_STAFFING))]

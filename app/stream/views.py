"""`WS /api/v1/branches/{branch}/stream` (SPEC §3): snapshot or replay, then live events.

Close codes: 1008 (policy violation) for a missing, unknown, revoked or wrong-branch token or
too many connections on one token, 4404 for an unknown branch, 4400 for a bad `since`, 1011 if
the database cannot be reached. The reason says which. When the server shuts down, uvicorn
closes with 1012 (service restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

import asyncpg
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.websockets import WebSocketState

from app.auth.dependencies import principal_from
from app.auth.permissions import Action, Principal, check_allowed
from app.branches.service import get_branch
from app.core.codes import CODE_PATTERN
from app.core.errors import Problem
from app.core.settings import Settings
from app.stream.hub import EventHub, Subscription
from app.stream.service import encode_message, replay_after, snapshot_message

log = logging.getLogger("hallq.stream")

router = APIRouter(tags=["stream"])

POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011
BAD_REQUEST = 4400
NOT_FOUND = 4404
# The largest message a client may send us (pings); anything bigger closes the connection.
MAX_CLIENT_MESSAGE = 1024


class StreamClosed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _parse_since(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not re.fullmatch(r"\d{1,18}", raw):
        raise StreamClosed(BAD_REQUEST, "since must be a non-negative integer event seq")
    return int(raw)


async def _authenticate(websocket: WebSocket, session: AsyncSession) -> Principal:
    try:
        return await principal_from(websocket, session, query_token=True)
    except Problem as problem:
        raise StreamClosed(POLICY_VIOLATION, problem.detail) from None


async def _authorize(websocket: WebSocket, branch: str) -> Principal:
    async with websocket.app.state.sessionmaker() as session:
        principal = await _authenticate(websocket, session)
        try:
            check_allowed(principal, Action.READ_STREAM, branch)
        except Problem as problem:
            raise StreamClosed(POLICY_VIOLATION, problem.detail) from None
        try:
            await get_branch(session, branch)
        except Problem as problem:
            raise StreamClosed(NOT_FOUND, problem.detail) from None
    return principal


async def _still_authenticated(websocket: WebSocket) -> None:
    """Revocation reaches open streams too: the token is looked up again every keepalive
    period, idle or busy (its role and branch cannot change, and branches are never deleted)."""
    async with websocket.app.state.sessionmaker() as session:
        await _authenticate(websocket, session)


class ClientLimits:
    """Open streams per token in this process (a kiosk script must not open thousands)."""

    def __init__(self) -> None:
        self.per_token: dict[str, int] = {}

    def acquire(self, token_id: str, limit: int) -> None:
        if self.per_token.get(token_id, 0) >= limit:
            raise StreamClosed(POLICY_VIOLATION, f"too many streams open on this token ({limit})")
        self.per_token[token_id] = self.per_token.get(token_id, 0) + 1

    def release(self, token_id: str) -> None:
        left = self.per_token.get(token_id, 1) - 1
        if left > 0:
            self.per_token[token_id] = left
        else:
            self.per_token.pop(token_id, None)


async def _send(websocket: WebSocket, message: str, settings: Settings) -> None:
    # asyncio.timeout, not wait_for: no task per message (1,000 screens × every event).
    try:
        async with asyncio.timeout(settings.stream_send_timeout_s):
            await websocket.send_text(message)
    except TimeoutError:
        raise StreamClosed(POLICY_VIOLATION, "client stopped reading") from None


async def _send_snapshot(websocket: WebSocket, branch: str, settings: Settings) -> int:
    async with websocket.app.state.sessionmaker() as session:
        state = websocket.app.state
        seq, message = await snapshot_message(
            session, branch, state.clock.now(), settings, state.shared_reads
        )
    await _send(websocket, message, settings)
    return seq


async def _send_initial(
    websocket: WebSocket, branch: str, since: int | None, settings: Settings
) -> int:
    """A replay of the events after `since` if they are still kept, else a snapshot; returns
    the seq the client is at."""
    if since is not None:
        async with websocket.app.state.sessionmaker() as session:
            events = await replay_after(session, branch, since, settings)
        if events is not None:
            last = since
            for event in events:
                await _send(websocket, event.message, settings)
                last = event.seq
            return last
    return await _send_snapshot(websocket, branch, settings)


async def _forward_events(
    websocket: WebSocket, subscription: Subscription, branch: str, last: int, settings: Settings
) -> None:
    loop = asyncio.get_running_loop()
    checked_at = loop.time()
    while True:
        try:
            async with asyncio.timeout(settings.stream_keepalive_s):
                event = await subscription.queue.get()
        except TimeoutError:
            await _still_authenticated(websocket)
            checked_at = loop.time()
            await _send(websocket, encode_message({"type": "ping"}), settings)
            continue
        if loop.time() - checked_at >= settings.stream_keepalive_s:
            # A busy branch never leaves the stream idle for a keepalive: re-check as often
            # anyway (from the token cache, so nearly free).
            await _still_authenticated(websocket)
            checked_at = loop.time()
        if event is None:  # fell behind: start again from a snapshot
            subscription.needs_resync = False
            last = await _send_snapshot(websocket, branch, settings)
            continue
        if event.seq <= last:
            continue  # already in the snapshot or the replay
        await _send(websocket, event.message, settings)
        last = event.seq
        if not subscription.queue.empty():
            # Let the other screens have this event before this one gets the next: a `next`
            # makes three events, and the call (the second) then reaches every screen after
            # two writes per screen instead of after all three.
            await asyncio.sleep(0)


async def _read_client(websocket: WebSocket) -> None:
    """Answer pings; end when the client goes away. Clients have nothing else to say."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        text = message.get("text") or ""
        if len(text) > MAX_CLIENT_MESSAGE or message.get("bytes"):
            raise StreamClosed(BAD_REQUEST, "clients may only send small text pings")
        if '"ping"' in text:
            await websocket.send_text(encode_message({"type": "pong"}))


@router.websocket("/api/v1/branches/{branch}/stream")
async def branch_stream(websocket: WebSocket, branch: str) -> None:
    """Lobby and counter screens: a snapshot (or a replay after `since`), then every event."""
    settings: Settings = websocket.app.state.settings
    hub: EventHub = websocket.app.state.hub
    limits: ClientLimits = websocket.app.state.stream_limits
    await websocket.accept()
    token_id: str | None = None
    subscription: Subscription | None = None
    try:
        if not re.fullmatch(CODE_PATTERN, branch):
            raise StreamClosed(NOT_FOUND, f"branch {branch[:32]} does not exist")
        since = _parse_since(websocket.query_params.get("since"))
        principal = await _authorize(websocket, branch)
        limits.acquire(principal.token_id, settings.stream_max_clients_per_token)
        token_id = principal.token_id
        # Subscribe before reading the snapshot, so nothing committed in between is missed.
        subscription = await hub.subscribe(branch)
        last = await _send_initial(websocket, branch, since, settings)
        tasks = [
            asyncio.create_task(_forward_events(websocket, subscription, branch, last, settings)),
            asyncio.create_task(_read_client(websocket)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for task in done:
            task.result()  # re-raise why the stream ended
    except StreamClosed as closed:
        await _close(websocket, closed.code, closed.reason)
    except (WebSocketDisconnect, RuntimeError):
        pass  # the client went away
    except (SQLAlchemyError, asyncpg.PostgresError, OSError) as exc:  # database unreachable
        log.warning("stream closed: %s", type(exc).__name__)
        await _close(websocket, INTERNAL_ERROR, "database unavailable, reconnect with since")
    except Exception:
        log.exception("stream failed")
        await _close(websocket, INTERNAL_ERROR, "internal error, reconnect with since")
    finally:
        if subscription is not None:
            hub.unsubscribe(subscription)
        if token_id is not None:
            limits.release(token_id)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state == WebSocketState.CONNECTED and (
        websocket.client_state == WebSocketState.CONNECTED
    ):
        with contextlib.suppress(Exception):
            await websocket.close(code=code, reason=reason[:120])

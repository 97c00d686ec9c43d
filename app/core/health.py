"""Liveness and readiness."""

from __future__ import annotations

from functools import lru_cache

from alembic.script import ScriptDirectory
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.core.errors import PROBLEM_JSON, problem_responses
from app.core.migrations import alembic_config

router = APIRouter(tags=["operations"])


@lru_cache
def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (it does not touch the database)."""
    return {"status": "ok"}


@router.get("/readyz", responses=problem_responses(503))
async def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers and its schema is at the latest migration."""
    expected = head_revision()
    stream = dedicated_connections(request)
    try:
        async with request.app.state.engine.connect() as conn:
            current = (
                await conn.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar_one_or_none()
    except Exception as exc:  # any failure here means "not ready", with the reason
        return _not_ready(f"the database is not reachable ({type(exc).__name__})", stream)
    if current != expected:
        return _not_ready(
            f"the database schema is at {current}, expected {expected}: run migrations", stream
        )
    return JSONResponse({"status": "ready", "schema": current, "stream": stream})


def dedicated_connections(request: Request) -> dict[str, str]:
    """The process's two connections of its own (app/core/dedicated.py), `connected` or
    `connecting` (not yet, or again after a loss). Shown, not required: while either is down
    the API works and screens catch up from the history once it is back, so the process stays
    in its load balancer's rotation."""
    state = request.app.state
    return {
        "listener": "connected" if state.hub.listening else "connecting",
        "notifier": "connected" if state.notifier.connected else "connecting",
    }


def _not_ready(detail: str, stream: dict[str, str]) -> JSONResponse:
    return JSONResponse(
        {
            "type": "/problems/not-ready",
            "title": "Not ready",
            "status": 503,
            "detail": detail,
            "stream": stream,
        },
        status_code=503,
        media_type=PROBLEM_JSON,
    )

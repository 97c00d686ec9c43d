"""`GET /api/v1/events/schema`: the event catalog as JSON Schema, for integrators (SPEC §8)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.auth.dependencies import SchemaReader
from app.core.errors import API_PROBLEMS, problem_responses
from app.events.catalog import event_schemas

router = APIRouter(
    prefix="/api/v1/events", tags=["events"], responses=problem_responses(*API_PROBLEMS)
)


@router.get("/schema")
async def get_event_schema(_: SchemaReader) -> dict[str, dict[str, Any]]:
    """One JSON Schema per event type for its `data`; every event carries the envelope
    `{type, seq, at, branch, data}`."""
    return event_schemas()

from __future__ import annotations

from pydantic import BaseModel, Field


class DayClosed(BaseModel):
    """What a close-out did (SPEC §5); zeros when there was nothing left to close."""

    expired: int = Field(description="tickets waiting, called or no-show that became expired")
    completed: int = Field(description="tickets being served, completed (done)")
    counters_closed: int = Field(description="counters closed and their clerks signed out")

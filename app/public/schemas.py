"""The public API's models (SPEC §9): what a ticket's code shows, and nothing more: no ids, no
phone number, no priority class or reason, no rating comment."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.core.codes import Code
from app.core.vocabulary import TicketStatus
from app.tickets.schemas import normalise_phone

# A ticket's code in a path: any string (an unknown or malformed one is the same bare 404).
TicketCode = Annotated[str, Path(max_length=64, description="the ticket's code (SPEC §9)")]


class Named(BaseModel):
    code: str
    name: str


class PublicTicket(BaseModel):
    """A ticket as its holder's phone sees it."""

    number: str
    status: TicketStatus = Field(
        description="as the API's; a ticket of an earlier business day that was never finished "
        "shows as expired"
    )
    service: Named
    branch: Named
    issued_at: datetime
    position: int | None = Field(description="1-based place in its type's queue (waiting only)")
    waiting_ahead: int | None
    estimated_wait_s: int | None
    estimated_wait_range_s: tuple[int, int] | None = Field(
        description="[10th, 90th percentile] of the wait, beside the median (waiting only)"
    )
    counter: Named | None = Field(description="where to go, while called or serving")
    called_at: datetime | None
    near: bool = Field(description="ticket.near was emitted for it: its turn is near")


class JoinedTicket(PublicTicket):
    """A ticket taken by remote join, with its code (its page is /t/{code})."""

    code: str


class JoinIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: Code
    phone: Annotated[str, StringConstraints(max_length=24)] | None = None

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return normalise_phone(value) if value is not None else None


class JoinService(BaseModel):
    code: str
    name: str
    waiting: int
    estimated_wait_s: int | None = Field(description="for a ticket taken now")
    estimated_wait_range_s: tuple[int, int] | None = None
    guide: dict[str, str] | None = None


class JoinBranch(BaseModel):
    """What /join/{branch} shows: the business types open to remote join with their waits, and
    whether a ticket can be taken now (else why not, and when it can)."""

    branch: Named
    services: list[JoinService]
    open: bool
    reason: str | None = Field(description="closed | holiday | cutoff when not open")
    opens_at: str | None

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.core.codes import Code, Name
from app.events.catalog import CounterView
from app.tickets.schemas import TicketOut


class CounterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    services: Annotated[list[Code], Field(min_length=1, max_length=20)] = Field(
        description="business type codes, the counter's own first, fallbacks after"
    )


class CounterOut(CounterView):
    """A counter as the API and the `counter.changed` event show it."""


class PauseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: Code | None = None
    counter: Code | None = None
    position: Literal["front", "back"] = "front"


class CallIn(BaseModel):
    """The service desk calls this waiting ticket to the counter (SPEC §6)."""

    model_config = ConfigDict(extra="forbid")

    ticket: uuid.UUID = Field(description="the id of a waiting ticket of the branch")


class CounterActionOut(BaseModel):
    """The counter after the action, and the ticket it concerned (if any)."""

    counter: CounterOut
    ticket: TicketOut | None

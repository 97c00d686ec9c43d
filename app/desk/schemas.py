"""The service desk's requests and answers (SPEC §6)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.core.errors import unprocessable
from app.core.vocabulary import Priority
from app.tickets.schemas import TicketDetail, TicketOut

REASON_MAX = 200
PAGE_MAX = 200
PAGE_DEFAULT = 50
OFFSET_MAX = 1_000_000  # far beyond a day's tickets; keeps the value a PostgreSQL bigint

# A prefix of 1-3 letters and a sequence; "a1", "A01" and "A001" all name A001.
_NUMBER = re.compile(r"([A-Z]{1,3})([0-9]{1,9})")


def canonical_number(value: str) -> str:
    """A ticket number as issuing writes it (prefix, then at least three digits), from what
    the greeter typed; 422 for anything that is no ticket number."""
    match = _NUMBER.fullmatch(value.strip().upper())
    if match is None:
        raise unprocessable(
            "invalid-number",
            "number must be a ticket number: 1-3 letters then up to 9 digits, e.g. A001",
        )
    prefix, digits = match.groups()
    return f"{prefix}{int(digits):03d}"


class PriorityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: Priority
    reason: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=REASON_MAX),
        Field(
            description=f"why (1-{REASON_MAX} characters): kept in the ticket's history for "
            "staff only, never on the stream"
        ),
    ]


class FoundTickets(BaseModel):
    """The tickets a number names on a day: usually one, none for an unknown number."""

    tickets: list[TicketDetail]


class TicketPage(BaseModel):
    """One page of a status's tickets, and how many there are in all."""

    tickets: list[TicketOut]
    total: int

"""The audio route's path parameters: what an announcement's audio path is made of."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from app.counters.announcement import VERSION_LENGTH

# A ticket number as issuing writes it: the business type's prefix (1-3 capital letters) and
# its sequence, at least three digits (docs/decisions.md, "Tickets").
TICKET_NUMBER_PATTERN = r"^[A-Z]{1,3}[0-9]{3,6}$"

TicketNumber = Annotated[
    str, Path(pattern=TICKET_NUMBER_PATTERN, description="the ticket number, e.g. A001")
]
AudioVersion = Annotated[
    str,
    Path(
        pattern=rf"^[0-9a-f]{{{VERSION_LENGTH}}}$",
        description="the version of the announcement's audio, as the call event gives it",
    ),
]

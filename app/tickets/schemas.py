from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    field_validator,
)

from app.core.codes import Code
from app.core.vocabulary import Channel, Priority, TicketStatus

_CN_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_E164 = re.compile(r"^\+[1-9]\d{7,14}$")


def normalise_phone(value: str) -> str:
    compact = re.sub(r"[\s\-()]", "", value)
    if _CN_MOBILE.match(compact) or _E164.match(compact):
        return compact
    # The message must not repeat the number: errors may be logged.
    raise ValueError("phone must be a mainland mobile number (11 digits) or +<country><number>")


def mask_phone(phone: str | None) -> str | None:
    """`13812345678` -> `138****5678`: enough for the customer to recognise, no more."""
    if phone is None:
        return None
    return phone[:3] + "****" + phone[-4:]


class TicketIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: Code
    priority: Priority = Priority.NORMAL
    channel: Channel = Channel.KIOSK
    phone: Annotated[str, StringConstraints(max_length=24)] | None = None

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return normalise_phone(value) if value is not None else None


IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class TicketOut(BaseModel):
    id: uuid.UUID
    code: str | None = Field(
        description="the ticket's public key (SPEC §9): its phone page is /t/{code}; null for "
        "screens (display tokens)"
    )
    number: str
    service: str
    priority: Priority
    channel: Channel
    status: TicketStatus
    business_date: date
    issued_at: datetime
    position: int | None = Field(
        description="1-based place among the waiting tickets of its type (waiting only)"
    )
    waiting_ahead: int | None
    estimated_wait_s: int | None = Field(description="the median wait in seconds (waiting only)")
    estimated_wait_range_s: tuple[int, int] | None = Field(
        description="[10th, 90th percentile] of the wait, beside the median (waiting only)"
    )
    recall_count: int
    counter: str | None = Field(description="the counter's code while called or serving")
    called_at: datetime | None
    served_at: datetime | None
    finished_at: datetime | None
    phone: str | None = Field(description="masked, e.g. 138****5678")
    rating: int | None


class HistoryEntry(BaseModel):
    seq: int
    type: str
    at: datetime
    counter: str | None
    staff: str | None
    data: dict[str, Any]
    note: str | None = Field(
        default=None, description="said by staff for the history only (a priority change's reason)"
    )


class TicketDetail(TicketOut):
    history: list[HistoryEntry]


# -- ratings (评价器) ----------------------------------------------------------------------------

RATING_COMMENT_MAX = 500


class RatingIn(BaseModel):
    """The customer's evaluation of a finished service: 1 (bad) to 5 (excellent)."""

    model_config = ConfigDict(extra="forbid")

    score: Annotated[StrictInt, Field(ge=1, le=5, description="1 (bad) to 5 (excellent)")]
    comment: (
        Annotated[
            str,
            StringConstraints(strip_whitespace=True, max_length=RATING_COMMENT_MAX),
            Field(
                description=f"optional, at most {RATING_COMMENT_MAX} characters; private: "
                "only managers read it, in the daily report"
            ),
        ]
        | None
    ) = None

    @field_validator("comment")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

"""The notices API's bodies (SPEC §7)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from app.events.catalog import NoticeText
from app.notices.models import NOTICE_TEXT_MAX

Words = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NOTICE_TEXT_MAX)
]
# Enough room to reorder by tens; kept well inside PostgreSQL's integer.
ORDER_LIMIT = 1_000_000


class NoticeTextIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    zh: Words
    en: Words | None = None


class NoticeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    text: NoticeTextIn
    from_: AwareDatetime | None = Field(
        default=None, alias="from", description="current from this instant on; null: always was"
    )
    to: AwareDatetime | None = Field(
        default=None, description="current until this instant (exclusive), after `from`"
    )
    order: Annotated[int, Field(ge=-ORDER_LIMIT, le=ORDER_LIMIT)] = Field(
        default=0, description="current notices are shown by `order`, then by code"
    )


class NoticeOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    code: str
    text: NoticeText
    from_: AwareDatetime | None = Field(alias="from")
    to: AwareDatetime | None
    order: int
    current: bool = Field(description="shown now: `from` <= now < `to`, a missing bound open")

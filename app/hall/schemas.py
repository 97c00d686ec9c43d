from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from app.alerts.schemas import AlertOut
from app.counters.schemas import CounterOut
from app.events.catalog import CallAnnouncement, CounterRef, NoticeView, TicketRef


class ServiceQueue(BaseModel):
    service: str
    name: str
    prefix: str
    waiting: int
    longest_wait_s: int
    estimated_wait_s: int = Field(description="median wait of a normal ticket taken now")
    estimated_wait_range_s: tuple[int, int] = Field(description="its 10th and 90th percentile")


class RecentCall(BaseModel):
    """A call or recall from the history (its event's data, without what screens need not)."""

    seq: int
    at: datetime
    type: str
    ticket: TicketRef
    counter: CounterRef
    announcement: CallAnnouncement | None = None


class QueueView(BaseModel):
    branch: str
    services: list[ServiceQueue]
    counters: list[CounterOut]
    recent_calls: list[RecentCall]
    alerts: list[AlertOut]
    notices: list[NoticeView] = Field(
        description="the current notices (SPEC §7), by `order` then code; live: notices.changed"
    )
    notices_change_at: datetime | None = Field(
        description="when a notice next becomes current or ends by itself (no event is raised "
        "then): the moment to read this view again"
    )

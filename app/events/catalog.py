"""The event catalog: every event type and the model of its `data` (SPEC §3, §8).

Events are the public contract the stream, webhooks and reports are built on, so each type's
data is a pydantic model: an event is built from its model (`NewEvent(TicketCalled(...))`),
and `event_schemas()` is the JSON Schema document served at `GET /api/v1/events/schema`.
Payloads never carry a phone number, a rating comment or a priority reason.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from app.core.vocabulary import AlertKind, Channel, CounterState, Priority, TicketStatus


class EventType(StrEnum):
    TICKET_ISSUED = "ticket.issued"
    TICKET_CALLED = "ticket.called"
    TICKET_RECALLED = "ticket.recalled"
    TICKET_SERVING = "ticket.serving"
    TICKET_COMPLETED = "ticket.completed"
    TICKET_NO_SHOW = "ticket.no_show"
    TICKET_CANCELLED = "ticket.cancelled"
    TICKET_TRANSFERRED = "ticket.transferred"
    TICKET_REQUEUED = "ticket.requeued"
    TICKET_RATED = "ticket.rated"
    TICKET_EXPIRED = "ticket.expired"
    TICKET_PRIORITISED = "ticket.prioritised"
    TICKET_NEAR = "ticket.near"
    COUNTER_CHANGED = "counter.changed"
    ALERT_RAISED = "alert.raised"
    ALERT_CLEARED = "alert.cleared"
    NOTICES_CHANGED = "notices.changed"


class _Part(BaseModel):
    """A piece of event data. Fields a model does not declare are dropped, never written (mypy
    refuses them where an event is built: `init_forbid_extra`), and ignored when the history is
    read: a later version may add fields, as `announcement.audio` was added."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class TicketRef(_Part):
    """How a ticket appears inside events: never with its phone number."""

    id: uuid.UUID
    number: str
    service: str
    priority: Priority


class CounterRef(_Part):
    code: str
    name: str


class CallAnnouncement(_Part):
    """What the lobby speaker says, in Chinese and English (the branch's templates filled in),
    and where to fetch it as audio rendered by the server (docs/announcements.md)."""

    zh: str
    en: str
    audio: str | None = Field(
        default=None,
        description="the path of this announcement as audio (GET with a display token or "
        "better; audio/wav), or null when the branch's announcement mode is browser",
    )


class CurrentTicket(TicketRef):
    """The ticket a counter has called or serves."""

    status: TicketStatus


class CounterView(_Part):
    """A counter as screens show it; also the API's counter (app/counters/schemas.py)."""

    code: str
    name: str
    state: CounterState
    services: list[str]
    staff: str | None
    current: CurrentTicket | None


class AlertView(_Part):
    kind: AlertKind
    service: str | None = None
    counter: str | None = None
    since: datetime
    detail: str


class NoticeText(_Part):
    """A notice's words: Chinese, and English beside it when the branch gives one."""

    zh: str
    en: str | None = None


class NoticeView(_Part):
    """A current notice as screens show it (the lobby ticker, the kiosk)."""

    code: str
    text: NoticeText


class EventData(_Part):
    """The data of one event type; subclasses name their type."""

    type: ClassVar[EventType]


class IssuedTicketRef(TicketRef):
    channel: Channel
    issued_at: datetime


class TicketIssued(EventData):
    type = EventType.TICKET_ISSUED
    ticket: IssuedTicketRef


class _CallData(EventData):
    """A call (or a repeat of it) to the lobby: the screens show and speak it."""

    ticket: TicketRef
    counter: CounterRef
    announcement: CallAnnouncement


class TicketCalled(_CallData):
    type = EventType.TICKET_CALLED
    wait_s: float = Field(description="seconds from issue to this call")
    picked: bool = Field(
        default=False, description="true when the service desk called this ticket by hand"
    )


class TicketRecalled(_CallData):
    type = EventType.TICKET_RECALLED
    recall_count: int


class TicketServing(EventData):
    type = EventType.TICKET_SERVING
    ticket: TicketRef
    counter: CounterRef


class TicketCompleted(EventData):
    type = EventType.TICKET_COMPLETED
    ticket: TicketRef
    counter: CounterRef
    service_s: float = Field(description="seconds from the start of service to its end")


class TicketNoShow(EventData):
    type = EventType.TICKET_NO_SHOW
    ticket: TicketRef
    counter: CounterRef
    recall_count: int


class TicketCancelled(EventData):
    type = EventType.TICKET_CANCELLED
    ticket: TicketRef


class TransferredFrom(_Part):
    counter: str
    service: str
    status: TicketStatus


class TransferredTo(_Part):
    service: str
    counter: str | None
    position: Literal["front", "back"]


class TicketTransferred(EventData):
    type = EventType.TICKET_TRANSFERRED
    ticket: TicketRef
    from_: TransferredFrom = Field(alias="from")
    to: TransferredTo


class TicketRequeued(EventData):
    type = EventType.TICKET_REQUEUED
    ticket: TicketRef
    requeue_after: int


class TicketRated(EventData):
    """The score only: the comment stays in the tickets table (SPEC §8)."""

    type = EventType.TICKET_RATED
    ticket: TicketRef
    score: int
    counter: str | None
    has_comment: bool


class TicketExpired(EventData):
    """Left over when the business day was closed out (SPEC §5); `counter` is where it stood
    called, if it was."""

    type = EventType.TICKET_EXPIRED
    ticket: TicketRef
    previous_status: TicketStatus
    counter: CounterRef | None = None


class TicketPrioritised(EventData):
    """The service desk changed a waiting ticket's class. The reason stays in the history."""

    type = EventType.TICKET_PRIORITISED
    ticket: TicketRef
    from_: Priority = Field(alias="from")
    to: Priority


class TicketNear(EventData):
    """A waiting ticket first has at most the branch's `notify_ahead` tickets ahead of it
    (SPEC §9): emitted once per ticket, never again (docs/phone.md)."""

    type = EventType.TICKET_NEAR
    ticket: TicketRef
    waiting_ahead: int = Field(description="tickets of its type ahead of it in calling order")
    estimated_wait_s: int | None = Field(description="its estimated wait, as in the API")


class CounterChanged(EventData):
    type = EventType.COUNTER_CHANGED
    counter: CounterView


class AlertRaised(EventData, AlertView):
    type = EventType.ALERT_RAISED


class AlertCleared(EventData, AlertView):
    type = EventType.ALERT_CLEARED
    cleared_at: datetime


class NoticesChanged(EventData):
    """A notice was added, changed or removed: the branch's current notices after it, in their
    order (SPEC §7). A notice that becomes current or ends with time raises no event; the
    queue view's `notices_change_at` says when that happens next."""

    type = EventType.NOTICES_CHANGED
    notices: list[NoticeView]


EVENT_DATA: dict[EventType, type[EventData]] = {
    model.type: model
    for model in (
        TicketIssued,
        TicketCalled,
        TicketRecalled,
        TicketServing,
        TicketCompleted,
        TicketNoShow,
        TicketCancelled,
        TicketTransferred,
        TicketRequeued,
        TicketRated,
        TicketExpired,
        TicketPrioritised,
        TicketNear,
        CounterChanged,
        AlertRaised,
        AlertCleared,
        NoticesChanged,
    )
}


def encode_data(data: EventData) -> str:
    """The JSON stored in `branch_events.data` (by alias: `from`, not `from_`)."""
    return data.model_dump_json(by_alias=True)


def parse_data(type_: str, data: Any) -> EventData:
    """An event's data as its model; raises ValueError (pydantic's ValidationError is one) for an
    unknown type or data the model cannot read."""
    return EVENT_DATA[EventType(type_)].model_validate(data)


def data_path(model: type[EventData], *path: str) -> str:
    """`data -> 'a' ->> 'b'`: SQL reading a field of `model`'s data as text, for reports and
    metrics. The path is checked against the model when the SQL is built (at import), so a
    renamed field fails there, not in a report."""
    current: type[BaseModel] = model
    for depth, name in enumerate(path):
        field = next(
            (f for key, f in current.model_fields.items() if (f.alias or key) == name), None
        )
        if field is None:
            raise LookupError(f"{model.__name__} has no field {'.'.join(path[: depth + 1])}")
        nested = [a for a in (field.annotation, *get_args(field.annotation)) if _is_model(a)]
        if depth < len(path) - 1:
            if not nested:
                raise LookupError(f"{model.__name__}.{'.'.join(path[: depth + 1])} is no object")
            current = nested[0]
    *objects, leaf = (f"'{name}'" for name in path)
    return " -> ".join(["data", *objects]) + f" ->> {leaf}"


def _is_model(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


# The business type of the ticket an event is about (every ticket event's `ticket`).
TICKET_SERVICE = data_path(TicketCancelled, "ticket", "service")


@cache
def event_schemas() -> dict[str, dict[str, Any]]:
    """One JSON Schema per event type's data, keyed by type (SPEC §8)."""
    return {
        str(type_): model.model_json_schema(by_alias=True, mode="serialization")
        for type_, model in EVENT_DATA.items()
    }

"""Writing the branch event log: the one place ticket history and stream events come from.

Call `record_events` as the last statement of a transaction. It takes the branch row lock to
hand out `seq` numbers, and holding that lock until commit makes commit order equal seq order
within a branch: a screen that has seen seq N has seen every event before it. Once the
transaction commits, the stream fan-out of every process is notified of its events
(app/events/notifier.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.events.notifier import PAYLOAD_SQL, notify_after_commit

# Event types (SPEC §3).
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
COUNTER_CHANGED = "counter.changed"
ALERT_RAISED = "alert.raised"
ALERT_CLEARED = "alert.cleared"


@dataclass(frozen=True)
class NewEvent:
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    ticket_id: uuid.UUID | None = None
    counter: str | None = None
    staff: str | None = None


_RECORD = text(
    f"""
    WITH numbered AS (
        UPDATE branches SET event_seq = event_seq + :n WHERE code = :branch
        RETURNING event_seq
    )
    INSERT INTO branch_events (branch, seq, type, at, ticket_id, counter, staff, data)
    SELECT :branch, numbered.event_seq - :n + e.ord, e.type, :at, e.ticket_id, e.counter,
           e.staff, e.data::jsonb
    FROM numbered,
         unnest(CAST(:types AS text[]), CAST(:ticket_ids AS uuid[]), CAST(:counters AS text[]),
                CAST(:staffs AS text[]), CAST(:datas AS text[]))
             WITH ORDINALITY AS e(type, ticket_id, counter, staff, data, ord)
    RETURNING seq, {PAYLOAD_SQL} AS payload
    """  # noqa: S608 - a constant fragment; every value is a bound parameter
)


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__} in an event")


def encode_event_data(data: dict[str, Any]) -> str:
    return json.dumps(data, default=_json_default, ensure_ascii=False, separators=(",", ":"))


async def record_events(
    session: AsyncSession, branch: str, at: datetime, events: Sequence[NewEvent]
) -> list[int]:
    """Append `events` to the branch's log in the current transaction; returns their seqs."""
    if not events:
        return []
    result = await session.execute(
        _RECORD,
        {
            "branch": branch,
            "n": len(events),
            "at": at,
            "types": [e.type for e in events],
            "ticket_ids": [e.ticket_id for e in events],
            "counters": [e.counter for e in events],
            "staffs": [e.staff for e in events],
            "datas": [encode_event_data(e.data) for e in events],
        },
    )
    rows = sorted(result.all())
    if len(rows) != len(events):  # the branch row is gone: the caller checked it exists
        raise LookupError(f"branch {branch} vanished while recording events")
    notify_after_commit(session, branch, rows)
    return [seq for seq, _payload in rows]

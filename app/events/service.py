"""Writing the branch event log: the one place ticket history and stream events come from.

Call `record_events` as the last statement of a transaction. It takes the branch row lock to
hand out `seq` numbers, and holding that lock until commit makes commit order equal seq order
within a branch: a screen that has seen seq N has seen every event before it. Once the
transaction commits, the stream fan-out of every process is notified of its events
(app/events/notifier.py). Issuing writes its event in its own one statement with the same SQL
(`append_events_sql`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.database import execute_alone
from app.core.settings import Settings
from app.events.catalog import EventData, EventType, encode_data
from app.events.notifier import notify_after_commit
from app.events.wire import ENVELOPE_SQL


@dataclass(frozen=True)
class NewEvent:
    """An event to record: its data (whose model names the type) and the columns it is found by."""

    data: EventData
    ticket_id: uuid.UUID | None = None
    counter: str | None = None
    staff: str | None = None
    # For the ticket's history only, never on the stream (e.g. why its priority changed).
    note: str | None = None

    @property
    def type(self) -> EventType:
        return self.data.type


def append_events_sql(*, branch: str, count: str, rows: str, when: str = "TRUE") -> str:
    """Two CTEs, `event_seqs` and `logged`: bump the branch's `event_seq` by `count` and insert
    `rows` (a SELECT of ord, type, at, ticket_id, counter, staff, data, ord counting from 1)
    with the seqs that frees, returning each event's seq and envelope. Nothing is written
    unless `when` holds. Arguments are SQL fragments from the code, never values."""
    return f"""
    event_seqs AS (
        UPDATE branches SET event_seq = event_seq + {count}
        WHERE code = {branch} AND {when}
        RETURNING event_seq - {count} AS before
    ),
    logged AS (
        INSERT INTO branch_events (branch, seq, type, at, ticket_id, counter, staff, data)
        SELECT {branch}, event_seqs.before + e.ord, e.type, e.at, e.ticket_id, e.counter, e.staff,
               e.data
        FROM event_seqs, ({rows}) AS e(ord, type, at, ticket_id, counter, staff, data)
        RETURNING seq, {ENVELOPE_SQL} AS envelope
    )"""  # noqa: S608 - constant fragments


_LOG_EVENTS = append_events_sql(
    branch=":branch",
    count=":n",
    rows="""
        SELECT r.ord, r.type, CAST(:at AS timestamptz), r.ticket_id, r.counter, r.staff,
               CAST(r.data AS jsonb)
        FROM unnest(CAST(:types AS text[]), CAST(:ticket_ids AS uuid[]),
                    CAST(:counters AS text[]), CAST(:staffs AS text[]), CAST(:datas AS text[]))
             WITH ORDINALITY AS r(type, ticket_id, counter, staff, data, ord)""",
)
_RECORD = text(f"WITH {_LOG_EVENTS} SELECT seq, envelope FROM logged")  # noqa: S608
# `at` is the partition key: one partition's row.
_ADD_NOTE = text(
    "UPDATE branch_events SET note = :note WHERE branch = :branch AND seq = :seq AND at = :at"
)


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
            "types": [str(e.type) for e in events],
            "ticket_ids": [e.ticket_id for e in events],
            "counters": [e.counter for e in events],
            "staffs": [e.staff for e in events],
            "datas": [encode_data(e.data) for e in events],
        },
    )
    rows = sorted(result.all())
    if len(rows) != len(events):  # the branch row is gone: the caller checked it exists
        raise LookupError(f"branch {branch} vanished while recording events")
    seqs = [seq for seq, _envelope in rows]
    for seq, event in zip(seqs, events, strict=True):
        if event.note is not None:  # rare (the service desk): kept out of the shared INSERT
            await session.execute(
                _ADD_NOTE, {"note": event.note, "branch": branch, "seq": seq, "at": at}
            )
    notify_after_commit(session, branch, rows)
    return seqs


_SEQ_OF_BRANCH = "SELECT event_seq FROM branches WHERE code = :branch"
_CURRENT_SEQ = text(_SEQ_OF_BRANCH)
# `current_seq` as one value (NULL: no such branch), for a statement that reads more.
CURRENT_SEQ_COLUMN = f"({_SEQ_OF_BRANCH})"


async def current_seq(session: AsyncSession, branch: str) -> int | None:
    """The seq of the branch's latest committed event (None: no such branch)."""
    return (await session.execute(_CURRENT_SEQ, {"branch": branch})).scalar_one_or_none()


async def current_seq_alone(session: AsyncSession, branch: str, settings: Settings) -> int | None:
    """`current_seq` in one round trip, outside any transaction (no BEGIN, no COMMIT)."""
    rows = await execute_alone(session, _CURRENT_SEQ, {"branch": branch}, settings)
    return rows[0][0] if rows else None

"""What the stream sends: snapshots and events, read from the database and encoded once.

A snapshot and the seq it is valid at are read in one REPEATABLE READ transaction
(app/hall/shared_view.py), so the snapshot includes exactly the events up to that seq:
`event_seq` is bumped in the same transaction as every change it numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from app.events.service import current_seq
from app.events.shared_reads import SharedReads
from app.events.wire import ENVELOPE_SQL, Notified
from app.hall.shared_view import shared_seq_view


@dataclass(frozen=True)
class StreamEvent:
    """One event of a branch, with its stream message (its envelope) encoded once for all
    clients."""

    branch: str
    seq: int
    message: str


def encode_message(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def event_from_notification(notified: Notified) -> StreamEvent:
    """A notified event, sent as notified (its envelope, app/events/wire.py)."""
    assert notified.envelope is not None, "a reference is read from the history"
    return StreamEvent(notified.branch, notified.seq, notified.envelope)


_EVENTS_AFTER = text(
    f"""
    SELECT seq, {ENVELOPE_SQL} AS envelope FROM branch_events
    WHERE branch = :branch AND seq > :after AND (CAST(:upto AS bigint) IS NULL OR seq <= :upto)
    ORDER BY seq
    LIMIT :limit
    """  # noqa: S608 - a constant fragment; every value is a bound parameter
)


async def events_after(
    session: AsyncSession, branch: str, after: int, *, upto: int | None = None, limit: int = 10_000
) -> list[StreamEvent]:
    rows = await session.execute(
        _EVENTS_AFTER, {"branch": branch, "after": after, "upto": upto, "limit": limit}
    )
    return [StreamEvent(branch, seq, envelope) for seq, envelope in rows]


async def snapshot_message(
    session: AsyncSession, branch: str, now: datetime, settings: Settings, reads: SharedReads
) -> tuple[int, str]:
    """The snapshot message and its seq: the queue view exactly as of that seq, shared with the
    branch's other clients (app/hall/shared_view.py)."""
    shared = await shared_seq_view(reads, session, branch, now, settings)
    data = shared.json().decode()
    return shared.seq, f'{{"type":"snapshot","seq":{shared.seq},"data":{data}}}'


async def replay_after(
    session: AsyncSession, branch: str, since: int, settings: Settings
) -> list[StreamEvent] | None:
    """The events after `since` if the server still replays that far back, else None (the
    client then gets a snapshot). A `since` ahead of the branch (a client of another
    database, or a corrupted value) also gets a snapshot."""
    async with session.begin():
        latest = await current_seq(session, branch) or 0
        if since > latest or latest - since > settings.stream_replay_limit:
            return None
        if since == latest:
            return []  # up to date: nothing to replay
        return await events_after(session, branch, since, upto=latest, limit=latest - since)

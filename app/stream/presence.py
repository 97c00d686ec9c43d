"""How many stream clients each process has, per branch, summed by whichever process Prometheus
scrapes (hallq_stream_clients). Every few seconds each process with clients writes its heartbeat
(one row) and only the counts that changed: a process serving thousands of branches writes
what changed, not a row per branch per round (docs/scaling.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import Clock
from app.stream.hub import EventHub

log = logging.getLogger("hallq.stream")

# A process that has not reported for this long is gone (killed, or cut off from the database).
PRESENCE_STALE_S = 30


def new_process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# Rows of processes gone for this long are removed by the processes still running.
PRESENCE_FORGET_S = 3600

_HEARTBEAT = text(
    """
    WITH forgotten AS (
        DELETE FROM stream_processes WHERE heartbeat_at < CAST(:forget_before AS timestamptz)
    )
    INSERT INTO stream_processes (process_id, heartbeat_at) VALUES (:process_id, :now)
    ON CONFLICT (process_id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at
    """
)

# The counts that changed since the last report: upserted, and the branches that have no
# client here any more deleted. With `everything` (the first report), every other row of this
# process goes too.
_CHANGE_COUNTS = text(
    """
    WITH gone AS (
        DELETE FROM stream_presence
        WHERE process_id = :process_id
          AND (branch = ANY(CAST(:gone AS text[]))
               OR (:everything AND NOT (branch = ANY(CAST(:branches AS text[])))))
    )
    INSERT INTO stream_presence (process_id, branch, clients)
    SELECT :process_id, b, c
    FROM unnest(CAST(:branches AS text[]), CAST(:clients AS int[])) AS u(b, c)
    ON CONFLICT (process_id, branch) DO UPDATE SET clients = EXCLUDED.clients
    """
)

_FORGET = text("DELETE FROM stream_processes WHERE process_id = :process_id")


async def report_presence(
    session: AsyncSession,
    process_id: str,
    counts: dict[str, int],
    now: datetime,
    reported: dict[str, int] | None = None,
) -> None:
    """The heartbeat, and the counts that differ from `reported` (all of them if None): one
    transaction, so a failed report leaves `reported` true of the database."""
    changed = {b: n for b, n in counts.items() if reported is None or reported.get(b) != n}
    gone = [b for b in reported or {} if b not in counts]
    async with session.begin():
        await session.execute(
            _HEARTBEAT,
            {
                "process_id": process_id,
                "now": now,
                "forget_before": now - timedelta(seconds=PRESENCE_FORGET_S),
            },
        )
        if changed or gone or reported is None:
            await session.execute(
                _CHANGE_COUNTS,
                {
                    "process_id": process_id,
                    "branches": list(changed),
                    "clients": list(changed.values()),
                    "gone": gone,
                    "everything": reported is None,
                },
            )


async def run_presence(
    sessionmaker: async_sessionmaker[AsyncSession],
    hub: EventHub,
    clock: Clock,
    process_id: str,
    interval_s: float,
) -> None:
    reported: dict[str, int] | None = None
    try:
        while True:
            counts = hub.client_counts()
            # Idle processes with nothing to say stay quiet.
            if counts or reported:
                try:
                    async with sessionmaker() as session:
                        await report_presence(session, process_id, counts, clock.now(), reported)
                    reported = counts
                except Exception as exc:  # database down: report again next round
                    log.warning("stream presence report failed: %s", type(exc).__name__)
            await asyncio.sleep(interval_s)
    finally:
        if reported:
            with contextlib.suppress(Exception):
                async with sessionmaker() as session, session.begin():
                    await session.execute(_FORGET, {"process_id": process_id})

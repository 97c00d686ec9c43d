"""How many stream clients each process has, per branch: written by every process every few
seconds, summed by whichever process Prometheus scrapes (hallq_stream_clients)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import Clock
from app.stream.hub import EventHub

log = logging.getLogger("hallq.stream")

# A process that has not reported for this long is gone (killed, or cut off from the database).
PRESENCE_STALE_S = 30


def new_process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


_REPLACE = text(
    """
    WITH gone AS (
        DELETE FROM stream_presence
        WHERE process_id = :process_id AND NOT (branch = ANY(CAST(:branches AS text[])))
    )
    INSERT INTO stream_presence (process_id, branch, clients, heartbeat_at)
    SELECT :process_id, b, c, :now
    FROM unnest(CAST(:branches AS text[]), CAST(:clients AS int[])) AS u(b, c)
    ON CONFLICT (process_id, branch)
    DO UPDATE SET clients = EXCLUDED.clients, heartbeat_at = EXCLUDED.heartbeat_at
    """
)

_FORGET = text("DELETE FROM stream_presence WHERE process_id = :process_id")


async def report_presence(
    session: AsyncSession, process_id: str, counts: dict[str, int], now: datetime
) -> None:
    async with session.begin():
        await session.execute(
            _REPLACE,
            {
                "process_id": process_id,
                "branches": list(counts),
                "clients": list(counts.values()),
                "now": now,
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
                        await report_presence(session, process_id, counts, clock.now())
                    reported = counts
                except Exception as exc:  # database down: report again next round
                    log.warning("stream presence report failed: %s", type(exc).__name__)
            await asyncio.sleep(interval_s)
    finally:
        if reported:
            with contextlib.suppress(Exception):
                async with sessionmaker() as session, session.begin():
                    await session.execute(_FORGET, {"process_id": process_id})

"""When each token was last seen, without a write per request (SPEC §7 "Devices").

Every authenticated request, and every keepalive re-check of an open stream, tells the process's
`SeenTracker`. It remembers the instant in memory and writes `api_tokens.last_seen_at` in the
background at most once per `WRITE_EVERY_S` per token (per process). The column is not announced
as configuration (migration 0011), so these writes never empty the configuration caches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.models import ApiToken

log = logging.getLogger("hallq.auth")

WRITE_EVERY_S = 60
ONLINE_S = 60


class SeenTracker:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._seen: dict[str, datetime] = {}
        self._written: dict[str, datetime] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def last_seen(self, token_id: str) -> datetime | None:
        return self._seen.get(token_id)

    def saw(self, token_id: str, now: datetime) -> None:
        """`token_id` was used now; written to the database if this process last wrote it
        more than `WRITE_EVERY_S` ago."""
        self._seen[token_id] = now
        written = self._written.get(token_id)
        if written is not None and now - written < timedelta(seconds=WRITE_EVERY_S):
            return
        self._written[token_id] = now
        task = asyncio.create_task(self._write(token_id, now))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, token_id: str, now: datetime) -> None:
        stale = or_(ApiToken.last_seen_at.is_(None), ApiToken.last_seen_at < now)
        try:
            async with self._sessionmaker() as session, session.begin():
                await session.execute(
                    update(ApiToken).where(ApiToken.id == token_id, stale).values(last_seen_at=now)
                )
        except Exception as exc:  # database down: write again at the next sighting
            self._written.pop(token_id, None)
            log.warning("last-seen write failed: %s", type(exc).__name__)

    async def flush(self) -> None:
        """Wait for the writes under way (tests; shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self.flush()
        for task in self._tasks:
            task.cancel()


def is_online(last_seen: datetime | None, now: datetime) -> bool:
    return last_seen is not None and now - last_seen <= timedelta(seconds=ONLINE_S)

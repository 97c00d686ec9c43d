"""Each process's quote writer: the quotes its issues collect, written in batches off the
request path (docs/accuracy.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accuracy.service import Flushed, Quote, write_quotes

log = logging.getLogger("hallq.accuracy")

# Quotes per statement: a batch of a busy minute still goes in a few statements.
CHUNK = 1000
# How long the last flush may take when the process stops.
CLOSING_FLUSH_S = 5.0


class QuoteWriter:
    """Writes the quotes added to it every `flush_s` seconds, or as soon as `batch` are
    waiting, and what is left when it closes. With `flush_s` 0 it writes only when told to
    (`flush`) and when it closes: the tests decide when a quote reaches the database.

    A quote lost (the process dies first, or the database refuses a batch `max_pending`
    quotes long) only leaves its ticket out of the accuracy figures."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        flush_s: float,
        batch: int = 100,
        autocommit: bool = True,
        max_pending: int = 50_000,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._flush_s = flush_s
        self._batch = batch
        self._autocommit = autocommit
        self._pending: deque[Quote] = deque(maxlen=max_pending)
        self._due = asyncio.Event()
        self._writing = asyncio.Lock()  # one flush at a time (the timer's, a test's, the last)
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, quote: Quote) -> None:
        """Keep `quote` for the next flush; never blocks, never touches the database."""
        self._pending.append(quote)
        if len(self._pending) >= self._batch:
            self._due.set()

    def start(self) -> None:
        if self._flush_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="hallq-quote-writer")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_s):
                    await self._due.wait()
            self._due.clear()
            if self._pending:
                await self.flush()

    async def flush(self) -> Flushed:
        """Write every quote waiting now. A batch the database refused goes back to the front
        of the line, for the next flush."""
        kept = after_call = 0
        async with self._writing:
            while self._pending:
                chunk = [self._pending.popleft() for _ in range(min(CHUNK, len(self._pending)))]
                try:
                    async with self._sessionmaker() as session:
                        flushed = await write_quotes(session, chunk, autocommit=self._autocommit)
                except Exception as exc:
                    self._pending.extendleft(reversed(chunk))
                    log.warning("could not write %d wait quotes: %s", len(chunk), exc)
                    break
                kept += flushed.kept
                after_call += flushed.after_call
        return Flushed(kept=kept, after_call=after_call)

    async def close(self) -> None:
        """Stop the timer and write what is left (briefly: a database out of reach does not
        hold up the process's exit)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._pending:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSING_FLUSH_S):
                    await self.flush()

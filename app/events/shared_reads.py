"""Reads of a branch's state shared by the requests of one process that would repeat them.

A branch's screens and dashboard each re-read the queue view after the events they are sent
(app/web/static/live.js), and the dashboard's reports each compute today from the history: the
same read several times over for one change. Here the first read is shared by the others, while
it is still what a read now would return:
- no event of the branch was committed since (every change of its tickets, counters, notices
  and alerts is an event, numbered by `event_seq` in the same transaction);
- no configuration change was announced (the configuration cache's `generation`);
- the clock (injected, as everywhere) moved less than `reuse_s` since: waits and open times
  move with time alone, and may be that much behind.
Without a LISTEN connection changes may go unannounced, and nothing is shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config_cache import ConfigCache
from app.events.service import current_seq

T = TypeVar("T")


@dataclass(frozen=True)
class _Entry:
    seq: int
    generation: int
    at: datetime
    result: asyncio.Future[Any]

    def fits(self, seq: int, generation: int, now: datetime, reuse: timedelta) -> bool:
        return (seq, generation) == (self.seq, self.generation) and (
            self.at <= now < self.at + reuse
        )


class SharedReads:
    # Every this many reads, entries too old to fit again are dropped: memory follows the
    # branches read in the last moment, not every branch ever read.
    PRUNE_EVERY = 1000

    def __init__(self, config_cache: ConfigCache, reuse_s: float, max_entries: int = 20_000):
        self._config_cache = config_cache
        self._reuse = timedelta(seconds=reuse_s)
        self._max_entries = max_entries
        self._entries: dict[tuple[str, Hashable], _Entry] = {}
        self.reads = 0  # reads made (not shared): the tests count them

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def active(self) -> bool:
        return self._reuse > timedelta(0) and self._config_cache.active

    async def read(
        self,
        session: AsyncSession,
        branch: str,
        what: Hashable,
        now: datetime,
        load: Callable[[], Awaitable[T]],
        seq: int | None = None,
    ) -> T:
        """`load()`'s result, or that of a read of the same `what` that still fits. `seq`: the
        branch's committed seq if the caller has just read it."""
        if not self.active:
            self.reads += 1
            return await load()
        generation = self._config_cache.generation
        if seq is None:
            seq = await current_seq(session, branch) or 0
        key = (branch, what)
        entry = self._entries.get(key)
        if entry is not None and entry.fits(seq, generation, now, self._reuse):
            try:
                result: T = await asyncio.shield(entry.result)
                return result
            except Exception:  # noqa: S110 - the sharer's read failed: read for ourselves
                pass
        return await self._load_shared(key, _Entry(seq, generation, now, _future()), load)

    async def _load_shared(
        self, key: tuple[str, Hashable], entry: _Entry, load: Callable[[], Awaitable[T]]
    ) -> T:
        if self.reads % self.PRUNE_EVERY == 0 or len(self._entries) >= self._max_entries:
            self._prune(entry.at)
        self._entries[key] = entry
        self.reads += 1
        try:
            result = await load()
        except BaseException as exc:
            self._forget(key, entry)
            entry.result.set_exception(RuntimeError(f"shared read failed: {type(exc).__name__}"))
            entry.result.exception()  # retrieved: nobody may be waiting for it
            raise
        if entry.generation != self._config_cache.generation:
            self._forget(key, entry)  # a change was announced during the read
        entry.result.set_result(result)
        return result

    def _prune(self, now: datetime) -> None:
        old = now - self._reuse
        for key in [k for k, e in self._entries.items() if e.at <= old and e.result.done()]:
            del self._entries[key]
        if len(self._entries) >= self._max_entries:
            self._entries.clear()  # all fresh: a burst of distinct reads; start over

    def _forget(self, key: tuple[str, Hashable], entry: _Entry) -> None:
        if self._entries.get(key) is entry:
            del self._entries[key]


def _future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()

"""A per-process cache of configuration rows (tokens, branches, business types), so that the hot
paths (every request authenticates; every issue reads its branch and business type) skip them.

Correctness comes from invalidation, not from expiry (docs/decisions.md, "Configuration cache"):
a trigger (migration 0004) NOTIFYs channel `hallq_config` on every change and the process's
LISTEN connection (app/stream/hub.py) empties the cache; the process that commits a change
empties its own at once (`forget_config`); the cache is bypassed while the LISTEN connection is
down; and a value whose read was overtaken by an announced change is not kept (`generation`).
`ttl_s` bounds the age of an entry as a last resort.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncSession

V = TypeVar("V")

CHANNEL = "hallq_config"
SESSION_KEY = "config_cache"  # where a session finds its app's cache (session.info)


class ConfigCache:
    def __init__(
        self,
        ttl_s: float = 60.0,
        max_entries: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._monotonic = monotonic
        self._max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        self._listening = False
        # Bumped by every invalidation: a read that started before it must not be stored.
        self.generation = 0

    @property
    def active(self) -> bool:
        return self._listening and self._ttl_s > 0

    def get(self, key: Hashable) -> Any | None:
        if not self.active:
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored_at, value = entry
        if self._monotonic() - stored_at > self._ttl_s:
            del self._entries[key]
            return None
        return value

    def put(self, key: Hashable, value: Any, generation: int) -> None:
        """Keep `value`, read from the database after `generation` was taken."""
        if not self.active or generation != self.generation:
            return
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[key] = (self._monotonic(), value)

    def __contains__(self, key: Hashable) -> bool:
        return self.get(key) is not None

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()

    def set_listening(self, up: bool) -> None:
        """The LISTEN connection is up (changes will be announced) or down (they may not);
        either way the cache starts empty."""
        self.clear()
        self._listening = up


def session_cache(session: AsyncSession) -> ConfigCache | None:
    cache = session.info.get(SESSION_KEY)
    return cache if isinstance(cache, ConfigCache) else None


async def read_through(
    session: AsyncSession, key: Hashable, load: Callable[[], Awaitable[V | None]]
) -> V | None:
    """The value under `key` from the session's cache, else from `load()` (kept unless a change
    was announced meanwhile). None from `load` is not kept: a row created later is seen at once."""
    cache = session_cache(session)
    if cache is None:
        return await load()
    cached = cache.get(key)
    if cached is not None:
        return cast(V, cached)
    generation = cache.generation
    value = await load()
    if value is not None:
        cache.put(key, value, generation)
    return value


def forget_config(session: AsyncSession) -> None:
    """Call after committing a change to tokens, branches or business types: this process sees
    it at once (the others when the trigger's notification reaches them)."""
    cache = session_cache(session)
    if cache is not None:
        cache.clear()

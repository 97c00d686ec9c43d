"""First come, first served admission to the database, in front of SQLAlchemy's standard pool.

The asyncio pool lets a request that arrives while a connection is free take it ahead of those
already waiting, so under load an unlucky request waits for seconds and fails with the pool
timeout while newer ones pass (docs/decisions.md). A gate as wide as the pool (pool_size +
max_overflow) lets sessions in strictly in the order they asked, so the pool never has a waiter.

A session takes its place the first time it goes to the database (SQLAlchemy checks connections
out in synchronous code that no public hook can make wait, so the session's own async methods
take it first) and gives it back when it closes. A session answered from the configuration cache
alone (a token check, a keepalive's re-check) never waits in the line.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession


class FifoGate:
    """At most `places` holders at a time; a freed place goes to whoever has waited longest."""

    def __init__(self, places: int, timeout_s: float) -> None:
        self._available = places
        self._timeout_s = timeout_s
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def available(self) -> int:
        """Places free right now (never while someone waits)."""
        return self._available

    async def acquire(self) -> None:
        """Wait for a place, first come first served; after the pool timeout raise the pool's
        TimeoutError, which the API answers with 503 (app/core/errors.py)."""
        if self._available > 0:  # a place is only ever free while nobody waits
            self._available -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        timer = asyncio.get_running_loop().call_later(self._timeout_s, self._expire, waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            # Cancelled just after a place was handed over: pass it on, or it would be lost.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()
            raise
        finally:
            timer.cancel()

    def release(self) -> None:
        """Give a place back: straight to the longest waiter still waiting, if any."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # skip those that timed out or were cancelled
                waiter.set_result(None)
                return
        self._available += 1

    def _expire(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(
                PoolTimeoutError(f"no database connection became free in {self._timeout_s:g} s")
            )


class AdmittedSession(AsyncSession):
    """An AsyncSession that holds a place at its engine's gate from its first database work
    until it closes."""

    _place: FifoGate | None = None

    async def _admit(self) -> None:
        if self._place is None and isinstance(self.bind, AsyncEngine):
            gate = admission_gate(self.bind)
            if gate is not None:
                await gate.acquire()
                self._place = gate

    async def close(self) -> None:
        try:
            await super().close()  # the connection goes back first
        finally:
            place, self._place = self._place, None
            if place is not None:
                place.release()

    async def commit(self) -> None:
        if self.new or self.dirty or self.deleted:  # the commit flushes them
            await self._admit()
        await super().commit()


def _admitted(name: str) -> Callable[..., Awaitable[Any]]:
    async def method(self: AdmittedSession, *args: Any, **kwargs: Any) -> Any:
        await self._admit()
        return await getattr(super(AdmittedSession, self), name)(*args, **kwargs)

    return method


# Every other async method that may check a connection out takes the place first (set here,
# not written out, so that type checkers keep AsyncSession's own signatures).
for _name in (
    "connection", "execute", "scalar", "scalars", "get", "get_one", "stream", "stream_scalars",
    "flush", "refresh", "merge", "delete", "run_sync",
):  # fmt: skip
    setattr(AdmittedSession, _name, _admitted(_name))


# One gate per engine, for every sessionmaker of it (see app/core/database.py).
_gates: weakref.WeakKeyDictionary[Engine, FifoGate] = weakref.WeakKeyDictionary()


def add_admission_gate(engine: AsyncEngine, *, places: int, timeout_s: float) -> None:
    _gates[engine.sync_engine] = FifoGate(places, timeout_s)


def admission_gate(engine: AsyncEngine) -> FifoGate | None:
    return _gates.get(engine.sync_engine)

"""A connection pool that hands connections out in the order they were asked for.

SQLAlchemy's asyncio pool lets a request that arrives while a connection is free take it even
though others are already waiting (its queue's `get` tries `get_nowait` first, and
`asyncio.Queue` puts a waiter it woke but that lost the race back at the end of the line). With
more requests than connections, which is any busy moment, an unlucky request can wait for
seconds while newer ones are served in milliseconds, then fail with the pool timeout (HTTP 503).
Measured in the benchmark: under load the slowest issue took 0.4-0.6 s every second while the
median took 45 ms, and a burst of queue reads had requests fail after the 5 s pool timeout.
(Known upstream: sqlalchemy/sqlalchemy#7679 for the threaded pool, MagicStack/asyncpg#1247.)

Here a connection coming back goes straight to the longest waiter, and nobody takes a free
connection while someone is waiting. The pool's sizes, timeout and overflow work as before
(tests/test_database.py, with and without overflow).
"""

from __future__ import annotations

import asyncio
from collections import deque
from functools import cached_property
from typing import Any, TypeVar

from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util.concurrency import await_only
from sqlalchemy.util.queue import AsyncAdaptedQueue, Empty, Full

_T = TypeVar("_T")


class FairQueue(AsyncAdaptedQueue[_T]):
    """First come, first served, with the connection handed over directly."""

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        super().__init__(maxsize, use_lifo)
        self._waiters: deque[asyncio.Future[_T]] = deque()

    @cached_property
    def _queue(self) -> asyncio.Queue[_T]:
        # Unbounded underneath: `maxsize` is enforced in put_nowait, so that a connection
        # handed to a waiter that was cancelled can always be taken back (see `_wait`).
        return asyncio.LifoQueue() if self.use_lifo else asyncio.Queue()

    def full(self) -> bool:
        return 0 < self.maxsize <= self._queue.qsize()

    def _someone_waits(self) -> bool:
        while self._waiters and self._waiters[0].done():
            self._waiters.popleft()  # timed out or cancelled
        return bool(self._waiters)

    def _hand_over(self, item: _T) -> bool:
        """Give `item` to the longest waiter, if anyone waits."""
        if not self._someone_waits():
            return False
        self._waiters.popleft().set_result(item)
        return True

    def put_nowait(self, item: _T) -> None:
        if self._hand_over(item):
            return
        if self.full():
            raise Full()  # the pool closes the connection and counts an overflow less
        self._queue.put_nowait(item)

    def get(self, block: bool = True, timeout: float | None = None) -> _T:
        if not self._someone_waits():
            try:
                return super().get_nowait()
            except Empty:
                pass
        if not block:
            raise Empty()
        waiter: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return await_only(self._wait(waiter, expire_after_s=timeout))

    async def _wait(self, waiter: asyncio.Future[_T], *, expire_after_s: float | None) -> _T:
        def expire() -> None:
            if not waiter.done():
                waiter.set_exception(Empty())

        timer = (
            None
            if expire_after_s is None
            else asyncio.get_running_loop().call_later(expire_after_s, expire)
        )
        try:
            return await waiter
        except asyncio.CancelledError:
            # The request was cancelled; if a connection had just been handed over, pass it on
            # to the next waiter, or keep it idle even past `maxsize` (an overflow connection
            # whose slot another one filled meanwhile): the pool still counts it as checked
            # out, and closes it, counting the overflow down, when it next comes back to a
            # full queue. Raising Full here would lose it and replace the cancellation.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                item = waiter.result()
                if not self._hand_over(item):
                    self._queue.put_nowait(item)
            raise
        finally:
            if timer is not None:
                timer.cancel()


class FairAsyncQueuePool(AsyncAdaptedQueuePool):
    """`AsyncAdaptedQueuePool` with a first-come-first-served queue (see the module)."""

    _queue_class: Any = FairQueue

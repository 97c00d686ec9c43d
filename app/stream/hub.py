"""The per-process fan-out: one LISTEN connection, many websocket clients.

Every committed event is NOTIFYed after its commit (app/events/notifier.py); the hub hands it to
the subscriptions of its branch. Notifications can arrive out of order or be lost, so delivery
goes by seq: a gap or a reference payload is read from the history, an event already delivered
is dropped, and a sweep every `sweep_s` catches up a branch still behind the seq it had
committed at the previous sweep. The same connection LISTENs for configuration changes and
empties the configuration cache (app/core/config_cache.py). Handing an event to a client never
waits: a client that falls behind is marked for a resync (a fresh snapshot) instead of slowing
the others. How and why, in full: docs/stream.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config_cache import CHANNEL as CONFIG_CHANNEL
from app.core.config_cache import ConfigCache
from app.core.dedicated import DedicatedConnector, keep_connected
from app.events.notifier import CHANNEL
from app.events.service import current_seq
from app.events.wire import Notified, parse_notification
from app.stream.service import StreamEvent, event_from_notification, events_after

log = logging.getLogger("hallq.stream")

_COMMITTED_SEQS = "SELECT code, event_seq FROM branches WHERE code = ANY($1::text[])"


@dataclass(frozen=True)
class CatchUp:
    """Read a branch's missed events from the history (None: every watched branch)."""

    branch: str | None
    swept: bool = False  # asked by the sweep, which asks again only once this is done


class Subscription:
    """One client's view of the hub: a bounded queue of events, or a resync mark."""

    def __init__(self, branch: str, maxsize: int) -> None:
        self.branch = branch
        self.queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue(maxsize + 1)
        self.maxsize = maxsize
        self.needs_resync = False

    def offer(self, event: StreamEvent) -> None:
        if self.needs_resync:
            return  # the snapshot the client is about to get includes this event
        if self.queue.qsize() >= self.maxsize:
            # Too far behind: drop what is queued and wake the client up for a snapshot.
            self.needs_resync = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(event)


class EventHub:
    def __init__(
        self,
        database_url: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        queue_size: int,
        connect_timeout_s: float = 5.0,
        sweep_s: float = 1.0,
        config_cache: ConfigCache | None = None,
    ) -> None:
        self._connector = DedicatedConnector(database_url, "hallq-listener", connect_timeout_s)
        self._sessionmaker = sessionmaker
        self._queue_size = queue_size
        self._connect_timeout_s = connect_timeout_s
        self._sweep_s = sweep_s
        # The committed seq of each subscribed branch at the last sweep.
        self._swept: dict[str, int] = {}
        # Branches with a sweep's catch-up waiting in the inbox: one is enough, however slow.
        self._sweep_pending: set[str] = set()
        self._config_cache = config_cache
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._last_seq: dict[str, int] = {}
        # Notifications and catch-up requests are handled one at a time, in arrival order.
        self._inbox: asyncio.Queue[Notified | CatchUp] = asyncio.Queue()
        self._listener: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._first_try = asyncio.Event()  # the first connection was tried (up or not)
        self._listened = False  # a connection was up at least once
        self._listening = False  # a connection is up, LISTENing
        self._behind = False  # a catch-up failed: retry it at the next health check
        # Told the branch of every notified event, subscribed or not (the webhook dispatcher).
        self._watchers: list[Callable[[str], None]] = []

    # -- subscriptions ------------------------------------------------------------------

    def client_counts(self) -> dict[str, int]:
        return {branch: len(subs) for branch, subs in self._subscriptions.items() if subs}

    async def subscribe(self, branch: str) -> Subscription:
        """A subscription that receives every event of `branch` committed after this returns."""
        await self._ensure_started()
        subscription = Subscription(branch, self._queue_size)
        if branch not in self._last_seq:
            # First client of the branch in this process: start from the current seq. Events
            # committed before it reach the client through its snapshot or replay instead; a
            # catch-up picks up any committed while we were reading it.
            async with self._sessionmaker() as session:
                seq = await current_seq(session, branch) or 0
            self._last_seq.setdefault(branch, seq)
            self._inbox.put_nowait(CatchUp(branch))
        self._subscriptions.setdefault(branch, set()).add(subscription)
        return subscription

    def watch(self, callback: Callable[[str], None]) -> None:
        """Call `callback(branch)` for every event notification this process hears, from its
        LISTEN connection; it must not block. (A hint only: notifications can be lost.)"""
        self._watchers.append(callback)

    def unsubscribe(self, subscription: Subscription) -> None:
        subscribers = self._subscriptions.get(subscription.branch)
        if subscribers is None:
            return
        subscribers.discard(subscription)
        if not subscribers:
            # Nobody here watches the branch: stop tracking it, and start afresh next time.
            del self._subscriptions[subscription.branch]
            self._last_seq.pop(subscription.branch, None)

    @property
    def listening(self) -> bool:
        """A LISTEN connection is up (`/readyz` says so; while it is not, this process's
        screens get nothing until it reconnects and catches up)."""
        return self._listening

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (and keep reconnecting); returns at once."""
        if self._listener is None:  # no await before the tasks exist: no race to start twice
            self._dispatcher = asyncio.create_task(self._dispatch_forever())
            self._listener = asyncio.create_task(self._listen_forever())

    async def _ensure_started(self) -> None:
        self.start()
        await self._first_try.wait()

    async def close(self) -> None:
        for task in (self._listener, self._dispatcher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._listener = self._dispatcher = None

    # -- the listening connection -------------------------------------------------------

    def _on_config_change(self, _conn: object, _pid: int, _channel: str, _payload: str) -> None:
        if self._config_cache is not None:
            self._config_cache.clear()

    def _set_config_cache_listening(self, up: bool) -> None:
        if self._config_cache is not None:
            self._config_cache.set_listening(up)

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            notified = parse_notification(payload)
        except ValueError:
            log.warning("ignored a malformed notification")
            return
        self._inbox.put_nowait(notified)
        for watcher in self._watchers:
            watcher(notified.branch)

    async def _listen_forever(self) -> None:
        await keep_connected(
            self._connector,
            self._listen,
            log=log,
            name="stream listener",
            on_down=self._listener_down,
        )

    async def _listen(self, conn: asyncpg.Connection) -> None:
        """LISTEN, catch up, then sweep every `sweep_s` until the connection is lost."""
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        await conn.add_listener(CHANNEL, self._on_notification)
        await conn.add_listener(CONFIG_CHANNEL, self._on_config_change)
        self._set_config_cache_listening(True)
        if self._listened:
            log.info("stream listener reconnected; catching up from the history")
        # Whatever was committed while nobody listened comes from the history.
        self._inbox.put_nowait(CatchUp(None))
        self._listened = True
        self._listening = True
        self._first_try.set()
        while not lost.is_set():
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
            # that comes as the wait ends, and this loop would never stop (a shutdown hangs).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._sweep_s):
                    await lost.wait()
            if not lost.is_set():
                await self._sweep(conn)

    def _listener_down(self) -> None:
        self._listening = False
        self._set_config_cache_listening(False)
        # Never connected yet: let subscribers fail rather than hang forever.
        self._first_try.set()

    async def _sweep(self, conn: asyncpg.Connection) -> None:
        """Catch up the branches whose notifications were lost (docs/stream.md, the sweep)."""
        rows = await conn.fetch(
            _COMMITTED_SEQS, list(self._subscriptions), timeout=self._connect_timeout_s
        )
        overdue = self.overdue_branches({code: seq for code, seq in rows})
        if self._behind:
            self._behind = False
            self._inbox.put_nowait(CatchUp(None))
            return
        for branch in overdue:
            if branch not in self._sweep_pending:
                self._sweep_pending.add(branch)
                self._inbox.put_nowait(CatchUp(branch, swept=True))

    def overdue_branches(self, committed: dict[str, int]) -> list[str]:
        """Branches not yet delivered up to the seq they had committed at the previous sweep:
        a notification still on its way arrives well within one sweep, so theirs were lost.
        `committed` (this sweep's seqs) is remembered for the next call."""
        overdue = [
            branch
            for branch, seq in self._swept.items()
            if branch in committed and self._last_seq.get(branch, seq) < seq
        ]
        self._swept = committed
        return overdue

    # -- dispatching --------------------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        while True:
            item = await self._inbox.get()
            try:
                if isinstance(item, Notified):
                    await self._dispatch(item)
                elif item.branch is None:
                    await self._catch_up_all()
                else:
                    if item.swept:
                        self._sweep_pending.discard(item.branch)
                    await self._catch_up(item.branch, None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database down during a catch-up: retried by the listener
                self._behind = True
                log.warning("stream dispatch failed: %s", type(exc).__name__)

    async def _catch_up_all(self) -> None:
        """Every watched branch; one that fails (a database error, a read past the command
        timeout) does not keep the others from catching up. The next sweep retries."""
        failed: Exception | None = None
        for branch in list(self._subscriptions):
            try:
                await self._catch_up(branch, None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failed = exc
        if failed is not None:
            raise failed

    async def _dispatch(self, notified: Notified) -> None:
        branch, seq = notified.branch, notified.seq
        if branch not in self._subscriptions:
            return
        last = self._last_seq.get(branch, 0)
        if seq <= last:
            return  # already delivered (by a catch-up)
        if seq > last + 1 or notified.envelope is None:
            # A gap, or an event too large for a notification: read it from the history.
            await self._catch_up(branch, seq)
            return
        self._deliver(event_from_notification(notified))

    async def _catch_up(self, branch: str, upto: int | None) -> None:
        last = self._last_seq.get(branch)
        if last is None:
            return
        async with self._sessionmaker() as session, session.begin():
            events = await events_after(session, branch, last, upto=upto, limit=100_000)
        for event in events:
            self._deliver(event)

    def _deliver(self, event: StreamEvent) -> None:
        if event.branch not in self._last_seq:
            # Nobody here watches the branch (any more: a catch-up read before the last client
            # left). Tracking it again would make the next first client start from a stale seq.
            return
        if event.seq <= self._last_seq[event.branch]:
            return
        self._last_seq[event.branch] = event.seq
        for subscription in self._subscriptions.get(event.branch, ()):
            subscription.offer(event)

"""Notifying every server process of committed events: NOTIFY after the commit, not inside it.

PostgreSQL queues a transaction's notifications at commit under one cluster-wide lock and holds
it until that commit's WAL is flushed, so transactions that NOTIFY cannot share a flush: they
commit one at a time, for every branch on the database (docs/decisions.md, "Events are notified
after the commit"). So the writing transaction only records its events (`notify_after_commit`
keeps their notification payloads in the session), and once it has committed they are handed to
this process's `EventNotifier`, which sends them in batches from a connection of its own with
`synchronous_commit=off`: its commits hold the lock for microseconds, not a disk flush.

A notification is not durable, the event is: if the process dies between commit and notify, or
the notify fails, the listeners' sweep (app/stream/hub.py) sees the branch's committed seq ahead
of what it delivered and reads the missing events from the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable

import asyncpg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from app.core.dedicated import DedicatedConnector, keep_connected
from app.events.wire import reference

log = logging.getLogger("hallq.events")

CHANNEL = "hallq_events"
# pg_notify refuses payloads of 8000 bytes or more; a larger event is notified by reference and
# the listener reads it from the table.
MAX_PAYLOAD_BYTES = 7500
# Session.info key: the payloads of the session's current transaction, sent when it commits.
PENDING_KEY = "hallq.pending_notifications"


def notify_sql(channel: str, payloads: str) -> str:
    """One autocommitted statement that NOTIFYs `payloads` (SQL for a text[]) on `channel` (SQL
    for a text). The events are durable already: its commit need not wait for a WAL flush, and
    so holds the notify lock only briefly. `synchronous_commit` is set in the statement (its
    implicit transaction), not as a connection parameter, which a connection pooler such as
    PgBouncer would refuse or drop. (Also the raw-database reference's, bench/sql.py.)"""
    unflushed = "WITH unflushed AS (SELECT set_config('synchronous_commit', 'off', true))"
    each = f"unnest({payloads}) AS p"
    # SQL fragments from the code, never values:
    return f"{unflushed} SELECT count(pg_notify({channel}, p)) FROM unflushed, {each}"  # noqa: S608


_SEND = notify_sql("$1", "$2::text[]")


class NotifyingSession(Session):
    """The sessions of an app whose committed events are notified (`notifying_session_class`)."""


def notifying_session_class(notifier: EventNotifier) -> type[NotifyingSession]:
    """A session class of one app's own: the events its sessions commit go to `notifier`.
    Listeners are attached to this class only, never to SQLAlchemy's global `Session`."""
    session_class = type("AppSession", (NotifyingSession,), {})

    def hand_over_committed(session: Session) -> None:
        if session.in_nested_transaction():
            return  # a savepoint was released: nothing is committed yet
        pending = session.info.pop(PENDING_KEY, None)
        if pending:
            notifier.publish(pending)

    def forget_uncommitted(session: Session, transaction: SessionTransaction) -> None:
        # After a commit the payloads were handed over already (after_commit comes first);
        # after a rollback or a close without commit they were never committed.
        if transaction.parent is None:
            session.info.pop(PENDING_KEY, None)

    event.listen(session_class, "after_commit", hand_over_committed)
    event.listen(session_class, "after_transaction_end", forget_uncommitted)
    return session_class


def _payload_or_reference(branch: str, seq: int, envelope: str) -> str:
    """The envelope (app/events/wire.py), or a reference to the event when it is too large."""
    if len(envelope.encode()) <= MAX_PAYLOAD_BYTES:
        return envelope
    return reference(branch, seq)


def notify_after_commit(
    session: AsyncSession | Session, branch: str, events: Iterable[tuple[int, str]]
) -> None:
    """Notify `events` of `branch` (seq and envelope) once the session's current transaction
    commits, never if it rolls back. A session of no app (a script's) notifies nothing: the
    listeners' sweep delivers its events."""
    if session.in_nested_transaction():
        # A savepoint can roll back on its own, after which its seqs are handed out again; the
        # pending payloads are per transaction, not per savepoint.
        raise RuntimeError("events are recorded in the transaction itself, not in a savepoint")
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    if not isinstance(sync, NotifyingSession):
        return
    pending = sync.info.setdefault(PENDING_KEY, [])
    pending.extend(_payload_or_reference(branch, seq, envelope) for seq, envelope in events)


class EventNotifier:
    """One per process: a queue of committed events' payloads, sent by one background task."""

    def __init__(
        self,
        database_url: str,
        *,
        connect_timeout_s: float = 5.0,
        batch_size: int = 500,
        max_pending: int = 50_000,
    ) -> None:
        self._connector = DedicatedConnector(database_url, "hallq-notifier", connect_timeout_s)
        self._connect_timeout_s = connect_timeout_s
        self._batch_size = batch_size
        # Bounded: with the database unreachable nothing commits, but a stuck sender must not
        # grow without end; what is dropped is caught up by the listeners' sweep.
        self._pending: deque[str] = deque(maxlen=max_pending)
        self._ready = asyncio.Event()  # something to send
        self._idle = asyncio.Event()  # everything published was sent (or given up)
        self._idle.set()
        self._sender: asyncio.Task[None] | None = None
        self._connected = False

    @property
    def connected(self) -> bool:
        """The notifying connection is up (`/readyz` says so; while it is not, events reach
        screens through the listeners' sweep)."""
        return self._connected

    def publish(self, payloads: Iterable[str]) -> None:
        """Queue payloads of committed events; never blocks."""
        self._pending.extend(payloads)
        self._idle.clear()
        self._ready.set()

    def start(self) -> None:
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_forever())

    async def close(self) -> None:
        """Send what is queued (briefly), then stop."""
        if self._sender is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=2.0)
        self._sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sender
        self._sender = None

    async def _send_forever(self) -> None:
        await keep_connected(
            self._connector, self._send, log=log, name="event notifier", on_down=self._down
        )

    def _down(self) -> None:
        self._connected = False

    async def _send(self, conn: asyncpg.Connection) -> None:
        # A connection closed while idle wakes the sender, which reconnects at once rather than
        # at the next commit (whose notifications would then go through the sweep). Woken once
        # now too: the connection may have closed before the listener was there.
        conn.add_termination_listener(lambda _conn: self._ready.set())
        self._ready.set()
        self._connected = True
        while True:
            await self._ready.wait()
            if conn.is_closed():
                raise ConnectionError("the notifying connection was closed")
            batch = self._take_batch()
            if not batch:
                continue
            try:
                await conn.execute(_SEND, CHANNEL, batch, timeout=self._connect_timeout_s)
            except Exception:
                log.warning(
                    "event notifier: %d notifications not sent; the listeners' sweep "
                    "delivers their events",
                    len(batch),
                )
                raise
            finally:
                if not self._pending:
                    self._idle.set()

    def _take_batch(self) -> list[str]:
        batch: list[str] = []
        while self._pending and len(batch) < self._batch_size:
            batch.append(self._pending.popleft())
        if not self._pending:
            self._ready.clear()
        return batch

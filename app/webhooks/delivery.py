"""Delivering events to webhooks: one background dispatcher per server process.

The dispatcher looks for (webhook, branch) cursors behind their branch's committed seq when the
stream's LISTEN connection hears of an event (`wake`) and every `poll_s` (retries, missed
notifications). It claims a cursor with a session-level advisory lock on a connection of its
own, so a cursor is delivered by one process at a time, and a process that dies (its connection
with it) leaves its claims to the others at once. Each claimed cursor is delivered by a task of
its own, event after event in `seq` order, so a slow or failing endpoint holds up only its own
webhook's branch; nothing here runs in a request, and recording an event waits for nothing.

A delivery (`deliver_webhook`) is a Standard Webhooks POST: the body is the event's envelope as
the history holds it, `webhook-id` is `<branch>:<seq>` (the same on every retry). A 2xx within
the timeout advances the cursor; anything else logs the attempt, and the webhook waits for the
next step of `BACKOFF_S` before its next try (after `DISABLE_AFTER_S` of failures it is
disabled: `webhook_failing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import httpx
from standardwebhooks.webhooks import Webhook as Signer

from app.core.clock import Clock
from app.core.dedicated import DedicatedConnector, keep_connected
from app.webhooks import service
from app.webhooks.sms import SMS_KIND, sms_body

log = logging.getLogger("hallq.webhooks")

# About 5 s, 30 s, 2 min, 10 min, 1 h, then hourly (SPEC §8; settings may change them).
BACKOFF_S: tuple[float, ...] = (5, 30, 120, 600, 3600)
DISABLE_AFTER_S = 24 * 3600.0
# Events read from the history at a time per cursor.
BATCH = 100
# How long closing waits for deliveries in flight to finish.
STOP_WAIT_S = 2.0
# How long delivered events may wait before their cursor is written.
FLUSH_S = 0.1
# The shortest time between two looks for due cursors after notifications.
LOOK_INTERVAL_S = 0.02
# An error's description in the delivery log: the exception's type only (a message may quote
# the URL, which may carry credentials).
ERROR_MAX = 200


@dataclass(frozen=True)
class Attempt:
    """What one POST came to: delivered (2xx), or a status code or an error."""

    status_code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def signed_headers(secret: str, msg_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers for `body`, signed with the `whsec_` secret."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Signer(secret).sign(msg_id, at, body),
    }


async def deliver_webhook(
    client: httpx.AsyncClient, url: str, secret: str, msg_id: str, body: bytes, at: datetime
) -> Attempt:
    """POST one event; never raises for what the endpoint or the network does."""
    headers = signed_headers(secret, msg_id, at, body)
    try:
        response = await client.post(url, content=body, headers=headers)
    except Exception as exc:  # httpx's errors, and a URL it cannot use (InvalidURL)
        return Attempt(None, type(exc).__name__[:ERROR_MAX])
    await response.aclose()
    return Attempt(response.status_code, None)


class Progress:
    """A claimed cursor's deliveries not yet written. They are written every `FLUSH_S` and
    before the claim is let go, so that a cursor's row is not written once per event; a process
    that dies sends at most that last moment's events again (at least once)."""

    def __init__(self, passed: int) -> None:
        self.passed = passed  # the cursor's position, past unwanted events too
        self.written = passed
        self.seqs: list[int] = []
        self.types: list[str] = []
        self.attempts: list[int] = []
        self.statuses: list[int | None] = []
        self.ats: list[datetime] = []
        self._written_at = time.monotonic()

    def add(
        self, seq: int, event_type: str, attempt_no: int, attempt: Attempt, at: datetime
    ) -> None:
        self.passed = seq
        self.seqs.append(seq)
        self.types.append(event_type)
        self.attempts.append(attempt_no)
        self.statuses.append(attempt.status_code)
        self.ats.append(at)

    def due(self) -> bool:
        return time.monotonic() - self._written_at >= FLUSH_S

    def written_up_to(self) -> None:
        self.written = self.passed
        for column in (self.seqs, self.types, self.attempts, self.statuses, self.ats):
            column.clear()
        self._written_at = time.monotonic()


@dataclass(frozen=True)
class Cursor:
    webhook_id: str
    branch: str


@dataclass(frozen=True)
class Target:
    """A claimed cursor's webhook as it is now, and where the cursor stands."""

    kind: str  # `webhook`, or `sms`: the SMS relay's bodies (app/webhooks/sms.py)
    url: str
    secret: str
    events: frozenset[str] | None
    failures: int
    delivered_seq: int
    attempts: int


class WebhookDispatcher:
    """One per process: finds due cursors, claims them, and runs a delivery task per claim."""

    def __init__(
        self,
        database_url: str,
        clock: Clock,
        *,
        poll_s: float = 1.0,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        backoff_s: tuple[float, ...] = BACKOFF_S,
        disable_after_s: float = DISABLE_AFTER_S,
    ) -> None:
        self._connector = DedicatedConnector(database_url, "hallq-webhooks", connect_timeout_s)
        self._clock = clock
        self._poll_s = poll_s
        self._timeout_s = timeout_s
        self._backoff_s = [float(s) for s in backoff_s]
        self._disable_after_s = disable_after_s
        self._client = httpx.AsyncClient(
            timeout=timeout_s,
            # Proxies of the environment are not for webhooks; redirects are not followed
            # (a 3xx is a failed delivery: the URL is the one the admin set).
            trust_env=False,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )
        self._woken: set[str] = set()  # branches heard of since the last look
        self._wake = asyncio.Event()
        self._running: dict[Cursor, asyncio.Task[None]] = {}
        self._again: set[Cursor] = set()  # woken while its task ran: look once more
        self._conn_lock = asyncio.Lock()  # one statement at a time on the connection
        self._task: asyncio.Task[None] | None = None
        self._last_prune = 0.0
        self._any_enabled = False  # at the last full look
        self._stopping = False  # closing: deliveries write their progress and stop

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(
                keep_connected(
                    self._connector, self._run, log=log, name="webhook dispatcher",
                    on_down=self._stop_deliveries,
                )
            )  # fmt: skip

    async def close(self) -> None:
        """Let deliveries write their progress and stop (those waiting on an endpoint for
        long are cancelled: that event is sent again later), then close the connection."""
        self._stopping = True
        running = list(self._running.values())
        if running:
            await asyncio.wait(running, timeout=STOP_WAIT_S)
        if self._task is not None:
            # Cancelled until it is done: a cancellation that lands as a library call
            # completes can be lost, and a shutdown must not hang on it.
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=1.0)
            self._task = None
        await self._stop_deliveries_and_wait()
        await self._client.aclose()

    def wake(self, branch: str) -> None:
        """An event of `branch` was committed (a notification, from any process)."""
        self._woken.add(branch)
        self._wake.set()

    # -- the loop -------------------------------------------------------------------------

    async def _run(self, conn: asyncpg.Connection) -> None:
        """Look for due cursors: everywhere every `poll_s`, and in the branches heard of in
        between. With no enabled webhook, notifications cost nothing but a set insertion."""
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        clock = asyncio.get_running_loop().time
        last_full = -self._poll_s
        while not lost.is_set():
            self._wake.clear()  # before looking: a wake during the look is for the next one
            if clock() - last_full >= self._poll_s:
                last_full = clock()
                self._woken.clear()
                async with self._conn_lock:
                    self._any_enabled = bool(await conn.fetchval(service.ANY_ENABLED_SQL))
                await self._start_due(conn, None)
                await self._maybe_prune(conn)
            elif self._woken:
                branches = sorted(self._woken)
                self._woken.clear()
                if self._any_enabled:
                    await self._start_due(conn, branches)
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
            # that comes as the wake does, and the dispatcher would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, last_full + self._poll_s - clock())):
                    await self._wake.wait()
            # Wakes that come while one look runs are served by the next: under a stream of
            # events that is one look per `LOOK_INTERVAL_S`, not one per event.
            await asyncio.sleep(LOOK_INTERVAL_S)
        raise ConnectionError("the webhook dispatcher's connection was closed")

    async def _start_due(self, conn: asyncpg.Connection, branches: list[str] | None) -> None:
        async with self._conn_lock:
            rows = await conn.fetch(service.DUE_SQL, self._clock.now(), branches)
        for webhook_id, branch in rows:
            cursor = Cursor(webhook_id, branch)
            if cursor in self._running:
                self._again.add(cursor)
                continue
            async with self._conn_lock:
                claimed = await conn.fetchval(
                    service.CLAIM_SQL, service.CURSOR_LOCK_NAMESPACE, webhook_id, branch
                )
            if claimed:  # else another process delivers it
                self._running[cursor] = asyncio.create_task(self._deliver_claimed(conn, cursor))

    async def _maybe_prune(self, conn: asyncpg.Connection) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._last_prune >= 60:
            self._last_prune = now
            async with self._conn_lock:
                await conn.execute(service.PRUNE_SQL)

    def _stop_deliveries(self) -> None:
        """The connection is gone, and with it the claims: others may deliver now."""
        for task in self._running.values():
            task.cancel()
        self._running.clear()
        self._again.clear()

    async def _stop_deliveries_and_wait(self) -> None:
        tasks = list(self._running.values())
        self._stop_deliveries()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- one claimed cursor ---------------------------------------------------------------

    async def _deliver_claimed(self, conn: asyncpg.Connection, cursor: Cursor) -> None:
        try:
            while True:
                self._again.discard(cursor)
                await self._deliver_cursor(conn, cursor)
                if cursor not in self._again:
                    break
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database went away: the claim went with it
            log.warning(
                "webhook %s, branch %s: delivery stopped: %s",
                cursor.webhook_id, cursor.branch, type(exc).__name__,
            )  # fmt: skip
        finally:
            self._running.pop(cursor, None)
        with contextlib.suppress(Exception):
            async with self._conn_lock:
                await conn.execute(
                    service.RELEASE_SQL,
                    service.CURSOR_LOCK_NAMESPACE,
                    cursor.webhook_id,
                    cursor.branch,
                )

    async def _load(self, conn: asyncpg.Connection, cursor: Cursor) -> Target | None:
        async with self._conn_lock:
            row = await conn.fetchrow(
                service.LOAD_SQL, cursor.webhook_id, cursor.branch, self._clock.now()
            )
        if row is None:
            return None  # deleted, disabled, waiting to retry, or no longer watching
        events = row["events"]
        return Target(
            kind=row["kind"],
            url=row["url"],
            secret=row["secret"],
            events=frozenset(events) if events is not None else None,
            failures=row["failures"],
            delivered_seq=row["delivered_seq"],
            attempts=row["attempts"],
        )

    async def _deliver_cursor(self, conn: asyncpg.Connection, cursor: Cursor) -> None:
        """Deliver the cursor's events in order until none is left, or one fails."""
        while (target := await self._load(conn, cursor)) is not None:
            async with self._conn_lock:
                events = await conn.fetch(
                    service.EVENTS_SQL, cursor.branch, target.delivered_seq, BATCH
                )
            if not events:
                return
            if not await self._deliver_batch(conn, cursor, target, events):
                return

    async def _deliver_batch(
        self,
        conn: asyncpg.Connection,
        cursor: Cursor,
        target: Target,
        events: Iterable[asyncpg.Record],
    ) -> bool:
        """Deliver events of the batch in order for up to `FLUSH_S`; False when one failed (or
        the dispatcher is closing)."""
        progress = Progress(target.delivered_seq)
        attempts, recovered = target.attempts, target.failures == 0
        for seq, event_type, envelope in events:
            if target.events is not None and event_type not in target.events:
                progress.passed = seq
                continue
            if self._stopping:
                break
            body = await self._body(conn, cursor, target, event_type, envelope)
            if body is None:  # the SMS relay: a ticket without a phone number
                progress.passed = seq
                continue
            now = self._clock.now()
            attempt = await deliver_webhook(
                self._client, target.url, target.secret, f"{cursor.branch}:{seq}", body, now
            )
            if not attempt.delivered:
                await self._flush(conn, cursor, progress)
                await self._failed(
                    conn, cursor, progress.passed, seq, event_type, attempts + 1, attempt
                )
                return False
            progress.add(seq, event_type, attempts + 1, attempt, now)
            attempts = 0
            if not recovered:
                async with self._conn_lock:
                    await conn.execute(service.RECOVERED_SQL, cursor.webhook_id)
                recovered = True
            if progress.due():
                break  # written now, then the webhook is read again (changed, disabled?)
        await self._flush(conn, cursor, progress)
        return not self._stopping

    async def _body(
        self,
        conn: asyncpg.Connection,
        cursor: Cursor,
        target: Target,
        event_type: str,
        envelope: str,
    ) -> bytes | None:
        """The event's envelope; for the SMS relay, the text's body, or None (no phone)."""
        if target.kind != SMS_KIND:
            return envelope.encode()
        async with self._conn_lock:
            return await sms_body(conn, cursor.branch, event_type, envelope)

    async def _flush(self, conn: asyncpg.Connection, cursor: Cursor, progress: Progress) -> None:
        """Write what was delivered since the last write: the cursor and the log."""
        if progress.passed <= progress.written:
            return
        async with self._conn_lock:
            await conn.execute(
                service.DELIVERED_SQL, cursor.webhook_id, cursor.branch, progress.passed,
                progress.seqs, progress.types, progress.attempts, progress.statuses, progress.ats,
            )  # fmt: skip
        progress.written_up_to()

    async def _failed(
        self,
        conn: asyncpg.Connection,
        cursor: Cursor,
        passed: int,
        seq: int,
        event_type: str,
        attempt_no: int,
        attempt: Attempt,
    ) -> None:
        async with self._conn_lock:
            enabled = await conn.fetchval(
                service.FAILED_SQL, cursor.webhook_id, cursor.branch, passed, seq, event_type,
                attempt_no, attempt.status_code, self._clock.now(), self._backoff_s,
                self._disable_after_s, attempt.error, service.WEBHOOK_FAILING,
            )  # fmt: skip
        if enabled is False:
            # The alert (SPEC §8): loud in the log; the webhook's GET says why it stopped.
            log.error(
                "%s: webhook %s disabled after %.0f h of failed deliveries",
                service.WEBHOOK_FAILING, cursor.webhook_id, self._disable_after_s / 3600,
            )  # fmt: skip

"""Housekeeping, the background task every server process runs: it closes out the business
days that ended (app/business_day), keeps alerts current, erases the phone numbers of past
business days, forgets old issue-rate counts and Idempotency-Key claims, makes the history
tables' weekly partitions ahead (app/core/partitions.py), and removes history older than
`HALLQ_HISTORY_DAYS` (app/retention).

Each interval, one process runs the round: the first that finds it due claims it
(`claim_turn`), so the surveys over every branch are made once per interval for the whole
deployment, not once per process. Every step is safe to run from several processes at once
anyway (a close-out claims its day's row, alerts take a per-branch advisory lock,
app/alerts/service.py), and a process that dies simply stops claiming.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, date, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts.service import evaluate_all_branches
from app.business_day.service import close_out_all_branches
from app.core.clock import Clock
from app.core.partitions import make_partitions_ahead
from app.public.limits import forget_old_counts
from app.public.service import forget_old_joins
from app.reports.service import erase_expired_phones
from app.retention.service import Removed, remove_old_history
from app.tickets.rate_limit import forget_old_counts_and_claims

log = logging.getLogger("hallq.housekeeping")

RETENTION_EVERY_S = 600.0

# The round is due once `interval` has (nearly) passed since any process started one. The
# database's clock, not the injected one: this paces processes in real time. A process whose
# timer fires a little early still finds its own round due (0.8). clock_timestamp(), read once
# the row lock is ours: a claimer that waited for another's insert must see that claim as past,
# not as "in the future" (a start far ahead only means a clock set back).
_CLAIM_TURN = text(
    """
    INSERT INTO housekeeping_turns AS h (name, started_at)
    VALUES (:name, clock_timestamp())
    ON CONFLICT (name) DO UPDATE SET started_at = clock_timestamp()
    WHERE h.started_at <= clock_timestamp() - make_interval(secs => :gap_s)
       OR h.started_at > clock_timestamp() + make_interval(secs => :gap_s)
    RETURNING 1
    """
)


async def claim_turn(
    sessionmaker: async_sessionmaker[AsyncSession], name: str, interval_s: float
) -> bool:
    """True if this process is to run round `name` now: none started one for a while."""
    async with sessionmaker() as session, session.begin():
        claimed = await session.execute(_CLAIM_TURN, {"name": name, "gap_s": 0.8 * interval_s})
        return claimed.first() is not None


class RetentionPace:
    """Retention every ten minutes, and at once again while batches come back full (catching
    up on a long history): a round of housekeeping seldom pays for it."""

    def __init__(self, history_days: int) -> None:
        self.history_days = history_days
        self._next = 0.0

    def due(self) -> bool:
        return self.history_days > 0 and time.monotonic() >= self._next

    def ran(self, removed: Removed) -> None:
        self._next = time.monotonic() + (0.0 if removed.full_batch else RETENTION_EVERY_S)


class PartitionPace:
    """Partitions are made once a UTC day per process (and at its first round): they are made
    two weeks ahead, so a missed day costs nothing."""

    def __init__(self) -> None:
        self.made_on: date | None = None

    def due(self, now: datetime) -> bool:
        return self.made_on != now.astimezone(UTC).date()

    def made(self, now: datetime) -> None:
        self.made_on = now.astimezone(UTC).date()


async def housekeeping_round(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: Clock,
    retention: RetentionPace | None = None,
    partitions: PartitionPace | None = None,
) -> None:
    """One round; without `partitions`, partitions are checked every round."""
    # First the close-out, so that alerts and erasure see the new day's hall.
    await close_out_all_branches(sessionmaker, clock)
    await evaluate_all_branches(sessionmaker, clock)
    # Privacy (SPEC §1): phone numbers go once their business day is over. Cheap when there is
    # nothing to erase (a partial index holds only tickets with a phone).
    async with sessionmaker() as session:
        await erase_expired_phones(session, clock.now())
    async with sessionmaker() as session:
        await forget_old_counts_and_claims(session, clock.now())
    async with sessionmaker() as session:
        await forget_old_counts(session, clock.now())
    async with sessionmaker() as session:
        await forget_old_joins(session, clock.now())
    if partitions is None or partitions.due(clock.now()):
        async with sessionmaker() as session:
            made = await make_partitions_ahead(session, clock.now())
        if made:
            log.info("housekeeping: made partitions %s", ", ".join(made))
        if partitions is not None:
            partitions.made(clock.now())
    if retention is not None and retention.due():
        retention.ran(await remove_old_history(sessionmaker, clock.now(), retention.history_days))


async def run_housekeeping(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: Clock,
    interval_s: float,
    history_days: int = 0,
) -> None:
    """A round every `interval_s` until cancelled; database outages are logged and outlived."""
    failures = 0
    retention, partitions = RetentionPace(history_days), PartitionPace()
    while True:
        try:
            if await claim_turn(sessionmaker, "round", interval_s):
                await housekeeping_round(sessionmaker, clock, retention, partitions)
            if failures:
                log.info("housekeeping recovered after %d failed round(s)", failures)
            failures = 0
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database may be down: try again next round
            failures += 1
            if failures == 1 or failures % 60 == 0:
                log.warning("housekeeping round failed: %s", type(exc).__name__)
        await asyncio.sleep(interval_s)


def start_housekeeping(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: Clock,
    interval_s: float,
    history_days: int = 0,
) -> asyncio.Task[None] | None:
    if interval_s <= 0:
        return None
    return asyncio.create_task(run_housekeeping(sessionmaker, clock, interval_s, history_days))


async def stop_task(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

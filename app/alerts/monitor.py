"""The background task that keeps alerts current and erases the phone numbers of past days.

Every server process runs it. A round first surveys every branch with a few reads
(`survey_branches`: the cost does not grow with the number of branches in round trips), writes
the details that changed in one statement, and opens a transaction only for the branches where
an alert must be raised or cleared. There the per-branch advisory lock in `evaluate_branch` keeps
two processes from evaluating a branch at the same moment, and each sees what the other
committed, so an alert is raised once. A process that dies simply stops taking part.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts.service import evaluate_branch, refresh_details, survey_branches
from app.core.clock import Clock
from app.reports.service import erase_expired_phones
from app.tickets.rate_limit import forget_old_windows

log = logging.getLogger("hallq.alerts")


async def evaluate_all_branches(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock
) -> int:
    """One round over every branch; returns how many alerts were raised or cleared."""
    async with sessionmaker() as session, session.begin():
        survey = await survey_branches(session, clock.now())
        await refresh_details(session, survey.details)
    changed = 0
    for code in survey.to_evaluate:
        async with sessionmaker() as session:
            changed += max(0, await evaluate_branch(session, code, clock.now()))
    # Privacy (SPEC §1): phone numbers go once their business day is over. Cheap when there is
    # nothing to erase (a partial index holds only tickets with a phone).
    async with sessionmaker() as session:
        await erase_expired_phones(session, clock.now())
    async with sessionmaker() as session:
        await forget_old_windows(session, clock.now())
    return changed


async def run_alert_monitor(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, interval_s: float
) -> None:
    """Evaluate every `interval_s` until cancelled; database outages are logged and outlived."""
    failures = 0
    while True:
        try:
            await evaluate_all_branches(sessionmaker, clock)
            if failures:
                log.info("alert evaluation recovered after %d failed round(s)", failures)
            failures = 0
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database may be down: try again next round
            failures += 1
            if failures == 1 or failures % 60 == 0:
                log.warning("alert evaluation failed: %s", type(exc).__name__)
        await asyncio.sleep(interval_s)


def start_alert_monitor(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, interval_s: float
) -> asyncio.Task[None] | None:
    if interval_s <= 0:
        return None
    return asyncio.create_task(run_alert_monitor(sessionmaker, clock, interval_s))


async def stop_task(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

"""The parts of a run of business days (app/reports/figures.py): rolled up where the day is
final (app/reports/rollups.py, built on the way), computed from the history after the last final
day. What is computed from the history is shared by the requests that would repeat it
(app/events/shared_reads.py): the dashboard asks for today in four reports a minute."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.branches.hours import Schedule
from app.events.shared_reads import SharedReads
from app.reports import rollups
from app.reports.figures import Window, day_parts


async def live_parts(
    reads: SharedReads | None,
    session: AsyncSession,
    branch: str,
    window: Window,
    now: datetime,
    seq: int | None = None,
) -> list[Any]:
    """The parts of `window`'s days (hours included) from the history, as a read now would find
    them, or as one of the last `reads.reuse` seconds did with no event since. `seq`: the
    branch's committed seq if the caller has just read it."""
    if reads is None:
        return await day_parts(session, branch, window)
    what = ("day_parts", window.first, window.last)
    return await reads.read(
        session, branch, what, now, lambda: day_parts(session, branch, window), seq
    )


async def days_parts(
    session: AsyncSession,
    branch: str,
    first: date,
    last: date,
    schedule: Schedule,
    now: datetime,
    reads: SharedReads | None = None,
    seq: int | None = None,
) -> list[Any]:
    """The parts (hours left out) of every day from `first` to `last`: rolled up where the day
    is final (rolling up the final days not rolled up yet), from the history after that.
    `seq`: the branch's committed seq if the caller has just read it."""

    async def final() -> date:
        return await rollups.final_through(session, branch, now)

    if reads is None:
        through = min(await final(), last)
    else:
        through = min(await reads.read(session, branch, "final through", now, final, seq), last)
    parts: list[Any] = []
    if through >= first:
        built = await rollups.rolled_up_days(session, branch, first, through)
        missing = [
            first + timedelta(days=n)
            for n in range((through - first).days + 1)
            if first + timedelta(days=n) not in built
        ]
        if missing:
            await rollups.build_rollups(session, branch, missing, schedule, now)
        parts += await rollups.rolled_up_parts(session, branch, first, through)
    live_from = max(first, through + timedelta(days=1))
    if live_from <= last:
        window = Window.of(live_from, last, schedule, now)
        parts += [
            p
            for p in await live_parts(reads, session, branch, window, now, seq)
            if p.scope != "hour"
        ]
    return parts

"""Stream presence (app/stream/presence.py): a heartbeat per process and per-branch counts
written only when they change, so a process with thousands of branches writes what changed."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import text

from app.core.clock import ManualClock
from app.core.database import create_engine, create_sessionmaker
from app.core.settings import Settings
from app.stream.presence import PRESENCE_FORGET_S, report_presence

_ROWS = text(
    "SELECT branch, clients, xmin::text AS version FROM stream_presence "
    "WHERE process_id = :p ORDER BY branch"
)


async def test_counts_are_written_when_they_change(settings: Settings, clock: ManualClock):
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    try:
        async with sessionmaker() as session:
            now = clock.now()
            # A process gone for over an hour, with a client left behind.
            await session.execute(
                text("INSERT INTO stream_processes VALUES ('gone', :t)"),
                {"t": now - timedelta(seconds=PRESENCE_FORGET_S + 1)},
            )
            await session.execute(text("INSERT INTO stream_presence VALUES ('gone', 'x', 9)"))
            await session.commit()

            await report_presence(session, "p1", {"a": 1, "b": 2}, now)
            first = {r.branch: r for r in await session.execute(_ROWS, {"p": "p1"})}
            assert {b: r.clients for b, r in first.items()} == {"a": 1, "b": 2}
            # The old process and its rows are forgotten.
            left = await session.scalar(
                text("SELECT count(*) FROM stream_presence WHERE process_id = 'gone'")
            )
            assert left == 0
            await session.rollback()

            later = now + timedelta(seconds=5)
            await report_presence(session, "p1", {"a": 1, "c": 3}, later, {"a": 1, "b": 2})
            second = {r.branch: r for r in await session.execute(_ROWS, {"p": "p1"})}
            assert {b: r.clients for b, r in second.items()} == {"a": 1, "c": 3}
            # `a` did not change: its row was not written again (the same row version).
            assert second["a"].version == first["a"].version
            beat: datetime | None = await session.scalar(
                text("SELECT heartbeat_at FROM stream_processes WHERE process_id = 'p1'")
            )
            assert beat == later
            await session.rollback()

            # A first report after a restart of the loop (nothing reported) replaces everything.
            await report_presence(session, "p1", {"d": 4}, later)
            third = {r.branch: r.clients for r in await session.execute(_ROWS, {"p": "p1"})}
            assert third == {"d": 4}
    finally:
        await engine.dispose()

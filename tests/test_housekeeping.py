"""Housekeeping rounds claimed by one process per interval (app/housekeeping/service.py)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from app.housekeeping.service import claim_turn


async def test_one_claim_per_interval_among_concurrent_claimers(app):
    sessionmaker = app.state.sessionmaker
    for name in ("round", "race-1", "race-2", "race-3"):  # each a new row raced for
        first = await asyncio.gather(*(claim_turn(sessionmaker, name, 60) for _ in range(8)))
        assert sorted(first) == [False] * 7 + [True], name
    assert not await claim_turn(sessionmaker, "round", 60), "not due again within the interval"
    assert await claim_turn(sessionmaker, "other", 60), "each kind of round has its own turn"

    # The last round started 49 s ago: due for a 60 s interval (0.8 of it has passed) ...
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE housekeeping_turns SET started_at = now() - interval '49 seconds'"
                " WHERE name = 'round'"
            )
        )
    assert await claim_turn(sessionmaker, "round", 60)
    # ... and a start time in the future (a clock set back) does not block the rounds forever.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE housekeeping_turns SET started_at = now() + interval '2 hours'")
        )
    assert await claim_turn(sessionmaker, "round", 60)

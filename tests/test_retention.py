"""Retention (`HALLQ_HISTORY_DAYS`, docs/operations.md): history older than the kept days goes
in batches; the kept days' reports are unchanged, numbering and the event log carry on, and
two processes removing at once get in each other's way nowhere."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from app.retention import service as retention
from tests.helpers import ADMIN, ok, setup_branch

B = "/api/v1/branches/hz01"
DAYS = [date(2026, 1, 5) + timedelta(days=n) for n in range(6)]  # Mon..Sat
HISTORY_DAYS = 3


async def _a_day(client: Any, clock: Any, day: date, tickets: int) -> None:
    """A day of the hall: tickets issued, served at counter 1, one left waiting to expire."""
    clock.set(datetime.combine(day, time(1, 0), UTC))  # 09:00 in Shanghai
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    for _ in range(tickets):
        await ok(await client.post(f"{B}/tickets", json={"service": "a"}, headers=ADMIN), 201)
    for _ in range(tickets - 1):
        clock.advance(minutes=3)
        await ok(await client.post(f"{B}/counters/1/next", headers=ADMIN))
        clock.advance(minutes=4)
        await ok(await client.post(f"{B}/counters/1/complete", headers=ADMIN))
    await ok(await client.post(f"{B}/day/close", headers=ADMIN))


async def _report(client: Any, day: date) -> Any:
    report = await ok(await client.get(f"{B}/reports/daily?date={day}", headers=ADMIN))
    report.pop("generated_at")  # when it was asked for: the rest must not change
    return report


async def _counts(app: Any) -> dict[str, Any]:
    async with app.state.sessionmaker() as session:
        row = (
            await session.execute(
                text(
                    "SELECT (SELECT min(business_date) FROM tickets) AS oldest,"
                    " (SELECT count(*) FROM tickets) AS tickets,"
                    " (SELECT array_agg(seq ORDER BY seq) FROM branch_events) AS seqs,"
                    " (SELECT count(*) FROM ticket_sequences) AS numbering"
                )
            )
        ).one()
    return dict(row._mapping)


async def test_old_days_go_kept_days_stay_the_same(app, client, clock, monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 7)  # several rounds, like a long history
    clock.set(datetime.combine(DAYS[0], time(0, 0), UTC))
    await setup_branch(client)
    for n, day in enumerate(DAYS):
        await _a_day(client, clock, day, 4 + n)
    kept_days = DAYS[-HISTORY_DAYS:]
    before = {day: await _report(client, day) for day in kept_days}
    last_seq = (await _counts(app))["seqs"][-1]

    # "Now" is the day after the last: the three days before it are kept.
    now = datetime.combine(DAYS[-1] + timedelta(days=1), time(2, 0), UTC)
    clock.set(now)
    assert retention.first_kept_date(now, HISTORY_DAYS) == kept_days[0]
    rounds = 0
    while True:
        removed = await retention.remove_old_history(app.state.sessionmaker, now, HISTORY_DAYS)
        rounds += 1
        if not removed.full_batch:
            break
    assert rounds > 2

    after = await _counts(app)
    assert after["oldest"] == kept_days[0]
    assert after["tickets"] == sum(4 + n for n in range(len(DAYS) - HISTORY_DAYS, len(DAYS)))
    # Events go as a prefix of the log: no hole; those of the kept days are all there.
    seqs = after["seqs"]
    assert seqs == list(range(seqs[0], last_seq + 1)) and seqs[0] > 1
    for day in kept_days:
        assert await _report(client, day) == before[day]
    # The period report over the kept days answers as before; the removed days are gone.
    async with app.state.sessionmaker() as session:
        rolled = await session.scalar(
            text("SELECT count(*) FROM report_rollup_days WHERE day < :d"), {"d": kept_days[0]}
        )
    assert rolled == 0
    # The next ticket's number and event carry on.
    clock.set(datetime.combine(DAYS[-1], time(3, 0), UTC))
    issued = await ok(await client.post(f"{B}/tickets", json={"service": "a"}, headers=ADMIN), 201)
    assert issued["number"] == f"A{4 + len(DAYS):03d}"
    seqs = (await _counts(app))["seqs"]
    assert seqs[-1] > last_seq and seqs == list(range(seqs[0], seqs[-1] + 1))


async def test_two_processes_removing_at_once(app, client, clock, monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 5)
    clock.set(datetime.combine(DAYS[0], time(0, 0), UTC))
    await setup_branch(client)
    await setup_branch(client, "sh02")
    for day in DAYS[:3]:
        await _a_day(client, clock, day, 6)
    now = datetime.combine(DAYS[2] + timedelta(days=HISTORY_DAYS + 5), time(0), UTC)
    for _ in range(200):
        results = await asyncio.gather(
            *(retention.remove_old_history(app.state.sessionmaker, now, HISTORY_DAYS) for _ in "ab")
        )
        if not any(r.full_batch for r in results):
            break
    else:
        raise AssertionError("retention never caught up")
    after = await _counts(app)
    assert after["tickets"] == 0 and after["numbering"] == 0 and after["seqs"] is None


@pytest.mark.parametrize("days", [0])
async def test_history_days_zero_keeps_everything(days):
    from app.housekeeping.service import RetentionPace

    assert not RetentionPace(days).due()

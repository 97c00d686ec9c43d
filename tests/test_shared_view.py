"""The queue view read once for all of a branch's clients (app/hall/shared_view.py): shared while
nothing changed, read again after an event, a configuration change or a moment of the clock."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from app.events.service import current_seq
from app.main import create_app
from app.stream.service import snapshot_message
from tests.helpers import ADMIN, issue, make_token, ok, setup_branch

B = "/api/v1/branches/hz01"


async def views(client, headers: dict[str, str], n: int) -> list[Any]:
    responses = await asyncio.gather(*(client.get(f"{B}/queue", headers=headers) for _ in range(n)))
    return [await ok(r) for r in responses]


async def test_concurrent_reads_share_one_and_changes_read_again(app, client, clock):
    await setup_branch(client)
    display = await make_token(client, "display", "hz01")
    shared = app.state.shared_reads
    assert shared.active
    await issue(client)

    before = shared.reads
    seen = await views(client, display, 6)
    assert shared.reads == before + 1, "six screens at once: one read"
    assert all(view == seen[0] for view in seen)
    assert seen[0]["services"][0]["waiting"] == 1

    # An event: the next read sees it.
    await issue(client)
    assert (await views(client, display, 3))[0]["services"][0]["waiting"] == 2
    assert shared.reads == before + 2

    # Time alone moves the waits: a later second of the clock reads again.
    clock.advance(seconds=90)
    later = (await views(client, display, 1))[0]
    assert later["services"][0]["longest_wait_s"] == seen[0]["services"][0]["longest_wait_s"] + 90
    assert shared.reads == before + 3

    # A configuration change (no event): seen at once by the process that made it.
    await ok(
        await client.put(f"{B}/services/a", json={"name": "Renamed", "prefix": "A"}, headers=ADMIN)
    )
    assert (await views(client, display, 1))[0]["services"][0]["name"] == "Renamed"
    assert shared.reads == before + 4


async def test_snapshot_and_queue_view_share_a_read_exact_at_its_seq(app, client):
    await setup_branch(client)
    display = await make_token(client, "display", "hz01")
    for _ in range(3):
        await issue(client)
    shared = app.state.shared_reads
    before = shared.reads
    view = (await views(client, display, 1))[0]
    async with app.state.sessionmaker() as session:
        seq, message = await snapshot_message(
            session, "hz01", app.state.clock.now(), app.state.settings, shared
        )
    assert shared.reads == before + 1
    assert json.loads(message) == {"type": "snapshot", "seq": seq, "data": view}
    async with app.state.sessionmaker() as session:
        assert seq == await current_seq(session, "hz01")


async def test_reuse_off_reads_every_time(settings, clock):
    application = create_app(settings.model_copy(update={"shared_read_s": 0}), clock)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://hallq.test") as client:
            await setup_branch(client)
            display = await make_token(client, "display", "hz01")
            shared = application.state.shared_reads
            assert not shared.active
            before = shared.reads
            await views(client, display, 4)
            assert shared.reads == before + 4


async def test_dashboard_reports_read_each_part_once(app, client):
    await setup_branch(client)
    manager = await make_token(client, "manager", "hz01")
    for _ in range(2):
        await issue(client)
    shared = app.state.shared_reads
    day = "2026-11-24"  # T0 in Shanghai, a Tuesday
    paths = [
        f"{B}/reports/daily?date={day}",
        f"{B}/reports/period?from={day}&to={day}",
        f"{B}/reports/period?from=2026-11-23&to={day}",
        f"{B}/reports/period?from=2026-11-01&to={day}",
    ]

    async def dashboard() -> list[Any]:
        return [await ok(await client.get(path, headers=manager)) for path in paths]

    before = shared.reads
    daily, *periods = await dashboard()
    # Each read once for the four reports: the branch and its names and targets, today's
    # figures, and the last final day.
    assert shared.reads == before + 3
    assert [p["total"]["issued"] for p in periods] == [2, 2, 2]
    assert sum(row["issued"] for row in daily["services"]) == 2

    await issue(client)  # an event: each is read again, and today includes it
    daily, *periods = await dashboard()
    assert shared.reads == before + 6
    assert [p["total"]["issued"] for p in periods] == [3, 3, 3]
    assert sum(row["issued"] for row in daily["services"]) == 3


async def test_reads_too_old_to_fit_are_dropped(app, client, clock, monkeypatch):
    await setup_branch(client)
    display = await make_token(client, "display", "hz01")
    shared = app.state.shared_reads
    monkeypatch.setattr(type(shared), "PRUNE_EVERY", 1)
    await views(client, display, 1)
    assert len(shared) == 1
    clock.advance(seconds=5)
    await ok(await client.get(f"{B}/reports/daily", headers=ADMIN))
    # The daily report's own two reads (its basis and today's figures) are kept; the queue view
    # read 5 s ago can never be shared again.
    assert len(shared) == 2

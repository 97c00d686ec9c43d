"""The queue view read in one statement (app/hall/service.py): each part as its own domain's
read gives it, on a hall with something in every part."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from app.alerts.service import active_alerts, alert_out, evaluate_all_branches
from app.counters.service import list_counters
from app.events.service import current_seq
from app.hall.service import queue_view
from app.notices.service import current_notices
from tests.helpers import ADMIN, issue, ok, setup_branch

B = "/api/v1/branches/hz01"


async def busy_hall(client: httpx.AsyncClient, app: Any, clock: Any) -> None:
    """Counters open (one serving, one called, one closed), tickets waiting of two types and
    waiting long, calls and a recall, notices current and to come, and alerts."""
    await setup_branch(
        client,
        branch={"min_open_counters": 4},
        services={
            "a": {"name": "A", "prefix": "A", "target_wait_s": 60, "queue_alert_per_counter": 1},
            "b": {"name": "B", "prefix": "B"},
        },
        counters={
            "1": {"name": "One", "services": ["a", "b"]},
            "2": {"name": "Two", "services": ["b", "a"]},
            "10": {"name": "Ten", "services": ["a"]},
        },
    )
    for counter in ("1", "2"):
        await ok(await client.post(f"{B}/counters/{counter}/open", headers=ADMIN))
    for service in "abab":
        await issue(client, service=service)
    await ok(await client.post(f"{B}/counters/1/next", headers=ADMIN))
    await ok(await client.post(f"{B}/counters/1/start", headers=ADMIN))
    await ok(await client.post(f"{B}/counters/2/next", headers=ADMIN))
    await ok(await client.post(f"{B}/counters/2/recall", headers=ADMIN))
    for service in "aab":
        await issue(client, service=service, priority="vip")
    at = clock.now()
    notices = {
        "now": {"text": {"zh": "热线", "en": "Hotline"}, "order": 5},
        "first": {"text": {"zh": "先"}, "order": 10, "to": (at + timedelta(hours=1)).isoformat()},
        "later": {"text": {"zh": "后"}, "from": (at + timedelta(minutes=5)).isoformat()},
    }
    for code, body in notices.items():
        await ok(await client.put(f"{B}/notices/{code}", json=body, headers=ADMIN), 201)
    clock.advance(120)
    assert await evaluate_all_branches(app.state.sessionmaker, clock) >= 2


async def test_each_part_is_what_its_domain_reads(client, app, clock):
    await busy_hall(client, app, clock)
    now, settings = clock.now(), app.state.settings
    async with app.state.sessionmaker() as session:
        seq, view = await queue_view(session, "hz01", now, settings)
        await session.commit()
        assert seq == await current_seq(session, "hz01")
        assert view.counters == await list_counters(session, "hz01")
        notices = await current_notices(session, "hz01", now)
        assert (view.notices, view.notices_change_at) == (notices.notices, notices.change_at)
        assert view.alerts == [alert_out(alert) for alert in await active_alerts(session, "hz01")]
    # Something in every part, so that the comparisons above compare something.
    assert [c.code for c in view.counters] == ["1", "2", "10"]
    assert [c.current is not None for c in view.counters] == [True, True, False]
    assert [n.code for n in view.notices] == ["now", "first"]
    assert view.notices_change_at == now - timedelta(seconds=120) + timedelta(minutes=5)
    assert len(view.alerts) >= 2
    assert [(s.service, s.waiting) for s in view.services] == [("a", 3), ("b", 2)]
    assert [c.type for c in view.recent_calls] == [
        "ticket.recalled",
        "ticket.called",
        "ticket.called",
    ]
    assert (await ok(await client.get(f"{B}/queue", headers=ADMIN))) == view.model_dump(
        mode="json", by_alias=True
    )


async def test_a_branch_that_does_not_exist_reads_empty(app, clock):
    async with app.state.sessionmaker() as session:
        seq, view = await queue_view(session, "nowhere", clock.now(), app.state.settings)
        await session.commit()
    assert seq == 0
    assert not (view.services or view.counters or view.recent_calls or view.alerts)
    assert not view.notices and view.notices_change_at is None

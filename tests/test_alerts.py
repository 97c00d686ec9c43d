"""Alerts (SPEC §1): the rule, raising and clearing as events, and one raise across processes."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import event, text

from app.alerts.service import BranchState, ServiceState, desired_alerts, evaluate_all_branches
from tests.helpers import ADMIN, issue, ok, setup_branch
from tests.servers import running_servers

B = "/api/v1/branches/hz01"


def service(**overrides: int | str) -> ServiceState:
    fields: dict[str, int | str] = {
        "service": "a",
        "target_wait_s": 600,
        "queue_alert_per_counter": 5,
        "waiting": 0,
        "over_target": 0,
        "open_counters": 1,
    }
    fields.update(overrides)
    return ServiceState(**fields)  # type: ignore[arg-type]


def state(*services: ServiceState, **overrides: object) -> BranchState:
    fields: dict[str, object] = {
        "in_hours": True,
        "min_open_counters": 0,
        "open_counters": 1,
        "services": list(services),
    }
    fields.update(overrides)
    return BranchState(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("branch_state", "expected"),
    [
        (state(service(waiting=3)), set()),
        (state(service(waiting=3, over_target=1)), {("long_wait", "a")}),
        # 5 per counter is the threshold: 10 at 2 counters is fine, 11 is not.
        (state(service(waiting=10, open_counters=2)), set()),
        (state(service(waiting=11, open_counters=2)), {("queue_length", "a")}),
        # No counter open: the threshold applies as if there were one.
        (state(service(waiting=6, open_counters=0)), {("queue_length", "a")}),
        (state(service(waiting=5, open_counters=0)), set()),
        (state(min_open_counters=2, open_counters=1), {("too_few_counters", "")}),
        (state(min_open_counters=2, open_counters=2), set()),
        # Outside business hours an empty hall is not an alert.
        (state(min_open_counters=2, open_counters=0, in_hours=False), set()),
        (
            state(
                service(waiting=20, over_target=2, open_counters=1),
                service(service="b", waiting=1),
                min_open_counters=3,
            ),
            {("long_wait", "a"), ("queue_length", "a"), ("too_few_counters", "")},
        ),
    ],
)
def test_the_alert_rule(branch_state: BranchState, expected: set[tuple[str, str]]) -> None:
    assert set(desired_alerts(branch_state)) == expected


async def alerts_of(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    view = await ok(await client.get(f"{B}/queue", headers=ADMIN))
    return sorted(view["alerts"], key=lambda a: (a["kind"], a["service"] or ""))


async def alert_events(client: httpx.AsyncClient, app) -> list[tuple[str, str, str | None]]:
    async with app.state.sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT type, data->>'kind', data->>'service' FROM branch_events "
                "WHERE branch = 'hz01' AND type LIKE 'alert.%' ORDER BY seq"
            )
        )
        return [tuple(row) for row in rows]


async def test_alerts_are_raised_listed_and_cleared(client, app, clock):
    await setup_branch(
        client,
        branch={"min_open_counters": 1},
        services={"a": {"name": "A", "prefix": "A", "target_wait_s": 600,
                        "queue_alert_per_counter": 2}},
        counters={"1": {"name": "1", "services": ["a"]}},
    )  # fmt: skip
    sessionmaker = app.state.sessionmaker
    # No counter open during hours: too few counters.
    assert await evaluate_all_branches(sessionmaker, clock) == 1
    [alert] = await alerts_of(client)
    assert alert["kind"] == "too_few_counters" and "1" in alert["detail"]
    assert alert["since"].startswith(clock.now().isoformat()[:19])

    # Evaluating again changes nothing: an alert is raised once.
    assert await evaluate_all_branches(sessionmaker, clock) == 0

    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    first = await issue(client)
    await issue(client)
    await issue(client)  # 3 waiting at 1 open counter, above 2 per counter
    clock.advance(601)  # the first three now wait past their 600 s target
    assert await evaluate_all_branches(sessionmaker, clock) == 3  # 2 raised, 1 cleared
    alerts = await alerts_of(client)
    assert [(a["kind"], a["service"]) for a in alerts] == [
        ("long_wait", "a"),
        ("queue_length", "a"),
    ]
    assert "3 waiting past the 600 s target" in alerts[0]["detail"]
    assert "3 waiting for a at 1 open counter" in alerts[1]["detail"]

    # The clerk calls the first one: 2 waiting, still over target but no longer too many.
    called = await ok(await client.post(f"{B}/counters/1/next", headers=ADMIN))
    assert called["ticket"]["id"] == first["id"]
    assert await evaluate_all_branches(sessionmaker, clock) == 1
    [still] = await alerts_of(client)
    assert still["kind"] == "long_wait" and still["since"] == alerts[0]["since"]
    assert still["detail"].startswith("2 waiting past")  # what it says follows the hall

    # Cancel the rest: nothing waits past its target any more.
    view = await ok(await client.get(f"{B}/queue", headers=ADMIN))
    assert view["services"][0]["waiting"] == 2
    async with sessionmaker() as session:
        ids = (
            await session.execute(
                text("SELECT id FROM tickets WHERE status = 'waiting' ORDER BY seq")
            )
        ).scalars()
        waiting = [str(i) for i in ids]
    for ticket_id in waiting:
        await ok(await client.post(f"/api/v1/tickets/{ticket_id}/cancel", headers=ADMIN))
    assert await evaluate_all_branches(sessionmaker, clock) == 1
    assert await alerts_of(client) == []

    assert await alert_events(client, app) == [
        ("alert.raised", "too_few_counters", None),
        ("alert.cleared", "too_few_counters", None),
        ("alert.raised", "long_wait", "a"),
        ("alert.raised", "queue_length", "a"),
        ("alert.cleared", "queue_length", "a"),
        ("alert.cleared", "long_wait", "a"),
    ]


async def test_a_condition_that_still_holds_is_restated_without_an_event(client, app, clock):
    await setup_branch(
        client,
        services={"a": {"name": "A", "prefix": "A", "queue_alert_per_counter": 1}},
        counters={"1": {"name": "1", "services": ["a"]}},
    )
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    await issue(client)
    await issue(client)
    assert await evaluate_all_branches(app.state.sessionmaker, clock) == 1
    [raised] = await alerts_of(client)
    assert raised["detail"].startswith("2 waiting for a")
    await issue(client)
    # Still too many: nothing is raised or cleared, but what the alert says follows the hall.
    assert await evaluate_all_branches(app.state.sessionmaker, clock) == 0
    [still] = await alerts_of(client)
    assert still["detail"].startswith("3 waiting for a")
    assert still["since"] == raised["since"]
    assert await alert_events(client, app) == [("alert.raised", "queue_length", "a")]


async def test_a_round_reads_all_branches_in_the_same_few_statements(client, app, clock):
    """Alerts are evaluated every few seconds in every process: a round that finds nothing to
    change must not cost a transaction per branch, or a fleet of branches would slow issuing."""
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    async def round_cost(prefix: str, branches: int) -> int:
        for i in range(branches):
            await setup_branch(client, f"{prefix}{i:02d}", counters={})
        await evaluate_all_branches(app.state.sessionmaker, clock)  # raises what is due
        statements.clear()
        event.listen(app.state.engine.sync_engine, "before_cursor_execute", count)
        try:
            assert await evaluate_all_branches(app.state.sessionmaker, clock) == 0
        finally:
            event.remove(app.state.engine.sync_engine, "before_cursor_execute", count)
        return len(statements)

    few = await round_cost("sa", 2)
    assert few > 0  # the listener sees the round's statements
    assert await round_cost("sb", 30) == few  # 32 branches now, the same statements


async def test_too_few_counters_only_during_hours(client, app, clock):
    # Open 09:00-17:00 Shanghai on Tuesdays; T0 is Tuesday 10:00 there.
    await setup_branch(
        client,
        branch={"min_open_counters": 1, "hours": {"tue": [["09:00", "17:00"]]}},
        counters={"1": {"name": "1", "services": ["a"]}},
    )
    assert await evaluate_all_branches(app.state.sessionmaker, clock) == 1
    clock.set(clock.now() + timedelta(hours=8))  # 18:00: closed
    assert await evaluate_all_branches(app.state.sessionmaker, clock) == 1
    assert await alerts_of(client) == []


@pytest.mark.multiprocess
async def test_two_processes_raise_each_alert_once(database_url):
    env = {"HALLQ_ALERTS_INTERVAL_S": "0.05"}
    with running_servers(database_url, 2, env=env) as (one, two):
        async with httpx.AsyncClient(timeout=15) as http:
            for url, body in (
                (f"{one.url}{B}", {"name": "x", "timezone": "UTC", "min_open_counters": 1}),
                (f"{one.url}{B}/services/a", {"name": "A", "prefix": "A", "target_wait_s": 1}),
                (f"{one.url}{B}/counters/1", {"name": "1", "services": ["a"]}),
            ):
                await ok(await http.put(url, json=body, headers=ADMIN), 201)
            ticket = await ok(
                await http.post(f"{two.url}{B}/tickets", json={"service": "a"}, headers=ADMIN),
                201,
            )

            async def kinds() -> set[str]:
                view = await ok(await http.get(f"{two.url}{B}/queue", headers=ADMIN))
                return {a["kind"] for a in view["alerts"]}

            for _ in range(100):
                if await kinds() == {"too_few_counters", "long_wait"}:
                    break
                await asyncio.sleep(0.1)
            assert await kinds() == {"too_few_counters", "long_wait"}
            await ok(await http.post(f"{one.url}{B}/counters/1/open", headers=ADMIN))
            await ok(await http.post(f"{one.url}{B}/counters/1/next", headers=ADMIN))
            for _ in range(100):
                if not await kinds():
                    break
                await asyncio.sleep(0.1)
            assert await kinds() == set()
            # Both processes evaluated many times a second for seconds: still one raise each.
            await asyncio.sleep(0.5)
            conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
            try:
                rows = await conn.fetch(
                    "SELECT type, data->>'kind' AS kind FROM branch_events "
                    "WHERE type LIKE 'alert.%' ORDER BY seq"
                )
                called = await conn.fetchval(
                    "SELECT status FROM tickets WHERE id = $1::uuid", ticket["id"]
                )
            finally:
                await conn.close()
            assert called == "called"
            assert sorted((r["type"], r["kind"]) for r in rows) == [
                ("alert.cleared", "long_wait"),
                ("alert.cleared", "too_few_counters"),
                ("alert.raised", "long_wait"),
                ("alert.raised", "too_few_counters"),
            ]

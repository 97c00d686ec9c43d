"""The business day (SPEC §5): its boundary, the close-out, and tickets of earlier days that
nothing may call, count or show (issue 18). Two-process races: test_business_day_processes.py."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.branches.hours import Schedule
from app.business_day.service import close_out_all_branches
from app.core.clock import ManualClock
from tests.helpers import ADMIN, assert_problem, issue, make_token, ok, setup_branch

B = "/api/v1/branches/hz01"
SHANGHAI = "Asia/Shanghai"


def at_local(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in November 2026, Shanghai time (UTC+8)."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC) - timedelta(hours=8)


async def press(client: httpx.AsyncClient, counter: str, action: str) -> Any:
    response = await client.post(f"{B}/counters/{counter}/{action}", headers=ADMIN)
    return await ok(response) if response.status_code != 204 else None


async def events(app: FastAPI, type_: str) -> list[dict[str, Any]]:
    async with app.state.sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT seq, ticket_id, counter, staff, data FROM branch_events"
                " WHERE branch = 'hz01' AND type = :type ORDER BY seq"
            ),
            {"type": type_},
        )
        return [dict(row._mapping) for row in rows]


async def waiting_gauge(client: httpx.AsyncClient, service: str) -> float:
    metrics = (await client.get("/metrics", headers=ADMIN)).text
    line = f'hallq_waiting_tickets{{branch="hz01",service="{service}"}}'
    return next(float(row.split()[-1]) for row in metrics.splitlines() if row.startswith(line))


# -- the boundary -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "starts", "local", "expected"),
    [
        ("Asia/Shanghai", time(0), datetime(2026, 11, 2, 0, 0), date(2026, 11, 2)),
        ("Asia/Shanghai", time(0), datetime(2026, 11, 1, 23, 59), date(2026, 11, 1)),
        ("Asia/Shanghai", time(4), datetime(2026, 11, 2, 3, 59), date(2026, 11, 1)),
        ("Asia/Shanghai", time(4), datetime(2026, 11, 2, 4, 0), date(2026, 11, 2)),
        ("America/New_York", time(3, 30), datetime(2026, 3, 8, 3, 29), date(2026, 3, 7)),
        ("America/New_York", time(3, 30), datetime(2026, 11, 1, 3, 31), date(2026, 11, 1)),
    ],
)
async def test_the_business_date_is_the_same_in_python_and_sql(
    app: FastAPI, zone: str, starts: time, local: datetime, expected: date
) -> None:
    schedule = Schedule.from_config(zone, None, [], 0, starts)
    when = local.replace(tzinfo=schedule.tz)
    assert schedule.business_date(when) == expected
    sql = text(
        f"SELECT {Schedule.business_date_sql('b')}, {Schedule.day_start_sql('b', ':day')}"
        " FROM (SELECT CAST(:tz AS text) AS timezone, CAST(:starts AS time) AS day_starts_at) b"
    )
    async with app.state.sessionmaker() as session:
        row = (
            await session.execute(sql, {"now": when, "tz": zone, "starts": starts, "day": expected})
        ).one()
    assert row[0] == expected
    assert row[1] == schedule.day_start(expected)


async def test_day_starts_at_is_validated_and_kept(client: httpx.AsyncClient) -> None:
    body = {"name": "x", "timezone": SHANGHAI}
    for bad in ("24:00", "4:00", "25:00", "04:60", "noon", ""):
        response = await client.put(f"{B}", json={**body, "day_starts_at": bad}, headers=ADMIN)
        assert_problem(response, 422, contains="day_starts_at")
    await ok(await client.put(f"{B}", json={**body, "day_starts_at": "04:00"}, headers=ADMIN), 201)
    branch = await ok(await client.get(B, headers=ADMIN))
    assert branch["day_starts_at"] == "04:00" and branch["clerks_may_pick"] is False
    # A time the clocks skip (02:30 in spring) or repeat (01:30 in autumn) is no boundary.
    for zone, bad in (("America/New_York", "02:30"), ("America/New_York", "01:30")):
        body = {"name": "x", "timezone": zone, "day_starts_at": bad}
        refused = assert_problem(
            await client.put(B, json=body, headers=ADMIN), 422, contains="day_starts_at"
        )
        assert "daylight-saving" in refused["errors"][0]["msg"]
    body = {"name": "x", "timezone": "America/New_York", "day_starts_at": "03:30"}
    await ok(await client.put(B, json=body, headers=ADMIN))
    assert (await ok(await client.get(B, headers=ADMIN)))["day_starts_at"] == "03:30"


# -- earlier days do not wait -------------------------------------------------------------------


async def test_yesterdays_ticket_is_never_called_before_the_close_out(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """Issue at 16:00, come back at 09:00 the next day, issue a special ticket, press next."""
    await setup_branch(client)
    clock.set(at_local(24, 16))
    yesterdays = await issue(client)
    assert yesterdays["number"] == "A001"
    clock.set(at_local(25, 9))
    special = await issue(client, priority="special")
    todays = await issue(client)
    assert (special["number"], todays["number"]) == ("A001", "A002")
    assert special["position"] == 1 and todays["position"] == 2

    # Nothing of yesterday is counted: queue view, metrics, the ticket's own position.
    view = await ok(await client.get(f"{B}/queue", headers=ADMIN))
    assert {s["service"]: s["waiting"] for s in view["services"]}["a"] == 2
    assert await waiting_gauge(client, "a") == 2
    old = await ok(await client.get(f"/api/v1/tickets/{yesterdays['id']}", headers=ADMIN))
    assert old["position"] is None

    await press(client, "1", "open")
    assert (await press(client, "1", "next"))["ticket"]["id"] == special["id"]
    assert (await press(client, "1", "next"))["ticket"]["id"] == todays["id"]
    assert await press(client, "1", "next") is None  # yesterday's A001 is nobody's next
    assert not [e for e in await events(app, "ticket.called") if e["ticket_id"] == yesterdays["id"]]

    # The automatic close-out ends it, once.
    assert await close_out_all_branches(app.state.sessionmaker, clock) == 1
    assert await close_out_all_branches(app.state.sessionmaker, clock) == 0
    expired = await events(app, "ticket.expired")
    assert [str(e["ticket_id"]) for e in expired] == [yesterdays["id"]]
    assert expired[0]["data"]["previous_status"] == "waiting"
    old = await ok(await client.get(f"/api/v1/tickets/{yesterdays['id']}", headers=ADMIN))
    assert old["status"] == "expired" and old["history"][-1]["type"] == "ticket.expired"


async def test_a_hall_whose_day_starts_at_four(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await setup_branch(client, branch={"day_starts_at": "04:00"})
    clock.set(at_local(24, 22))
    late = await issue(client)
    clock.set(at_local(25, 3, 30))  # still the 24th's business day
    night = await issue(client)
    assert (late["number"], night["number"]) == ("A001", "A002")
    assert night["position"] == 2
    # Two clerks sign in before 04:00; one of them goes on working after it.
    clock.set(at_local(25, 3, 40))
    await press(client, "2", "open")
    await press(client, "9", "open")
    # The close-out of the 24th is not due before 04:00 ...
    assert await close_out_all_branches(app.state.sessionmaker, clock) == 0
    clock.set(at_local(25, 4, 0))
    morning = await issue(client)
    assert morning["number"] == "A001" and morning["position"] == 1
    await press(client, "1", "open")
    assert (await press(client, "1", "next"))["ticket"]["id"] == morning["id"]
    clock.advance(30)
    second = await issue(client)
    assert (await press(client, "2", "next"))["ticket"]["id"] == second["id"]
    # ... and at 04:00 it is: counter 9, untouched since 03:40, is closed; counters 1 and 2,
    # at work on the new day, stay open with their tickets.
    clock.advance(30)
    assert await close_out_all_branches(app.state.sessionmaker, clock) == 1
    expired = {str(e["ticket_id"]) for e in await events(app, "ticket.expired")}
    assert expired == {late["id"], night["id"]}
    counters = await ok(await client.get(f"{B}/counters", headers=ADMIN))
    assert {c["code"]: c["state"] for c in counters} == {"1": "open", "2": "open", "9": "closed"}
    closed_9 = [e for e in await events(app, "counter.changed") if e["counter"] == "9"][-1]
    assert closed_9["data"]["counter"]["state"] == "closed"
    report = await ok(await client.get(f"{B}/reports/daily?date=2026-11-24", headers=ADMIN))
    row = {r["service"]: r for r in report["services"]}["a"]
    assert (row["issued"], row["expired"], row["abandoned_pct"]) == (2, 2, 100.0)
    # Counter 9 was open 03:40 to the end of the 24th's business day (04:00): 20 minutes.
    assert {r["counter"]: r["open_s"] for r in report["counters"]}["9"] == 1200.0


async def test_a_clerk_at_work_across_the_boundary_keeps_their_customer(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """A 24-hour hall: the night clerk calls at 03:59:50 and starts serving at 04:00:10; the
    close-out of the night leaves counter and customer alone, the clerk finishes the service."""
    await setup_branch(client, branch={"day_starts_at": "04:00"})
    clock.set(at_local(25, 3, 50))
    night = await issue(client)
    waiting = await issue(client)
    await press(client, "1", "open")
    clock.set(at_local(25, 3, 59) + timedelta(seconds=50))
    assert (await press(client, "1", "next"))["ticket"]["id"] == night["id"]
    clock.set(at_local(25, 4, 0) + timedelta(seconds=10))
    await press(client, "1", "start")
    clock.advance(20)
    assert await close_out_all_branches(app.state.sessionmaker, clock) == 1
    expired = [str(e["ticket_id"]) for e in await events(app, "ticket.expired")]
    assert expired == [waiting["id"]]  # only the one nobody was serving
    counters = {c["code"]: c for c in await ok(await client.get(f"{B}/counters", headers=ADMIN))}
    assert counters["1"]["state"] == "open" and counters["1"]["current"]["id"] == night["id"]
    # Back in a queue the night's ticket would wait for nobody: no transfer, only completion.
    transfer = await client.post(f"{B}/counters/1/transfer", json={"service": "b"}, headers=ADMIN)
    assert_problem(transfer, 409, contains="take a new number")
    clock.advance(300)
    completed = await press(client, "1", "complete")
    assert completed["ticket"]["status"] == "done"
    assert await press(client, "1", "next") is None


# -- the manager's close-out --------------------------------------------------------------------


async def _hall_in_every_state(client: httpx.AsyncClient, clock: ManualClock) -> dict[str, Any]:
    """Counter 1 serves A001, counter 2 has called B001, A002 was a no-show at counter 9,
    A003 and A004 wait, counter 9 is paused; the clerk of counter 1 is signed in."""
    await setup_branch(client, staff={"li": {"name": "李", "role": "clerk"}})
    tickets = {n: await issue(client) for n in ("A001", "A002", "A003", "A004")}
    tickets["B001"] = await issue(client, service="b")
    clerk = await make_token(client, "clerk", "hz01", "li")
    await ok(await client.post(f"{B}/counters/1/open", headers=clerk))
    await ok(await client.post(f"{B}/counters/1/next", headers=clerk))
    await ok(await client.post(f"{B}/counters/1/start", headers=clerk))
    for counter in ("2", "9"):
        await press(client, counter, "open")
    await press(client, "2", "next")
    await press(client, "9", "next")
    await press(client, "9", "no-show")
    await press(client, "9", "pause")
    clock.advance(120)
    return tickets


async def test_close_out_ends_the_day_and_says_what_it_did(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    tickets = await _hall_in_every_state(client, clock)
    await ok(
        await client.put(f"{B}/staff/wang", json={"name": "王", "role": "manager"}, headers=ADMIN),
        201,
    )
    manager = await make_token(client, "manager", "hz01", "wang")
    closed = await ok(await client.post(f"{B}/day/close", headers=manager))
    assert closed == {"expired": 4, "completed": 1, "counters_closed": 3}
    # The history names the clerk who served, not the manager who closed the day.
    [completion] = [
        e
        for e in await events(app, "ticket.completed")
        if str(e["ticket_id"]) == tickets["A001"]["id"]
    ]
    assert completion["staff"] == "li"

    status = {
        n: (await ok(await client.get(f"/api/v1/tickets/{t['id']}", headers=ADMIN)))["status"]
        for n, t in tickets.items()
    }
    assert status == {
        "A001": "done",
        "A002": "expired",
        "A003": "expired",
        "A004": "expired",
        "B001": "expired",
    }
    expired = {
        str(e["ticket_id"]): (e["data"]["previous_status"], e["counter"])
        for e in await events(app, "ticket.expired")
    }
    assert expired[tickets["B001"]["id"]] == ("called", "2")
    assert expired[tickets["A002"]["id"]][0] == "no_show"
    assert expired[tickets["A004"]["id"]] == ("waiting", None)
    counters = await ok(await client.get(f"{B}/counters", headers=ADMIN))
    assert all(c["state"] == "closed" and c["staff"] is None for c in counters)
    assert all(c["current"] is None for c in counters)
    view = await ok(await client.get(f"{B}/queue", headers=ADMIN))
    assert all(s["waiting"] == 0 for s in view["services"])
    # The called B001 no longer shows on the screens; the served A001 still may.
    assert [c["ticket"]["number"] for c in view["recent_calls"]] == ["A001"]

    # Idempotent: nothing is left to close.
    again = await ok(await client.post(f"{B}/day/close", headers=ADMIN))
    assert again == {"expired": 0, "completed": 0, "counters_closed": 0}
    assert len(await events(app, "ticket.expired")) == 4

    # The report: expired per type, counter and clerk; the no-show stays a no-show.
    report = await ok(await client.get(f"{B}/reports/daily", headers=ADMIN))
    by_type = {r["service"]: r for r in report["services"]}
    assert (by_type["a"]["expired"], by_type["a"]["no_show"], by_type["b"]["expired"]) == (2, 1, 1)
    assert by_type["a"]["abandoned_pct"] == 75.0
    assert {r["counter"]: r["expired"] for r in report["counters"]}["2"] == 1
    csv = (await client.get(f"{B}/reports/daily?format=csv", headers=ADMIN)).text
    assert "expired,abandoned_pct" in csv.splitlines()[0]
    # The finished metric counts expiry as its own outcome, never a no-show twice.
    metrics = (await client.get("/metrics", headers=ADMIN)).text
    assert 'hallq_tickets_finished_total{branch="hz01",outcome="expired",service="a"} 2.0' in (
        metrics
    )
    assert 'hallq_tickets_finished_total{branch="hz01",outcome="expired",service="b"} 1.0' in (
        metrics
    )


async def test_after_a_close_out_the_hall_goes_on(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await _hall_in_every_state(client, clock)
    await ok(await client.post(f"{B}/day/close", headers=ADMIN))
    assert_problem(await client.post(f"{B}/counters/2/next", headers=ADMIN), 409, contains="closed")
    late = await issue(client)
    assert late["number"] == "A005" and late["position"] == 1  # the same business day
    await press(client, "2", "open")
    assert (await press(client, "2", "next"))["ticket"]["id"] == late["id"]


async def test_close_out_is_for_managers_of_the_branch(client: httpx.AsyncClient) -> None:
    await setup_branch(client)
    await setup_branch(client, "sh02")
    manager = await make_token(client, "manager", "hz01")
    kiosk = await make_token(client, "kiosk", "hz01")
    assert_problem(await client.post(f"{B}/day/close", headers=kiosk), 403)
    assert_problem(await client.post("/api/v1/branches/sh02/day/close", headers=manager), 403)
    assert_problem(await client.post("/api/v1/branches/nope/day/close", headers=ADMIN), 404)
    await ok(await client.post(f"{B}/day/close", headers=manager))


async def test_phone_numbers_go_with_the_expired_day(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await setup_branch(client)
    kept = await issue(client, phone="13800138000")
    clock.advance(days=1)
    await close_out_all_branches(app.state.sessionmaker, clock)
    async with app.state.sessionmaker() as session:
        from app.reports.service import erase_expired_phones

        assert await erase_expired_phones(session, clock.now()) == 1
        phone = await session.scalar(
            text("SELECT phone FROM tickets WHERE id = CAST(:id AS uuid)"), {"id": kept["id"]}
        )
    assert phone is None


async def test_utilisation_of_a_counter_left_open_overnight(
    app: FastAPI, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """Open 09:00, serve 09:00-10:00, leave the counter open; next morning 09:00 open again."""
    await setup_branch(client)

    async def open_and_serve_an_hour(day: int) -> None:
        clock.set(at_local(day, 9))
        await issue(client)
        for action in ("open", "next", "start"):
            await press(client, "1", action)
        clock.set(at_local(day, 10))
        await press(client, "1", "complete")

    await open_and_serve_an_hour(24)
    clock.set(at_local(25, 7))  # the server was down all night: the close-out runs late
    assert await close_out_all_branches(app.state.sessionmaker, clock) == 1
    await open_and_serve_an_hour(25)
    clock.set(at_local(25, 11))

    def counter_one(report: dict[str, Any]) -> dict[str, Any]:
        return next(r for r in report["counters"] if r["counter"] == "1")

    today = counter_one(await ok(await client.get(f"{B}/reports/daily", headers=ADMIN)))
    # Open 09:00 to now (11:00), serving one hour of it: not a minute of the night.
    assert today["open_s"] == 7200.0 and today["serving_s"] == 3600.0
    assert today["utilisation"] == 0.5
    yesterday = counter_one(
        await ok(await client.get(f"{B}/reports/daily?date=2026-11-24", headers=ADMIN))
    )
    # Yesterday the counter was open until the close-out ended the day.
    assert yesterday["open_s"] == 15 * 3600.0 and yesterday["serving_s"] == 3600.0

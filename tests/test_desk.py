"""The service desk (SPEC §6): finding tickets by number and status, changing a ticket's
priority, calling a chosen ticket to a counter, and the race of that call against `next`."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.core.settings import Settings
from tests.helpers import (
    ADMIN,
    ADMIN_TOKEN,
    assert_problem,
    issue,
    make_token,
    ok,
    setup_branch,
    stream_events,
)

B = "/api/v1/branches/hz01"
STAFF = {
    "s1": {"name": "王芳", "role": "clerk"},
    "s2": {"name": "李强", "role": "clerk"},
    "m1": {"name": "陈经理", "role": "manager"},
}
DAY = 24 * 3600


@pytest.fixture
async def hall(client):
    await setup_branch(client, staff=STAFF)
    await setup_branch(client, "sh02")
    return {
        "s1": await make_token(client, "clerk", "hz01", "s1"),
        "s2": await make_token(client, "clerk", "hz01", "s2"),
        "manager": await make_token(client, "manager", "hz01", "m1"),
        "kiosk": await make_token(client, "kiosk", "hz01"),
        "display": await make_token(client, "display", "hz01"),
        "other manager": await make_token(client, "manager", "sh02"),
    }


async def find(client, headers=ADMIN, expect=200, contains="", **params):
    response = await client.get(f"{B}/tickets", params=params, headers=headers)
    if expect >= 400:
        return assert_problem(response, expect, contains=contains)
    return await ok(response, expect)


async def detail(client, ticket_id, headers=ADMIN):
    return await ok(await client.get(f"/api/v1/tickets/{ticket_id}", headers=headers))


async def prioritise(client, ticket_id, headers=ADMIN, status=200, **body):
    response = await client.post(
        f"/api/v1/tickets/{ticket_id}/priority", json=body, headers=headers
    )
    if status >= 400:
        return assert_problem(response, status)
    return await ok(response, status)


async def act(client, counter, action, headers=ADMIN, status=200, json=None, branch=B):
    response = await client.post(
        f"{branch}/counters/{counter}/{action}", headers=headers, json=json
    )
    if status >= 400:
        return assert_problem(response, status)
    return await ok(response, status)


async def call(client, counter, ticket_id, headers=ADMIN, status=200):
    return await act(client, counter, "call", headers, status, json={"ticket": ticket_id})


async def state(app) -> dict[str, Any]:
    """Everything a refused request must leave as it was: tickets, counters, the event log."""
    async with app.state.sessionmaker() as session:
        tickets = (
            await session.execute(
                text(
                    "SELECT id, status, priority, counter, staff, lane, queued_at, issued_at"
                    " FROM tickets ORDER BY id"
                )
            )
        ).all()
        counters = (
            await session.execute(
                text(
                    "SELECT branch, code, state, current_ticket_id, calls FROM counters"
                    " ORDER BY branch, code"
                )
            )
        ).all()
        events = (
            await session.execute(text("SELECT branch, seq, note FROM branch_events ORDER BY 1, 2"))
        ).all()
    return {"tickets": tickets, "counters": counters, "events": events}


# -- finding a ticket by number ------------------------------------------------------------------


async def test_a_number_finds_its_ticket_with_history_in_any_case(client, hall):
    a1 = await issue(client)
    await issue(client)
    for number in ("A001", "a001", " a1 ", "A01"):
        found = await find(client, hall["s1"], number=number)
        assert [t["id"] for t in found["tickets"]] == [a1["id"]], number
    [ticket] = (await find(client, hall["manager"], number="A001"))["tickets"]
    assert ticket["number"] == "A001" and ticket["position"] == 1 and ticket["waiting_ahead"] == 0
    assert ticket["estimated_wait_s"] is not None
    assert [h["type"] for h in ticket["history"]] == ["ticket.issued", "ticket.near"]
    assert set(ticket) >= set(await detail(client, a1["id"]))
    assert list(await find(client, number="A001")) == ["tickets"]  # no total: SPEC's shape


async def test_an_unknown_number_is_an_empty_list(client, hall):
    await issue(client)
    assert (await find(client, number="A002"))["tickets"] == []
    assert (await find(client, number="Z001"))["tickets"] == []
    assert (await find(client, number="A000"))["tickets"] == []


async def test_a_number_names_one_ticket_per_day(client, hall, clock):
    yesterday = await issue(client)
    clock.advance(DAY)
    today = await issue(client)
    assert yesterday["number"] == today["number"] == "A001"
    assert [t["id"] for t in (await find(client, number="A001"))["tickets"]] == [today["id"]]
    day = yesterday["business_date"]
    found = await find(client, number="A001", date=day)
    assert [t["id"] for t in found["tickets"]] == [yesterday["id"]]
    assert (await find(client, number="A001", date="2020-01-01"))["tickets"] == []


async def test_a_transferred_ticket_keeps_its_number(client, hall):
    t = await issue(client)
    await act(client, "1", "open")
    await act(client, "1", "next")
    await act(client, "1", "transfer", json={"service": "b"})
    [found] = (await find(client, number="A001"))["tickets"]
    assert found["id"] == t["id"] and found["service"] == "b" and found["status"] == "waiting"
    assert (await find(client, number="B001"))["tickets"] == []


@pytest.mark.parametrize(
    ("params", "contains"),
    [
        ({"number": "A-001"}, "ticket number"),
        ({"number": "1A"}, "ticket number"),
        ({"number": "ABCD1"}, "ticket number"),
        ({"number": "A" + "1" * 200}, "ticket number"),
        ({"number": ""}, "ticket number"),
        ({"number": "Ａ００１"}, "ticket number"),  # full-width: not ASCII letters and digits
        ({"number": "A001", "date": "2026-02-30"}, "date"),
        ({"number": "A001", "date": "yesterday"}, "date"),
        ({"number": "A001", "status": "waiting"}, "exactly one"),
        ({}, "exactly one"),
        ({"date": "2026-11-24"}, "exactly one"),
        ({"number": "A001", "limit": "5"}, "limit"),
        ({"number": "A001", "service": "a"}, "service"),
        ({"status": "waiting", "date": "2026-11-24"}, "date"),
        ({"status": "waiting", "limit": "0"}, "limit"),
        ({"status": "waiting", "limit": "201"}, "limit"),
        ({"status": "waiting", "limit": "ten"}, "limit"),
        ({"status": "waiting", "offset": "-1"}, "offset"),
        ({"status": "waiting", "offset": str(10**30)}, "offset"),
        ({"status": "asleep"}, "status"),
        ({"status": "waiting", "service": "zz"}, "business type zz"),
        ({"status": "waiting", "service": "a b"}, "service"),
    ],
)
async def test_bad_lookups_are_422_problems(client, hall, params, contains):
    await issue(client)
    await find(client, expect=422, contains=contains, **params)


async def test_lookups_are_for_the_branch_staff(client, hall):
    await issue(client)
    for who in ("kiosk", "display"):
        await find(client, hall[who], 403, number="A001")
    await find(client, hall["other manager"], 403, "another branch", number="A001")
    unknown = await client.get(
        "/api/v1/branches/nowhere/tickets", params={"number": "A001"}, headers=ADMIN
    )
    assert_problem(unknown, 404, contains="branch nowhere")


# -- listing by status ---------------------------------------------------------------------------


async def test_waiting_tickets_come_in_calling_order_per_type(client, hall, clock):
    issued = {}
    for service, priority in [
        ("v", "normal"),
        ("b", "normal"),
        ("a", "normal"),
        ("a", "vip"),
        ("b", "special"),
        ("a", "special"),
        ("a", "normal"),
    ]:
        clock.advance(5)
        t = await issue(client, service=service, priority=priority)
        issued[t["number"]] = t
    page = await find(client, hall["s1"], status="waiting")
    assert page["total"] == 7
    listed = [(t["number"], t["position"], t["waiting_ahead"]) for t in page["tickets"]]
    assert listed == [
        ("A003", 1, 0),  # special
        ("A002", 2, 1),  # vip
        ("A001", 3, 2),
        ("A004", 4, 3),
        ("B002", 1, 0),  # special
        ("B001", 2, 1),
        ("V001", 1, 0),
    ]
    for t in page["tickets"]:
        alone = await detail(client, t["id"])
        # The same place and estimate as the ticket's own answer, in the issuing response's shape.
        assert (t["position"], t["estimated_wait_s"]) == (
            alone["position"],
            alone["estimated_wait_s"],
        )
        assert "history" not in t and t["status"] == "waiting"


async def test_the_waiting_list_leaves_out_earlier_days(client, hall, clock):
    """Before the close-out has run, yesterday's ticket is not waiting (SPEC §5)."""
    yesterdays = await issue(client)
    clock.advance(DAY)
    todays = await issue(client)
    page = await find(client, hall["s1"], status="waiting")
    assert (page["total"], [t["id"] for t in page["tickets"]]) == (1, [todays["id"]])
    assert page["tickets"][0]["position"] == 1
    found = await find(client, hall["s1"], number="A001", date="2026-11-24")  # T0's day
    assert [t["id"] for t in found["tickets"]] == [yesterdays["id"]]
    assert found["tickets"][0]["position"] is None


async def test_waiting_by_type_and_in_pages(client, hall, clock):
    for service in ("a", "b", "a", "b", "a"):
        clock.advance(1)
        await issue(client, service=service)
    only_a = await find(client, status="waiting", service="a")
    assert [t["number"] for t in only_a["tickets"]] == ["A001", "A002", "A003"]
    assert only_a["total"] == 3
    pages = [
        await find(client, status="waiting", limit=2, offset=offset) for offset in (0, 2, 4, 6)
    ]
    assert [[t["number"] for t in p["tickets"]] for p in pages] == [
        ["A001", "A002"],
        ["A003", "B001"],
        ["B002"],
        [],
    ]
    assert {p["total"] for p in pages} == {5}
    assert (await find(client, status="waiting", service="v")) == {"tickets": [], "total": 0}


async def test_the_default_page_is_fifty(client, hall):
    await act(client, "1", "open")
    for _ in range(52):
        await issue(client)
    page = await find(client, status="waiting")
    assert len(page["tickets"]) == 50 and page["total"] == 52
    assert len((await find(client, status="waiting", limit=200))["tickets"]) == 52


async def test_other_statuses_are_listed_newest_first_per_business_day(client, hall, clock):
    old = await issue(client)
    await ok(await client.post(f"/api/v1/tickets/{old['id']}/cancel", headers=ADMIN))
    clock.advance(DAY)
    first, second, kept = await issue(client), await issue(client), await issue(client)
    for t in (first, second):
        clock.advance(10)
        await ok(await client.post(f"/api/v1/tickets/{t['id']}/cancel", headers=ADMIN))
    cancelled = await find(client, status="cancelled")
    assert [t["id"] for t in cancelled["tickets"]] == [second["id"], first["id"]]
    assert cancelled["total"] == 2
    assert all(t["position"] is None and t["status"] == "cancelled" for t in cancelled["tickets"])
    earlier = await find(client, status="cancelled", date=old["business_date"])
    assert [t["id"] for t in earlier["tickets"]] == [old["id"]]
    assert (await find(client, status="done"))["total"] == 0
    assert [t["id"] for t in (await find(client, status="waiting"))["tickets"]] == [kept["id"]]


# -- priority ------------------------------------------------------------------------------------


async def test_a_new_priority_reorders_the_ticket_and_keeps_its_number(client, hall, clock):
    first = await issue(client)
    clock.advance(60)
    elderly = await issue(client)
    assert elderly["position"] == 2
    clock.advance(30)
    moved = await prioritise(
        client, elderly["id"], hall["manager"], priority="special", reason="老人, 行动不便"
    )
    assert moved["priority"] == "special" and moved["position"] == 1
    assert moved["number"] == "A002" and moved["issued_at"] == elderly["issued_at"]
    assert (await detail(client, first["id"]))["position"] == 2
    await act(client, "1", "open", hall["s1"])
    assert (await act(client, "1", "next", hall["s1"]))["ticket"]["id"] == elderly["id"]


async def test_the_reason_is_in_the_history_for_staff_only(app, client, hall, clock):
    t = await issue(client)
    clock.advance(90)
    reason = "孕妇 — seen by the greeter"
    await prioritise(client, t["id"], hall["manager"], priority="special", reason=reason)
    changed = (await detail(client, t["id"], hall["s1"]))["history"][-1]
    assert changed["type"] == "ticket.prioritised"
    assert changed["data"] == {
        "ticket": {"id": t["id"], "number": "A001", "service": "a", "priority": "special"},
        "from": "normal",
        "to": "special",
    }
    assert changed["note"] == reason and changed["staff"] == "m1" and changed["counter"] is None
    assert changed["at"].startswith("2026-11-24T02:01:30")
    for reader in ("manager", "s1"):
        assert (await detail(client, t["id"], hall[reader]))["history"][-1]["note"] == reason
    for reader in ("kiosk", "display"):
        history = (await detail(client, t["id"], hall[reader]))["history"]
        assert history[-1]["type"] == "ticket.prioritised" and history[-1]["note"] is None
    [found] = (await find(client, hall["s1"], number="A001"))["tickets"]
    assert found["history"][-1]["note"] == reason
    streamed = await stream_events(app)
    assert streamed[-1]["type"] == "ticket.prioritised"
    assert streamed[-1]["data"]["from"] == "normal" and streamed[-1]["data"]["to"] == "special"
    assert "孕妇" not in json.dumps(streamed, ensure_ascii=False)


async def test_the_reason_is_never_logged(client, hall, caplog):
    t = await issue(client)
    reason = "wheelchair-user-7f3a"
    with caplog.at_level(logging.DEBUG):
        await prioritise(client, t["id"], hall["manager"], priority="vip", reason=reason)
        await prioritise(client, t["id"], status=422, priority="vip", reason=reason * 20)
        await prioritise(client, t["id"], status=422, priority="gold", reason=reason)
    assert caplog.records, "the requests were logged"
    assert reason not in caplog.text


async def test_the_same_priority_again_changes_nothing(app, client, hall):
    t = await issue(client, priority="vip")
    before = await state(app)
    same = await prioritise(client, t["id"], priority="vip", reason="already VIP")
    assert same["priority"] == "vip" and same["position"] == 1
    assert await state(app) == before


async def test_only_a_waiting_ticket_of_today_changes_priority(app, client, hall, clock):
    called = await issue(client)
    await act(client, "1", "open")
    await act(client, "1", "next")
    before = await state(app)
    body = await prioritise(client, called["id"], status=409, priority="vip", reason="late")
    assert body["ticket_status"] == "called" and "waiting" in body["detail"]
    assert await state(app) == before
    stale = await issue(client)
    clock.advance(DAY)
    before = await state(app)
    await prioritise(client, stale["id"], status=409, priority="vip", reason="yesterday")
    assert await state(app) == before


@pytest.mark.parametrize(
    ("body", "contains"),
    [
        ({"priority": "special", "reason": "x" * 201}, "reason"),
        ({"priority": "special", "reason": ""}, "reason"),
        ({"priority": "special", "reason": "   "}, "reason"),
        ({"priority": "special"}, "reason"),
        ({"priority": "gold", "reason": "why not"}, "priority"),
        ({"priority": None, "reason": "why not"}, "priority"),
        ({"priority": "vip", "reason": "ok", "shelf": 3}, "shelf"),
        ({"priority": "vip", "reason": "a\u0000b"}, "NUL"),
    ],
)
async def test_bad_priority_changes_are_422_and_change_nothing(app, client, hall, body, contains):
    t = await issue(client)
    before = await state(app)
    response = await client.post(f"/api/v1/tickets/{t['id']}/priority", json=body, headers=ADMIN)
    assert_problem(response, 422, contains=contains)
    assert await state(app) == before


async def test_a_reason_of_exactly_200_characters_is_kept(client, hall):
    t = await issue(client)
    reason = "长" * 200
    await prioritise(client, t["id"], priority="vip", reason=reason)
    assert (await detail(client, t["id"]))["history"][-1]["note"] == reason


async def test_who_may_change_a_priority(app, client, hall):
    t = await issue(client)
    other = await issue(client, "sh02")
    before = await state(app)
    for who in ("s1", "kiosk", "display"):
        await prioritise(client, t["id"], hall[who], status=403, priority="vip", reason="r")
    await prioritise(client, other["id"], hall["manager"], status=403, priority="vip", reason="r")
    await prioritise(client, t["id"], hall["other manager"], status=403, priority="vip", reason="r")
    missing = "00000000-0000-4000-8000-000000000000"
    await prioritise(client, missing, status=404, priority="vip", reason="r")
    await prioritise(client, "not-a-uuid", status=422, priority="vip", reason="r")
    assert await state(app) == before
    assert (await prioritise(client, t["id"], priority="vip", reason="r"))["priority"] == "vip"


# -- calling a chosen ticket ---------------------------------------------------------------------


async def test_a_manager_calls_a_chosen_ticket_as_next_would(app, client, hall, clock):
    current = await issue(client)
    await issue(client)
    chosen = await issue(client, service="v")  # not in counter 1's profile: a manager may
    await act(client, "1", "open", hall["s1"])
    await act(client, "1", "next", hall["s1"])
    clock.advance(120)
    result = await call(client, "1", chosen["id"], hall["manager"])
    assert result["ticket"]["id"] == chosen["id"] and result["ticket"]["status"] == "called"
    assert result["ticket"]["counter"] == "1"
    assert result["counter"]["current"]["id"] == chosen["id"]
    assert (await detail(client, current["id"]))["status"] == "done"

    history = (await detail(client, chosen["id"]))["history"]
    called = history[-1]
    assert (called["type"], called["counter"], called["staff"]) == ("ticket.called", "1", "m1")
    assert called["at"].startswith("2026-11-24T02:02:00")
    assert called["data"]["picked"] is True and called["data"]["wait_s"] == 120.0
    streamed = await stream_events(app)
    types = [e["type"] for e in streamed[-3:]]
    assert types == ["ticket.completed", "ticket.called", "counter.changed"]
    announced = streamed[-2]["data"]
    assert announced["picked"] is True
    assert announced["announcement"]["zh"] == "请V001号到1号窗口办理"
    # `next` is not a pick.
    nexts = [e for e in streamed if e["type"] == "ticket.called" and e is not streamed[-2]]
    assert [e["data"]["picked"] for e in nexts] == [False]


async def test_a_call_counts_as_the_counters_call(app, client, hall):
    chosen = await issue(client)
    await act(client, "1", "open")
    await call(client, "1", chosen["id"])
    counters = (await state(app))["counters"]
    assert [c.calls for c in counters if c.branch == "hz01" and c.code == "1"] == [1]
    # The called customer is served as any other.
    await act(client, "1", "start")
    assert (await act(client, "1", "complete"))["ticket"]["status"] == "done"


async def test_a_clerk_picks_only_where_the_branch_allows_it(app, client, hall):
    own, other_type = await issue(client, service="b"), await issue(client, service="v")
    await act(client, "1", "open", hall["s1"])
    before = await state(app)
    body = await call(client, "1", own["id"], hall["s1"], status=403)
    assert "clerks_may_pick" in body["detail"]
    assert await state(app) == before

    branch = await ok(await client.get(B, headers=ADMIN))
    allow = {
        "name": branch["name"],
        "timezone": branch["timezone"],
        "clerks_may_pick": True,
    }
    await ok(await client.put(B, json=allow, headers=ADMIN))
    body = await call(client, "1", other_type["id"], hall["s1"], status=409)
    assert "does not serve business type v" in body["detail"]
    assert await state(app) == before
    # Not signed in at counter 2: as for every counter action.
    await call(client, "2", own["id"], hall["s1"], status=403)
    result = await call(client, "1", own["id"], hall["s1"])
    assert result["ticket"]["id"] == own["id"]
    called = (await detail(client, own["id"]))["history"][-1]
    assert (called["counter"], called["staff"], called["data"]["picked"]) == ("1", "s1", True)


async def test_a_manager_may_take_a_ticket_sent_to_another_counter(client, hall):
    t = await issue(client)
    await act(client, "2", "open")
    await act(client, "2", "next")
    await act(client, "2", "transfer", json={"counter": "9"})  # for counter 9 only
    await act(client, "1", "open", hall["s1"])
    result = await call(client, "1", t["id"], hall["manager"])
    assert result["ticket"]["id"] == t["id"] and result["ticket"]["counter"] == "1"
    # Taken: counter 9, for which it was meant, no longer finds it.
    await act(client, "9", "open", hall["s2"])
    assert (await client.post(f"{B}/counters/9/next", headers=hall["s2"])).status_code == 204


async def test_a_clerk_may_not_take_a_ticket_sent_to_another_counter(client, hall):
    await ok(
        await client.put(
            B,
            json={"name": "Branch hz01", "timezone": "Asia/Shanghai", "clerks_may_pick": True},
            headers=ADMIN,
        )
    )
    t = await issue(client)
    await act(client, "2", "open")
    await act(client, "2", "next")
    await act(client, "2", "transfer", json={"counter": "1", "service": "a"})
    await act(client, "9", "open", hall["s2"])  # 9 serves a, as a fallback
    body = await call(client, "9", t["id"], hall["s2"], status=409)
    assert "transferred to counter 1" in body["detail"]
    await act(client, "1", "open", hall["s1"])
    assert (await call(client, "1", t["id"], hall["s1"]))["ticket"]["id"] == t["id"]


async def test_calls_that_are_refused_change_nothing(app, client, hall, clock):
    waiting = await issue(client)
    foreign = await issue(client, "sh02")
    await act(client, "1", "open")
    cancelled = await issue(client)
    await ok(await client.post(f"/api/v1/tickets/{cancelled['id']}/cancel", headers=ADMIN))
    before = await state(app)
    missing = "00000000-0000-4000-8000-000000000000"
    assert_problem(
        await client.post(f"{B}/counters/1/call", json={"ticket": foreign["id"]}, headers=ADMIN),
        404,
        contains=foreign["id"],
    )
    await call(client, "1", missing, status=404)
    await call(client, "1", "not-a-uuid", status=422)
    await act(client, "1", "call", json={}, status=422)
    await act(client, "1", "call", json={"ticket": waiting["id"], "why": 1}, status=422)
    body = await call(client, "1", cancelled["id"], status=409)
    assert body["ticket_status"] == "cancelled"
    await call(client, "2", waiting["id"], status=409)  # closed
    await call(client, "nope", waiting["id"], status=404)
    await call(client, "1", waiting["id"], hall["other manager"], status=403)
    for who in ("kiosk", "display"):
        await call(client, "1", waiting["id"], hall[who], status=403)
    assert await state(app) == before
    # The one of another branch, called at its own branch's counter, is fine.
    sh = "/api/v1/branches/sh02"
    await act(client, "1", "open", branch=sh)
    result = await act(client, "1", "call", json={"ticket": foreign["id"]}, branch=sh)
    assert result["ticket"]["id"] == foreign["id"]


async def test_a_called_ticket_cannot_be_called_again(client, hall):
    t = await issue(client)
    await act(client, "1", "open")
    await act(client, "2", "open")
    await act(client, "1", "next")
    body = await call(client, "2", t["id"], status=409)
    assert "called at counter 1" in body["detail"]
    body = await call(client, "1", t["id"], status=409)  # its own current ticket
    assert body["ticket_status"] == "called"


async def test_a_paused_or_closing_counter_takes_no_call(client, hall):
    t = await issue(client)
    await issue(client)
    await act(client, "1", "open")
    await act(client, "1", "pause")
    assert "paused" in (await call(client, "1", t["id"], status=409))["detail"]
    await act(client, "1", "resume")
    await act(client, "1", "next")
    await act(client, "1", "close")
    assert "closing" in (await call(client, "1", t["id"], status=409))["detail"]


async def test_a_ticket_of_an_earlier_day_is_not_called(app, client, hall, clock):
    stale = await issue(client)
    clock.advance(DAY)
    await act(client, "1", "open")
    before = await state(app)
    body = await call(client, "1", stale["id"], status=409)
    assert "take a new number" in body["detail"]
    assert await state(app) == before


# -- the race: one ticket, many desks and counters at once ----------------------------------------

COUNTERS = 12


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Enough connections that the racing requests' transactions really overlap.
    return Settings(
        database_url=database_url, admin_token=ADMIN_TOKEN, alerts_interval_s=0, db_pool_size=24
    )


async def test_a_ticket_raced_by_calls_and_nexts_goes_to_exactly_one_counter(app, client):
    counters = {str(n): {"name": str(n), "services": ["a"]} for n in range(1, COUNTERS + 1)}
    await setup_branch(client, services={"a": {"name": "A", "prefix": "A"}}, counters=counters)
    for code in counters:
        await act(client, code, "open")
    transport = httpx.ASGITransport(app=app)
    clients = [
        httpx.AsyncClient(transport=transport, base_url="http://hallq.test")
        for _ in range(COUNTERS)
    ]
    try:
        for _round in range(8):
            ticket = await issue(client)
            # Two thirds of the counters call the ticket by hand, the rest press next: each
            # request on its own counter, from its own client, all at once.
            requests = [
                c.post(f"{B}/counters/{n + 1}/call", json={"ticket": ticket["id"]}, headers=ADMIN)
                if n % 3
                else c.post(f"{B}/counters/{n + 1}/next", headers=ADMIN)
                for n, c in enumerate(clients)
            ]
            answers = await asyncio.gather(*requests)
            winners = [
                r
                for r in answers
                if r.status_code == 200 and r.json()["ticket"]["id"] == ticket["id"]
            ]
            assert len(winners) == 1, [(r.status_code, r.text[:120]) for r in answers]
            losers = [r for r in answers if r not in winners]
            assert {r.status_code for r in losers} <= {204, 409}, [r.text for r in losers]
            for r in losers:
                if r.status_code == 409:
                    assert_problem(r, 409, contains="only a waiting ticket")
            now = await detail(client, ticket["id"])
            assert now["status"] == "called"
            assert now["counter"] == winners[0].json()["counter"]["code"]
            calls = [h for h in now["history"] if h["type"] == "ticket.called"]
            assert len(calls) == 1
    finally:
        for c in clients:
            await c.aclose()
    calls = [e for e in await stream_events(app) if e["type"] == "ticket.called"]
    assert len(calls) == len({e["data"]["ticket"]["id"] for e in calls}) == 8

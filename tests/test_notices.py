"""Notices (SPEC §7): the API, its refusals, the queue view's current list and its event."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.conftest import T0
from tests.helpers import ADMIN, assert_problem, make_token, ok, setup_branch, stream_events

B = "/api/v1/branches/hz01"
HOTLINE = {"text": {"zh": "投诉热线 10000", "en": "Complaints: call 10000"}, "order": 20}


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


async def put(client, code: str, body: dict[str, Any], status: int = 201) -> Any:
    return await ok(await client.put(f"{B}/notices/{code}", json=body, headers=ADMIN), status)


async def shown(client) -> list[str]:
    view = await ok(await client.get(f"{B}/queue", headers=ADMIN))
    return [notice["code"] for notice in view["notices"]]


async def notice_events(app) -> list[dict[str, Any]]:
    return [e for e in await stream_events(app) if e["type"] == "notices.changed"]


async def test_put_creates_then_updates_idempotently(client):
    await setup_branch(client)
    created = await put(client, "hotline", HOTLINE)
    assert created == {
        "code": "hotline",
        "text": HOTLINE["text"],
        "from": None,
        "to": None,
        "order": 20,
        "current": True,
    }
    assert await put(client, "hotline", HOTLINE, 200) == created
    changed = await put(client, "hotline", {"text": {"zh": "  热线 12345 "}}, 200)
    # PUT replaces: the English and the order go back to their defaults; words are trimmed.
    assert changed["text"] == {"zh": "热线 12345", "en": None} and changed["order"] == 0
    listed = await ok(await client.get(f"{B}/notices", headers=ADMIN))
    assert listed == [changed]


async def test_concurrent_puts_of_one_notice_agree(client):
    await setup_branch(client)
    responses = await asyncio.gather(
        *(client.put(f"{B}/notices/hotline", json=HOTLINE, headers=ADMIN) for _ in range(6))
    )
    assert sorted(r.status_code for r in responses) == [200] * 5 + [201]


async def test_the_queue_view_shows_current_notices_by_the_clock_in_order(client, clock):
    await setup_branch(client)
    await put(client, "hotline", HOTLINE)  # always current, order 20
    await put(client, "closure", {"text": {"zh": "今天16点闭厅"}, "from": at(30), "order": 10})
    await put(client, "promo", {"text": {"zh": "活动"}, "to": at(60), "order": 20})
    await put(client, "past", {"text": {"zh": "已结束"}, "from": at(-60), "to": at(-1)})
    await put(client, "window", {"text": {"zh": "窗口"}, "from": at(10), "to": at(20)})
    view = await ok(await client.get(f"{B}/queue", headers=ADMIN))
    # `order`, then code: hotline and promo share 20.
    assert view["notices"] == [
        {"code": "hotline", "text": HOTLINE["text"]},
        {"code": "promo", "text": {"zh": "活动", "en": None}},
    ]
    assert datetime.fromisoformat(view["notices_change_at"]) == T0 + timedelta(minutes=10)
    clock.advance(10 * 60)  # `from` is inclusive
    assert await shown(client) == ["window", "hotline", "promo"]
    clock.advance(10 * 60)  # `to` is exclusive
    assert await shown(client) == ["hotline", "promo"]
    clock.advance(10 * 60)
    assert await shown(client) == ["closure", "hotline", "promo"]
    clock.advance(30 * 60)
    assert await shown(client) == ["closure", "hotline"]
    view = await ok(await client.get(f"{B}/queue", headers=ADMIN))
    assert view["notices_change_at"] is None
    listed = await ok(await client.get(f"{B}/notices", headers=ADMIN))
    assert {n["code"]: n["current"] for n in listed} == {
        "past": False,
        "window": False,
        "closure": True,
        "hotline": True,
        "promo": False,
    }


async def test_each_change_records_the_current_list(app, client, clock):
    await setup_branch(client)
    await put(client, "hotline", HOTLINE)
    await put(client, "later", {"text": {"zh": "明天"}, "from": at(24 * 60)})
    await put(client, "first", {"text": {"zh": "欢迎"}, "order": -1})
    await ok(await client.delete(f"{B}/notices/hotline", headers=ADMIN), 204)
    lists = [[n["code"] for n in e["data"]["notices"]] for e in await notice_events(app)]
    assert lists == [["hotline"], ["hotline"], ["first", "hotline"], ["first"]]
    first = (await notice_events(app))[2]["data"]["notices"][0]
    assert first == {"code": "first", "text": {"zh": "欢迎", "en": None}}


async def test_delete_removes_and_an_unknown_notice_is_404(app, client):
    await setup_branch(client)
    await put(client, "hotline", HOTLINE)
    await ok(await client.delete(f"{B}/notices/hotline", headers=ADMIN), 204)
    assert await shown(client) == []
    assert_problem(
        await client.delete(f"{B}/notices/hotline", headers=ADMIN), 404, contains="hotline"
    )
    assert_problem(await client.delete(f"{B}/notices/nope", headers=ADMIN), 404)
    assert len(await notice_events(app)) == 2  # the refusals recorded nothing


async def test_an_unknown_branch_is_404(client):
    response = await client.put("/api/v1/branches/zz99/notices/x", json=HOTLINE, headers=ADMIN)
    assert_problem(response, 404, contains="zz99")
    assert_problem(await client.get("/api/v1/branches/zz99/notices", headers=ADMIN), 404)


LONG = "长" * 501


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"text": {"zh": "x"}, "from": at(10), "to": at(5)}, "must be after"),
        ({"text": {"zh": "x"}, "from": at(10), "to": at(10)}, "must be after"),
        ({"text": {"zh": LONG}}, "text.zh"),
        ({"text": {"zh": "x", "en": "e" * 501}}, "text.en"),
        ({"text": {"zh": "   "}}, "text.zh"),
        ({"text": {"en": "English only"}}, "text.zh"),
        ({"text": "投诉热线"}, "text"),
        ({}, "text"),
        ({"text": {"zh": "x"}, "from": "2026-11-24T10:00:00"}, "from"),  # no offset
        ({"text": {"zh": "x"}, "to": "tomorrow"}, "to"),
        ({"text": {"zh": "x"}, "order": 1.5}, "order"),
        ({"text": {"zh": "x"}, "order": 10**12}, "order"),
        ({"text": {"zh": "x"}, "colour": "red"}, "colour"),
    ],
)
async def test_bad_notices_are_refused_and_change_nothing(app, client, body, fragment):
    await setup_branch(client)
    await put(client, "hotline", HOTLINE)
    response = await client.put(f"{B}/notices/hotline", json=body, headers=ADMIN)
    assert_problem(response, 422, contains=fragment)
    listed = await ok(await client.get(f"{B}/notices", headers=ADMIN))
    assert [(n["code"], n["text"]) for n in listed] == [("hotline", HOTLINE["text"])]
    assert len(await notice_events(app)) == 1


@pytest.mark.parametrize("code", ["-x", "a b", "x" * 33, "公告"])
async def test_notice_codes_are_codes(client, code):
    await setup_branch(client)
    response = await client.put(f"{B}/notices/{code}", json=HOTLINE, headers=ADMIN)
    assert_problem(response, 422)
    assert await ok(await client.get(f"{B}/notices", headers=ADMIN)) == []


async def test_only_the_branchs_manager_or_admin_manages_its_notices(client):
    await setup_branch(client)
    await setup_branch(client, "sh02")
    own = await make_token(client, "manager", "hz01")
    other = await make_token(client, "manager", "sh02")
    display = await make_token(client, "display", "hz01")
    await ok(await client.put(f"{B}/notices/hotline", json=HOTLINE, headers=own), 201)
    for headers in (other, display):
        refused = await client.put(
            f"{B}/notices/hotline", json={"text": {"zh": "x"}}, headers=headers
        )
        assert_problem(refused, 403)
        assert_problem(await client.delete(f"{B}/notices/hotline", headers=headers), 403)
    # A screen of the branch reads them (with the queue view, and listed); another's may not.
    assert [n["code"] for n in await ok(await client.get(f"{B}/notices", headers=display))] == [
        "hotline"
    ]
    assert_problem(await client.get(f"{B}/notices", headers=other), 403)
    await ok(await client.delete(f"{B}/notices/hotline", headers=own), 204)

"""Ratings (评价器): a done ticket is rated once, 1..5, with an optional private comment."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.helpers import ADMIN, assert_problem, issue, make_token, ok, setup_branch

B = "/api/v1/branches/hz01"
STAFF = {"s1": {"name": "王芳", "role": "clerk"}, "s2": {"name": "李强", "role": "clerk"}}


@pytest.fixture
async def hall(client):
    await setup_branch(client, staff=STAFF)
    tokens = {
        "s1": await make_token(client, "clerk", "hz01", "s1"),
        "s2": await make_token(client, "clerk", "hz01", "s2"),
        "kiosk": await make_token(client, "kiosk", "hz01"),
    }
    await ok(await client.post(f"{B}/counters/1/open", headers=tokens["s1"]))
    return tokens


async def press(client, action: str, headers, counter: str = "1") -> Any:
    return await ok(await client.post(f"{B}/counters/{counter}/{action}", headers=headers))


async def served_ticket(client, hall) -> dict[str, Any]:
    """A ticket called and completed at counter 1 by clerk s1."""
    ticket = await issue(client, headers=hall["kiosk"])
    await press(client, "next", hall["s1"])
    await press(client, "complete", hall["s1"])
    return ticket


def rating_url(ticket: dict[str, Any]) -> str:
    return f"/api/v1/tickets/{ticket['id']}/rating"


async def test_a_done_ticket_is_rated_once(client, clock, hall):
    ticket = await served_ticket(client, hall)
    clock.advance(30)
    rated = await ok(
        await client.post(
            rating_url(ticket),
            json={"score": 5, "comment": "  办理很快，王芳很耐心 "},
            headers=hall["kiosk"],
        )
    )
    assert rated["status"] == "done" and rated["rating"] == 5

    detail = await ok(await client.get(f"/api/v1/tickets/{ticket['id']}", headers=ADMIN))
    assert detail["rating"] == 5
    event = detail["history"][-1]
    assert event["type"] == "ticket.rated"
    # Named for the counter and clerk who served it, not the kiosk that sent the rating.
    assert (event["counter"], event["staff"]) == ("1", "s1")
    assert event["data"]["score"] == 5 and event["data"]["has_comment"] is True
    assert event["data"]["ticket"]["number"] == "A001"
    # The comment is private: not in the history, which the lobby stream also carries.
    assert "王芳很耐心" not in json.dumps(detail, ensure_ascii=False)

    again = assert_problem(
        await client.post(rating_url(ticket), json={"score": 1}, headers=hall["kiosk"]),
        409,
        contains="already rated",
    )
    assert again["type"] == "/problems/already-rated" and again["ticket_status"] == "done"
    detail = await ok(await client.get(f"/api/v1/tickets/{ticket['id']}", headers=ADMIN))
    assert detail["rating"] == 5
    assert [e["type"] for e in detail["history"]].count("ticket.rated") == 1

    # The comment, trimmed, reaches the manager in the day's report.
    report = await ok(await client.get(f"{B}/reports/daily", headers=ADMIN))
    assert [(c["number"], c["score"], c["comment"]) for c in report["comments"]] == [
        ("A001", 5, "办理很快，王芳很耐心")
    ]


async def test_only_a_done_ticket_can_be_rated(client, hall):
    waiting = await issue(client)
    body = assert_problem(
        await client.post(rating_url(waiting), json={"score": 4}, headers=ADMIN),
        409,
        contains="only a done ticket",
    )
    assert body["ticket_status"] == "waiting"

    await press(client, "next", hall["s1"])
    body = assert_problem(
        await client.post(rating_url(waiting), json={"score": 4}, headers=ADMIN), 409
    )
    assert body["ticket_status"] == "called"
    await press(client, "start", hall["s1"])
    body = assert_problem(
        await client.post(rating_url(waiting), json={"score": 4}, headers=ADMIN), 409
    )
    assert body["ticket_status"] == "serving"
    await press(client, "complete", hall["s1"])

    missed = await issue(client)
    await press(client, "next", hall["s1"])
    await press(client, "no-show", hall["s1"])
    body = assert_problem(
        await client.post(rating_url(missed), json={"score": 1}, headers=ADMIN), 409
    )
    assert body["ticket_status"] == "no_show"

    gone = await issue(client)
    await ok(await client.post(f"/api/v1/tickets/{gone['id']}/cancel", headers=ADMIN))
    body = assert_problem(
        await client.post(rating_url(gone), json={"score": 1}, headers=ADMIN), 409
    )
    assert body["ticket_status"] == "cancelled"

    # None of the refusals left a trace.
    for ticket in (missed, gone):
        detail = await ok(await client.get(f"/api/v1/tickets/{ticket['id']}", headers=ADMIN))
        assert detail["rating"] is None
        assert "ticket.rated" not in [e["type"] for e in detail["history"]]
    # The first one, done now, can be rated.
    await ok(await client.post(rating_url(waiting), json={"score": 4}, headers=ADMIN))


async def test_a_transferred_ticket_is_rated_for_the_clerk_who_finished_it(client, hall):
    ticket = await issue(client, headers=hall["kiosk"])
    await press(client, "open", hall["s2"], counter="2")
    await press(client, "next", hall["s1"])
    await ok(
        await client.post(f"{B}/counters/1/transfer", json={"counter": "2"}, headers=hall["s1"])
    )
    await press(client, "next", hall["s2"], counter="2")
    await press(client, "complete", hall["s2"], counter="2")
    await ok(await client.post(rating_url(ticket), json={"score": 2}, headers=hall["s2"]))
    detail = await ok(await client.get(f"/api/v1/tickets/{ticket['id']}", headers=ADMIN))
    event = detail["history"][-1]
    assert (event["type"], event["counter"], event["staff"]) == ("ticket.rated", "2", "s2")
    assert event["data"]["has_comment"] is False


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"score": 0}, "score"),
        ({"score": 6}, "score"),
        ({"score": -1}, "score"),
        ({"score": "5"}, "score"),
        ({"score": 4.5}, "score"),
        ({"score": True}, "score"),
        ({"score": None}, "score"),
        ({}, "score"),
        ({"score": 5, "comment": "好" * 501}, "comment"),
        ({"score": 5, "comment": 5}, "comment"),
        ({"score": 5, "name": "张三"}, "name"),
        ([5], "body"),
    ],
)
async def test_bad_ratings_are_refused(client, hall, body, where):
    ticket = await served_ticket(client, hall)
    problem = assert_problem(
        await client.post(rating_url(ticket), json=body, headers=ADMIN), 422, contains=where
    )
    assert problem["type"] == "/problems/validation-error"
    # A refused rating does not use up the customer's one rating.
    detail = await ok(await client.get(f"/api/v1/tickets/{ticket['id']}", headers=ADMIN))
    assert detail["rating"] is None


async def test_comment_length_and_blank_comments(client, hall):
    longest = await served_ticket(client, hall)
    await ok(
        await client.post(
            rating_url(longest), json={"score": 3, "comment": "好" * 500}, headers=ADMIN
        )
    )
    blank = await served_ticket(client, hall)
    await ok(
        await client.post(rating_url(blank), json={"score": 3, "comment": "  "}, headers=ADMIN)
    )
    detail = await ok(await client.get(f"/api/v1/tickets/{blank['id']}", headers=ADMIN))
    assert detail["history"][-1]["data"]["has_comment"] is False
    report = await ok(await client.get(f"{B}/reports/daily", headers=ADMIN))
    assert [c["comment"] for c in report["comments"]] == ["好" * 500]


async def test_malformed_json_is_a_400(client, hall):
    ticket = await served_ticket(client, hall)
    response = await client.post(
        rating_url(ticket),
        content=b'{"score": ',
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert_problem(response, 400)


async def test_ratings_close_with_the_business_day(client, clock, hall):
    # Served at 23:55 in Shanghai; the keypad's rating arrives at 00:01 the next day.
    clock.set(datetime(2026, 11, 24, 15, 50, tzinfo=UTC))
    ticket = await issue(client)
    clock.advance(minutes=5)
    await press(client, "next", hall["s1"])
    await press(client, "complete", hall["s1"])
    clock.advance(minutes=6)
    body = assert_problem(
        await client.post(rating_url(ticket), json={"score": 5}, headers=ADMIN),
        409,
        contains="2026-11-24",
    )
    assert body["type"] == "/problems/rating-closed" and body["ticket_status"] == "done"


async def test_who_may_rate(client, hall):
    ticket = await served_ticket(client, hall)
    display = await make_token(client, "display", "hz01")
    assert_problem(await client.post(rating_url(ticket), json={"score": 5}, headers=display), 403)
    await setup_branch(client, "sh02")
    other = await make_token(client, "kiosk", "sh02")
    assert_problem(
        await client.post(rating_url(ticket), json={"score": 5}, headers=other),
        403,
        contains="another branch",
    )
    assert_problem(await client.post(rating_url(ticket), json={"score": 5}), 401)
    missing = {"id": "00000000-0000-4000-8000-000000000000"}
    assert_problem(await client.post(rating_url(missing), json={"score": 5}, headers=ADMIN), 404)
    assert_problem(
        await client.post("/api/v1/tickets/not-a-uuid/rating", json={"score": 5}, headers=ADMIN),
        422,
    )
    # Nothing was recorded by the refused attempts; a kiosk of the branch may rate.
    await ok(await client.post(rating_url(ticket), json={"score": 5}, headers=hall["kiosk"]))

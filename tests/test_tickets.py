"""Issuing tickets: numbers, priorities, phone privacy, idempotency, positions, opening hours."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from tests.helpers import ADMIN, assert_problem, issue, make_token, ok, setup_branch

B = "/api/v1/branches/hz01"


async def test_numbers_are_prefix_and_daily_sequence_per_type(client):
    await setup_branch(client)
    numbers = [(await issue(client, service=s))["number"] for s in "aabaab"]
    assert numbers == ["A001", "A002", "B001", "A003", "A004", "B002"]


async def test_sequences_restart_each_business_day_in_the_branch_timezone(client, clock):
    await setup_branch(client)
    # 23:50 in Shanghai on the 24th.
    clock.set(datetime(2026, 11, 24, 15, 50, tzinfo=UTC))
    first = await issue(client)
    assert (first["number"], first["business_date"]) == ("A001", "2026-11-24")
    assert (await issue(client))["number"] == "A002"
    clock.advance(minutes=15)  # 00:05 on the 25th in Shanghai (still the 24th in UTC)
    next_day = await issue(client)
    assert (next_day["number"], next_day["business_date"]) == ("A001", "2026-11-25")
    # Yesterday's tickets still wait and keep their numbers.
    waiting = await ok(await client.get(f"/api/v1/tickets/{first['id']}", headers=ADMIN))
    assert waiting["status"] == "waiting" and waiting["number"] == "A001"


async def test_a_thousandth_ticket_still_gets_a_number(client, pg, database_url):
    await setup_branch(client)

    conn = await asyncpg.connect(pg.dsn(database_url.rsplit("/", 1)[1]))
    try:
        await conn.execute("INSERT INTO ticket_sequences VALUES ('hz01', 'a', '2026-11-24', 999)")
    finally:
        await conn.close()
    assert (await issue(client))["number"] == "A1000"


async def test_issue_response(client):
    await setup_branch(client)
    ticket = await issue(client, priority="vip", channel="online", phone="138 1234 5678")
    assert ticket["status"] == "waiting"
    assert ticket["priority"] == "vip" and ticket["channel"] == "online"
    assert ticket["service"] == "a"
    assert ticket["issued_at"] == "2026-11-24T02:00:00Z"
    assert ticket["position"] == 1 and ticket["waiting_ahead"] == 0
    assert isinstance(ticket["estimated_wait_s"], int) and ticket["estimated_wait_s"] >= 0
    assert ticket["phone"] == "138****5678"
    assert ticket["counter"] is None and ticket["recall_count"] == 0


async def test_phone_is_validated_and_never_shown_in_full(client):
    await setup_branch(client)
    for phone in ["12345", "23812345678", "+0123456789", "138123456789", "call me"]:
        problem = assert_problem(
            await client.post(f"{B}/tickets", json={"service": "a", "phone": phone}, headers=ADMIN),
            422,
        )
        assert phone not in str(problem)
    intl = await issue(client, phone="+85291234567")
    assert intl["phone"] == "+85****4567"
    detail = await ok(await client.get(f"/api/v1/tickets/{intl['id']}", headers=ADMIN))
    assert detail["phone"] == "+85****4567"
    assert "91234567" not in str(detail)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"service": "zz"},
        {"service": "a", "priority": "urgent"},
        {"service": "a", "channel": "fax"},
        {"service": "a", "name": "张三"},
        {"service": ["a"]},
        {"service": "a", "priority": None},
    ],
)
async def test_bad_issue_requests(client, body):
    await setup_branch(client)
    response = await client.post(f"{B}/tickets", json=body, headers=ADMIN)
    assert_problem(response, 422)


async def test_issue_at_an_unknown_branch_or_type(client):
    await setup_branch(client)
    assert_problem(
        await client.post("/api/v1/branches/nope/tickets", json={"service": "a"}, headers=ADMIN),
        404,
    )
    assert_problem(
        await client.post(f"{B}/tickets", json={"service": "zz"}, headers=ADMIN),
        422,
        contains="zz",
    )


async def test_position_counts_the_calling_order_of_the_type(client, clock):
    await setup_branch(client)
    a1 = await issue(client)
    clock.advance(10)
    await issue(client, service="b")  # another type: not counted
    clock.advance(10)
    a2 = await issue(client)
    clock.advance(10)
    special = await issue(client, priority="special")
    assert special["position"] == 1 and special["waiting_ahead"] == 0
    detail = await ok(await client.get(f"/api/v1/tickets/{a2['id']}", headers=ADMIN))
    assert detail["position"] == 3 and detail["waiting_ahead"] == 2
    detail = await ok(await client.get(f"/api/v1/tickets/{a1['id']}", headers=ADMIN))
    assert detail["position"] == 2


async def test_estimate_grows_with_the_queue(client):
    await setup_branch(client)
    estimates = [(await issue(client))["estimated_wait_s"] for _ in range(4)]
    assert estimates == sorted(estimates) and estimates[-1] > estimates[0]


async def test_history_of_a_ticket(client):
    await setup_branch(client)
    ticket = await issue(client)
    await ok(await client.post(f"/api/v1/tickets/{ticket['id']}/cancel", headers=ADMIN))
    detail = await ok(await client.get(f"/api/v1/tickets/{ticket['id']}", headers=ADMIN))
    assert detail["status"] == "cancelled"
    assert detail["position"] is None and detail["estimated_wait_s"] is None
    assert [h["type"] for h in detail["history"]] == [
        "ticket.issued",
        "ticket.near",  # nobody ahead: near at once (SPEC §9)
        "ticket.cancelled",
    ]
    issued = detail["history"][0]
    assert issued["data"]["ticket"]["number"] == "A001"
    assert "phone" not in str(issued["data"])


async def test_unknown_and_malformed_ticket_ids(client):
    await setup_branch(client)
    assert_problem(
        await client.get("/api/v1/tickets/00000000-0000-4000-8000-000000000000", headers=ADMIN), 404
    )
    assert_problem(await client.get("/api/v1/tickets/not-a-uuid", headers=ADMIN), 422)
    assert_problem(
        await client.post(
            "/api/v1/tickets/00000000-0000-4000-8000-000000000000/cancel", headers=ADMIN
        ),
        404,
    )


# -- Idempotency-Key ------------------------------------------------------------------------------


async def test_a_retry_with_the_same_key_returns_the_same_ticket(client):
    await setup_branch(client)
    headers = {**ADMIN, "Idempotency-Key": "kiosk7-req-001"}
    first = await client.post(f"{B}/tickets", json={"service": "a"}, headers=headers)
    again = await client.post(f"{B}/tickets", json={"service": "a"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    other = await client.post(
        f"{B}/tickets",
        json={"service": "a"},
        headers={**ADMIN, "Idempotency-Key": "kiosk7-req-002"},
    )
    assert other.json()["number"] == "A002"
    # The same key with a different request is a mistake, not a replay.
    assert_problem(
        await client.post(f"{B}/tickets", json={"service": "b"}, headers=headers),
        422,
        contains="Idempotency-Key",
    )


async def test_racing_retries_with_one_key_make_one_ticket(client):
    await setup_branch(client)
    headers = {**ADMIN, "Idempotency-Key": "race-1"}
    responses = await asyncio.gather(
        *(client.post(f"{B}/tickets", json={"service": "a"}, headers=headers) for _ in range(20))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    # The number given back by the losers was not skipped.
    assert (await issue(client))["number"] == "A002"


async def test_an_over_long_idempotency_key_is_rejected(client):
    await setup_branch(client)
    assert_problem(
        await client.post(
            f"{B}/tickets", json={"service": "a"}, headers={**ADMIN, "Idempotency-Key": "k" * 201}
        ),
        422,
    )


# -- opening hours ---------------------------------------------------------------------------------

HOURS = {
    "name": "hz01",
    "timezone": "Asia/Shanghai",
    "hours": {
        d: [["09:00", "12:00"], ["13:00", "17:00"]] for d in ["mon", "tue", "wed", "thu", "fri"]
    },
    "holidays": ["2026-12-25"],
    "issue_cutoff_min": 30,
}


def shanghai(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC) - timedelta(hours=8)


@pytest.mark.parametrize(
    ("when", "reason", "opens_at"),
    [
        (shanghai(1, 8, 59), "closed", "2026-12-01T09:00:00+08:00"),  # Tuesday, before opening
        (shanghai(1, 12, 30), "closed", "2026-12-01T13:00:00+08:00"),  # lunch
        (shanghai(1, 11, 31), "cutoff", "2026-12-01T13:00:00+08:00"),  # 30 min before the break
        (shanghai(4, 16, 45), "cutoff", "2026-12-07T09:00:00+08:00"),  # Friday: next is Monday
        (shanghai(5, 10, 0), "closed", "2026-12-07T09:00:00+08:00"),  # Saturday
        (shanghai(25, 10, 0), "holiday", "2026-12-28T09:00:00+08:00"),  # Christmas (a Friday)
    ],
)
async def test_issuing_outside_hours_is_refused_with_the_next_opening(
    client, clock, when, reason, opens_at
):
    await setup_branch(client, branch=HOURS)
    clock.set(when)
    problem = assert_problem(
        await client.post(f"{B}/tickets", json={"service": "a"}, headers=ADMIN), 409
    )
    assert problem["type"] == "/problems/branch-closed"
    assert problem["reason"] == reason
    assert problem["opens_at"] == opens_at
    assert "opens again" in problem["detail"]


async def test_issuing_inside_hours_and_serving_after_closing(client, clock):
    await setup_branch(client, branch=HOURS)
    clock.set(shanghai(1, 16, 29))
    ticket = await issue(client)
    clock.set(shanghai(1, 17, 30))  # closed: no new numbers...
    assert_problem(await client.post(f"{B}/tickets", json={"service": "a"}, headers=ADMIN), 409)
    # ...but the customer who is already waiting is still served.
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    called = await ok(await client.post(f"{B}/counters/1/next", headers=ADMIN))
    assert called["ticket"]["id"] == ticket["id"]


async def test_a_retry_after_closing_still_gets_its_ticket(client, clock):
    await setup_branch(client, branch=HOURS)
    clock.set(shanghai(1, 16, 29))
    headers = {**ADMIN, "Idempotency-Key": "last-one"}
    first = await ok(await client.post(f"{B}/tickets", json={"service": "a"}, headers=headers), 201)
    clock.set(shanghai(1, 17, 30))  # the answer was lost; the kiosk retries after closing
    again = await client.post(f"{B}/tickets", json={"service": "a"}, headers=headers)
    assert again.status_code == 201 and again.json()["id"] == first["id"]
    assert again.headers["idempotent-replayed"] == "true"
    # A key that got nothing yet is a new ticket, refused like any other.
    refused = await client.post(
        f"{B}/tickets", json={"service": "a"}, headers={**ADMIN, "Idempotency-Key": "too-late"}
    )
    assert assert_problem(refused, 409)["type"] == "/problems/branch-closed"


async def test_kiosk_of_another_branch_cannot_issue(client):
    await setup_branch(client)
    await setup_branch(client, "sh02")
    kiosk = await make_token(client, "kiosk", "sh02")
    assert_problem(await client.post(f"{B}/tickets", json={"service": "a"}, headers=kiosk), 403)
    assert (await issue(client, "sh02", headers=kiosk))["number"] == "A001"

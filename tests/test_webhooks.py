"""Webhooks (SPEC §8, issue 20) in one process: the API, signed delivery to a real endpoint on
loopback, retries with backoff, disabling after a day of failures, and no personal data in any
delivered body. Several processes: tests/test_webhooks_processes.py."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from standardwebhooks import Webhook as ReferenceWebhook

from app.core.clock import ManualClock
from app.core.settings import Settings
from app.events.catalog import EventType
from tests.helpers import (
    ADMIN,
    ADMIN_TOKEN,
    assert_problem,
    issue,
    make_token,
    ok,
    setup_branch,
)
from tests.test_events import PRIORITY_REASON
from tests.test_events import _emit_every_type as emit_every_type
from tests.webhook_receiver import Receiver, receiving, wait_for

W = "/api/v1/webhooks"
# No `ticket.near` events (SPEC §9): each test counts the events it makes.
QUIET = {"notify_ahead": None}
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Look for work often, so that a moved test clock is noticed at once.
    return Settings(
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        alerts_interval_s=0,
        webhook_poll_s=0.1,
    )


@pytest.fixture
def clock() -> ManualClock:
    # Near the real time: the reference library refuses timestamps more than 5 minutes off.
    return ManualClock(datetime.now(UTC))


async def put_webhook(client: httpx.AsyncClient, wid: str, status: int = 201, **body: Any) -> Any:
    return await ok(await client.put(f"{W}/{wid}", json=body, headers=ADMIN), status)


# -- the API ------------------------------------------------------------------------------------


async def test_a_generated_secret_is_shown_once_and_never_again(client, app: FastAPI) -> None:
    created = await put_webhook(client, "sms", url="https://relay.example/hook")
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) >= 24
    assert created["enabled"] and created["events"] is None and created["branches"] is None
    shown = [
        await ok(await client.get(f"{W}/sms", headers=ADMIN)),
        await ok(await client.get(W, headers=ADMIN)),
        await put_webhook(client, "sms", 200, url="https://relay.example/v2", enabled=False),
    ]
    for answer in shown:
        assert secret not in str(answer)
        assert "secret" not in str(answer) or answer.get("secret") is None
    listed = await ok(await client.get(W, headers=ADMIN))
    assert [w["id"] for w in listed["webhooks"]] == ["sms"]
    assert listed["webhooks"][0]["url"] == "https://relay.example/v2"
    assert not listed["webhooks"][0]["enabled"]
    await ok(await client.delete(f"{W}/sms", headers=ADMIN), 204)
    assert_problem(await client.get(f"{W}/sms", headers=ADMIN), 404)
    assert_problem(await client.delete(f"{W}/sms", headers=ADMIN), 404)
    assert_problem(await client.get(f"{W}/sms/deliveries", headers=ADMIN), 404)


async def test_two_puts_of_a_new_webhook_at_once_create_it_once(client) -> None:
    body = {"url": "https://relay.example/hook"}
    answers = await asyncio.gather(
        *(client.put(f"{W}/race", json=body, headers=ADMIN) for _ in range(4))
    )
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201]
    assert [a.json()["secret"] is not None for a in answers].count(True) == 1


async def test_a_given_secret_is_kept_and_not_echoed(client) -> None:
    created = await put_webhook(client, "a", url="http://127.0.0.1:9/x", secret=SECRET)
    assert created["secret"] is None
    # An update without a secret keeps it (checked by signing below, in the delivery tests).
    await put_webhook(client, "a", 200, url="http://[::1]:9/x", events=["ticket.called"])


@pytest.mark.parametrize(
    ("body", "contains"),
    [
        ({"url": "ftp://relay.example/hook"}, "https://"),
        ({"url": "http://relay.example/hook"}, "loopback"),
        ({"url": "http://10.0.0.1/hook"}, "loopback"),
        ({"url": "https://"}, "host"),
        ({"url": "https://relay.example:99999/"}, "valid URL"),
        ({"url": "https://relay.example/ hook"}, "spaces"),
        ({"url": "https://relay.example/", "secret": "sekrit"}, "whsec_"),
        ({"url": "https://relay.example/", "secret": "whsec_!!!"}, "base64"),
        ({"url": "https://relay.example/", "secret": "whsec_" + "QUJD"}, "24"),
        ({"url": "https://relay.example/", "events": ["ticket.printed"]}, "events"),
        ({"url": "https://relay.example/", "events": []}, "events"),
        ({"url": "https://relay.example/", "branches": ["hz 01"]}, "branches"),
        ({"url": "https://relay.example/", "branches": ["a", "a"]}, "once"),
        ({"url": "https://relay.example/", "colour": "blue"}, "colour"),
        ({}, "url"),
    ],
)
async def test_bad_input_is_a_problem(client, body, contains) -> None:
    response = await client.put(f"{W}/hook", json=body, headers=ADMIN)
    problem = assert_problem(response, 422, contains=contains)
    assert "sekrit" not in str(problem) and "!!!" not in str(problem)


async def test_bad_paths_and_roles(client) -> None:
    assert_problem(
        await client.put(f"{W}/bad%20id", json={"url": "https://x.example/"}, headers=ADMIN), 422
    )
    await put_webhook(client, "w", url="https://x.example/")
    assert_problem(await client.get(f"{W}/w/deliveries?limit=0", headers=ADMIN), 422)
    assert_problem(await client.get(f"{W}/w/deliveries?limit=501", headers=ADMIN), 422)
    await setup_branch(client, branch=QUIET)
    manager = await make_token(client, "manager", "hz01")
    for method, path in [("GET", W), ("GET", f"{W}/w"), ("DELETE", f"{W}/w")]:
        assert_problem(await client.request(method, path, headers=manager), 403)
    assert_problem(await client.get(W), 401)


# -- delivery -----------------------------------------------------------------------------------


def hand_signature(secret: str, headers: dict[str, str], body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


async def test_events_arrive_signed_with_standard_webhooks_headers(client, clock) -> None:
    await setup_branch(client, branch=QUIET)
    async with receiving() as receiver:
        await put_webhook(client, "relay", url=receiver.url, secret=SECRET)
        ticket = await issue(client)
        await wait_for(lambda: len(receiver.delivered()) >= 1, what="the delivery")
    got = receiver.delivered()[0]
    event = got.event
    assert set(event) == {"type", "seq", "at", "branch", "data"}
    assert event["type"] == "ticket.issued" and event["branch"] == "hz01"
    assert event["data"]["ticket"]["id"] == ticket["id"]
    assert got.webhook_id == f"hz01:{event['seq']}"
    assert got.headers["content-type"] == "application/json"
    assert abs(int(got.headers["webhook-timestamp"]) - clock.now().timestamp()) < 2
    # The reference library verifies it (timestamp within 5 minutes, constant-time compare)...
    assert ReferenceWebhook(SECRET).verify(got.body, got.headers) == event
    # ...and so does the spec, by hand.
    assert got.headers["webhook-signature"] == hand_signature(SECRET, got.headers, got.body)
    with pytest.raises(Exception, match="signature"):
        ReferenceWebhook(SECRET).verify(got.body + b" ", got.headers)


async def test_only_the_chosen_types_and_branches_in_seq_order(client) -> None:
    await setup_branch(client, branch=QUIET)
    await setup_branch(client, "sh02", branch=QUIET)
    async with receiving() as receiver:
        await put_webhook(
            client, "calls", url=receiver.url, events=["ticket.issued"], branches=["hz01"]
        )
        for _ in range(5):
            await issue(client, "sh02")
            await issue(client, "hz01")
        await ok(
            await client.put(
                "/api/v1/branches/hz01/services/a", json={"name": "x", "prefix": "A"}, headers=ADMIN
            )
        )
        await wait_for(lambda: len(receiver.delivered()) >= 5, what="5 deliveries")
        # Nothing else comes (the sh02 tickets, the configuration's counter.changed).
        await asyncio.sleep(0.3)
    events = [r.event for r in receiver.delivered()]
    assert [e["branch"] for e in events] == ["hz01"] * 5
    assert {e["type"] for e in events} == {"ticket.issued"}
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5


async def test_a_failing_endpoint_is_retried_with_backoff_then_delivered(client, clock) -> None:
    answers = iter([500, 503])

    async def failing_twice(_h: dict[str, str], _b: bytes) -> int:
        return next(answers, 200)

    await setup_branch(client, branch=QUIET)
    async with receiving(failing_twice) as receiver:
        # One event to follow through its retries (an issue may also bring `ticket.near`).
        await put_webhook(client, "relay", url=receiver.url, events=["ticket.issued"])
        await issue(client)
        await wait_for(lambda: len(receiver.received) == 1, what="the first attempt")
        await attempts_logged(client, "relay", 1)
        hook = await ok(await client.get(f"{W}/relay", headers=ADMIN))
        assert hook["failing_since"] is not None
        retry_in = datetime.fromisoformat(hook["retry_at"]) - clock.now()
        assert retry_in.total_seconds() == pytest.approx(5, abs=0.5)
        await asyncio.sleep(0.3)
        assert len(receiver.received) == 1  # waits about 5 s before the next try
        clock.advance(5)
        await wait_for(lambda: len(receiver.received) == 2, what="the second attempt")
        await attempts_logged(client, "relay", 2)
        await asyncio.sleep(0.3)
        assert len(receiver.received) == 2  # then about 30 s
        clock.advance(30)
        await wait_for(lambda: len(receiver.delivered()) == 1, what="the delivery")
    ids = {r.webhook_id for r in receiver.received}
    assert len(ids) == 1  # the same webhook-id on every retry
    log = {"deliveries": await attempts_logged(client, "relay", 3)}
    attempts = [(d["attempt"], d["status_code"], d["error"]) for d in log["deliveries"]]
    assert attempts == [(3, 200, None), (2, 503, None), (1, 500, None)]
    assert {d["event"] for d in log["deliveries"]} == ids
    hook = await ok(await client.get(f"{W}/relay", headers=ADMIN))
    assert hook["failing_since"] is None and hook["retry_at"] is None
    metrics = (await client.get("/metrics", headers=ADMIN)).text
    assert 'hallq_webhook_deliveries_total{outcome="delivered"} 1.0' in metrics
    assert 'hallq_webhook_deliveries_total{outcome="failed"} 2.0' in metrics
    assert 'hallq_webhook_backlog{webhook="relay"} 0.0' in metrics


async def attempts_logged(client: httpx.AsyncClient, wid: str, n: int) -> list[Any]:
    """The webhook's delivery log, once it has `n` entries (written a moment after the POST)."""
    deadline = time.monotonic() + 10
    while True:
        entries = (await ok(await client.get(f"{W}/{wid}/deliveries", headers=ADMIN)))["deliveries"]
        if len(entries) >= n or time.monotonic() > deadline:
            return list(entries)
        await asyncio.sleep(0.05)


async def test_an_unreachable_endpoint_is_an_error_in_the_log(client) -> None:
    await setup_branch(client, branch=QUIET)
    receiver = Receiver()  # never started: nothing listens on its port
    await put_webhook(client, "down", url=receiver.url)
    await issue(client)
    entries = await attempts_logged(client, "down", 1)
    assert entries[0]["status_code"] is None and entries[0]["error"] == "ConnectError"
    metrics = (await client.get("/metrics", headers=ADMIN)).text
    assert 'hallq_webhook_backlog{webhook="down"} 1.0' in metrics


async def test_after_a_day_of_failures_it_is_disabled_and_resumes_where_it_stopped(
    client, clock, caplog
) -> None:
    status = {"now": 500}

    async def answer(_h: dict[str, str], _b: bytes) -> int:
        return status["now"]

    await setup_branch(client, branch=QUIET)
    async with receiving(answer) as receiver:
        await put_webhook(client, "relay", url=receiver.url, secret=SECRET)
        first = await issue(client)
        await wait_for(lambda: len(receiver.received) == 1, what="the first attempt")
        clock.advance(hours=23)
        await wait_for(lambda: len(receiver.received) == 2, what="a retry within the day")
        assert (await ok(await client.get(f"{W}/relay", headers=ADMIN)))["enabled"]
        clock.advance(hours=1, seconds=1)
        await wait_for(lambda: len(receiver.received) == 3, what="the last retry")
        await wait_for(lambda: "webhook_failing" in caplog.text, what="the alert")
        hook = await ok(await client.get(f"{W}/relay", headers=ADMIN))
        assert not hook["enabled"] and hook["disabled_reason"] == "webhook_failing"
        second = await issue(client)
        clock.advance(hours=2)
        await asyncio.sleep(0.3)
        assert len(receiver.received) == 3  # disabled: no more tries
        status["now"] = 200
        # Re-enabled (the secret kept): from where it stopped, the first ticket first.
        await put_webhook(client, "relay", 200, url=receiver.url)
        await wait_for(lambda: len(receiver.delivered()) >= 2, what="the backlog")
    issued = [r.event["data"]["ticket"]["id"] for r in receiver.delivered()]
    assert issued == [first["id"], second["id"]]
    assert SECRET not in caplog.text
    hook = await ok(await client.get(f"{W}/relay", headers=ADMIN))
    assert hook["enabled"] and hook["disabled_reason"] is None


async def test_no_delivered_body_carries_a_phone_a_comment_or_a_priority_reason(
    app, client, clock
) -> None:
    """Every event type of a full day, as an integrator receives it (SPEC §8)."""
    async with receiving() as receiver:
        await put_webhook(client, "all", url=receiver.url)
        await emit_every_type(app, client, clock)
        await issue(client, phone="13912345678")
        committed = await ok(await client.get("/api/v1/branches/hz01/queue", headers=ADMIN))
        assert committed  # the hall still answers
        async with app.state.sessionmaker() as session:
            last = (
                await session.execute(text("SELECT event_seq FROM branches WHERE code = 'hz01'"))
            ).scalar_one()
        await wait_for(lambda: len(receiver.delivered()) >= last, what="every event")
    events = [r.event for r in receiver.delivered()]
    assert [e["seq"] for e in events] == list(range(1, last + 1))
    assert {e["type"] for e in events} == {str(t) for t in EventType}
    everything = b"".join(r.body for r in receiver.received).decode()
    for private in ("13912345678", "13800138000", "熟练", PRIORITY_REASON, "at the door"):
        assert private not in everything


async def test_a_slow_endpoint_holds_up_neither_issuing_nor_another_webhook(client) -> None:
    release = asyncio.Event()

    async def stuck(_h: dict[str, str], _b: bytes) -> int:
        await release.wait()
        return 200

    await setup_branch(client, branch=QUIET)
    async with receiving(stuck) as slow, receiving() as fast:
        await put_webhook(client, "slow", url=slow.url)
        await put_webhook(client, "fast", url=fast.url)
        started = time.monotonic()
        for _ in range(20):
            await issue(client)
        await wait_for(lambda: len(fast.delivered()) == 20, timeout=10, what="the fast webhook")
        elapsed = time.monotonic() - started
        assert elapsed < 5, elapsed
        assert slow.received == []  # still answering the first one
        release.set()
        await wait_for(lambda: len(slow.delivered()) == 20, timeout=10, what="the slow webhook")
    assert [r.event["seq"] for r in slow.delivered()] == [r.event["seq"] for r in fast.delivered()]


async def test_a_webhook_deleted_while_it_delivers_stops_and_leaves_nothing(app, client) -> None:
    release = asyncio.Event()

    async def stuck(_h: dict[str, str], _b: bytes) -> int:
        await release.wait()
        return 200

    await setup_branch(client, branch=QUIET)
    async with receiving(stuck) as receiver:
        await put_webhook(client, "gone", url=receiver.url)
        for _ in range(3):
            await issue(client)
        await asyncio.sleep(0.5)  # the first POST waits for its answer
        await ok(await client.delete(f"{W}/gone", headers=ADMIN), 204)
        release.set()
        await wait_for(lambda: len(receiver.received) == 1, what="the first answer")
        await asyncio.sleep(0.5)
    assert len(receiver.received) == 1
    async with app.state.sessionmaker() as session:
        left = await session.execute(text("SELECT count(*) FROM webhook_cursors"))
        assert left.scalar_one() == 0

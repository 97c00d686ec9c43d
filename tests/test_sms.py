"""The SMS relay (SPEC §9, app/webhooks/sms.py) against a real HTTP receiver on loopback: a
ticket with a phone number gets a signed text on `ticket.near` and on `ticket.called`, in the
branch's wording; a ticket without one gets none; failures are retried like a webhook's; the
relay is set by the environment only, and starts from now."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url
from standardwebhooks import Webhook as ReferenceWebhook

from app.core.clock import SystemClock
from app.core.settings import Settings
from app.main import create_app, sms_relay_settings
from tests.helpers import ADMIN, ADMIN_TOKEN, issue, ok, setup_branch
from tests.webhook_receiver import Receiver, Responder, answer_ok, receiving, wait_for

SECRET = "whsec_" + base64.b64encode(b"sms-gateway-secret-of-32-bytes!!").decode()
PHONE = "13812345678"
B = "/api/v1/branches/hz01"


@contextlib.asynccontextmanager
async def hall(database_url: str, receiver: Receiver | None) -> AsyncIterator[httpx.AsyncClient]:
    """hallq in process, with the relay pointed at `receiver` (None: no relay)."""
    settings = Settings(
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        alerts_interval_s=0,
        webhook_poll_s=0.1,
        webhook_backoff_s=(0.3,),
        sms_url=receiver.url if receiver else "",
        sms_secret=SECRET if receiver else None,
    )
    # The real clock: retries fall due by themselves, and the reference library refuses
    # timestamps more than 5 minutes off.
    app = create_app(settings, SystemClock())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hallq.test") as c:
            yield c


def texts(receiver: Receiver) -> list[dict[str, Any]]:
    return [r.event for r in receiver.delivered()]


async def test_near_and_called_texts_for_a_ticket_with_a_phone(database_url) -> None:
    async with receiving() as receiver, hall(database_url, receiver) as client:
        await setup_branch(client)
        await issue(client, service="a")  # no phone: no text
        ticket = await issue(client, service="a", phone=PHONE)
        await wait_for(lambda: len(receiver.delivered()) >= 1, what="the near text")
        await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
        await ok(await client.post(f"{B}/counters/1/next", headers=ADMIN))  # the other one
        await ok(await client.post(f"{B}/counters/1/complete", headers=ADMIN))
        await ok(await client.post(f"{B}/counters/1/next", headers=ADMIN))
        await wait_for(lambda: len(receiver.delivered()) >= 2, what="the called text")
    near, called = texts(receiver)
    assert near == {
        "kind": "near",
        "phone": PHONE,
        "text": "【Branch hz01】您的号码 A002 前面还有 1 位，请回到大厅等候叫号。",
        "ticket": {"number": ticket["number"], "branch": "hz01"},
    }
    assert called["kind"] == "called" and called["phone"] == PHONE
    assert called["text"] == "【Branch hz01】请 A002 号到 1号窗口 办理。"
    assert len(receiver.delivered()) == 2  # nothing for the ticket without a phone
    for got in receiver.delivered():
        # Signed exactly like a webhook: the reference library verifies it.
        assert ReferenceWebhook(SECRET).verify(got.body, got.headers) == got.event


async def test_the_branchs_wording_and_a_failing_gateway(database_url) -> None:
    answers = iter([500, 503])

    async def flaky(headers: dict[str, str], body: bytes) -> int:
        return next(answers, await answer_ok(headers, body))

    respond: Responder = flaky
    async with receiving(respond) as receiver, hall(database_url, receiver) as client:
        wording = {"near": "{branch}: {number}, {ahead} ahead", "called": "{number} → {counter}"}
        await setup_branch(client, branch={"sms_templates": wording})
        await issue(client, service="a", phone=PHONE)
        await wait_for(lambda: len(receiver.delivered()) >= 1, what="the text, retried")
    assert [r.status for r in receiver.received] == [500, 503, 204]
    assert {r.webhook_id for r in receiver.received} == {receiver.received[0].webhook_id}
    assert texts(receiver)[0]["text"] == "Branch hz01: A001, 0 ahead"


async def test_the_relay_is_the_environments_and_starts_from_now(database_url) -> None:
    async with hall(database_url, None) as client:
        await setup_branch(client)
        await issue(client, service="a", phone=PHONE)  # before the relay: never texted
    async with receiving() as receiver, hall(database_url, receiver) as client:
        listed = await ok(await client.get("/api/v1/webhooks", headers=ADMIN))
        assert "_sms" not in str(listed)  # not the API's to list or change
        response = await client.get("/api/v1/webhooks/_sms", headers=ADMIN)
        assert response.status_code in (404, 422)
        await issue(client, service="a", phone=PHONE)
        await wait_for(lambda: len(receiver.delivered()) >= 1, what="the near text")
        assert texts(receiver)[0]["ticket"]["number"] == "A002"
    async with hall(database_url, None):
        # Unset again: switched off (its cursors stay, for when it is set again).
        dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
        for _ in range(100):
            conn = await asyncpg.connect(dsn)
            enabled = await conn.fetchval("SELECT enabled FROM webhooks WHERE id = '_sms'")
            await conn.close()
            if enabled is False:
                break
            await asyncio.sleep(0.05)
        assert enabled is False


@pytest.mark.parametrize(
    ("url", "secret", "fragment"),
    [
        ("http://sms.example.com/send", SECRET, "https"),
        ("https://sms.example.com/send", "not-a-secret", "whsec_"),
        ("https://sms.example.com/send", None, "HALLQ_SMS_SECRET"),
    ],
)
def test_a_bad_relay_setting_stops_the_start_with_the_reason(url, secret, fragment) -> None:
    settings = Settings(database_url="postgresql+asyncpg://x@h/db", sms_url=url, sms_secret=secret)
    with pytest.raises(RuntimeError, match=fragment):
        sms_relay_settings(settings)

"""Nothing secret reaches the logs: tokens (header or websocket query) and phone numbers."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.helpers import ADMIN_TOKEN, SIMPLE_BRANCH, bearer, new_token, ok, setup_branch
from tests.servers import running_servers
from tests.webhook_receiver import Receiver, receiving, wait_for

pytestmark = pytest.mark.multiprocess

B = "/api/v1/branches/hz01"
PHONE = "13812345678"
SMS_SECRET = "whsec_" + base64.b64encode(b"sms-gateway-secret-of-32-bytes!!").decode()


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_logs_hold_no_tokens_and_no_phone_numbers(database_url, log_format):
    async with receiving() as gateway:
        await _scenario(database_url, log_format, gateway)


async def _scenario(database_url: str, log_format: str, gateway: Receiver) -> None:
    """With the SMS relay on: the phone number goes to the gateway, and nowhere else."""
    env = {
        "HALLQ_LOG_LEVEL": "DEBUG",
        "HALLQ_LOG_FORMAT": log_format,
        "HALLQ_SMS_URL": gateway.url,
        "HALLQ_SMS_SECRET": SMS_SECRET,
    }
    with running_servers(database_url, 1, env=env) as (server,):
        base = server.url
        async with httpx.AsyncClient(base_url=base, timeout=15) as http:
            await setup_branch(http, **SIMPLE_BRANCH)
            kiosk_token = await new_token(http, "kiosk", "hz01")
            kiosk = bearer(kiosk_token)
            ticket = await ok(
                await http.post(
                    f"{base}{B}/tickets", json={"service": "a", "phone": PHONE}, headers=kiosk
                ),
                201,
            )
            # Bad input that carries the phone number and a token must not echo them either.
            bad = await http.post(
                f"{base}{B}/tickets",
                json={"service": "nope", "phone": PHONE, "token": kiosk_token},
                headers=kiosk,
            )
            assert bad.status_code == 422 and PHONE not in bad.text
            wrong = await http.post(
                f"{base}{B}/tickets", json={"service": "a", "phone": PHONE + "99"}, headers=kiosk
            )
            assert wrong.status_code == 422 and PHONE not in wrong.text
            await http.get(f"{base}{B}/queue?token={kiosk_token}&phone={PHONE}", headers=kiosk)
            await http.get(f"{base}{B}/queue", headers={"Authorization": "Bearer hq.bad.secret"})
            detail_response = await http.get(
                f"{base}/api/v1/tickets/{ticket['id']}",
                headers={**kiosk, "X-Request-ID": "lb-7f3a.1"},
            )
            assert detail_response.headers["x-request-id"] == "lb-7f3a.1"
            detail = await ok(detail_response)
            assert PHONE not in json.dumps(detail)
            # A newline in the path must not forge a log line.
            await http.get(f"{base}/api/v1/x%0A2026-01-01%20INFO%20hallq.access%20FORGED")
            async with connect(f"{server.ws_url}{B}/stream?token={kiosk_token}") as ws:
                assert json.loads(await ws.recv())["type"] == "snapshot"
            await wait_for(lambda: bool(gateway.delivered()), what="the text to the gateway")
            assert gateway.delivered()[0].event["phone"] == PHONE
        server.stop()
        logs = server.output()
    assert "GET /api/v1/branches/hz01/queue" in logs  # the access log is there ...
    assert not any(line.startswith("2026-01-01") for line in logs.splitlines())
    forged = "/api/v1/x\\x0a2026-01-01 INFO hallq.access FORGED 404"
    if log_format == "json":
        messages = _check_json_lines(logs)
        assert any(forged in message for message in messages)
    else:
        assert forged in logs
    secret = kiosk_token.rsplit(".", 1)[1]
    for forbidden in (PHONE, PHONE[-8:], secret, ADMIN_TOKEN, "hq.bad.secret"):
        assert forbidden not in logs, forbidden  # ... without what must stay private


def _check_json_lines(logs: str) -> list[str]:
    """Every line is one JSON object; access lines carry the request's fields. Returns the
    messages."""
    lines = [json.loads(line) for line in logs.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    access = [line for line in lines if line["logger"] == "hallq.access"]
    issued = next(line for line in access if line["message"].startswith(f"POST {B}/tickets 201"))
    assert issued["route"] == "/api/v1/branches/{branch}/tickets"
    assert issued["branch"] == "hz01" and isinstance(issued["duration_ms"], float)
    assert len(issued["request_id"]) == 16
    assert any(line.get("request_id") == "lb-7f3a.1" for line in access)
    assert any(line["logger"].startswith("uvicorn") for line in lines)
    return [line["message"] for line in lines]


async def test_the_public_routes_log_no_code_and_no_phone_number(database_url):
    """A ticket's code is a key (SPEC §9): the access log keeps four characters of it. Remote
    join's phone number reaches neither the log nor the answer."""
    with running_servers(database_url, 1, env={"HALLQ_LOG_LEVEL": "DEBUG"}) as (server,):
        async with httpx.AsyncClient(base_url=server.url, timeout=15) as http:
            branch = {**SIMPLE_BRANCH, "branch": {**SIMPLE_BRANCH["branch"],
                                                  "online_join": {"enabled": True}}}  # fmt: skip
            await setup_branch(http, **branch)
            joined = await http.post(
                "/api/v1/public/branches/hz01/tickets", json={"service": "a", "phone": PHONE}
            )
            assert joined.status_code == 201 and PHONE not in joined.text
            code = joined.json()["code"]
            for path in (f"/api/v1/public/tickets/{code}", f"/t/{code}", f"/t/{code}/qr.svg"):
                assert (await http.get(path)).status_code == 200
            await http.post(f"/api/v1/public/tickets/{code}/cancel")
            await http.post(
                "/api/v1/public/branches/hz01/tickets", json={"service": "a", "phone": "139-bad"}
            )
        server.stop()
        logs = server.output()
    assert f"GET /api/v1/public/tickets/{code[:4]}… 200" in logs
    assert f"GET /t/{code[:4]}…/qr.svg 200" in logs
    for forbidden in (code, code[4:], PHONE, PHONE[-8:]):
        assert forbidden not in logs, forbidden

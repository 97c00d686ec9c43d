"""Nothing secret reaches the logs: tokens (header or websocket query) and phone numbers."""

from __future__ import annotations

import json

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.helpers import ADMIN_TOKEN, SIMPLE_BRANCH, bearer, new_token, ok, setup_branch
from tests.servers import running_servers

pytestmark = pytest.mark.multiprocess

B = "/api/v1/branches/hz01"
PHONE = "13812345678"


async def test_logs_hold_no_tokens_and_no_phone_numbers(database_url):
    env = {"HALLQ_LOG_LEVEL": "DEBUG"}
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
            detail = await ok(
                await http.get(f"{base}/api/v1/tickets/{ticket['id']}", headers=kiosk)
            )
            assert PHONE not in json.dumps(detail)
            # A newline in the path must not forge a log line.
            await http.get(f"{base}/api/v1/x%0A2026-01-01%20INFO%20hallq.access%20FORGED")
            async with connect(f"{server.ws_url}{B}/stream?token={kiosk_token}") as ws:
                assert json.loads(await ws.recv())["type"] == "snapshot"
        server.stop()
        logs = server.output()
    assert "GET /api/v1/branches/hz01/queue" in logs  # the access log is there ...
    assert not any(line.startswith("2026-01-01") for line in logs.splitlines())
    assert "/api/v1/x\\x0a2026-01-01 INFO hallq.access FORGED 404" in logs
    secret = kiosk_token.rsplit(".", 1)[1]
    for forbidden in (PHONE, PHONE[-8:], secret, ADMIN_TOKEN, "hq.bad.secret"):
        assert forbidden not in logs, forbidden  # ... without what must stay private


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

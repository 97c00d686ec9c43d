"""Devices across server processes (SPEC §7): a kiosk seen by one process is online in the
other's device list (the coarse last-seen write, docs/devices.md), and a kiosk set out of
service through one process is refused at once by the other (the configuration cache is
emptied by the token table's NOTIFY)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.helpers import ADMIN, bearer
from tests.servers import running_servers

pytestmark = pytest.mark.multiprocess

B = "/api/v1/branches/px01"


async def _configured(http: httpx.AsyncClient, url: str) -> str:
    for path, body in [
        ("", {"name": "px01", "timezone": "Asia/Shanghai"}),
        ("/services/a", {"name": "A", "prefix": "A"}),
        ("/counters/1", {"name": "1", "services": ["a"]}),
    ]:
        response = await http.put(f"{url}{B}{path}", json=body, headers=ADMIN)
        assert response.status_code == 201, response.text
    created = await http.post(
        f"{url}/api/v1/tokens",
        json={"role": "kiosk", "branch": "px01", "label": "hall kiosk"},
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    token: str = created.json()["token"]
    return token


async def _listed(http: httpx.AsyncClient, url: str) -> dict[str, object]:
    response = await http.get(f"{url}/api/v1/tokens?branch=px01", headers=ADMIN)
    assert response.status_code == 200, response.text
    [kiosk] = response.json()
    assert isinstance(kiosk, dict)
    return kiosk


async def test_presence_and_out_of_service_cross_processes(database_url, pg):
    with running_servers(database_url, 2) as (one, two):
        async with httpx.AsyncClient(timeout=15) as http:
            token = await _configured(http, one.url)
            kiosk = bearer(token)
            before = await _listed(http, two.url)
            assert before["online"] is False and before["last_seen_at"] is None

            # Used on process one only: process two sees it online from the stored sighting.
            assert (await http.get(f"{one.url}{B}/queue", headers=kiosk)).status_code == 200
            for _ in range(100):
                seen = await _listed(http, two.url)
                if seen["online"]:
                    break
                await asyncio.sleep(0.1)
            assert seen["online"] is True and seen["last_seen_at"] is not None

            # Out of service through process two: process one refuses the kiosk's next press.
            patched = await http.patch(
                f"{two.url}/api/v1/tokens/{seen['id']}",
                json={"out_of_service": True},
                headers=ADMIN,
            )
            assert patched.status_code == 200, patched.text
            statuses = []
            for _ in range(50):
                issued = await http.post(
                    f"{one.url}{B}/tickets", json={"service": "a"}, headers=kiosk
                )
                statuses.append(issued.status_code)
                if issued.status_code == 409:
                    break
                await asyncio.sleep(0.1)
            assert statuses[-1] == 409, statuses
            assert issued.json()["type"].endswith("kiosk-out-of-service")
            # Back in service through process one: process two issues again.
            await http.patch(
                f"{one.url}/api/v1/tokens/{seen['id']}",
                json={"out_of_service": False},
                headers=ADMIN,
            )
            for _ in range(50):
                again = await http.post(
                    f"{two.url}{B}/tickets", json={"service": "a"}, headers=kiosk
                )
                if again.status_code == 201:
                    break
                await asyncio.sleep(0.1)
            assert again.status_code == 201, again.text

"""Devices (SPEC §7, issue 19): the token list, PATCH, last seen and online, kiosks out of
service, and the pairing link and QR code returned at creation."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import httpx
import segno

from app.tokens.pairing import qr_svg
from tests.helpers import ADMIN, assert_problem, bearer, ok, setup_branch

T = "/api/v1/tokens"
STAFF = {"s1": {"name": "王芳", "role": "clerk"}, "m1": {"name": "张伟", "role": "manager"}}


async def create(client: httpx.AsyncClient, headers: Any = ADMIN, **body: str) -> dict[str, Any]:
    created: dict[str, Any] = await ok(await client.post(T, json=body, headers=headers), 201)
    return created


async def two_branches(client: httpx.AsyncClient) -> None:
    await setup_branch(client, "hz01", staff=STAFF)
    await setup_branch(client, "sh02", staff=STAFF)


async def test_the_list_has_no_secrets_and_is_filtered_by_branch(client):
    await two_branches(client)
    kiosk = await create(client, role="kiosk", branch="hz01", label="门口")
    other = await create(client, role="display", branch="sh02")
    await create(client, role="monitor")
    listed = await ok(await client.get(T, headers=ADMIN))
    assert {t["id"] for t in listed} >= {kiosk["id"], other["id"]}
    assert all("token" not in t and "secret_hash" not in t for t in listed)
    assert kiosk["token"].split(".")[2] not in str(listed)
    one = await ok(await client.get(T, params={"branch": "hz01"}, headers=ADMIN))
    assert [t["id"] for t in one] == [kiosk["id"]]
    assert set(one[0]) == {
        "id", "role", "branch", "staff", "label", "created_at", "last_seen_at", "online",
        "out_of_service",
    }  # fmt: skip
    assert one[0]["label"] == "门口" and one[0]["out_of_service"] is False
    assert one[0]["last_seen_at"] is None and one[0]["online"] is False


async def test_a_manager_lists_only_their_branch(client):
    await two_branches(client)
    manager = bearer((await create(client, role="manager", branch="hz01", staff="m1"))["token"])
    mine = await create(client, role="kiosk", branch="hz01")
    await create(client, role="kiosk", branch="sh02")
    listed = await ok(await client.get(T, headers=manager))
    assert {t["branch"] for t in listed} == {"hz01"} and mine["id"] in {t["id"] for t in listed}
    assert_problem(await client.get(T, params={"branch": "sh02"}, headers=manager), 403)
    kiosk = bearer(mine["token"])
    assert_problem(await client.get(T, headers=kiosk), 403)
    assert_problem(await client.get(T, params={"branch": "no such!"}, headers=ADMIN), 422)


async def test_online_after_a_request_and_offline_60_s_later(client, app, clock):
    await two_branches(client)
    created = await create(client, role="kiosk", branch="hz01")
    await ok(await client.get("/api/v1/branches/hz01/queue", headers=bearer(created["token"])))
    await app.state.seen.flush()
    [row] = await ok(await client.get(T, params={"branch": "hz01"}, headers=ADMIN))
    assert row["online"] is True
    assert row["last_seen_at"].startswith(clock.now().strftime("%Y-%m-%dT%H:%M:%S"))
    clock.advance(61)
    [row] = await ok(await client.get(T, params={"branch": "hz01"}, headers=ADMIN))
    assert row["online"] is False and row["last_seen_at"] is not None


async def test_last_seen_is_written_at_most_once_a_minute(client, app, clock):
    """No write per request: a second request within the minute leaves the column alone."""
    await two_branches(client)
    created = await create(client, role="kiosk", branch="hz01")
    headers = bearer(created["token"])
    q = "/api/v1/branches/hz01/queue"
    await ok(await client.get(q, headers=headers))
    await app.state.seen.flush()
    first = clock.now()
    clock.advance(30)
    await ok(await client.get(q, headers=headers))
    await app.state.seen.flush()
    assert await _stored_last_seen(app, created["id"]) == first
    clock.advance(31)
    await ok(await client.get(q, headers=headers))
    await app.state.seen.flush()
    assert await _stored_last_seen(app, created["id"]) == clock.now()


async def _stored_last_seen(app, token_id: str) -> Any:
    from app.auth.models import ApiToken

    async with app.state.sessionmaker() as session:
        row = await session.get(ApiToken, token_id)
        return row.last_seen_at


async def test_patch_label_and_out_of_service(client):
    await two_branches(client)
    manager = bearer((await create(client, role="manager", branch="hz01", staff="m1"))["token"])
    kiosk = await create(client, role="kiosk", branch="hz01")
    url = f"{T}/{kiosk['id']}"
    row = await ok(await client.patch(url, json={"label": "一楼"}, headers=manager))
    assert row["label"] == "一楼" and row["out_of_service"] is False
    row = await ok(await client.patch(url, json={"out_of_service": True}, headers=manager))
    assert row["label"] == "一楼" and row["out_of_service"] is True
    row = await ok(await client.patch(url, json={"label": None}, headers=ADMIN))
    assert row["label"] is None and row["out_of_service"] is True


async def test_patch_refusals(client):
    await two_branches(client)
    manager = bearer((await create(client, role="manager", branch="hz01", staff="m1"))["token"])
    theirs = await create(client, role="kiosk", branch="sh02")
    mine = await create(client, role="kiosk", branch="hz01")
    display = await create(client, role="display", branch="hz01")
    other = f"{T}/{theirs['id']}"
    assert_problem(await client.patch(other, json={"label": "x"}, headers=manager), 403)
    url = f"{T}/{mine['id']}"
    for bad in ({}, {"out_of_service": "maybe"}, {"out_of_service": None}, {"colour": "red"},
                {"label": "x" * 101}):  # fmt: skip
        assert_problem(await client.patch(url, json=bad, headers=manager), 422)
    display_url = f"{T}/{display['id']}"
    body = {"out_of_service": True}
    assert_problem(await client.patch(display_url, json=body, headers=manager), 422)
    assert_problem(await client.patch(f"{T}/nosuch", json=body, headers=ADMIN), 404)
    await ok(await client.delete(url, headers=ADMIN), 204)
    assert_problem(await client.patch(url, json=body, headers=ADMIN), 404)


async def test_an_out_of_service_kiosk_cannot_issue_until_back(client):
    await two_branches(client)
    kiosk = await create(client, role="kiosk", branch="hz01")
    headers = bearer(kiosk["token"])
    issue = "/api/v1/branches/hz01/tickets"
    await ok(await client.post(issue, json={"service": "a"}, headers=headers), 201)
    url = f"{T}/{kiosk['id']}"
    await ok(await client.patch(url, json={"out_of_service": True}, headers=ADMIN))
    refused = assert_problem(
        await client.post(issue, json={"service": "a"}, headers=headers), 409, contains="暂停使用"
    )
    assert refused["type"].endswith("/kiosk-out-of-service")
    own = await ok(await client.get(f"{T}/self", headers=headers))
    assert own["id"] == kiosk["id"] and own["out_of_service"] is True
    await ok(await client.patch(url, json={"out_of_service": False}, headers=ADMIN))
    await ok(await client.post(issue, json={"service": "a"}, headers=headers), 201)
    assert (await ok(await client.get(f"{T}/self", headers=headers)))["out_of_service"] is False


async def test_self_for_the_environment_admin_is_404(client):
    assert_problem(await client.get(f"{T}/self", headers=ADMIN), 404)


async def test_pairing_link_and_qr_only_for_devices(client):
    await two_branches(client)
    kiosk = await create(client, role="kiosk", branch="hz01")
    url = kiosk["pairing"]["url"]
    assert url.endswith(f"/kiosk/hz01?token={kiosk['token']}")
    display = await create(client, role="display", branch="hz01")
    assert f"/display/hz01?token={display['token']}" in display["pairing"]["url"]
    above = await create(client, role="display", branch="hz01", counter="1")
    assert f"/window/hz01/1?token={above['token']}" in above["pairing"]["url"]
    clerk = await create(client, role="clerk", branch="hz01", staff="s1", counter="1")
    assert f"/counter/hz01/1?token={clerk['token']}" in clerk["pairing"]["url"]
    roaming = await create(client, role="clerk", branch="hz01", staff="s1")
    assert roaming["pairing"] is None
    assert (await create(client, role="manager", branch="hz01", staff="m1"))["pairing"] is None
    assert (await create(client, role="monitor"))["pairing"] is None
    body = {"role": "clerk", "branch": "hz01", "staff": "s1", "counter": "nosuch"}
    assert_problem(await client.post(T, json=body, headers=ADMIN), 422)
    body = {"role": "kiosk", "branch": "hz01", "counter": "1"}
    assert_problem(await client.post(T, json=body, headers=ADMIN), 422)
    listed = await ok(await client.get(T, headers=ADMIN))
    assert "pairing" not in str(listed) and kiosk["token"] not in str(listed)


async def test_the_qr_code_is_an_svg_of_the_link(client):
    await two_branches(client)
    kiosk = await create(client, role="kiosk", branch="hz01")
    svg = kiosk["pairing"]["qr_svg"]
    root = ET.fromstring(svg)  # noqa: S314 - our own server's output
    assert root.tag.endswith("svg") and int(root.get("width", "0")) > 0
    assert any(el.tag.endswith("path") and el.get("d") for el in root.iter())
    assert svg == qr_svg(kiosk["pairing"]["url"])
    assert segno.make(kiosk["pairing"]["url"], error="m").designator  # encodable as made

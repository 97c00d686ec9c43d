"""Tokens: creation, hashing, revocation, and who may do what (SPEC §2 roles)."""

from __future__ import annotations

import hashlib

import asyncpg
import pytest

from tests.helpers import ADMIN, assert_problem, bearer, issue, make_token, ok, setup_branch

B = "/api/v1/branches/hz01"
OTHER = "/api/v1/branches/sh02"


@pytest.fixture
async def branches(client):
    staff = {"s1": {"name": "王芳", "role": "clerk"}}
    await setup_branch(client, staff=staff)
    await setup_branch(client, "sh02", staff=staff)


async def test_token_secret_is_returned_once_and_stored_hashed(client, branches, pg, database_url):
    created = await ok(
        await client.post(
            "/api/v1/tokens",
            json={"role": "kiosk", "branch": "hz01", "label": "kiosk at the door"},
            headers=ADMIN,
        ),
        201,
    )
    assert created["role"] == "kiosk" and created["branch"] == "hz01"
    assert created["label"] == "kiosk at the door"
    token = created["token"]
    prefix, token_id, secret = token.split(".")
    assert prefix == "hq" and token_id == created["id"] and len(secret) >= 40
    conn = await asyncpg.connect(pg.dsn(database_url.rsplit("/", 1)[1]))
    try:
        row = await conn.fetchrow("SELECT * FROM api_tokens WHERE id = $1", token_id)
    finally:
        await conn.close()
    assert bytes(row["secret_hash"]) == hashlib.sha256(secret.encode()).digest()
    assert secret not in str(dict(row))
    # The token works.
    await ok(await client.get(f"{B}/queue", headers=bearer(token)))


async def test_missing_and_bad_tokens_are_401(client, branches):
    kiosk = await make_token(client, "kiosk", "hz01")
    token = kiosk["Authorization"].removeprefix("Bearer ")
    _, token_id, secret = token.split(".")
    for headers in [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": f"Bearer hq.{token_id}.{secret[:-1]}x"},
        {"Authorization": f"Bearer hq.{'0' * 16}.{secret}"},
        {"Authorization": f"Bearer hq.{token_id}"},
        {"Authorization": "Bearer test-admin-token-0123456789x"},
    ]:
        response = await client.get(f"{B}/queue", headers=headers)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_revocation_is_immediate(client, branches):
    created = await ok(
        await client.post(
            "/api/v1/tokens", json={"role": "display", "branch": "hz01"}, headers=ADMIN
        ),
        201,
    )
    token = bearer(created["token"])
    await ok(await client.get(f"{B}/queue", headers=token))
    response = await client.delete(f"/api/v1/tokens/{created['id']}", headers=ADMIN)
    assert response.status_code == 204
    assert_problem(await client.get(f"{B}/queue", headers=token), 401, contains="revoked")
    # Revoking again is harmless; an unknown id is a 404.
    assert (
        await client.delete(f"/api/v1/tokens/{created['id']}", headers=ADMIN)
    ).status_code == 204
    assert_problem(await client.delete("/api/v1/tokens/doesnotexist", headers=ADMIN), 404)


async def test_token_scope_rules(client, branches):
    for body, status in [
        ({"role": "kiosk"}, 422),  # needs a branch
        ({"role": "clerk", "branch": "hz01"}, 422),  # needs a staff member
        ({"role": "clerk", "branch": "hz01", "staff": "nobody"}, 422),
        ({"role": "kiosk", "branch": "nope"}, 422),
        ({"role": "kiosk", "branch": "hz01", "staff": "s1"}, 422),
        ({"role": "monitor", "branch": "hz01"}, 422),
        ({"role": "admin", "branch": "hz01"}, 422),
        ({"role": "superuser"}, 422),
        ({"role": "kiosk", "branch": "hz01", "label": "x" * 101}, 422),
        ({"role": "monitor"}, 201),
        ({"role": "admin"}, 201),
        ({"role": "clerk", "branch": "hz01", "staff": "s1"}, 201),
        ({"role": "manager", "branch": "hz01"}, 201),
    ]:
        response = await client.post("/api/v1/tokens", json=body, headers=ADMIN)
        assert response.status_code == status, (body, response.text)


async def test_managers_hand_out_lower_tokens_for_their_own_branch_only(client, branches):
    manager = await make_token(client, "manager", "hz01")
    kiosk = await ok(
        await client.post(
            "/api/v1/tokens", json={"role": "kiosk", "branch": "hz01"}, headers=manager
        ),
        201,
    )
    await ok(
        await client.post(
            "/api/v1/tokens",
            json={"role": "clerk", "branch": "hz01", "staff": "s1"},
            headers=manager,
        ),
        201,
    )
    for body in [
        {"role": "kiosk", "branch": "sh02"},
        {"role": "manager", "branch": "hz01"},
        {"role": "admin"},
        {"role": "monitor"},
    ]:
        assert_problem(await client.post("/api/v1/tokens", json=body, headers=manager), 403)
    # Managers revoke their branch's kiosk tokens, not other branches' and not managers'.
    other_kiosk = await ok(
        await client.post(
            "/api/v1/tokens", json={"role": "kiosk", "branch": "sh02"}, headers=ADMIN
        ),
        201,
    )
    other_manager = await ok(
        await client.post(
            "/api/v1/tokens", json={"role": "manager", "branch": "hz01"}, headers=ADMIN
        ),
        201,
    )
    assert_problem(await client.delete(f"/api/v1/tokens/{other_kiosk['id']}", headers=manager), 403)
    assert_problem(
        await client.delete(f"/api/v1/tokens/{other_manager['id']}", headers=manager), 403
    )
    assert (
        await client.delete(f"/api/v1/tokens/{kiosk['id']}", headers=manager)
    ).status_code == 204
    # Lower roles manage no tokens at all.
    for role in ["kiosk", "display"]:
        token = await make_token(client, role, "hz01")
        assert_problem(
            await client.post(
                "/api/v1/tokens", json={"role": "kiosk", "branch": "hz01"}, headers=token
            ),
            403,
        )


async def test_the_role_matrix_on_the_foundation_routes(client, branches):
    """Every role against its own branch and another, on each kind of route."""
    tokens = {
        "manager": await make_token(client, "manager", "hz01"),
        "clerk": await make_token(client, "clerk", "hz01", "s1"),
        "kiosk": await make_token(client, "kiosk", "hz01"),
        "display": await make_token(client, "display", "hz01"),
        "monitor": await make_token(client, "monitor"),
        "admin": ADMIN,
    }
    own = await issue(client)
    other = await issue(client, "sh02")
    routes = {
        "configure": ("PUT", f"{B}/services/z", {"name": "Z", "prefix": "Z"}),
        "issue": ("POST", f"{B}/tickets", {"service": "a"}),
        "queue": ("GET", f"{B}/queue", None),
        "counters": ("GET", f"{B}/counters", None),
        "ticket": ("GET", f"/api/v1/tickets/{own['id']}", None),
        "open-counter": ("POST", f"{B}/counters/1/open", None),
    }
    allowed = {
        "admin": set(routes),
        "manager": set(routes),
        "clerk": {"issue", "queue", "counters", "ticket", "open-counter"},
        "kiosk": {"issue", "queue", "counters", "ticket"},
        "display": {"queue", "counters", "ticket"},
        "monitor": set(),
    }
    for role, headers in tokens.items():
        for name, (method, path, body) in routes.items():
            response = await client.request(method, path, json=body, headers=headers)
            if name in allowed[role]:
                assert response.status_code < 300, (role, name, response.text)
                if name == "open-counter":  # sign out again for the next role
                    await ok(await client.post(f"{B}/counters/1/close", headers=ADMIN))
            else:
                assert_problem(response, 403)
            # The same request against the other branch: only admin gets through.
            other_path = path.replace(B, OTHER).replace(own["id"], other["id"])
            response = await client.request(method, other_path, json=body, headers=headers)
            if role == "admin":
                assert response.status_code < 300, (role, name, response.text)
                if name == "open-counter":
                    await ok(await client.post(f"{OTHER}/counters/1/close", headers=ADMIN))
            else:
                assert_problem(response, 403)


async def test_ticket_actions_need_the_ticket_branch(client, branches):
    kiosk_other = await make_token(client, "kiosk", "sh02")
    ticket = await issue(client)
    assert_problem(await client.get(f"/api/v1/tickets/{ticket['id']}", headers=kiosk_other), 403)
    assert_problem(
        await client.post(f"/api/v1/tickets/{ticket['id']}/cancel", headers=kiosk_other), 403
    )
    display = await make_token(client, "display", "hz01")
    assert_problem(
        await client.post(f"/api/v1/tickets/{ticket['id']}/cancel", headers=display), 403
    )
    kiosk = await make_token(client, "kiosk", "hz01")
    await ok(await client.post(f"/api/v1/tickets/{ticket['id']}/cancel", headers=kiosk))

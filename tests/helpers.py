"""Small helpers the tests share: tokens, a configured branch, problem+json checks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import httpx

from app.stream.service import events_after

ADMIN_TOKEN = "test-admin-token-0123456789"
# Read-only: it is shared by every test module (a library that adds headers to the mapping it
# is given once leaked them into later tests).
ADMIN: Mapping[str, str] = MappingProxyType({"Authorization": f"Bearer {ADMIN_TOKEN}"})

SERVICES = {
    "a": {"name": "综合业务", "prefix": "A", "target_wait_s": 600},
    "b": {"name": "缴费充值", "prefix": "B", "target_wait_s": 600},
    "v": {"name": "VIP", "prefix": "V", "target_wait_s": 180},
}
COUNTERS = {
    "1": {"name": "1", "services": ["a", "b"]},
    "2": {"name": "2", "services": ["b", "a"]},
    "9": {"name": "9", "services": ["v", "a"]},
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json() if response.content else None


def assert_problem(response: httpx.Response, status: int, *, contains: str = "") -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status whose detail mentions `contains`."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("/problems/")
    assert body["title"] and isinstance(body["detail"], str) and body["detail"]
    assert contains.lower() in body["detail"].lower(), body["detail"]
    return body


# One business type, no counters, UTC: what the real-server tests of limits and logs need.
SIMPLE_BRANCH: dict[str, Any] = {
    "branch": {"name": "x", "timezone": "UTC"},
    "services": {"a": {"name": "A", "prefix": "A"}},
    "counters": {},
}


async def setup_branch(
    client: httpx.AsyncClient,
    code: str = "hz01",
    *,
    branch: dict[str, Any] | None = None,
    services: dict[str, dict[str, Any]] | None = None,
    counters: dict[str, dict[str, Any]] | None = None,
    staff: dict[str, dict[str, Any]] | None = None,
) -> None:
    body = {"name": f"Branch {code}", "timezone": "Asia/Shanghai", **(branch or {})}
    await ok(await client.put(f"/api/v1/branches/{code}", json=body, headers=ADMIN), 201)
    for svc, svc_body in (SERVICES if services is None else services).items():
        await ok(
            await client.put(
                f"/api/v1/branches/{code}/services/{svc}", json=svc_body, headers=ADMIN
            ),
            201,
        )
    for ctr, ctr_body in (COUNTERS if counters is None else counters).items():
        await ok(
            await client.put(
                f"/api/v1/branches/{code}/counters/{ctr}", json=ctr_body, headers=ADMIN
            ),
            201,
        )
    for person, person_body in (staff or {}).items():
        await ok(
            await client.put(
                f"/api/v1/branches/{code}/staff/{person}", json=person_body, headers=ADMIN
            ),
            201,
        )


async def new_token(
    client: httpx.AsyncClient,
    role: str,
    branch: str | None = None,
    staff: str | None = None,
    *,
    as_headers: Mapping[str, str] = ADMIN,
) -> str:
    """A new token of `role`: its secret (for `?token=` or an Authorization header)."""
    body: dict[str, Any] = {"role": role}
    if branch is not None:
        body["branch"] = branch
    if staff is not None:
        body["staff"] = staff
    created = await ok(await client.post("/api/v1/tokens", json=body, headers=as_headers), 201)
    token: str = created["token"]
    return token


async def make_token(
    client: httpx.AsyncClient,
    role: str,
    branch: str | None = None,
    staff: str | None = None,
    *,
    as_headers: Mapping[str, str] = ADMIN,
) -> dict[str, str]:
    """A new token of `role`, returned as request headers."""
    return bearer(await new_token(client, role, branch, staff, as_headers=as_headers))


async def issue(
    client: httpx.AsyncClient,
    branch: str = "hz01",
    service: str = "a",
    *,
    headers: Mapping[str, str] = ADMIN,
    **fields: Any,
) -> dict[str, Any]:
    body = {"service": service, **fields}
    ticket: dict[str, Any] = await ok(
        await client.post(f"/api/v1/branches/{branch}/tickets", json=body, headers=headers), 201
    )
    return ticket


async def stream_events(app: Any, branch: str = "hz01") -> list[dict[str, Any]]:
    """The envelopes the stream (and webhooks) send for `branch`, as the stream reads them."""
    async with app.state.sessionmaker() as session, session.begin():
        emitted = await events_after(session, branch, 0, limit=10_000)
    return [json.loads(e.message) for e in emitted]

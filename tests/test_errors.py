"""Whatever a client sends, the answer is a 4xx problem+json that says what was wrong."""

from __future__ import annotations

import pytest

from tests.helpers import ADMIN, assert_problem, setup_branch

B = "/api/v1/branches/hz01"


async def test_unknown_path_and_method(client):
    assert_problem(
        await client.get("/api/v1/nothing-here", headers=ADMIN), 404, contains="nothing-here"
    )
    assert_problem(await client.delete(f"{B}/queue", headers=ADMIN), 405, contains="DELETE")
    assert_problem(await client.patch(B, json={}, headers=ADMIN), 405)


async def test_body_that_is_not_json(client):
    await setup_branch(client)
    for content in [b"{not json", b"", b"\xff\xfe", b"[1, 2", b"null"]:
        response = await client.post(
            f"{B}/tickets", content=content, headers={**ADMIN, "Content-Type": "application/json"}
        )
        assert response.status_code in (400, 422), (content, response.text)
        assert_problem(response, response.status_code)
    bad = await client.post(
        f"{B}/tickets", content=b"{not json", headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert_problem(bad, 400, contains="not valid JSON")


@pytest.mark.parametrize(
    "body",
    [
        [],
        "a",
        42,
        {"service": 12},
        {"service": "a" * 10_000},
        {"service": "a", "phone": "1" * 10_000},
        {"service": "a", "priority": {"$gt": ""}},
        {"service": "'; DROP TABLE tickets; --"},
    ],
)
async def test_odd_bodies_are_422(client, body):
    await setup_branch(client)
    assert_problem(await client.post(f"{B}/tickets", json=body, headers=ADMIN), 422)


async def test_validation_errors_never_echo_input(client):
    await setup_branch(client)
    secret_phone = "19999999999999"
    problem = assert_problem(
        await client.post(
            f"{B}/tickets", json={"service": "a", "phone": secret_phone}, headers=ADMIN
        ),
        422,
    )
    assert secret_phone not in str(problem)
    assert problem["errors"][0]["loc"] == ["body", "phone"]


async def test_huge_numbers_and_wrong_types_in_configuration(client):
    await setup_branch(client)
    for body in [
        {"name": "x", "prefix": "X", "target_wait_s": 10**30},
        {"name": "x", "prefix": "X", "target_wait_s": 1.5},
        {"name": "x", "prefix": "X", "target_wait_s": "ten minutes"},
        {"name": "x", "prefix": "X", "max_wait_s": -1},
    ]:
        assert_problem(await client.put(f"{B}/services/x", json=body, headers=ADMIN), 422)

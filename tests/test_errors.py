"""Whatever a client sends, the answer is a 4xx problem+json that says what was wrong; a
database that cannot be reached is a 503 problem."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError

from app.core.errors import install_error_handlers
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


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (asyncpg.ConnectionDoesNotExistError("connection was closed in the middle"), 503),
        (asyncpg.CannotConnectNowError("the database system is starting up"), 503),
        (asyncpg.AdminShutdownError("terminating connection due to administrator command"), 503),
        (asyncpg.TooManyConnectionsError("sorry, too many clients already"), 503),
        (asyncpg.InterfaceError("connection is closed"), 503),
        (asyncpg.UniqueViolationError("duplicate key value"), 500),
    ],
)
async def test_asyncpg_errors_of_a_lost_connection_are_503_however_wrapped(error, status):
    """asyncpg's connection errors count as the database being unavailable even deep in a
    chain of causes; any other error of the database stays a 500."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fail")
    async def fail() -> None:
        try:
            raise error
        except Exception as exc:
            raise RuntimeError("a wrapper of our own") from exc

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://hallq.test") as client:
        assert_problem(await client.get("/fail"), status)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.DeadlockDetectedError("deadlock detected"),
        asyncpg.SerializationError("could not serialize access"),
    ],
)
async def test_a_transaction_undone_by_the_database_is_a_409_to_retry(error):
    """PostgreSQL undoing a transaction that ran into another one is not the server failing:
    the client hears that nothing changed and that the same request again will go through."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/collide")
    async def collide() -> None:
        raise DBAPIError("UPDATE tickets ...", {}, error)

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://hallq.test") as client:
        problem = assert_problem(await client.get("/collide"), 409, contains="retry")
    assert problem["type"] == "/problems/concurrent-change"

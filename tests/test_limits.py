"""Limits: request body size, the per-token issuing rate (across processes), security headers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text

from app.tickets.rate_limit import forget_old_counts_and_claims
from tests.helpers import ADMIN, SIMPLE_BRANCH, assert_problem, make_token, ok, setup_branch
from tests.servers import running_servers

B = "/api/v1/branches/hz01"


async def test_a_body_over_the_limit_is_refused(client):
    await setup_branch(client)
    big = {"service": "a", "padding": "x" * (70 * 1024)}
    body = assert_problem(await client.post(f"{B}/tickets", json=big, headers=ADMIN), 413)
    assert "65536 bytes" in body["detail"]

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"service": "a", "padding": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}'

    # Streamed without a Content-Length: refused as soon as it passes the limit.
    streamed = await client.post(
        f"{B}/tickets",
        content=chunks(),
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert_problem(streamed, 413)
    view = await ok(await client.get(f"{B}/queue", headers=ADMIN))
    assert sum(s["waiting"] for s in view["services"]) == 0


async def test_api_responses_carry_security_headers(client):
    response = await client.get("/healthz")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    problem = await client.get(f"{B}/queue")
    assert problem.status_code == 401
    assert problem.headers["x-content-type-options"] == "nosniff"


async def test_issuing_is_limited_per_token(client, clock):
    await setup_branch(client)
    kiosk = await make_token(client, "kiosk", "hz01")
    other_kiosk = await make_token(client, "kiosk", "hz01")
    clock.set(clock.now().replace(second=10))
    for _ in range(60):
        await ok(await client.post(f"{B}/tickets", json={"service": "a"}, headers=kiosk), 201)
    refused = await client.post(f"{B}/tickets", json={"service": "a"}, headers=kiosk)
    body = assert_problem(refused, 429, contains="60 tickets a minute")
    assert refused.headers["retry-after"] == "50"
    assert body["retry_after_s"] == 50
    # Other tokens and the admin token are not held back by this one.
    await ok(await client.post(f"{B}/tickets", json={"service": "a"}, headers=other_kiosk), 201)
    await ok(await client.post(f"{B}/tickets", json={"service": "a"}, headers=ADMIN), 201)
    # The refused request issued nothing: 62 tickets, numbers without a gap.
    view = await ok(await client.get(f"{B}/queue", headers=ADMIN))
    assert [s["waiting"] for s in view["services"] if s["service"] == "a"] == [62]
    clock.advance(50)  # the next minute
    await ok(await client.post(f"{B}/tickets", json={"service": "a"}, headers=kiosk), 201)


async def test_a_retry_is_not_counted_against_the_limit(client, clock):
    await setup_branch(client)
    kiosk = await make_token(client, "kiosk", "hz01")
    clock.set(clock.now().replace(second=10))
    for i in range(60):
        retry = {**kiosk, "Idempotency-Key": f"press-{i}"}
        await ok(await client.post(f"{B}/tickets", json={"service": "a"}, headers=retry), 201)
    assert_problem(await client.post(f"{B}/tickets", json={"service": "a"}, headers=kiosk), 429)
    # A kiosk whose answer got lost retries: it gets its ticket back, at the limit or not.
    retry = {**kiosk, "Idempotency-Key": "press-59"}
    again = await client.post(f"{B}/tickets", json={"service": "a"}, headers=retry)
    assert again.status_code == 201 and again.json()["number"] == "A060"
    assert again.headers["idempotent-replayed"] == "true"


async def test_old_counts_and_key_claims_are_forgotten_and_retries_still_work(app, client, clock):
    await setup_branch(client)
    kiosk = await make_token(client, "kiosk", "hz01")
    retry = {**kiosk, "Idempotency-Key": "press-1"}
    first = await ok(await client.post(f"{B}/tickets", json={"service": "a"}, headers=retry), 201)

    async def rows(table: str) -> int:
        async with app.state.sessionmaker() as session:
            return int((await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())

    assert (await rows("issue_rate"), await rows("issue_keys")) == (1, 1)
    async with app.state.sessionmaker() as session:
        await forget_old_counts_and_claims(session, clock.now() + timedelta(minutes=3))
    assert (await rows("issue_rate"), await rows("issue_keys")) == (0, 1)  # the claim is kept
    async with app.state.sessionmaker() as session:
        await forget_old_counts_and_claims(session, clock.now() + timedelta(days=1, seconds=1))
    assert await rows("issue_keys") == 0
    # A retry a day later still finds its ticket, through the ticket itself.
    again = await client.post(f"{B}/tickets", json={"service": "a"}, headers=retry)
    assert again.status_code == 201 and again.json()["id"] == first["id"]
    assert (await rows("issue_keys"), await rows("tickets")) == (0, 1)


@pytest.mark.multiprocess
async def test_the_issuing_limit_holds_across_processes(database_url):
    env = {"HALLQ_ISSUE_RATE_PER_MINUTE": "10"}
    with running_servers(database_url, 2, env=env) as servers:
        async with httpx.AsyncClient(base_url=servers[0].url, timeout=15) as http:
            await setup_branch(http, **SIMPLE_BRANCH)
            kiosk = await make_token(http, "kiosk", "hz01")
            # Stay inside one minute window (the limit counts per calendar minute).
            if time.time() % 60 > 45:
                await asyncio.sleep(61 - time.time() % 60)
            responses = await asyncio.gather(
                *(
                    http.post(
                        f"{servers[i % 2].url}{B}/tickets", json={"service": "a"}, headers=kiosk
                    )
                    for i in range(16)
                )
            )
            statuses = sorted(r.status_code for r in responses)
            assert statuses == [201] * 10 + [429] * 6
            numbers = sorted(r.json()["number"] for r in responses if r.status_code == 201)
            assert numbers == [f"A{i:03d}" for i in range(1, 11)]

"""The per-process cache of tokens, branches and business types (app/core/config_cache.py):
requests use it, a change made on any process empties it, and it is bypassed while changes
cannot be announced."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncpg
import httpx
import pytest

from app.core.config_cache import ConfigCache
from tests.helpers import ADMIN, SIMPLE_BRANCH, assert_problem, issue, new_token, ok, setup_branch
from tests.servers import running_servers

B = "/api/v1/branches/hz01"


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def listening_cache(**kwargs: object) -> ConfigCache:
    cache = ConfigCache(**kwargs)  # type: ignore[arg-type]
    cache.set_listening(True)
    return cache


def test_a_read_overtaken_by_a_change_is_not_kept():
    cache = listening_cache()
    generation = cache.generation  # a request starts reading the row
    cache.clear()  # a change is announced meanwhile: what it read may be stale
    cache.put("k", "stale", generation)
    assert cache.get("k") is None
    cache.put("k", "fresh", cache.generation)
    assert cache.get("k") == "fresh"


def test_nothing_is_kept_or_served_while_changes_cannot_be_announced():
    cache = ConfigCache()
    cache.put("k", 1, cache.generation)
    assert cache.get("k") is None  # not listening yet
    cache.set_listening(True)
    cache.put("k", 1, cache.generation)
    assert cache.get("k") == 1
    generation = cache.generation
    cache.set_listening(False)  # the LISTEN connection dropped: announcements may be lost
    assert cache.get("k") is None
    cache.put("k", 1, generation)
    cache.put("k", 1, cache.generation)
    assert cache.get("k") is None
    cache.set_listening(True)  # back: it starts empty
    assert cache.get("k") is None


def test_entries_expire_and_the_cache_stays_bounded():
    ticks = Ticks()
    cache = listening_cache(ttl_s=60, max_entries=3, monotonic=ticks)
    cache.put("k", 1, cache.generation)
    ticks.now += 60
    assert cache.get("k") == 1
    ticks.now += 0.1
    assert cache.get("k") is None
    for key in ("a", "b", "c", "d"):
        cache.put(key, key, cache.generation)
    assert [key for key in "abcd" if key in cache] == ["d"]  # full: started over
    assert "k" not in listening_cache(ttl_s=0)  # 0 turns it off


async def active_cache(app) -> ConfigCache:
    """The app's cache, once its LISTEN connection is up (it connects in the background)."""
    cache: ConfigCache = app.state.config_cache
    deadline = time.monotonic() + 10
    while not cache.active:
        assert time.monotonic() < deadline, "the LISTEN connection did not come up"
        await asyncio.sleep(0.02)
    return cache


def token_id(token: str) -> str:
    return token.split(".")[1]


async def test_requests_use_the_cache_and_this_process_sees_its_changes_at_once(app, client):
    cache = await active_cache(app)
    await setup_branch(client)
    token = await new_token(client, "kiosk", "hz01")
    kiosk = {"Authorization": f"Bearer {token}"}
    assert (await issue(client, headers=kiosk))["number"] == "A001"
    assert ("token", token_id(token)) in cache
    assert ("issue", "hz01", "a") in cache
    # A new prefix: the next ticket has it.
    body = {"name": "综合业务", "prefix": "Z"}
    await ok(await client.put(f"{B}/services/a", json=body, headers=ADMIN))
    assert ("issue", "hz01", "a") not in cache
    assert (await issue(client, headers=kiosk))["number"] == "Z002"
    # A revoked token is refused at once.
    await ok(await client.delete(f"/api/v1/tokens/{token_id(token)}", headers=ADMIN), 204)
    refused = await client.post(f"{B}/tickets", json={"service": "a"}, headers=kiosk)
    assert_problem(refused, 401, contains="revoked")


@pytest.mark.multiprocess
async def test_a_change_on_one_process_empties_the_cache_of_the_others(database_url):
    with running_servers(database_url, 2) as (one, two):
        async with httpx.AsyncClient(base_url=one.url, timeout=15) as http:
            await setup_branch(http, **SIMPLE_BRANCH)
            token = await new_token(http, "kiosk", "hz01")
            kiosk = {"Authorization": f"Bearer {token}"}
            # Process two reads (and caches) the token and the business type, and serves from
            # its cache after that: a change that is not announced (triggers off for this one
            # statement) goes unseen there.
            for expected in ("A001", "A002"):
                ticket = await ok(
                    await http.post(f"{two.url}{B}/tickets", json={"service": "a"}, headers=kiosk),
                    201,
                )
                assert ticket["number"] == expected
            conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
            try:
                async with conn.transaction():
                    await conn.execute("SET LOCAL session_replication_role = replica")
                    await conn.execute("UPDATE services SET prefix = 'Y' WHERE code = 'a'")
            finally:
                await conn.close()
            unseen = await http.post(f"{two.url}{B}/tickets", json={"service": "a"}, headers=kiosk)
            assert unseen.json()["number"] == "A003"

            async def on_two_until(seen: Callable[[httpx.Response], bool]) -> httpx.Response:
                """Issue on process two until its answer shows the change: it must within 2 s
                (a notification takes milliseconds; an entry would expire after 60 s)."""
                deadline = time.monotonic() + 2
                while True:
                    response = await http.post(
                        f"{two.url}{B}/tickets", json={"service": "a"}, headers=kiosk
                    )
                    if seen(response) or time.monotonic() > deadline:
                        return response
                    await asyncio.sleep(0.05)

            body = {"name": "A", "prefix": "Z"}
            await ok(await http.put(f"{B}/services/a", json=body, headers=ADMIN))
            renamed = await on_two_until(lambda r: r.json()["number"].startswith("Z"))
            assert renamed.status_code == 201 and renamed.json()["number"].startswith("Z")
            await ok(await http.delete(f"/api/v1/tokens/{token_id(token)}", headers=ADMIN), 204)
            refused = await on_two_until(lambda r: r.status_code == 401)
            assert_problem(refused, 401, contains="revoked")

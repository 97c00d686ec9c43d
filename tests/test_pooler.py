"""hallq behind PgBouncer in transaction mode (docs/operations.md): the counter race of
tests/test_counter_concurrency.py over two processes whose API goes through the pooler with no
statement cache, while LISTEN and the event notifier go straight to PostgreSQL
(`HALLQ_LISTEN_DATABASE_URL`); and the stream still delivers."""

from __future__ import annotations

import json

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.helpers import ADMIN, ADMIN_TOKEN
from tests.pooler import pgbouncer
from tests.servers import running_servers
from tests.test_counter_concurrency import race_counters

pytestmark = pytest.mark.multiprocess


def _pooled_env(database_url: str) -> dict[str, str]:
    return {
        "HALLQ_LISTEN_DATABASE_URL": database_url,
        "HALLQ_DB_STATEMENT_CACHE_SIZE": "0",
        "HALLQ_DB_PLAN_CACHE_MODE": "server",
    }


async def test_the_counter_race_through_pgbouncer(database_url, pg):
    with pgbouncer(database_url) as pooled:
        await race_counters(pg, database_url, via=pooled, env=_pooled_env(database_url))


async def test_the_stream_and_the_config_cache_through_pgbouncer(database_url):
    with pgbouncer(database_url) as pooled:
        env = _pooled_env(database_url)
        with running_servers(pooled, 2, env=env) as (one, two):
            b = "/api/v1/branches/pb01"
            async with httpx.AsyncClient(timeout=15) as http:
                for path, body in [
                    ("", {"name": "pb01", "timezone": "Asia/Shanghai"}),
                    ("/services/a", {"name": "A", "prefix": "A"}),
                ]:
                    response = await http.put(f"{one.url}{b}{path}", json=body, headers=ADMIN)
                    assert response.status_code == 201, response.text
                stream = f"{two.ws_url}{b}/stream?token={ADMIN_TOKEN}"
                async with connect(stream) as ws:
                    assert json.loads(await ws.recv())["type"] == "snapshot"
                    issued = await http.post(
                        f"{one.url}{b}/tickets", json={"service": "a"}, headers=ADMIN
                    )
                    assert issued.status_code == 201, issued.text
                    event = json.loads(await ws.recv())
                    assert event["type"] == "ticket.issued"
                    assert event["data"]["ticket"]["number"] == "A001"
                # A change made through one process is seen by the other at once.
                await http.put(
                    f"{one.url}{b}/services/a", json={"name": "改名", "prefix": "A"}, headers=ADMIN
                )
                config = (await http.get(f"{two.url}{b}", headers=ADMIN)).json()
                assert config["services"][0]["name"] == "改名"

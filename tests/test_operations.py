"""Health, readiness, and the schema that Alembic owns."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app import main as app_main
from app.core.clock import ManualClock
from app.core.health import head_revision
from app.core.migrations import alembic_config, upgrade
from app.core.partitions import modelled
from app.core.settings import Settings
from app.main import create_app
from app.models import Base
from tests.conftest import T0
from tests.helpers import ADMIN_TOKEN

CONNECTED = {"listener": "connected", "notifier": "connected"}


async def ready_and_connected(client: httpx.AsyncClient) -> httpx.Response:
    """/readyz once both of the process's own connections are up (they open in the background
    at start-up), or as it is after 10 s."""
    for _ in range(200):
        ready = await client.get("/readyz")
        if ready.json().get("stream") == CONNECTED:
            break
        await asyncio.sleep(0.05)
    return ready


async def test_healthz_and_readyz(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await ready_and_connected(client)
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "schema": head_revision(), "stream": CONNECTED}


async def test_the_notifier_reconnects_when_its_connection_is_cut_while_idle(
    client, database_url, pg
):
    """Nothing is sent meanwhile: the notifier notices the loss from the connection itself, not
    from a failed send (whose notifications would then wait for the sweep)."""
    assert (await ready_and_connected(client)).json()["stream"] == CONNECTED
    database = database_url.rsplit("/", 1)[1]
    find_notifier = (
        "SELECT pid FROM pg_stat_activity "
        "WHERE application_name = 'hallq-notifier' AND datname = $1"
    )
    conn = await asyncpg.connect(pg.dsn(database))
    try:
        [before] = [row["pid"] for row in await conn.fetch(find_notifier, database)]
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", before)
        after: list[int] = []
        for _ in range(200):  # the first reconnect is 0.2 s after the loss
            after = [row["pid"] for row in await conn.fetch(find_notifier, database)]
            if after and before not in after:
                break
            await asyncio.sleep(0.05)
        assert after and before not in after
    finally:
        await conn.close()
    assert (await ready_and_connected(client)).json()["stream"] == CONNECTED


async def test_a_failed_start_up_leaves_nothing_running(settings, clock, monkeypatch):
    """The listener, the notifier and the presence task start before housekeeping: when it
    cannot start, they are stopped again."""

    def cannot_start(*_args: object) -> None:
        raise RuntimeError("housekeeping cannot start")

    monkeypatch.setattr(app_main, "start_housekeeping", cannot_start)
    app = create_app(settings, clock)
    running_before = asyncio.all_tasks()
    with pytest.raises(RuntimeError, match="housekeeping"):
        async with app.router.lifespan_context(app):
            pass  # pragma: no cover - the start-up fails
    assert asyncio.all_tasks() == running_before


def test_readyz_says_when_the_schema_is_behind(pg):
    name = "hallq_unmigrated"
    url = pg.create_database(name)

    async def readyz() -> httpx.Response:
        app = create_app(Settings(database_url=url, admin_token=ADMIN_TOKEN), ManualClock(T0))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                return await c.get("/readyz")

    try:
        upgrade(url, "0001")
        response = asyncio.run(readyz())
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "run migrations" in response.json()["detail"]
    finally:
        pg.drop_database(name)


async def test_readyz_when_the_database_is_unreachable():
    settings = Settings(
        database_url="postgresql+asyncpg://nobody:x@127.0.0.1:9/none",
        admin_token=ADMIN_TOKEN,
        db_connect_timeout_s=1,
    )
    app = create_app(settings, ManualClock(T0))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            ready = await c.get("/readyz")
            assert ready.status_code == 503
            connecting = {"listener": "connecting", "notifier": "connecting"}
            assert ready.json()["stream"] == connecting
            # Requests that need the database fail fast with a 503, not a 500.
            response = await c.get(
                "/api/v1/branches/x", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
            )
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"]
            assert (await c.get("/healthz")).status_code == 200
            # /metrics still answers, saying the database is out of reach (an alert rule tells
            # this from a process that is down: deploy/prometheus/alerts.yml).
            scraped = await c.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            assert scraped.status_code == 200, scraped.text
            assert "hallq_database_up 0.0" in scraped.text
            assert "http_requests_total" in scraped.text


def test_migrations_are_found_from_any_directory(pg, tmp_path, monkeypatch):
    """make run, /readyz, the tests and the bench share one Alembic configuration, which finds
    alembic.ini and migrations/ beside the app package, not in the current directory."""
    name = "hallq_migrations_elsewhere"
    url = pg.create_database(name)
    monkeypatch.chdir(tmp_path)
    try:
        upgrade(url)
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert head is not None and head == head_revision()
    finally:
        pg.drop_database(name)


def test_migrations_upgrade_downgrade_and_are_idempotent(pg):
    name = "hallq_migrations_check"
    url = pg.create_database(name)
    try:
        config = alembic_config(url)
        command.upgrade(config, "head")
        command.upgrade(config, "head")  # a no-op on a migrated database
        command.downgrade(config, "base")
        command.upgrade(config, "head")

        async def check() -> None:
            engine = create_async_engine(url)
            async with engine.connect() as conn:
                version = (
                    await conn.execute(text("SELECT version_num FROM alembic_version"))
                ).scalar()
                assert version == head_revision()
                # The models and the migrations describe the same schema (the history tables'
                # partitions are made by the migrations and housekeeping, not modelled).
                diff = await conn.run_sync(
                    lambda sync: compare_metadata(
                        MigrationContext.configure(sync, opts={"include_name": modelled}),
                        Base.metadata,
                    )
                )
                assert diff == []
                # Events are notified after the commit (app/events/notifier.py), not by a
                # trigger inside the writing transaction.
                triggers = (
                    await conn.execute(
                        text(
                            "SELECT count(*) FROM pg_trigger"
                            " WHERE tgrelid = CAST('branch_events' AS regclass)"
                            " AND NOT tgisinternal"
                        )
                    )
                ).scalar()
                assert triggers == 0
            await engine.dispose()

        asyncio.run(check())
    finally:
        pg.drop_database(name)

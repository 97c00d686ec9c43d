from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from app.core.clock import ManualClock
from app.core.migrations import upgrade
from app.core.settings import Settings
from app.main import create_app
from tests.db import TestServer, start_test_server
from tests.helpers import ADMIN_TOKEN

# 10:00 on a Tuesday in Shanghai: inside any sensible opening hours.
T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def pg() -> Iterator[TestServer]:
    server = start_test_server()
    try:
        yield server
    finally:
        if server.embedded is not None:
            server.embedded.stop()


@pytest.fixture(scope="session")
def template_db(pg: TestServer) -> Iterator[str]:
    name = f"hallq_template_{uuid.uuid4().hex[:8]}"
    upgrade(pg.create_database(name))
    try:
        yield name
    finally:
        pg.drop_database(name)


@pytest.fixture
def database_url(pg: TestServer, template_db: str) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    name = f"hallq_test_{uuid.uuid4().hex[:10]}"
    url = pg.create_database(name, template=template_db)
    try:
        yield url
    finally:
        pg.drop_database(name)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Housekeeping runs on a timer: tests that want alerts evaluate them explicitly.
    return Settings(database_url=database_url, admin_token=ADMIN_TOKEN, alerts_interval_s=0)


@pytest.fixture
async def app(settings: Settings, clock: ManualClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hallq.test") as c:
        yield c

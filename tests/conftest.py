from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.core.clock import ManualClock
from app.core.migrations import upgrade
from app.core.settings import Settings
from app.main import create_app
from tests.browser import CHROMIUM, TIMEOUT_MS, Hall, require_browser
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


# Browser tests (tests/test_web*.py, tests/browser.py).


@pytest.fixture
async def hall(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[Hall]:
    """The demo hall on a real server; `@pytest.mark.parametrize("hall", [{...}], indirect=True)`
    passes `env` for the server and `min_open_counters` for the branch."""
    require_browser()
    options = getattr(request, "param", {})
    hall = Hall(database_url, env=options.get("env"))
    try:
        await hall.ready()
        await hall.configure(options.get("min_open_counters", 0))
        yield hall
    finally:
        hall.stop()
        with contextlib.suppress(OSError):
            os.unlink(hall.server.log.name)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    require_browser()
    from playwright.async_api import async_playwright
    from playwright.async_api import expect as playwright_expect

    playwright_expect.set_options(timeout=TIMEOUT_MS)

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            # A lobby TV is configured to make sound without a touch first (docs/ui.md).
            args=["--autoplay-policy=no-user-gesture-required"],
        )
        try:
            yield launched
        finally:
            await launched.close()

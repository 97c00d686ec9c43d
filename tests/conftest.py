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
from tests.browser import (
    Hall,
    launched_chromium,
    require_browser,
    require_speech,
    speech_dispatcher,
    xvfb,
)
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
    # Housekeeping runs on a timer: tests that want alerts evaluate them explicitly. So does the
    # wait quotes' writer: tests that want quotes written flush them (app.state.quotes).
    return Settings(
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        alerts_interval_s=0,
        estimate_quote_flush_s=0,
    )


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
    """Headless Chromium: it lists no speech voices at all."""
    async with launched_chromium() as launched:
        yield launched


@pytest.fixture
async def speech_browser() -> AsyncIterator[Any]:
    """Chromium as on a Linux lobby PC: headed on a private Xvfb display, speaking through a
    private speech-dispatcher with espeak-ng (tests/browser.py)."""
    require_browser()
    require_speech()
    with xvfb() as display, speech_dispatcher() as speech_env:
        env: dict[str, str | float | bool] = {**os.environ, **speech_env, "DISPLAY": display}
        async with launched_chromium(
            headless=False, args=("--enable-speech-dispatcher",), env=env
        ) as launched:
            yield launched

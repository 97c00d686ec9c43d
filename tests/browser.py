"""Driving the pages in a real browser: the demo hall on a real server, Chromium, and helpers.

Browser tests use Playwright for Python with Debian's Chromium (`/usr/bin/chromium`, or
HALLQ_CHROMIUM) against a real uvicorn process (tests/servers.py). Where no Chromium is
installed they skip and say how to install it; with CI set they fail instead. The fixtures
`hall` and `browser` (tests/conftest.py) are built from what is here.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.demo import COUNTERS as DEMO_COUNTERS
from devtools.demo import SERVICES as DEMO_SERVICES
from devtools.demo import STAFF as DEMO_STAFF
from devtools.servers import wait_ready
from tests.db import ROOT
from tests.helpers import ADMIN, bearer, ok
from tests.servers import start_server

CHROMIUM = Path(os.environ.get("HALLQ_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = ROOT / "docs" / "screenshots"
BRANCH = "demo"
BRANCH_NAME = "示范营业厅 Demo hall"
TIMEOUT_MS = 20_000


def require_browser() -> None:
    problem = None
    if not CHROMIUM.exists():
        problem = (
            f"no Chromium at {CHROMIUM}: install it to run the browser tests "
            "(Debian/Ubuntu: `apt-get install chromium`, or set HALLQ_CHROMIUM)"
        )
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            problem = "Playwright for Python is missing: `.venv/bin/pip install -e '.[dev]'`"
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{problem}; CI is set, so the browser tests must run")
        pytest.skip(problem)


class Hall:
    """A real server process on the test database, with the demo branch configured."""

    def __init__(self, database_url: str, env: dict[str, str] | None = None) -> None:
        self.database_url = database_url
        self.env = env
        self.server = start_server(database_url, env=env)
        self.tokens: dict[str, str] = {}

    @property
    def url(self) -> str:
        return self.server.url

    async def ready(self) -> None:
        await asyncio.to_thread(wait_ready, self.server)

    def stop(self) -> None:
        self.server.stop()
        self.server.log.close()

    async def restart(self) -> None:
        """A new process on the same port (the old one must be stopped)."""
        self.server = start_server(self.database_url, env=self.env, port=self.server.port)
        await self.ready()

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10)

    async def configure(self, min_open_counters: int = 0) -> None:
        async with self.http() as http:
            body = {
                "name": BRANCH_NAME,
                "timezone": "Asia/Shanghai",
                "min_open_counters": min_open_counters,
            }
            await ok(await http.put(f"/api/v1/branches/{BRANCH}", json=body, headers=ADMIN), 201)
            for code, (name, prefix, target) in DEMO_SERVICES.items():
                body = {"name": name, "prefix": prefix, "target_wait_s": target}
                await ok(
                    await http.put(
                        f"/api/v1/branches/{BRANCH}/services/{code}", json=body, headers=ADMIN
                    ),
                    201,
                )
            for code, profile in DEMO_COUNTERS.items():
                body = {"name": code, "services": profile}
                await ok(
                    await http.put(
                        f"/api/v1/branches/{BRANCH}/counters/{code}", json=body, headers=ADMIN
                    ),
                    201,
                )
            for code, (name, role) in DEMO_STAFF.items():
                await ok(
                    await http.put(
                        f"/api/v1/branches/{BRANCH}/staff/{code}",
                        json={"name": name, "role": role},
                        headers=ADMIN,
                    ),
                    201,
                )
            for label, grant in {
                "kiosk": {"role": "kiosk"},
                "display": {"role": "display"},
                "manager": {"role": "manager", "staff": "m1"},
                "s1": {"role": "clerk", "staff": "s1"},
                "s2": {"role": "clerk", "staff": "s2"},
                "s3": {"role": "clerk", "staff": "s3"},
            }.items():
                created = await ok(
                    await http.post(
                        "/api/v1/tokens", json={**grant, "branch": BRANCH}, headers=ADMIN
                    ),
                    201,
                )
                self.tokens[label] = created["token"]

    async def api(
        self, method: str, path: str, who: str = "admin", status: int = 200, **kwargs: Any
    ) -> Any:
        headers = ADMIN if who == "admin" else bearer(self.tokens[who])
        async with self.http() as http:
            response = await http.request(method, f"/api/v1{path}", headers=headers, **kwargs)
            return await ok(response, status)

    async def issue(self, service: str, priority: str = "normal") -> dict[str, Any]:
        body = {"service": service, "priority": priority}
        ticket: dict[str, Any] = await self.api(
            "POST", f"/branches/{BRANCH}/tickets", "kiosk", 201, json=body
        )
        return ticket

    async def counter(self, code: str, action: str, who: str = "admin", **kwargs: Any) -> Any:
        status = kwargs.pop("status", 200)
        return await self.api(
            "POST", f"/branches/{BRANCH}/counters/{code}/{action}", who, status, **kwargs
        )

    def page_url(self, path: str, who: str) -> str:
        return f"{self.url}{path}?token={self.tokens[who]}"


# Replaces the print dialog: records that the kiosk asked to print.
FAKE_PRINT = "window.print = () => { window.__printed = (window.__printed || 0) + 1; };"


async def new_context(browser: Any, width: int, height: int) -> Any:
    context = await browser.new_context(
        viewport={"width": width, "height": height},
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        accept_downloads=True,
    )
    await context.add_init_script(FAKE_PRINT)
    return context


def watch_console(page: Any, errors: list[str]) -> None:
    """Collect uncaught script errors and Content-Security-Policy violations."""

    def on_console(message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            errors.append(f"{page.url}: {message.text}")

    page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
    page.on("console", on_console)


async def printed(page: Any, at_least: int = 1) -> int:
    """How often the page asked to print (FAKE_PRINT), once it has at least `at_least` times
    or after 10 s. Polled from here: wait_for_function polls with `new Function` inside the
    page, which the page's own CSP (no unsafe-eval) refuses."""
    for _ in range(100):
        count = int(await page.evaluate("window.__printed || 0"))
        if count >= at_least:
            return count
        await asyncio.sleep(0.1)
    return int(await page.evaluate("window.__printed || 0"))


async def screenshot(page: Any, name: str, *, full_page: bool = False) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def expect(locator: Any) -> Any:
    from playwright.async_api import expect as playwright_expect

    return playwright_expect(locator)

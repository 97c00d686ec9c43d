"""Driving the pages in a real browser: the demo hall on a real server, Chromium, and helpers.

Browser tests use Playwright for Python with Debian's Chromium (`/usr/bin/chromium`, or
HALLQ_CHROMIUM) against a real uvicorn process (tests/servers.py). Where no Chromium is
installed they skip and say how to install it; with CI set they fail instead. The fixtures
`hall`, `browser` and `speech_browser` (tests/conftest.py) are built from what is here.

`speech_browser` is Chromium as on a Linux lobby PC: headed, on its own Xvfb display, with
`--enable-speech-dispatcher` and a private speech-dispatcher (espeak-ng) whose sound goes to
libao's null driver, so utterances start and end without a sound card.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
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


def require(problem: str | None) -> None:
    """Skip with the reason, or fail when CI is set: there the browser tests must run."""
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{problem}; CI is set, so the browser tests must run")
    pytest.skip(problem)


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
    require(problem)


SPEECH_PACKAGES = "xvfb speech-dispatcher speech-dispatcher-espeak-ng espeak-ng"
SPEECHD_CONFIG = Path("/etc/speech-dispatcher")
SPEECHD_ESPEAK = Path("/usr/lib/speech-dispatcher-modules/sd_espeak-ng")


def require_speech() -> None:
    """Xvfb, speech-dispatcher and its espeak-ng module (what `.ci/run` installs)."""
    missing = [
        name
        for name, present in [
            ("Xvfb", shutil.which("Xvfb") is not None),
            ("speech-dispatcher", shutil.which("speech-dispatcher") is not None),
            ("speech-dispatcher's espeak-ng module", SPEECHD_ESPEAK.exists()),
            ("its configuration", (SPEECHD_CONFIG / "speechd.conf").exists()),
        ]
        if not present
    ]
    if missing:
        require(
            f"no {', '.join(missing)}: the headed speech test needs them "
            f"(Debian/Ubuntu: `apt-get install {SPEECH_PACKAGES}`)"
        )


def _wait(check: Any, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def xvfb() -> Iterator[str]:
    """An Xvfb server on a free display (Xvfb picks it: -displayfd); yields `:N`."""
    read_fd, write_fd = os.pipe()
    process = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1920x1080x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], 15)
        number = os.read(read_fd, 64).decode().strip() if ready else ""
        if not number.isdigit():
            process.kill()
            _, err = process.communicate(timeout=5)
            raise RuntimeError(f"Xvfb did not start: {err.decode(errors='replace')[-2000:]}")
        yield f":{number}"
    finally:
        os.close(read_fd)
        _stop(process)
        if process.stderr is not None:
            process.stderr.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a helper process, killing it if it does not go within 5 s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextlib.contextmanager
def speech_dispatcher() -> Iterator[dict[str, str]]:
    """A private speech-dispatcher: its own socket and configuration (sound to libao's null
    driver). Yields the environment a browser needs to find it (XDG_RUNTIME_DIR)."""
    with tempfile.TemporaryDirectory(prefix="hallq-speechd-") as tmp:
        root = Path(tmp)
        runtime = root / "run"
        (runtime / "speech-dispatcher").mkdir(parents=True, mode=0o700)
        runtime.chmod(0o700)
        config = root / "config"
        shutil.copytree(SPEECHD_CONFIG, config)
        with (config / "speechd.conf").open("a") as conf:
            conf.write('\nAudioOutputMethod "libao"\n')
        home = root / "home"
        home.mkdir()
        (home / ".libao").write_text("default_driver=null\n")
        socket = runtime / "speech-dispatcher" / "speechd.sock"
        env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
        log = (root / "speechd.log").open("w")
        process = subprocess.Popen(
            [
                *("speech-dispatcher", "--run-single", "--timeout", "0"),
                *("--config-dir", str(config)),
                *("--communication-method", "unix_socket", "--socket-path", str(socket)),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait(lambda: socket.exists() or process.poll() is not None, "speech-dispatcher")
            if process.poll() is not None:
                log.flush()
                output = (root / "speechd.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"speech-dispatcher did not start: {output}")
            yield {"XDG_RUNTIME_DIR": str(runtime), "SPEECHD_ADDRESS": f"unix_socket:{socket}"}
        finally:
            _stop(process)
            log.close()


@contextlib.asynccontextmanager
async def launched_chromium(
    *,
    headless: bool = True,
    args: tuple[str, ...] = (),
    env: dict[str, str | float | bool] | None = None,
) -> AsyncIterator[Any]:
    require_browser()
    from playwright.async_api import async_playwright
    from playwright.async_api import expect as playwright_expect

    playwright_expect.set_options(timeout=TIMEOUT_MS)

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=headless,
            # A lobby TV is configured to make sound without a touch first (docs/ui.md).
            args=["--autoplay-policy=no-user-gesture-required", *args],
            env=env,
        )
        try:
            yield launched
        finally:
            await launched.close()


class Hall:
    """A real server process on the test database, with the demo branch configured."""

    def __init__(self, database_url: str, env: dict[str, str] | None = None) -> None:
        self.database_url = database_url
        self.env = env
        self.server = start_server(database_url, env=env)
        self.tokens: dict[str, str] = {}
        self.branch: dict[str, Any] = {}

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
            self.branch = body
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

    async def set_announcement(self, **announcement: Any) -> dict[str, Any]:
        """The branch's announcement settings (SPEC §3: mode, repeat, rate, voice)."""
        body = {**self.branch, "announcement": announcement}
        branch: dict[str, Any] = await self.api("PUT", f"/branches/{BRANCH}", json=body)
        return branch

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


async def press_shortcut(page: Any, key: str) -> None:
    """Press a clerk console shortcut once its button can take it. The console ignores keys
    while an action is in flight, and the live view can show the new state before the action's
    own answer has arrived, so a state change alone does not mean the next key will count."""
    button = page.locator(f'#actions [data-key="{key}"]:not([hidden])')
    await expect(button).to_be_enabled()
    await page.keyboard.press(key)


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


# What a customer page says of a quoted range: common.js `waitRange`, whose rules are in
# docs/estimate.md ("On the ticket"). WAIT_RANGE_TEXT matches any of its Chinese forms.
WAIT_RANGE_TEXT = re.compile(r"约 \d+(–\d+)? 分钟|\d+ 分钟内|即将叫号")


def wait_range_text(range_s: list[int]) -> tuple[str, str]:
    """The (Chinese, English) words for the quoted range `[low, high]` in seconds."""
    low, high = range_s[0] // 60, math.ceil(range_s[1] / 60)
    if range_s[1] < 60:
        return "即将叫号", "very soon"
    if low < 1:
        return f"{high} 分钟内", f"within {high} min"
    if low == high:
        return f"约 {low} 分钟", f"about {low} min"
    return f"约 {low}–{high} 分钟", f"about {low}–{high} min"

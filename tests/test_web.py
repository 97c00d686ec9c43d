"""The pages (app/web): served with their security headers, and driven in a real browser.

Browser tests use Playwright for Python with Debian's Chromium against a real uvicorn process
(tests/browser.py; the fixtures `hall` and `browser` are in tests/conftest.py). They save
screenshots of each page to docs/screenshots/ for the README. The service desk's are in
tests/test_web_desk.py, the counter screen's in tests/test_web_window.py.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
import tomllib
from pathlib import Path

import pytest

from app.web.views import STATIC_DIR, TEMPLATES_DIR
from devtools.demo import SERVICES as DEMO_SERVICES
from tests.browser import (
    BRANCH,
    BRANCH_NAME,
    WAIT_RANGE_TEXT,
    expect,
    new_context,
    press_shortcut,
    printed,
    screenshot,
    wait_range_text,
    watch_console,
)
from tests.db import ROOT
from tests.helpers import bearer

PAGES = [
    "/display/demo",
    "/kiosk/demo",
    "/counter/demo/1",
    "/window/demo/1",
    "/dashboard/demo",
    "/desk/demo",
    "/admin",
    "/admin/demo",
    "/region",
]


# ------------------------------------------------------------------------------------------------
# Without a browser: headers, static files, packaging.


@pytest.mark.parametrize("path", PAGES)
async def test_pages_have_security_headers(client, path):
    response = await client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert re.search(r"connect-src 'self' ws://hallq\.test wss://hallq\.test", csp), csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    # No inline script or style: everything comes from /web/static under the CSP.
    assert "<script>" not in response.text and "style=" not in response.text
    assert 'type="module" src="/web/static/' in response.text


async def test_page_fills_in_codes(client):
    response = await client.get("/counter/demo/7")
    assert 'data-branch="demo"' in response.text and 'data-counter="7"' in response.text
    bad = await client.get("/display/not%20a%20code")
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")


async def test_static_files(client):
    js = await client.get("/web/static/display.js")
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    assert js.headers["x-content-type-options"] == "nosniff"
    css = await client.get("/web/static/kiosk.css")
    assert css.headers["content-type"].startswith("text/css")
    # The printed ticket's stylesheet, shared by the kiosk and the service desk.
    assert '@import url("receipt.css")' in css.text
    receipt = await client.get("/web/static/receipt.css")
    assert "@media print" in receipt.text and "80mm" in receipt.text
    for path in [
        "/web/static/nothing.js",
        "/web/static/%2e%2e/views.py",
        "/web/static/..%2fviews.py",
        "/web/static/",
    ]:
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/problem+json")


def test_package_data_covers_every_web_file():
    """An installed hallq (not just this checkout) must carry the pages."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["app.web"]
    web = STATIC_DIR.parent
    files = [p for d in (STATIC_DIR, TEMPLATES_DIR) for p in d.rglob("*") if p.is_file()]
    assert files
    for path in files:
        relative = path.relative_to(web).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


# ------------------------------------------------------------------------------------------------
# In a browser.


async def test_kiosk_ticket_called_by_clerk_is_announced_on_display(hall, browser):
    errors: list[str] = []
    context = await new_context(browser, 1920, 1080)
    display = await context.new_page()
    watch_console(display, errors)
    await display.goto(hall.page_url(f"/display/{BRANCH}", "display"))
    body = display.locator("body")
    await expect(body).to_have_attribute("data-connection", "live")
    # The token left the address bar and lives in local storage.
    assert "token=" not in display.url
    stored = await display.evaluate("localStorage.getItem('hallq.token.display.demo')")
    assert stored == hall.tokens["display"]
    await expect(display.locator("#branch-name")).to_have_text(BRANCH_NAME)

    kiosk = await context.new_page()
    watch_console(kiosk, errors)
    await kiosk.set_viewport_size({"width": 1080, "height": 1920})
    await kiosk.goto(hall.page_url(f"/kiosk/{BRANCH}", "kiosk"))
    button = kiosk.locator('.service-btn[data-service="a"]')
    await expect(button).to_contain_text("等候 0 人")
    await kiosk.locator('#priority [data-priority="special"]').click()
    await expect(kiosk.locator('#priority [data-priority="special"]')).to_have_attribute(
        "aria-checked", "true"
    )
    await button.click()
    await expect(kiosk.locator("#t-number")).to_have_text("A001")
    await expect(kiosk.locator("#t-branch")).to_have_text(BRANCH_NAME)
    await expect(kiosk.locator("#t-service")).to_contain_text("General business")
    await expect(kiosk.locator("#t-priority")).to_contain_text("爱心通道")
    await expect(kiosk.locator("#t-ahead")).to_contain_text("0 人")
    # The quoted range, in the words of docs/estimate.md ("约 8–15 分钟"), on screen and paper.
    issued = await kiosk.evaluate("window.hallq.lastTicket")
    zh, en = wait_range_text(issued["estimated_wait_range_s"])
    await expect(kiosk.locator("#t-wait")).to_contain_text(zh)
    await expect(kiosk.locator("#t-wait")).to_contain_text(en)
    await expect(button.locator(".svc-wait")).to_contain_text(WAIT_RANGE_TEXT)
    await expect(kiosk.locator("#t-time")).not_to_be_empty()
    assert await printed(kiosk) >= 1
    # The press carried an Idempotency-Key: the same key again is the same ticket.
    key = await kiosk.evaluate("window.hallq.lastIdempotencyKey")
    assert key
    async with hall.http() as http:
        again = await http.post(
            f"/api/v1/branches/{BRANCH}/tickets",
            json={"service": "a", "priority": "special", "channel": "kiosk"},
            headers={**bearer(hall.tokens["kiosk"]), "Idempotency-Key": key},
        )
        assert again.status_code == 201 and again.json()["number"] == "A001"
        assert again.headers.get("idempotent-replayed") == "true"

    # The display counts the waiting ticket, silently.
    await expect(display.locator('.tile[data-service="a"] .waiting-count')).to_have_text("1")
    assert await display.evaluate("window.hallq.announced.length") == 0

    console = await context.new_page()
    watch_console(console, errors)
    await console.set_viewport_size({"width": 1440, "height": 900})
    await console.goto(hall.page_url(f"/counter/{BRANCH}/1", "s1"))
    await expect(console.locator("#state")).to_have_attribute("data-state", "closed")
    await expect(console.locator('[data-action="next"] kbd')).to_have_text("N")
    await press_shortcut(console, "o")  # sign in
    await expect(console.locator("#state")).to_have_attribute("data-state", "open")
    await expect(console.locator('#queue tr[data-service="a"] .waiting-count')).to_have_text("1")
    await console.locator('[data-action="next"]').click()
    await expect(console.locator("#cur-number")).to_have_text("A001")
    await expect(console.locator("#current")).to_have_attribute("data-status", "called")

    # The display shows the call large, with the announcement, and speaks it.
    await expect(display.locator("#now-number")).to_have_text("A001")
    await expect(display.locator("#now-counter")).to_contain_text("1号窗口")
    await expect(display.locator("#now-text")).to_contain_text("请A001号到1号窗口办理")
    await expect(display.locator("#now-text")).to_contain_text(
        "Ticket A001, please go to counter 1"
    )
    await expect(body).to_have_attribute(
        "data-last-spoken", "请A001号到1号窗口办理 Ticket A001, please go to counter 1"
    )
    first = await display.evaluate("window.hallq.announced")
    assert [(a["type"], a["number"]) for a in first] == [("ticket.called", "A001")]
    await expect(display.locator('.tile[data-service="a"] .waiting-count')).to_have_text("0")

    # A recall is announced again.
    await press_shortcut(console, "r")
    await expect(body).to_have_attribute("data-announced-count", "2")
    second = await display.evaluate("window.hallq.announced")
    assert second[1]["type"] == "ticket.recalled" and second[1]["seq"] > second[0]["seq"]
    await expect(body).to_have_attribute("data-last-spoken-seq", str(second[1]["seq"]))

    # A reloaded screen shows the latest call again, but not as news.
    await display.reload()
    await expect(body).to_have_attribute("data-connection", "live")
    await expect(display.locator("#now-number")).to_have_text("A001")
    await display.wait_for_timeout(1500)
    assert await display.evaluate("window.hallq.announced.length") == 0
    assert await body.get_attribute("data-last-spoken") is None

    assert errors == []
    await context.close()


async def test_display_recovers_after_server_restart(hall, browser):
    await hall.issue("a")
    await hall.counter("1", "open")
    await hall.counter("1", "next")
    context = await new_context(browser, 1920, 1080)
    display = await context.new_page()
    await display.goto(hall.page_url(f"/display/{BRANCH}", "display"))
    body = display.locator("body")
    await expect(body).to_have_attribute("data-connection", "live")
    await expect(display.locator("#now-number")).to_have_text("A001")

    hall.stop()
    await expect(body).to_have_attribute("data-connection", "offline")
    # What it showed stays on screen while the server is away.
    await expect(display.locator("#now-number")).to_have_text("A001")

    await hall.restart()
    await hall.issue("b")
    await hall.counter("2", "open")
    await hall.counter("2", "next")
    await expect(display.locator("#now-number")).to_have_text("B001", timeout=40_000)
    await expect(display.locator("#now-text")).to_contain_text("请B001号到2号窗口办理")
    await expect(body).to_have_attribute("data-connection", "live", timeout=40_000)
    await expect(body).to_have_attribute(
        "data-last-spoken", "请B001号到2号窗口办理 Ticket B001, please go to counter 2"
    )
    # Only the new call was news: A001, called before, was never announced.
    announced = await display.evaluate("window.hallq.announced.map(a => a.number)")
    assert announced == ["B001"]
    await expect(display.locator("#recent-list")).to_contain_text("A001")
    await context.close()


async def test_clerk_console_actions_shortcuts_and_errors(hall, browser):
    context = await new_context(browser, 1440, 900)
    console = await context.new_page()
    await console.goto(hall.page_url(f"/counter/{BRANCH}/1", "s1"))
    state = console.locator("#state")
    banner = console.locator("#banner")
    await expect(state).to_have_attribute("data-state", "closed")
    await press_shortcut(console, "o")
    await expect(state).to_have_attribute("data-state", "open")

    # Nobody waits: next says so.
    await press_shortcut(console, "n")
    await expect(banner).to_contain_text("暂无等候顾客")

    # Live: a ticket issued elsewhere shows in the queue this counter serves.
    await hall.issue("b")
    await expect(console.locator('#queue tr[data-service="b"] .waiting-count')).to_have_text("1")
    await hall.issue("a")
    await press_shortcut(console, "n")
    await expect(console.locator("#cur-number")).to_have_text("A001")
    await press_shortcut(console, "s")  # start
    await expect(console.locator("#current")).to_have_attribute("data-status", "serving")
    await press_shortcut(console, "c")  # complete
    await expect(console.locator("#cur-number")).to_have_text("—")

    # Transfer B001 to counter 3's business type (new account, c), at the back.
    await press_shortcut(console, "n")
    await expect(console.locator("#cur-number")).to_have_text("B001")
    await press_shortcut(console, "t")
    dialog = console.locator("#transfer-dialog")
    await expect(dialog).to_be_visible()
    await console.locator("#transfer-service").select_option("c")
    await console.locator('input[name="position"][value="back"]').check()
    await console.locator("#transfer-ok").click()
    await expect(banner).to_contain_text("已转移")
    await expect(console.locator("#cur-number")).to_have_text("—")
    view = await hall.api("GET", f"/branches/{BRANCH}/queue")
    waiting = {s["service"]: s["waiting"] for s in view["services"]}
    assert waiting["c"] == 1 and waiting["b"] == 0

    # No-show.
    await hall.issue("a")
    await press_shortcut(console, "n")
    await expect(console.locator("#cur-number")).to_have_text("A002")
    await press_shortcut(console, "x")
    await expect(banner).to_contain_text("已标记过号")

    # Pause and resume share P; paused, Next is disabled.
    await press_shortcut(console, "p")
    await expect(state).to_have_attribute("data-state", "paused")
    await expect(console.locator('[data-action="next"]')).to_be_disabled()
    await expect(console.locator('[data-action="resume"]')).to_be_visible()
    await press_shortcut(console, "p")
    await expect(state).to_have_attribute("data-state", "open")

    # A refused action shows the problem's detail: clerk s1 at counter 2, where s2 signed in.
    await hall.counter("2", "open", who="s2")
    other = await context.new_page()
    await other.goto(f"{hall.url}/counter/{BRANCH}/2")  # the token is in local storage now
    await expect(other.locator("#state")).to_have_attribute("data-state", "open")
    await press_shortcut(other, "n")
    other_banner = other.locator("#banner")
    await expect(other_banner).to_have_attribute("data-kind", "error")
    async with hall.http() as http:
        refused = await http.post(
            f"/api/v1/branches/{BRANCH}/counters/2/next", headers=bearer(hall.tokens["s1"])
        )
    assert refused.status_code in (403, 409), refused.text
    await expect(other_banner.locator(".detail")).to_have_text(refused.json()["detail"])

    # Sign out.
    await press_shortcut(console, "q")
    await expect(state).to_have_attribute("data-state", "closed")
    await context.close()


async def test_pages_ask_for_a_token(hall, browser):
    context = await new_context(browser, 1280, 800)
    page = await context.new_page()
    await page.goto(f"{hall.url}/dashboard/{BRANCH}")
    overlay = page.locator("#token-overlay")
    await expect(overlay).to_be_visible()
    # A wrong token is refused with the API's reason, and asked for again.
    await page.locator('#token-overlay input[name="token"]').fill("hq.nope.nope")
    await page.locator('#token-overlay button[type="submit"]').click()
    await expect(page.locator(".token-reason")).not_to_be_empty()
    await page.locator('#token-overlay input[name="token"]').fill(hall.tokens["manager"])
    await page.locator('#token-overlay button[type="submit"]').click()
    await expect(page.locator("body")).to_have_attribute("data-connection", "live")
    await expect(overlay).to_have_count(0)
    await context.close()


# Alerts evaluated every second; one fewer counter open than the branch wants.
BUSY = {"env": {"HALLQ_ALERTS_INTERVAL_S": "1"}, "min_open_counters": 5}


@pytest.mark.parametrize("hall", [BUSY], indirect=True, ids=["busy"])
async def test_dashboard_and_screenshots(hall, browser):
    """A busy morning in the demo hall, on every page; screenshots for the README."""
    errors: list[str] = []
    for service, n in {"a": 7, "b": 5, "c": 3, "d": 1, "v": 2}.items():
        for i in range(n):
            await hall.issue(service, "special" if (service, i) == ("a", 5) else "normal")
    for code, who in [("1", "s1"), ("2", "s2"), ("3", "s3"), ("5", "manager")]:
        await hall.counter(code, "open", who=who)
    for code, who in [("3", "s3"), ("5", "manager"), ("2", "s2"), ("1", "s1")]:
        await hall.counter(code, "next", who=who)
    await hall.counter("3", "start", who="s3")
    await hall.counter("2", "pause", who="s2", json={"reason": "lunch"})

    context = await new_context(browser, 1920, 1080)
    dashboard = await context.new_page()
    watch_console(dashboard, errors)
    await dashboard.goto(hall.page_url(f"/dashboard/{BRANCH}", "manager"))
    await expect(dashboard.locator("body")).to_have_attribute("data-connection", "live")
    view = await hall.api("GET", f"/branches/{BRANCH}/queue")
    waiting = {s["service"]: s["waiting"] for s in view["services"]}
    current = {c["code"]: c["current"] and c["current"]["number"] for c in view["counters"]}
    for service, n in waiting.items():
        row = dashboard.locator(f'#services tr[data-service="{service}"] .waiting-count')
        await expect(row).to_have_text(str(n))
    await expect(dashboard.locator('#counters [data-counter="2"]')).to_have_attribute(
        "data-state", "paused"
    )
    for code, number in current.items():
        card = dashboard.locator(f'#counters [data-counter="{code}"] .cc-current')
        await expect(card).to_have_text(number or "—")
    alert = dashboard.locator('#alerts li[data-kind="too_few_counters"]')
    await expect(alert).to_contain_text("开放窗口不足")
    await expect(dashboard.locator("#alert-count")).not_to_have_text("0")
    chart = dashboard.locator("#chart")
    await expect(chart).to_have_attribute("data-state", re.compile("drawn|missing"))
    if await chart.get_attribute("data-state") == "drawn":
        await expect(chart.locator("svg .bar.avg").first).to_be_attached()
    today = await dashboard.evaluate("document.querySelector('#report-csv').href")
    assert re.search(
        r"/api/v1/branches/demo/reports/daily\?date=\d{4}-\d{2}-\d{2}&format=csv", today
    )
    if await chart.get_attribute("data-state") == "drawn":
        async with dashboard.expect_download() as download_info:
            await dashboard.locator("#report-csv").click()
        download = await download_info.value
        assert download.suggested_filename.endswith(".csv")
        saved = Path(await download.path())
        assert (await asyncio.to_thread(saved.read_text, encoding="utf-8-sig")).strip()
    await screenshot(dashboard, "dashboard")

    display = await context.new_page()
    watch_console(display, errors)
    await display.goto(hall.page_url(f"/display/{BRANCH}", "display"))
    await expect(display.locator("body")).to_have_attribute("data-connection", "live")
    await hall.counter("1", "recall", who="s1")
    await expect(display.locator("body")).to_have_attribute("data-announced-count", "1")
    await expect(display.locator("#recent-list li")).to_have_count(3)
    await screenshot(display, "display")

    kiosk = await context.new_page()
    watch_console(kiosk, errors)
    await kiosk.set_viewport_size({"width": 1080, "height": 1920})
    await kiosk.goto(hall.page_url(f"/kiosk/{BRANCH}", "kiosk"))
    await expect(kiosk.locator(".service-btn")).to_have_count(len(DEMO_SERVICES))
    await expect(kiosk.locator('.service-btn[data-service="a"]')).to_contain_text(
        f"等候 {waiting['a']} 人"
    )
    await screenshot(kiosk, "kiosk")
    await kiosk.locator('.service-btn[data-service="b"]').click()
    await expect(kiosk.locator("#t-number")).to_have_text(re.compile(r"^B\d{3}$"))
    await screenshot(kiosk, "kiosk-ticket")
    # Printed, only the ticket remains, 72 mm wide, on an 80 mm page.
    await kiosk.emulate_media(media="print")
    hidden = await kiosk.evaluate(
        "['.bar', '.ticket-actions'].map(s => getComputedStyle(document.querySelector(s)).display)"
    )
    assert hidden == ["none", "none"]
    width = await kiosk.evaluate("document.querySelector('#ticket').getBoundingClientRect().width")
    assert 265 <= width <= 280, width  # 72 mm at 96 px per inch is 272 px
    pdf = await kiosk.pdf(prefer_css_page_size=True)
    box = re.search(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", pdf)
    assert box and abs(float(box.group(1)) - 80 / 25.4 * 72) < 2, box  # 80 mm in points
    assert len(re.findall(rb"/Type\s*/Page(?!s)", pdf)) == 1  # one ticket, one page
    await kiosk.emulate_media(media="screen")

    console = await context.new_page()
    watch_console(console, errors)
    await console.set_viewport_size({"width": 1440, "height": 900})
    await console.goto(hall.page_url(f"/counter/{BRANCH}/1", "s1"))
    await expect(console.locator("#cur-number")).to_have_text(re.compile(r"^[AB]\d{3}$"))
    await expect(console.locator("body")).to_have_attribute("data-connection", "live")
    await expect(console.locator('#queue tr[data-service="a"]')).to_be_visible()
    await screenshot(console, "counter")

    assert errors == []
    await context.close()

"""Notices on the hall's screens (SPEC §7), in Chromium against a real server: the manager adds
a notice through the API and the lobby display's ticker and the kiosk show it live, with
today's opening hours; a notice that ends by itself leaves the screens without an event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.browser import BRANCH, Hall, expect, new_context, screenshot, watch_console

EVERY_DAY = {day: [["08:30", "17:30"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
HOTLINE = {"text": {"zh": "投诉热线 10000", "en": "Complaints hotline 10000"}, "order": 10}
NOTICES = f"/branches/{BRANCH}/notices"


async def test_display_ticker_and_kiosk_show_notices_live(hall: Hall, browser: Any) -> None:
    errors: list[str] = []
    await hall.api("PUT", f"/branches/{BRANCH}", json={**hall.branch, "hours": EVERY_DAY})
    context = await new_context(browser, 1920, 1080)
    display = await context.new_page()
    watch_console(display, errors)
    await display.goto(hall.page_url(f"/display/{BRANCH}", "display"))
    await expect(display.locator("body")).to_have_attribute("data-connection", "live")
    ticker = display.locator("#ticker")
    await expect(ticker).to_contain_text("今日营业时间 08:30–17:30")
    # No notice yet: the default sentences.
    await expect(ticker).to_contain_text("过号请到服务台重新排队")

    kiosk = await context.new_page()
    watch_console(kiosk, errors)
    await kiosk.goto(hall.page_url(f"/kiosk/{BRANCH}", "kiosk"))
    await expect(kiosk.locator("body")).to_have_attribute("data-connection", "live")
    strip = kiosk.locator("#notices")
    await expect(strip).to_contain_text("今日营业时间 08:30–17:30")

    # The manager adds two notices; the screens show them, by `order`, without a reload.
    await hall.api("PUT", f"{NOTICES}/hotline", "manager", 201, json=HOTLINE)
    ends = (datetime.now(UTC) + timedelta(seconds=8)).isoformat()
    soon_gone = {"text": {"zh": "今日10点前网络维护"}, "to": ends}
    await hall.api("PUT", f"{NOTICES}/maintenance", "manager", 201, json=soon_gone)
    await expect(display.locator("body")).to_have_attribute("data-notices", "maintenance hotline")
    await expect(ticker).to_contain_text("投诉热线 10000 · Complaints hotline 10000")
    await expect(ticker).not_to_contain_text("过号请到服务台重新排队")
    await expect(strip.locator('[data-notice="hotline"]')).to_contain_text("投诉热线 10000")
    await expect(strip.locator('[data-notice="maintenance"]')).to_be_visible()
    await screenshot(kiosk, "kiosk-notices")

    # The maintenance notice ends by itself (no event): the queue view said when.
    await expect(display.locator("body")).to_have_attribute(
        "data-notices", "hotline", timeout=15_000
    )
    await expect(strip.locator('[data-notice="maintenance"]')).to_have_count(0, timeout=15_000)

    # Removed: the ticker goes back to the default sentences.
    await hall.api("DELETE", f"{NOTICES}/hotline", "manager", 204)
    await expect(display.locator("body")).to_have_attribute("data-notices", "")
    await expect(ticker).to_contain_text("过号请到服务台重新排队")
    await expect(strip.locator(".notice-notice")).to_have_count(0)
    await context.close()
    assert not errors, errors

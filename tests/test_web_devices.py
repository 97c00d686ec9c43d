"""A kiosk set out of service (SPEC §7), in Chromium against a real server: its page shows
暂停使用 Out of service, refuses nothing silently, and recovers when put back in service."""

from __future__ import annotations

from typing import Any

from tests.browser import BRANCH, Hall, expect, new_context, watch_console


async def test_kiosk_page_goes_out_of_service_and_back(hall: Hall, browser: Any) -> None:
    errors: list[str] = []
    context = await new_context(browser, 1280, 1024)
    kiosk = await context.new_page()
    watch_console(kiosk, errors)
    await kiosk.goto(hall.page_url(f"/kiosk/{BRANCH}", "kiosk"))
    await expect(kiosk.locator("body")).to_have_attribute("data-connection", "live")
    sign = kiosk.locator("#out-of-service")
    await expect(sign).to_be_hidden()
    token_id = hall.tokens["kiosk"].split(".")[1]

    await hall.api("PATCH", f"/tokens/{token_id}", "manager", json={"out_of_service": True})
    await expect(sign).to_be_visible(timeout=12_000)
    await expect(sign).to_contain_text("暂停使用")
    await expect(sign).to_contain_text("Out of service")

    await hall.api("PATCH", f"/tokens/{token_id}", "manager", json={"out_of_service": False})
    await expect(sign).to_be_hidden(timeout=12_000)
    await kiosk.locator(".service-btn").first.click()
    await expect(kiosk.locator("#ticket-view")).to_be_visible()
    await context.close()
    assert not errors, errors

"""The pages at the end of the day (SPEC §5), in Chromium against a real server: after the
manager's close-out the lobby display shows no expired number and the clerk's console no
longer holds its ticket."""

from __future__ import annotations

from typing import Any

from tests.browser import BRANCH, Hall, expect, new_context, watch_console


async def test_the_close_out_clears_the_display_and_the_console(hall: Hall, browser: Any) -> None:
    errors: list[str] = []
    served = await hall.issue("a")
    left = await hall.issue("a")
    await hall.counter("1", "open", who="s1")
    await hall.counter("1", "next", who="s1")  # A001
    await hall.counter("1", "complete", who="s1")
    await hall.counter("1", "next", who="s1")  # A002, called: the customer never comes

    context = await new_context(browser, 1920, 1080)
    display = await context.new_page()
    watch_console(display, errors)
    await display.goto(hall.page_url(f"/display/{BRANCH}", "display"))
    await expect(display.locator("body")).to_have_attribute("data-connection", "live")
    await expect(display.locator("#now-number")).to_have_text(left["number"])
    await expect(display.locator("#recent-list")).to_contain_text(served["number"])

    console = await context.new_page()
    watch_console(console, errors)
    await console.goto(hall.page_url(f"/counter/{BRANCH}/1", "s1"))
    await expect(console.locator("body")).to_have_attribute("data-connection", "live")
    await expect(console.locator("#cur-number")).to_have_text(left["number"])

    closed = await hall.api("POST", f"/branches/{BRANCH}/day/close", "manager")
    assert closed == {"expired": 1, "completed": 0, "counters_closed": 1}

    # The expired A002 leaves the big number; the served A001 takes its place as the latest
    # call, and A002 is nowhere on the screen.
    await expect(display.locator("#now-number")).to_have_text(served["number"])
    await expect(display.locator("#recent-list")).not_to_contain_text(left["number"])
    await expect(console.locator("#cur-number")).to_have_text("—")
    await expect(console.locator("#state")).to_have_attribute("data-state", "closed")

    # A screen that connects afterwards never sees A002 either.
    late = await context.new_page()
    await late.goto(hall.page_url(f"/display/{BRANCH}", "display"))
    await expect(late.locator("body")).to_have_attribute("data-connection", "live")
    await expect(late.locator("#now-number")).to_have_text(served["number"])
    assert left["number"] not in await late.locator("main, body").first.inner_text()
    assert not errors, errors
    await context.close()

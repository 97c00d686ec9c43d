"""The counter screen (窗口屏) `/window/{branch}/{counter}`, in a real browser (tests/browser.py).

The clerk works the counter through the API; the screen above it follows from the stream:
the number large while called or served, 暂停服务 when paused, "please go to another counter"
when closed, and it recovers by itself after a server restart. Saves
docs/screenshots/window.png.
"""

from __future__ import annotations

import re

from tests.browser import BRANCH, BRANCH_NAME, expect, new_context, screenshot, watch_console

WIDTH, HEIGHT = 1280, 720


async def test_counter_screen_follows_the_clerk(hall, browser):
    errors: list[str] = []
    # The clerk's staff number (工号), which the screen shows beside the name.
    staff = {"name": "王芳", "role": "clerk", "number": "1024"}
    await hall.api("PUT", f"/branches/{BRANCH}/staff/s1", json=staff)
    context = await new_context(browser, WIDTH, HEIGHT)
    page = await context.new_page()
    watch_console(page, errors)
    # Without a token it asks for one, like the other pages.
    await page.goto(f"{hall.url}/window/{BRANCH}/1")
    await expect(page.locator("#token-overlay")).to_be_visible()
    await page.goto(hall.page_url(f"/window/{BRANCH}/1", "display"))
    body = page.locator("body")
    screen = page.locator("#window")
    sign = page.locator("#w-sign")
    number = page.locator("#w-number")
    await expect(body).to_have_attribute("data-connection", "live")
    assert "token=" not in page.url
    await expect(page.locator("#branch-name")).to_have_text(BRANCH_NAME)
    await expect(page.locator("#w-counter")).to_contain_text("1号窗口")
    await expect(page.locator("#w-counter")).to_contain_text("Counter 1")
    await expect(page.locator("#w-services")).to_contain_text("General business")

    # Closed: customers are sent elsewhere, and nobody is named.
    await expect(screen).to_have_attribute("data-state", "closed")
    await expect(sign).to_contain_text("请到其他窗口办理")
    await expect(sign).to_contain_text("Please go to another counter")
    await expect(page.locator("#w-clerk")).to_be_empty()

    # The clerk signs in: the screen names them, from the branch's staff list.
    await hall.issue("a")
    await hall.issue("b")
    await hall.counter("1", "open", "s1")
    await expect(screen).to_have_attribute("data-state", "open")
    await expect(page.locator("#w-clerk-name")).to_have_text("王芳")
    await expect(page.locator("#w-clerk-number")).to_have_text(re.compile(r"工号\s*No\.\s*1024"))
    await expect(number).to_have_text("—")
    await expect(sign).to_be_hidden()

    # Called: the number, large.
    await hall.counter("1", "next", "s1")
    await expect(number).to_have_text("A001")
    await expect(page.locator("#w-label")).to_contain_text("正在叫号")
    await expect(page.locator("#w-invite")).to_contain_text("请 A001 号到本窗口办理")
    await expect(body).to_have_attribute("data-last-call", "ticket.called A001")
    size = await number.evaluate("n => parseFloat(getComputedStyle(n).fontSize)")
    assert size >= 0.3 * HEIGHT, size  # about 26 cm tall on a 32-inch panel
    for part in ["#w-number", "#w-clerk-name", "#w-counter", "#branch-name", "#clock"]:
        await expect(page.locator(part)).to_be_visible()
        box = await page.locator(part).bounding_box()
        assert box is not None, part
        assert box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, (part, box)
        assert box["y"] >= 0 and box["y"] + box["height"] <= HEIGHT, (part, box)
    await number.evaluate("n => n.classList.remove('flash')")
    await screenshot(page, "window")

    # Recalled: the number flashes again.
    await number.evaluate("n => n.classList.remove('flash')")
    await hall.counter("1", "recall", "s1")
    await expect(body).to_have_attribute("data-last-call", "ticket.recalled A001")
    await expect(number).to_have_class("w-number flash")
    await expect(number).to_have_text("A001")

    await hall.counter("1", "start", "s1")
    await expect(page.locator("#w-label")).to_contain_text("正在办理")
    await expect(screen).to_have_attribute("data-status", "serving")

    # Paused (with the customer still there), then resumed.
    await hall.counter("1", "pause", "s1", json={"reason": "午休"})
    await expect(screen).to_have_attribute("data-state", "paused")
    await expect(sign).to_contain_text("暂停服务")
    await expect(sign).to_contain_text("Paused")
    await expect(number).to_be_hidden()
    await hall.counter("1", "resume", "s1")
    await expect(screen).to_have_attribute("data-state", "open")
    await expect(number).to_have_text("A001")

    # Closing with a customer at the counter, closed once the ticket is done.
    await hall.counter("1", "close", "s1")
    await expect(screen).to_have_attribute("data-state", "closing")
    await expect(page.locator("#w-closing")).to_contain_text("本窗口即将关闭")
    await expect(number).to_have_text("A001")
    await hall.counter("1", "complete", "s1")
    await expect(screen).to_have_attribute("data-state", "closed")
    await expect(sign).to_contain_text("请到其他窗口办理")
    await expect(page.locator("#w-clerk")).to_be_empty()

    # A call at another counter is not this screen's.
    await hall.counter("2", "open", "s2")
    await hall.counter("2", "next", "s2")
    await expect(page.locator("#w-number")).to_be_hidden()
    assert await page.evaluate("window.hallq.calls.map(c => c.number)") == ["A001", "A001"]

    # A name and staff number (工号) are shown when the data carries them.
    clerk = await page.evaluate(
        """import('/web/static/window.js').then((m) => [
            m.clerkOf({staff: 's1'}, {staff: [{code: 's1', name: '王芳', number: '1024'}]}),
            m.clerkOf({staff: {code: 's2', name: '李强', number: '2048'}}, null),
            m.clerkOf({staff: 's3'}, null),
            m.clerkOf({staff: null}, null),
        ])"""
    )
    assert clerk == [
        {"code": "s1", "name": "王芳", "number": "1024"},
        {"code": "s2", "name": "李强", "number": "2048"},
        {"code": "s3"},
        None,
    ]

    # ... and on another counter's screen, a clerk without a staff number: the name alone.
    named = await context.new_page()
    watch_console(named, errors)
    await named.goto(f"{hall.url}/window/{BRANCH}/2")  # the token is remembered
    await expect(named.locator("#w-clerk-name")).to_have_text("李强")
    await expect(named.locator("#w-clerk-number")).to_have_count(0)
    await expect(named.locator("#w-number")).to_have_text("B001")

    # A counter the branch does not have says so.
    other = await context.new_page()
    watch_console(other, errors)
    await other.goto(f"{hall.url}/window/{BRANCH}/9")  # the token is remembered
    await expect(other.locator("#window")).to_have_attribute("data-state", "missing")
    await expect(other.locator("#w-sign")).to_contain_text("本窗口未设置")
    assert not errors, errors
    await context.close()


async def test_counter_screen_recovers_after_server_restart(hall, browser):
    await hall.issue("a")
    await hall.counter("1", "open", "s1")
    await hall.counter("1", "next", "s1")
    context = await new_context(browser, WIDTH, HEIGHT)
    page = await context.new_page()
    await page.goto(hall.page_url(f"/window/{BRANCH}/1", "display"))
    body = page.locator("body")
    await expect(body).to_have_attribute("data-connection", "live")
    await expect(page.locator("#w-number")).to_have_text("A001")

    hall.stop()
    await expect(body).to_have_attribute("data-connection", "offline")
    # What it showed stays on screen while the server is away.
    await expect(page.locator("#w-number")).to_have_text("A001")

    await hall.restart()
    await hall.counter("1", "pause", "s1")
    await expect(page.locator("#w-sign")).to_contain_text("暂停服务", timeout=40_000)
    await expect(body).to_have_attribute("data-connection", "live", timeout=40_000)
    await hall.counter("1", "resume", "s1")
    await hall.counter("1", "complete", "s1")
    await hall.issue("b")
    await hall.counter("1", "next", "s1")
    await expect(page.locator("#w-number")).to_have_text("B001")
    await context.close()

"""The kiosk shows a business type's guide (SPEC §7) after the press and prints it on the
ticket, in Chromium (tests/browser.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from devtools.demo import SERVICES as DEMO_SERVICES
from tests.browser import BRANCH, expect, new_context, printed, screenshot, watch_console

GUIDE = {
    "zh": "请携带本人有效身份证件原件。\n办理完毕请在右侧自助机打印发票。",
    "en": "Please bring your original ID card.\nInvoices print at the self-service machine.",
}


async def set_guide(hall: Any, code: str, guide: dict[str, str] | None) -> None:
    name, prefix, target = DEMO_SERVICES[code]
    body = {"name": name, "prefix": prefix, "target_wait_s": target, "guide": guide}
    await hall.api("PUT", f"/branches/{BRANCH}/services/{code}", json=body)


async def kiosk_guide_is(kiosk: Any, code: str, zh: str) -> None:
    """Wait until the kiosk has read the branch's configuration with this guide (polled from
    here: the page's CSP refuses wait_for_function)."""
    read = f"(window.hallq.branch?.services || []).find(s => s.code === '{code}')?.guide?.zh"
    for _ in range(100):
        if await kiosk.evaluate(read) == zh:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the kiosk did not read the new guide of {code}")


async def test_kiosk_shows_and_prints_the_guide(hall, browser):
    await set_guide(hall, "c", GUIDE)
    errors: list[str] = []
    context = await new_context(browser, 1080, 1920)
    kiosk = await context.new_page()
    watch_console(kiosk, errors)
    await kiosk.goto(hall.page_url(f"/kiosk/{BRANCH}", "kiosk"))
    await kiosk.locator('.service-btn[data-service="c"]').click()
    await expect(kiosk.locator("#t-number")).to_have_text("C001")
    guide = kiosk.locator("#ticket #t-guide")
    await expect(guide.locator(".zh")).to_have_text(GUIDE["zh"])
    await expect(guide.locator(".en")).to_have_text(GUIDE["en"])
    await expect(guide).to_be_visible()
    # The line breaks the manager typed stay line breaks.
    assert "\n" in await guide.locator(".zh").inner_text()
    assert await printed(kiosk) >= 1
    await screenshot(kiosk, "kiosk-guide")
    # Printed, the guide is on the ticket, within the 72 mm column.
    await kiosk.emulate_media(media="print")
    await expect(guide).to_be_visible()
    ticket = await kiosk.evaluate("document.querySelector('#ticket').getBoundingClientRect().width")
    width = await guide.evaluate("n => n.getBoundingClientRect().width")
    assert 0 < width <= ticket, (width, ticket)
    await kiosk.emulate_media(media="screen")

    # A type without a guide prints none.
    await kiosk.locator("#done").click()
    await kiosk.locator('.service-btn[data-service="a"]').click()
    await expect(kiosk.locator("#t-number")).to_have_text("A001")
    await expect(kiosk.locator("#t-guide")).to_have_count(0)

    # The manager changes the guide: the next ticket carries it, without reloading the kiosk.
    await set_guide(hall, "c", {"zh": "请到3号窗口旁等候。"})
    await kiosk.locator("#done").click()
    await expect(kiosk.locator("#choose")).to_be_visible()
    await kiosk_guide_is(kiosk, "c", "请到3号窗口旁等候。")  # read again after "done"
    await kiosk.locator('.service-btn[data-service="c"]').click()
    await expect(kiosk.locator("#t-number")).to_have_text("C002")
    await expect(kiosk.locator("#t-guide .zh")).to_have_text("请到3号窗口旁等候。")
    await expect(kiosk.locator("#t-guide .en")).to_have_count(0)
    assert errors == []
    await context.close()

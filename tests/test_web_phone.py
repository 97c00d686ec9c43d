"""The customer's phone in Chromium (SPEC §9, issue 21): a person takes a ticket at the kiosk,
scans its printed QR code, walks away, sees the near notice and the call on the phone, and
rates the service from it, with the texts of the SMS relay (to a gateway on loopback) on the way.
The QR code is read from a screenshot of the printed ticket with a
real decoder (zxing-cpp), also after reducing it to black and white as a thermal printer
prints it."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
import zxingcpp
from PIL import Image

from tests.browser import (
    BRANCH,
    FAKE_PRINT,
    SCREENSHOTS,
    WAIT_RANGE_TEXT,
    expect,
    printed,
    screenshot,
    wait_range_text,
    watch_console,
)
from tests.webhook_receiver import Receiver, wait_for

# The operator's SMS gateway: its port is chosen now, so that the server is started knowing it.
GATEWAY = Receiver()
SMS_SECRET = "whsec_" + base64.b64encode(b"sms-gateway-secret-of-32-bytes!!").decode()
WITH_SMS = {"env": {"HALLQ_SMS_URL": GATEWAY.url, "HALLQ_SMS_SECRET": SMS_SECRET}}
MOBILE = "13912345678"

# A phone: 390 × 844 CSS pixels at 3× (an iPhone 14), touch, mobile.
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
    "locale": "zh-CN",
    "timezone_id": "Asia/Shanghai",
}
# The page may vibrate: record what it asks for (headless Chromium has no vibrator).
RECORD_VIBRATION = (
    "navigator.vibrate = (pattern) => {"
    " (window.__vibrated = window.__vibrated || []).push(pattern); return true; };"
)


def decode_qr(png: bytes) -> list[str]:
    image = Image.open(io.BytesIO(png)).convert("L")
    return [result.text for result in zxingcpp.read_barcodes(image)]


def thermal(png: bytes) -> bytes:
    """The screenshot as a thermal printer would print it: one bit per dot."""
    image = Image.open(io.BytesIO(png)).convert("L").point(lambda v: 255 if v > 128 else 0)
    out = io.BytesIO()
    image.convert("1").save(out, format="PNG")
    return out.getvalue()


async def kiosk_ticket(
    hall: Any, browser: Any, errors: list[str], mobile: str | None = None
) -> tuple[Any, str]:
    """Take a ticket of type a at the kiosk (with `mobile` typed in for texts); returns the kiosk
    page and the URL its printed QR code holds, read from a screenshot of the printed ticket."""
    # About 200 dots an inch, as an 80 mm thermal printer prints (203 dpi).
    kiosk_context = await browser.new_context(
        viewport={"width": 1080, "height": 1920}, device_scale_factor=2.1, locale="zh-CN"
    )
    await kiosk_context.add_init_script(FAKE_PRINT)
    kiosk = await kiosk_context.new_page()
    watch_console(kiosk, errors)
    await kiosk.goto(hall.page_url(f"/kiosk/{BRANCH}", "kiosk"))
    if mobile is not None:
        await kiosk.locator("#phone").fill(mobile)  # shown: the SMS relay is on
    await kiosk.locator('.service-btn[data-service="a"]').click()
    await expect(kiosk.locator("#t-number")).to_have_text("A005")
    qr = kiosk.locator("#t-qr-img")
    await expect(qr).to_be_visible()
    assert await printed(kiosk) >= 1
    # The ticket printed only once its QR code had loaded.
    assert await qr.evaluate("img => img.complete && img.naturalWidth > 0")
    await kiosk.emulate_media(media="print")
    width_mm = await kiosk.locator("#ticket").evaluate(
        "node => node.getBoundingClientRect().width * 25.4 / 96"
    )
    assert 70 <= width_mm <= 73  # 72 mm on the 80 mm roll
    qr_mm = await qr.evaluate("img => img.getBoundingClientRect().width * 25.4 / 96")
    assert 29 <= qr_mm <= 31
    png = await kiosk.locator("#ticket").screenshot()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "phone-printed-ticket.png").write_bytes(png)
    await kiosk.emulate_media(media="screen")
    urls = decode_qr(png)
    assert len(urls) == 1, urls
    assert decode_qr(thermal(png)) == urls
    return kiosk, urls[0]


@pytest.mark.parametrize("hall", [WITH_SMS], indirect=True)
async def test_kiosk_scan_walk_away_near_called_and_rate_on_the_phone(hall, browser):
    await GATEWAY.start()
    try:
        await walk_through(hall, browser)
    finally:
        await GATEWAY.stop()


def texts(kind: str) -> list[dict[str, Any]]:
    return [r.event for r in GATEWAY.delivered() if r.event["kind"] == kind]


async def walk_through(hall: Any, browser: Any) -> None:
    errors: list[str] = []
    for _ in range(4):
        await hall.issue("a")  # four customers before ours: not near yet (notify_ahead 3)
    _kiosk, url = await kiosk_ticket(hall, browser, errors, MOBILE)
    tickets = (await hall.api("GET", f"/branches/{BRANCH}/tickets", params={"number": "A005"}))[
        "tickets"
    ]
    (ticket,) = tickets
    assert url == f"{hall.url}/t/{ticket['code']}"

    # Scan: the phone opens the URL.
    phone_context = await browser.new_context(**PHONE)
    await phone_context.add_init_script(RECORD_VIBRATION)
    phone = await phone_context.new_page()
    watch_console(phone, errors)
    await phone.goto(url)
    screen = phone.locator("#phone")
    await expect(screen).to_have_attribute("data-status", "waiting")
    await expect(phone.locator("#p-number")).to_have_text("A005")
    await expect(phone.locator("#p-service")).to_contain_text("General business")
    await expect(phone.locator("#p-position")).to_have_text("5")
    await expect(phone.locator("#p-ahead")).to_contain_text("4 人")
    # The quoted range, as the API gives it for the ticket (no counter is open: it stays put).
    quoted = await hall.api("GET", f"/tickets/{ticket['id']}")
    zh, en = wait_range_text(quoted["estimated_wait_range_s"])
    await expect(phone.locator("#p-wait")).to_contain_text(zh)
    await expect(phone.locator("#p-wait")).to_contain_text(en)
    await expect(phone.locator("#p-near")).to_be_hidden()
    await expect(screen).to_have_attribute("data-near", "false")
    await phone.locator("#p-head, .p-head").first.tap()  # the customer touched the page once

    # Walk away: counter 1 calls A001, so four tickets are ahead no more but three: near.
    await hall.counter("1", "open", "s1")
    await hall.counter("1", "next", "s1")
    await expect(screen).to_have_attribute("data-near", "true")
    await expect(phone.locator("#p-near")).to_be_visible()
    await expect(phone.locator("#p-near")).to_contain_text("即将轮到您")
    await expect(phone.locator("#p-ahead")).to_contain_text("3 人")
    near = [
        e for e in (await hall.api("GET", f"/tickets/{ticket['id']}"))["history"]
        if e["type"] == "ticket.near"
    ]  # fmt: skip
    assert len(near) == 1 and near[0]["data"]["waiting_ahead"] == 3
    # ... and the text: the phone number the kiosk was given, and nowhere else (test_logs).
    await wait_for(lambda: bool(texts("near")), what="the near text")
    (text,) = texts("near")
    assert text["phone"] == MOBILE and text["ticket"]["number"] == "A005"
    assert "前面还有 3 位" in text["text"]
    await screenshot(phone, "phone-near")

    # The call: the counter large, and the phone vibrates.
    for _ in range(4):
        await hall.counter("1", "next", "s1")
    await expect(screen).to_have_attribute("data-status", "called")
    await expect(phone.locator("#p-counter")).to_contain_text("1 号窗口")
    await expect(phone.locator("#p-counter")).to_contain_text("Counter 1")
    font_px = await phone.locator("#p-counter").evaluate(
        "n => parseFloat(getComputedStyle(n).fontSize)"
    )
    assert font_px >= 48
    vibrated = await phone.evaluate("window.__vibrated || []")
    assert vibrated and isinstance(vibrated[-1], list)
    await wait_for(lambda: bool(texts("called")), what="the called text")
    assert "请 A005 号到 1号窗口 办理" in texts("called")[0]["text"]
    await screenshot(phone, "phone-called")

    # Served, then rated from the phone (the evaluation keypad).
    await hall.counter("1", "start", "s1")
    await hall.counter("1", "complete", "s1")
    await expect(screen).to_have_attribute("data-status", "done")
    await expect(phone.locator("#p-rate")).to_be_visible()
    await phone.locator('.p-star[data-score="5"]').tap()
    await phone.locator("#p-comment-text").fill("很快，谢谢")
    await phone.locator("#p-rate-send").tap()
    await expect(phone.locator("body")).to_have_attribute("data-rated", "true")
    await expect(phone.locator("#p-message")).to_contain_text("感谢您的评价")
    await expect(phone.locator("#p-rate")).to_be_hidden()
    rated = await hall.api("GET", f"/tickets/{ticket['id']}")
    assert rated["rating"] == 5
    assert not errors, errors


async def test_remote_join_and_i_have_left_on_a_phone(hall, browser):
    errors: list[str] = []
    body = {**hall.branch, "online_join": {"enabled": True, "daily_limit": 50}}
    await hall.api("PUT", f"/branches/{BRANCH}", json=body)
    await hall.issue("b")
    context = await browser.new_context(**PHONE)
    phone = await context.new_page()
    watch_console(phone, errors)
    await phone.goto(f"{hall.url}/join/{BRANCH}")
    await expect(phone.locator("#join")).to_have_attribute("data-state", "open")
    option = phone.locator('.j-service[data-service="b"]')
    await expect(option).to_contain_text("等候 1 人")
    await expect(option).to_contain_text(WAIT_RANGE_TEXT)
    await option.tap()
    await phone.locator("#j-phone").fill("138 1234 5678")
    await screenshot(phone, "phone-join")
    await phone.locator("#j-take").tap()
    await expect(phone.locator("#p-number")).to_have_text("B002")
    assert "/t/" in phone.url
    await expect(phone.locator("#p-ahead")).to_contain_text("1 人")
    await expect(phone.locator("body")).not_to_contain_text("5678")

    # "I have left": two taps.
    await phone.locator("#p-leave").tap()
    await phone.locator("#p-leave-yes").tap()
    await expect(phone.locator("#phone")).to_have_attribute("data-status", "cancelled")
    await expect(phone.locator("#p-state")).to_contain_text("已取消")
    found = await hall.api("GET", f"/branches/{BRANCH}/tickets", params={"number": "B002"})
    (ticket,) = found["tickets"]
    assert ticket["status"] == "cancelled" and ticket["channel"] == "online"
    assert ticket["phone"] == "138****5678"

    # An unknown code: the page says so and nothing else.
    await phone.goto(f"{hall.url}/t/{'0' * 16}")
    await expect(phone.locator("#phone")).to_have_attribute("data-status", "unknown")
    await expect(phone.locator("#p-message")).to_contain_text("未找到")
    assert not errors, errors

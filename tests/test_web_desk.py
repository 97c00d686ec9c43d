"""The service desk page `/desk/{branch}` (SPEC §6), driven in Chromium against a real server.

The greeter or the duty manager, with a manager token: finds a ticket by number and reads its
history, changes its priority (with a reason), cancels it, re-queues a no-show, calls it to a
counter, prints it again, issues tickets on a customer's behalf; the waiting list and the shown
ticket follow the hall live; a refusal shows the API's problem detail. Saves
docs/screenshots/desk.png.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from devtools.demo import SERVICES as DEMO_SERVICES
from tests.browser import (
    BRANCH,
    Hall,
    expect,
    new_context,
    printed,
    screenshot,
    watch_console,
)
from tests.helpers import bearer

DESK = f"/desk/{BRANCH}"
TABLET = (1366, 1024)  # a 12.9" tablet, landscape


async def open_desk(hall: Hall, browser: Any, errors: list[str]) -> tuple[Any, Any]:
    context = await new_context(browser, *TABLET)
    desk = await context.new_page()
    watch_console(desk, errors)
    await desk.goto(hall.page_url(DESK, "manager"))
    await expect(desk.locator("body")).to_have_attribute("data-connection", "live")
    assert "token=" not in desk.url
    return context, desk


async def find(desk: Any, number: str, date: str = "") -> None:
    await desk.locator("#find-number").fill(number)
    await desk.locator("#find-date").fill(date)
    await desk.locator("#find-btn").click()


def waiting_numbers(desk: Any, service: str) -> Any:
    return desk.locator(f'#waiting-list .wl-group[data-service="{service}"] .wl-number')


def row(desk: Any, number: str) -> Any:
    return desk.locator(f'#waiting-list .wl-row[data-number="{number}"]')


def history_types(desk: Any) -> Any:
    return desk.locator("#history tr[data-type]")


async def ticket_by_number(hall: Hall, number: str) -> dict[str, Any]:
    found = await hall.api("GET", f"/branches/{BRANCH}/tickets", params={"number": number})
    assert len(found["tickets"]) == 1, found
    ticket: dict[str, Any] = found["tickets"][0]
    return ticket


async def test_desk_finds_a_ticket_shows_its_history_and_requeues_a_no_show(hall, browser):
    errors: list[str] = []
    await hall.issue("a")
    await hall.issue("a")
    await hall.counter("1", "open", who="s1")
    await hall.counter("1", "next", who="s1")  # A001
    await hall.counter("1", "recall", who="s1")
    await hall.counter("1", "no-show", who="s1")
    context, desk = await open_desk(hall, browser, errors)
    card = desk.locator("#ticket-card")

    # Typed in lower case, found as A001, with everything that happened to it.
    await find(desk, "a001")
    await expect(card).to_have_attribute("data-number", "A001")
    await expect(card).to_have_attribute("data-status", "no_show")
    await expect(card.locator(".tag.status")).to_contain_text("过号")
    await expect(desk.locator("#find-number")).to_have_value("A001")
    history = history_types(desk)
    await expect(history).to_have_count(5)
    assert [await r.get_attribute("data-type") for r in await history.all()] == [
        "ticket.issued",
        "ticket.near",  # nobody ahead of it: told at once (SPEC §9)
        "ticket.called",
        "ticket.recalled",
        "ticket.no_show",
    ]
    await expect(history.nth(0).locator(".h-what")).to_contain_text("取号机")
    await expect(history.nth(1).locator(".h-what")).to_contain_text("即将轮到")
    called = history.nth(2)
    await expect(called.locator(".h-counter")).to_have_text("1号窗口 Counter 1")
    await expect(called.locator(".h-staff")).to_have_text("s1")
    await expect(called.locator(".h-time")).to_have_text(re.compile(r"^\d{2}:\d{2}:\d{2}$"))
    await expect(history.nth(3).locator(".h-what")).to_contain_text("×1")

    # Only what applies to a no-show can be pressed.
    await expect(desk.locator("#requeue-btn")).to_be_enabled()
    for button in ["#cancel-btn", "#priority-btn", "#call-btn"]:
        await expect(desk.locator(button)).to_be_disabled()

    # The customer turned up: re-queued, waiting again, in the list, with the step recorded.
    await desk.locator("#requeue-btn").click()
    await expect(desk.locator("#banner")).to_have_attribute("data-kind", "ok")
    await expect(desk.locator("#banner")).to_contain_text("A001 已重新排队")
    await expect(card).to_have_attribute("data-status", "waiting")
    await expect(card.locator("#tc-position")).to_contain_text("第")
    await expect(history).to_have_count(6)
    await expect(history.nth(5)).to_have_attribute("data-type", "ticket.requeued")
    await expect(row(desk, "A001")).to_be_visible()
    await expect(row(desk, "A001")).to_have_class(re.compile(r"\bselected\b"))
    assert (await ticket_by_number(hall, "A001"))["status"] == "waiting"

    # An unknown number says so and shows nothing.
    await find(desk, "A099")
    await expect(desk.locator("#banner")).to_contain_text("没有找到 A099")
    await expect(card).to_have_attribute("data-status", "none")
    await expect(desk.locator("#ticket-tools")).to_be_hidden()

    # A number names one ticket per day: A002 is today's, not yesterday's.
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    await find(desk, "A002", (today - timedelta(days=1)).isoformat())
    await expect(desk.locator("#banner")).to_contain_text(
        f"No ticket A002 on {today - timedelta(days=1)}"
    )
    await expect(card).to_have_attribute("data-status", "none")
    await find(desk, "A002", today.isoformat())
    await expect(card).to_have_attribute("data-number", "A002")
    await expect(card).to_have_attribute("data-status", "waiting")

    assert errors == []
    await context.close()


async def test_desk_changes_priority_with_a_reason_and_cancels(hall, browser):
    errors: list[str] = []
    for _ in range(3):
        await hall.issue("a")
    context, desk = await open_desk(hall, browser, errors)
    card = desk.locator("#ticket-card")
    await expect(waiting_numbers(desk, "a")).to_have_text(["A001", "A002", "A003"])
    await expect(desk.locator("#waiting-total")).to_have_text("3")

    # Picked from the waiting list.
    await row(desk, "A003").click()
    await expect(card).to_have_attribute("data-number", "A003")
    await expect(card.locator("#tc-position")).to_contain_text("第 3 位")
    await expect(desk.locator("#priority-btn")).to_be_disabled()  # still its own class

    # No reason, no change.
    await desk.locator("#priority-select").select_option("special")
    await desk.locator("#priority-btn").click()
    await expect(desk.locator("#banner")).to_have_attribute("data-kind", "error")
    await expect(desk.locator("#banner")).to_contain_text("请填写改优先级的原因")
    assert (await ticket_by_number(hall, "A003"))["priority"] == "normal"

    # With a reason: A003 goes first, and the reason is in its history.
    await desk.locator("#priority-reason").fill("老年顾客 elderly customer")
    await desk.locator("#priority-btn").click()
    await expect(desk.locator("#banner")).to_contain_text("A003 已改为爱心通道")
    await expect(waiting_numbers(desk, "a")).to_have_text(["A003", "A001", "A002"])
    await expect(card).to_have_attribute("data-priority", "special")
    await expect(card.locator(".tag.prio")).to_contain_text("爱心通道")
    await expect(card.locator("#tc-position")).to_contain_text("第 1 位")
    last = history_types(desk).last
    await expect(last).to_have_attribute("data-type", "ticket.prioritised")
    await expect(last.locator(".h-what")).to_contain_text("普通 Standard → 爱心通道 Priority care")
    await expect(last.locator(".h-note")).to_have_text("老年顾客 elderly customer")
    await expect(last.locator(".h-staff")).to_have_text("m1")
    await expect(desk.locator("#priority-reason")).to_have_value("")
    after = await ticket_by_number(hall, "A003")
    assert after["priority"] == "special" and after["position"] == 1

    # Cancel takes two taps: the first only asks.
    await row(desk, "A002").click()
    await expect(card).to_have_attribute("data-number", "A002")
    cancel = desk.locator("#cancel-btn")
    await cancel.click()
    await expect(cancel).to_contain_text("确认取消 A002")
    assert (await ticket_by_number(hall, "A002"))["status"] == "waiting"
    await cancel.click()
    await expect(desk.locator("#banner")).to_contain_text("A002 已取消")
    await expect(card).to_have_attribute("data-status", "cancelled")
    await expect(history_types(desk).last).to_have_attribute("data-type", "ticket.cancelled")
    await expect(waiting_numbers(desk, "a")).to_have_text(["A003", "A001"])
    await expect(desk.locator("#cancel-btn")).to_be_disabled()
    assert (await ticket_by_number(hall, "A002"))["status"] == "cancelled"

    assert errors == []
    await context.close()


async def test_desk_calls_a_ticket_to_a_counter_and_shows_a_refusal(hall, browser):
    errors: list[str] = []
    for _ in range(3):
        await hall.issue("a")
    await hall.counter("2", "open", who="s2")
    context, desk = await open_desk(hall, browser, errors)
    card = desk.locator("#ticket-card")

    # A002 is called to counter 2 out of turn; only open counters can be chosen.
    await row(desk, "A002").click()
    await expect(card).to_have_attribute("data-number", "A002")
    choice = desk.locator("#call-counter")
    await expect(choice).to_have_value("2")
    await expect(choice.locator('option[value="1"]')).to_be_disabled()
    await expect(choice.locator('option[value="2"]')).to_contain_text("服务中")
    await desk.locator("#call-btn").click()
    await expect(desk.locator("#banner")).to_contain_text("已叫 A002 到2号窗口")
    await expect(card).to_have_attribute("data-status", "called")
    await expect(card.locator("#tc-counter")).to_have_text("2号窗口 Counter 2")
    last = history_types(desk).last
    await expect(last).to_have_attribute("data-type", "ticket.called")
    await expect(last.locator(".h-what")).to_contain_text("导办台选叫")
    counter = await hall.api("GET", f"/branches/{BRANCH}/counters/2")
    assert counter["current"]["number"] == "A002"
    # The counter's choice shows what it now calls.
    await expect(choice.locator('option[value="2"]')).to_contain_text("A002")
    await expect(waiting_numbers(desk, "a")).to_have_text(["A001", "A003"])

    # A refusal shows the problem's detail: while the desk changes A001's class, the clerk at
    # counter 2 presses next and calls A001, so the change reaches a called ticket (409).
    await row(desk, "A001").click()
    await expect(card).to_have_attribute("data-number", "A001")
    await desk.locator("#priority-select").select_option("vip")
    await desk.locator("#priority-reason").fill("VIP card shown")

    async def clerk_first(route: Any) -> None:
        await hall.counter("2", "next", who="s2")
        await route.continue_()

    await desk.route("**/api/v1/tickets/*/priority", clerk_first)
    await desk.locator("#priority-btn").click()
    banner = desk.locator("#banner")
    await expect(banner).to_have_attribute("data-kind", "error")
    ticket = await ticket_by_number(hall, "A001")
    assert ticket["status"] == "called"
    async with hall.http() as http:
        refused = await http.post(
            f"/api/v1/tickets/{ticket['id']}/priority",
            json={"priority": "vip", "reason": "VIP card shown"},
            headers=bearer(hall.tokens["manager"]),
        )
    assert refused.status_code == 409, refused.text
    await expect(banner.locator(".detail")).to_have_text(refused.json()["detail"])
    # And the card shows why: A001 is called now, nothing but a reprint applies.
    await expect(card).to_have_attribute("data-status", "called")
    await expect(desk.locator("#priority-btn")).to_be_disabled()
    await expect(desk.locator("#print-btn")).to_be_enabled()
    assert ticket["priority"] == "normal"

    assert errors == []
    await context.close()


async def test_desk_issues_for_a_customer_and_prints(hall, browser):
    errors: list[str] = []
    # Business type b has a guide, which the ticket carries like the kiosk's.
    name, prefix, target = DEMO_SERVICES["b"]
    guide = {"zh": "请携带身份证", "en": "Bring your ID card"}
    body = {"name": name, "prefix": prefix, "target_wait_s": target, "guide": guide}
    await hall.api("PUT", f"/branches/{BRANCH}/services/b", json=body)
    context, desk = await open_desk(hall, browser, errors)
    card = desk.locator("#ticket-card")
    button = desk.locator('.issue-btn[data-service="b"]')
    await expect(button).to_contain_text("等候 0 人")

    await desk.locator('#issue-priority [data-priority="special"]').click()
    await desk.locator("#issue-phone").fill("138 1234 5678")
    await button.click()
    await expect(desk.locator("#banner")).to_contain_text("已取号 B001")
    await expect(card).to_have_attribute("data-number", "B001")
    await expect(card).to_have_attribute("data-priority", "special")
    await expect(card.locator("#tc-issued")).to_contain_text("导办台")
    await expect(card.locator("#tc-phone")).to_have_text("138****5678")
    await expect(button).to_contain_text("等候 1 人")
    # Ready for the next customer.
    await expect(desk.locator('#issue-priority [data-priority="normal"]')).to_have_attribute(
        "aria-checked", "true"
    )
    await expect(desk.locator("#issue-phone")).to_have_value("")
    issued = await ticket_by_number(hall, "B001")
    assert issued["channel"] == "staff" and issued["priority"] == "special"

    # Printed at once: the kiosk's ticket.
    assert await printed(desk) == 1
    receipt = desk.locator("#receipt #ticket")
    await expect(receipt.locator("#t-number")).to_have_text("B001")
    await expect(receipt.locator("#t-priority")).to_contain_text("爱心通道")
    await expect(receipt.locator("#t-ahead")).to_contain_text("0 人")
    await expect(receipt.locator("#t-reprint")).to_have_count(0)
    await expect(receipt.locator("#t-guide")).to_contain_text("请携带身份证")

    # Printed, only the ticket remains, 72 mm wide on an 80 mm page.
    await desk.emulate_media(media="print")
    await expect(receipt).to_be_visible()
    hidden = await desk.evaluate(
        "['.bar', '.desk-main'].map(s => getComputedStyle(document.querySelector(s)).display)"
    )
    assert hidden == ["none", "none"]
    width = await desk.evaluate("document.querySelector('#ticket').getBoundingClientRect().width")
    assert 265 <= width <= 280, width
    pdf = await desk.pdf(prefer_css_page_size=True)
    box = re.search(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", pdf)
    assert box and abs(float(box.group(1)) - 80 / 25.4 * 72) < 2, box
    assert len(re.findall(rb"/Type\s*/Page(?!s)", pdf)) == 1
    await desk.emulate_media(media="screen")
    await expect(receipt).to_be_hidden()

    # Printed again for a customer who lost it: marked as a copy.
    await desk.locator("#print-btn").click()
    assert await printed(desk, 2) == 2
    await expect(receipt.locator("#t-reprint")).to_contain_text("补打")

    assert errors == []
    await context.close()


async def test_desk_follows_the_hall_live(hall, browser):
    """Other clients act; the desk's list and card follow. Ends with the README's screenshot."""
    errors: list[str] = []
    for service, n in {"a": 4, "b": 2, "c": 1, "v": 1}.items():
        for _ in range(n):
            await hall.issue(service)
    for code, who in [("1", "s1"), ("2", "s2"), ("3", "s3")]:
        await hall.counter(code, "open", who=who)
    # B001 missed its call and came back; counter 3 serves C001.
    await hall.counter("2", "next", who="s2")
    await hall.counter("2", "recall", who="s2")
    await hall.counter("2", "no-show", who="s2")
    b001 = await ticket_by_number(hall, "B001")
    await hall.api("POST", f"/tickets/{b001['id']}/requeue", "kiosk")
    await hall.counter("3", "next", who="s3")
    context, desk = await open_desk(hall, browser, errors)
    card = desk.locator("#ticket-card")
    await expect(waiting_numbers(desk, "a")).to_have_text(["A001", "A002", "A003", "A004"])
    await row(desk, "A001").click()
    await expect(card).to_have_attribute("data-status", "waiting")

    # Counter 1 calls the ticket shown.
    await hall.counter("1", "next", who="s1")
    await expect(card).to_have_attribute("data-status", "called")
    await expect(card).to_have_attribute("data-last-event", "ticket.called")
    await expect(card.locator("#tc-counter")).to_have_text("1号窗口 Counter 1")
    await expect(history_types(desk).last.locator(".h-staff")).to_have_text("s1")
    await expect(waiting_numbers(desk, "a")).to_have_text(["A002", "A003", "A004"])
    await expect(desk.locator('#waiting-list .wl-row[data-number="A002"] .wl-pos')).to_have_text(
        "1"
    )

    # Someone else changes A004's class: the list reorders.
    a004 = await ticket_by_number(hall, "A004")
    await hall.api(
        "POST",
        f"/tickets/{a004['id']}/priority",
        "manager",
        json={"priority": "special", "reason": "孕妇 pregnant customer"},
    )
    await expect(waiting_numbers(desk, "a")).to_have_text(["A004", "A002", "A003"])
    # The kiosk issues; another hand cancels.
    await hall.issue("a")
    await expect(waiting_numbers(desk, "a")).to_have_text(["A004", "A002", "A003", "A005"])
    a003 = await ticket_by_number(hall, "A003")
    await hall.api("POST", f"/tickets/{a003['id']}/cancel", "kiosk")
    await expect(waiting_numbers(desk, "a")).to_have_text(["A004", "A002", "A005"])

    # The shown ticket follows what its counter does.
    await hall.counter("1", "start", who="s1")
    await expect(card).to_have_attribute("data-status", "serving")

    # A busy desk for the README: B001, re-queued, is moved to the green channel.
    await hall.api(
        "POST",
        f"/tickets/{b001['id']}/priority",
        "manager",
        json={"priority": "special", "reason": "抱婴者 carrying a baby"},
    )
    await find(desk, "B001")
    await expect(card).to_have_attribute("data-status", "waiting")
    await expect(history_types(desk)).to_have_count(7)  # ticket.near among them
    # Re-queued, it waits for its grace (requeue_after) whatever its class: the API's order.
    await expect(waiting_numbers(desk, "b")).to_have_count(2)
    await expect(row(desk, "B001")).to_have_class(re.compile(r"\bselected\b"))
    await expect(row(desk, "B001")).to_contain_text("爱心通道")
    await expect(desk.locator("#waiting-total")).to_have_text("6")
    await screenshot(desk, "desk", full_page=True)

    assert errors == []
    await context.close()

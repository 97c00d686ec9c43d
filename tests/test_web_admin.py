"""The manager's console (`/admin`, `/admin/{branch}`, SPEC §7) in Chromium against a real
server: the walk-through of docs/ui.md, a second branch set up from nothing without typing a
request, then run (a kiosk, a display, a clerk, a counter screen); and the forms' refusals,
each showing the API's problem `detail`. Saves docs/screenshots/admin-*.png."""

from __future__ import annotations

from typing import Any

from tests.browser import Hall, expect, new_context, screenshot, watch_console
from tests.helpers import ADMIN_TOKEN

NEW = "sz02"
NEW_NAME = "深圳福田营业厅"
GUIDE = "请携带身份证原件。Bring your ID card."


async def _open_console(context: Any, hall: Hall, errors: list[str]) -> Any:
    page = await context.new_page()
    watch_console(page, errors)
    await page.goto(f"{hall.url}/admin?token={ADMIN_TOKEN}")
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    assert "token=" not in page.url
    return page


async def _tab(page: Any, name: str) -> None:
    await page.locator(f'.tab[data-tab="{name}"]').click()
    await expect(page.locator(f"#tab-{name}")).to_be_visible()


async def _saved(page: Any, action: str) -> None:
    await page.wait_for_function(
        "a => window.hallq.lastAction && window.hallq.lastAction.action === a", arg=action
    )
    last = await page.evaluate("window.hallq.lastAction")
    assert last["ok"], last
    await page.evaluate("window.hallq.lastAction = null")


async def _refused(page: Any, action: str, fragment: str) -> None:
    await page.wait_for_function(
        "a => window.hallq.lastAction && window.hallq.lastAction.action === a", arg=action
    )
    last = await page.evaluate("window.hallq.lastAction")
    assert not last["ok"] and fragment in last["detail"], last
    await expect(page.locator("#banner")).to_contain_text(fragment)
    await page.evaluate("window.hallq.lastAction = null")


async def _submit(form: Any, **values: str) -> None:
    """Fills the named fields of `form` and submits it."""
    for name, value in values.items():
        await form.locator(f"[name={name}]").fill(value)
    await form.locator("button[type=submit]").click()


async def _create_branch(page: Any) -> None:
    await expect(page.locator("#create-panel")).to_be_visible()
    await _submit(page.locator("#create-branch"), code=NEW, name=NEW_NAME)
    await page.wait_for_url(f"**/admin/{NEW}**")
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    await expect(page.locator("#branch-name")).to_have_text(NEW_NAME)


async def _fill_type(page: Any, code: str, name: str, prefix: str, guide: str = "") -> None:
    form = page.locator("#type-form")
    await _submit(form, code=code, name=name, prefix=prefix, guide_zh=guide)


async def _add_type(page: Any, code: str, name: str, prefix: str, guide: str = "") -> None:
    await _fill_type(page, code, name, prefix, guide)
    await _saved(page, "type")
    await expect(page.locator(f'#types-table tr[data-code="{code}"]')).to_contain_text(name)


async def _add_counter(page: Any, code: str, profile: list[str]) -> None:
    form = page.locator("#counter-form")
    await form.locator("[name=code]").fill(code)
    await form.locator("[name=name]").fill(code)
    for service in profile:
        await form.locator("[name=add_type]").select_option(service)
        await form.locator("#profile-add").click()
    await form.locator("button[type=submit]").click()
    await _saved(page, "counter")


async def _new_device(
    page: Any, role: str, label: str, shot: str | None = None, **choices: str
) -> str:
    """Creates a device token in the console; returns its pairing link."""
    form = page.locator("#device-form")
    await form.locator("[name=role]").select_option(role)
    await form.locator("[name=label]").fill(label)
    for name, value in choices.items():
        await form.locator(f"[name={name}]").select_option(value)
    await form.locator("button[type=submit]").click()
    await _saved(page, "device-create")
    await expect(page.locator("#pairing-qr")).to_be_visible()
    link: str = await page.locator("#pairing-link").get_attribute("href")
    if shot:
        await page.evaluate("window.scrollTo(0, 0)")
        await screenshot(page, shot)
    await page.locator("#pairing button").click()
    return link


async def test_a_second_branch_set_up_from_nothing_and_run(hall: Hall, browser: Any) -> None:
    errors: list[str] = []
    context = await new_context(browser, 1280, 900)
    console = await _open_console(context, hall, errors)
    # The demo branch is listed with its pages; the admin creates a new one.
    await expect(console.locator('#branches tr[data-code="demo"]')).to_be_visible()
    await screenshot(console, "admin-index")
    await _create_branch(console)

    # Business types: a refusal first (the API's detail is shown), then two types.
    await _tab(console, "types")
    await _fill_type(console, "a", "综合业务 General", "a1")
    await _refused(console, "type", "body.prefix")
    await _add_type(console, "a", "综合业务 General", "A", GUIDE)
    await _add_type(console, "b", "缴费 Payments", "B")
    created = await hall.api("GET", f"/branches/{NEW}")
    assert [(s["code"], s["prefix"]) for s in created["services"]] == [("a", "A"), ("b", "B")]
    assert created["services"][0]["guide"] == {"zh": GUIDE, "en": None}
    await console.evaluate("window.scrollTo(0, 0)")
    await screenshot(console, "admin")

    # Counters: profiles chosen from the types, then one reordered with buttons.
    await _tab(console, "counters")
    await _add_counter(console, "1", ["a", "b"])
    await _add_counter(console, "2", ["b"])
    await console.locator('#counters-table [data-edit="1"]').click()
    await console.locator('#profile-list li[data-service="a"] [data-move="down"]').click()
    await expect(console.locator("#profile-list li").first).to_have_attribute("data-service", "b")
    await console.locator("#counter-form button[type=submit]").click()
    await _saved(console, "counter")
    counter = await hall.api("GET", f"/branches/{NEW}/counters/1")
    assert counter["services"] == ["b", "a"]
    await console.locator('#counters-table [data-edit="1"]').click()
    await console.locator('#profile-list li[data-service="a"] [data-move="up"]').click()
    await console.locator("#counter-form button[type=submit]").click()
    await _saved(console, "counter")
    assert (await hall.api("GET", f"/branches/{NEW}/counters/1"))["services"] == ["a", "b"]

    # Staff, with a staff number for the counter screen.
    await _tab(console, "staff")
    await _submit(console.locator("#staff-form"), code="s1", name="王芳", number="0107")
    await _saved(console, "staff")
    await expect(console.locator('#staff-table tr[data-code="s1"]')).to_contain_text("0107")

    # Devices: a kiosk, the lobby display, a clerk at counter 1, the screen above counter 1.
    await _tab(console, "devices")
    kiosk_link = await _new_device(console, "kiosk", "大厅取号机 1")
    display_link = await _new_device(console, "display", "大厅屏")
    clerk_link = await _new_device(console, "clerk", "王芳", staff="s1", counter="1")
    window_link = await _new_device(console, "display", "1号窗口屏", "admin-devices", counter="1")
    assert f"/kiosk/{NEW}?token=" in kiosk_link and f"/window/{NEW}/1?token=" in window_link
    await expect(console.locator("#devices-table tbody tr")).to_have_count(4)

    # A notice, seen on the lobby display.
    await _tab(console, "notices")
    await _submit(
        console.locator("#notice-form"),
        code="welcome",
        text_zh="欢迎光临福田营业厅",
        text_en="Welcome to Futian",
    )
    await _saved(console, "notice")
    display = await context.new_page()
    watch_console(display, errors)
    await display.goto(display_link)
    await expect(display.locator("body")).to_have_attribute("data-connection", "live")
    await expect(display.locator("#ticker")).to_contain_text("欢迎光临福田营业厅")

    # The kiosk issues; its guide is shown.
    kiosk = await context.new_page()
    watch_console(kiosk, errors)
    await kiosk.goto(kiosk_link)
    await expect(kiosk.locator("body")).to_have_attribute("data-connection", "live")
    await kiosk.locator(".service-btn").first.click()
    await expect(kiosk.locator("#ticket-view")).to_be_visible()
    await expect(kiosk.locator("#ticket-view")).to_contain_text("A001")
    await expect(kiosk.locator("#ticket-view")).to_contain_text("请携带身份证原件")

    # The clerk signs in and calls; the display and the counter screen show it.
    screen = await context.new_page()
    watch_console(screen, errors)
    await screen.goto(window_link)
    await expect(screen.locator("#window")).to_have_attribute("data-state", "closed")
    clerk = await context.new_page()
    watch_console(clerk, errors)
    await clerk.goto(clerk_link)
    await expect(clerk.locator("body")).to_have_attribute("data-connection", "live")
    await clerk.locator('[data-action="open"]').click()
    await expect(clerk.locator("#state")).to_have_attribute("data-state", "open")
    await clerk.locator('[data-action="next"]').click()
    await expect(display.locator("#now-number")).to_have_text("A001")
    await expect(screen.locator("#w-number")).to_have_text("A001")
    await expect(screen.locator("#w-clerk-name")).to_have_text("王芳")
    await expect(screen.locator("#w-clerk-number")).to_contain_text("0107")
    await clerk.locator('[data-action="complete"]').click()
    await clerk.locator('[data-action="pause"]').click()
    await expect(screen.locator("#window")).to_have_attribute("data-state", "paused")
    await expect(screen.locator("#w-sign")).to_contain_text("暂停服务")

    # The kiosk is put out of service from the console; its page says so.
    await console.locator('.tab[data-tab="devices"]').click()
    await console.locator('#devices-table tr[data-role="kiosk"] [name=out_of_service]').check()
    await _saved(console, "device-service")
    await expect(kiosk.locator("#out-of-service")).to_be_visible(timeout=12_000)
    await expect(kiosk.locator("#out-of-service")).to_contain_text("暂停使用")
    await context.close()
    assert not errors, errors


async def test_hours_branch_and_notices_forms_show_the_apis_refusals(
    hall: Hall, browser: Any
) -> None:
    errors: list[str] = []
    context = await new_context(browser, 1280, 900)
    page = await context.new_page()
    watch_console(page, errors)
    await page.goto(hall.page_url("/admin/demo", "manager"))
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")

    # Weekly hours with a lunch break, a special range, a holiday.
    await _tab(page, "hours")
    form = page.locator("#hours-form")
    await form.locator("[name=always_open]").uncheck()
    for day in ["mon", "tue", "wed", "thu", "fri"]:
        await form.locator(f"[name=weekly-{day}-open]").check()
        for i, value in enumerate(["09:00", "12:00", "13:30", "17:30"]):
            await form.locator(f"[name=weekly-{day}-{i}]").fill(value)
    await form.locator("button", has_text="Add special hours").click()
    special = form.locator('.special-range[data-index="0"]')
    await special.locator("[name=from]").fill("2027-07-01")
    await special.locator("[name=to]").fill("2027-06-30")  # before `from`: refused
    await form.locator("[name=new_holiday]").fill("2027-10-01")
    await form.locator("button", has_text="Add holiday").click()
    await form.locator("button[type=submit]").click()
    await _refused(page, "hours", "before")
    await special.locator("[name=to]").fill("2027-08-31")
    await form.locator("button[type=submit]").click()
    await _saved(page, "hours")
    branch = await hall.api("GET", "/branches/demo")
    assert branch["hours"]["mon"] == [["09:00", "12:00"], ["13:30", "17:30"]]
    assert "sat" not in branch["hours"]
    assert [(r["from"], r["to"]) for r in branch["special_hours"]] == [("2027-07-01", "2027-08-31")]
    assert branch["holidays"] == ["2027-10-01"]

    # The branch: a wording without {number} is refused, a good one kept.
    await _tab(page, "branch")
    form = page.locator("#branch-form")
    await form.locator("[name=ann_zh]").fill("请到{place}办理")
    await form.locator("button[type=submit]").click()
    await _refused(page, "branch", "{number}")
    await form.locator("[name=ann_zh]").fill("请{number}号到{place}办理")
    await form.locator("[name=min_open_counters]").fill("2")
    await form.locator("[name=service_level_pct]").fill("85")  # the staffing plan (SPEC §11)
    await form.locator("[name=staffing_weeks]").fill("12")
    await form.locator("button[type=submit]").click()
    await _saved(page, "branch")
    branch = await hall.api("GET", "/branches/demo")
    assert branch["announcement"]["zh"] == "请{number}号到{place}办理"
    assert branch["min_open_counters"] == 2 and branch["holidays"] == ["2027-10-01"]
    assert (branch["service_level_pct"], branch["staffing_weeks"]) == (85, 12)

    # A guide over 500 characters is refused with the API's words.
    await _tab(page, "types")
    await page.locator('#types-table [data-edit="a"]').click()
    await page.locator("#type-form [name=guide_zh]").fill("须" * 501)
    await page.locator("#type-form button[type=submit]").click()
    await _refused(page, "type", "500")

    # Notices: one kept for a window of local time, edited, then deleted.
    await _tab(page, "notices")
    await _submit(
        page.locator("#notice-form"),
        code="closing",
        text_zh="国庆节闭厅",
        **{"from": "2027-09-25T09:00", "to": "2027-10-08T00:00"},
    )
    await _saved(page, "notice")
    notices = await hall.api("GET", "/branches/demo/notices")
    # Typed as Shanghai time, stored as the instant.
    assert notices[0]["from"].startswith("2027-09-25T01:00:00")
    await page.locator('#notices-table [data-edit="closing"]').click()
    await expect(page.locator("#notice-form [name=from]")).to_have_value("2027-09-25T09:00")
    await page.locator('#notices-table [data-delete="closing"]').click()
    await page.locator('#notices-table [data-delete="closing"]').click()  # sure?
    await _saved(page, "notice-delete")
    assert await hall.api("GET", "/branches/demo/notices") == []

    # A manager's index lists their own branch and offers no new branch; devices they may
    # create are the hall's, not managers.
    await page.goto(f"{hall.url}/admin")
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    await expect(page.locator("#branches tr")).to_have_count(1)
    await expect(page.locator("#create-panel")).to_be_hidden()
    await page.goto(f"{hall.url}/admin/demo#devices")
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    roles = await page.locator("#device-form [name=role] option").evaluate_all(
        "options => options.map(o => o.value)"
    )
    assert roles == ["kiosk", "display", "clerk"]
    await context.close()
    assert not errors, errors

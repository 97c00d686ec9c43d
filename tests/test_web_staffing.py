"""The dashboard's staffing block in a browser (SPEC §11): today's plan beside the counters open
now, and a what-if, on a real server with the demo hall and four weeks of generated history
(devtools/history.py: 56 tickets a day of types a, b and v, issued 09:00-16:00)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from devtools.history import History
from tests.browser import BRANCH, SCREENSHOTS, expect, new_context, watch_console

WEEKS = 4
PER_DAY = 56  # 8 an hour


async def _history(hall) -> None:
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    first = today - timedelta(weeks=WEEKS)
    url = hall.database_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(url)
    try:
        await History(BRANCH, first, 7 * WEEKS, PER_DAY, 5).load(conn)
    finally:
        await conn.close()


async def test_the_plan_beside_the_counters_open_and_a_what_if(hall, browser):
    await _history(hall)
    await hall.counter("1", "open", who="s1")
    await hall.counter("2", "open", who="s2")
    plan = await hall.api("GET", f"/branches/{BRANCH}/staffing")
    assert plan["based_on"] == {"weeks": 8, "days": WEEKS}
    ten = next(h for h in plan["hours"] if h["hour"] == "10:00")
    assert sum(ten["arrivals"].values()) == 8.0
    assert ten["recommended_counters"] >= 1

    errors: list[str] = []
    context = await new_context(browser, 1920, 1400)
    page = await context.new_page()
    watch_console(page, errors)
    await page.goto(hall.page_url(f"/dashboard/{BRANCH}", "manager"))
    block = page.locator("#staffing")
    await expect(block).to_have_attribute("data-state", "loaded")
    await expect(block.locator("#staffing-basis")).to_contain_text("参考 4 天")
    # The demo branch is always open: a row for every hour of the day.
    await expect(block.locator("#staffing-hours tr")).to_have_count(24)
    row = block.locator('#staffing-hours tr[data-hour="10:00"]')
    await expect(row.locator("td").nth(1)).to_have_text("8.0")
    await expect(row.locator("td.recommended")).to_have_text(str(ten["recommended_counters"]))
    await expect(row.locator("td").nth(4)).to_contain_text(f"{ten['expected_within_target_pct']}%")
    # Beside the plan, the counters open now, live: 2, then 3.
    await expect(block.locator("#staffing-open-now")).to_have_text("2")
    await hall.counter("3", "open", who="s3")
    await expect(block.locator("#staffing-open-now")).to_have_text("3")

    # What if one counter served 10:00?
    await block.locator("#whatif-hour").select_option("10:00")
    await block.locator("#whatif-counters").fill("1")
    await block.locator("#whatif button").click()
    answer = block.locator("#whatif-answer")
    await expect(answer).to_have_attribute("data-state", "answered")
    asked = await hall.api(
        "GET", f"/branches/{BRANCH}/staffing/what-if", params={"hour": "10:00", "counters": 1}
    )
    await expect(answer).to_contain_text(f"{asked['expected_within_target_pct']:.1f}%")
    await expect(answer).to_contain_text(f"建议 {ten['recommended_counters']} 个")
    assert asked["expected_within_target_pct"] < ten["expected_within_target_pct"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await row.scroll_into_view_if_needed()
    await block.screenshot(path=str(SCREENSHOTS / "dashboard-staffing.png"))
    assert not errors, errors
    await context.close()

"""The reports in a browser (SPEC §10): the region page, the dashboard's week and month, and the
clerk console's own tally, on a real server with the demo hall (tests/browser.py)."""

from __future__ import annotations

import asyncio
import io
import math
import uuid
from pathlib import Path

import asyncpg
import openpyxl
import pytest

from tests.browser import (
    BRANCH,
    expect,
    new_context,
    press_shortcut,
    screenshot,
    watch_console,
)
from tests.helpers import ADMIN, ADMIN_TOKEN, ok


async def _morning(hall) -> None:
    """Six tickets in the demo hall; s1 serves two of them at counter 1."""
    for service in ("a", "a", "b", "a", "c", "v"):
        await hall.issue(service)
    await hall.counter("1", "open", who="s1")
    await hall.counter("1", "next", who="s1")
    await hall.counter("1", "next", who="s1")  # completes the first, calls the second
    await hall.counter("1", "complete", who="s1")


async def test_region_page_sorts_branches_and_downloads(hall, browser):
    await _morning(hall)
    async with hall.http() as http:
        body = {"name": "深圳福田营业厅", "timezone": "Asia/Shanghai"}
        await ok(await http.put("/api/v1/branches/sz02", json=body, headers=ADMIN), 201)
        service = {"name": "综合业务", "prefix": "A"}
        await ok(
            await http.put("/api/v1/branches/sz02/services/a", json=service, headers=ADMIN), 201
        )
    errors: list[str] = []
    context = await new_context(browser, 1600, 900)
    page = await context.new_page()
    watch_console(page, errors)
    await page.goto(f"{hall.url}/region?token={ADMIN_TOKEN}")
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    rows = page.locator("#region-rows tr")
    await expect(rows).to_have_count(2)
    await expect(rows.first).to_have_attribute("data-branch", BRANCH)  # by code: demo, sz02
    # Sorting by served puts the busiest first; again, the other way round.
    served = page.locator('#region-head th[data-key="served"]')
    await served.click()
    await expect(served).to_have_attribute("aria-sort", "descending")
    await expect(rows.first).to_have_attribute("data-branch", BRANCH)
    await expect(rows.first.locator('td[data-key="served"]')).to_have_text("2")
    await served.click()
    await expect(served).to_have_attribute("aria-sort", "ascending")
    await expect(rows.first).to_have_attribute("data-branch", "sz02")
    link = rows.last.locator("a")
    assert await link.get_attribute("href") == f"/dashboard/{BRANCH}"
    await expect(rows.first.locator('td[data-key="issued"]')).to_have_text("0")
    for format in ("csv", "xlsx"):
        async with page.expect_download() as download_info:
            await page.locator(f"#download-{format}").click()
        download = await download_info.value
        assert download.suggested_filename.endswith(f".{format}")
        saved = Path(await download.path())
        if format == "csv":
            text = await asyncio.to_thread(saved.read_text, encoding="utf-8-sig")
            assert "深圳福田营业厅" in text
        else:
            book = openpyxl.load_workbook(io.BytesIO(await asyncio.to_thread(saved.read_bytes)))
            assert book.sheetnames == ["营业厅 Branches"]
    await screenshot(page, "region")
    assert not errors, errors
    await context.close()


async def test_dashboard_week_and_month_and_the_clerks_tally(hall, browser):
    await _morning(hall)
    errors: list[str] = []
    context = await new_context(browser, 1920, 1200)
    dashboard = await context.new_page()
    watch_console(dashboard, errors)
    await dashboard.goto(hall.page_url(f"/dashboard/{BRANCH}", "manager"))
    await expect(dashboard.locator("#periods")).to_have_attribute("data-state", "loaded")
    for period in ("today", "week", "month"):
        issued = dashboard.locator(f'#periods tr[data-figure="issued"] td[data-period="{period}"]')
        await expect(issued).to_have_text("6")
        served = dashboard.locator(f'#periods tr[data-figure="served"] td[data-period="{period}"]')
        await expect(served).to_have_text("2")
    async with dashboard.expect_download() as download_info:
        await dashboard.locator(
            '#period-downloads a[data-period="month"][data-format="xlsx"]'
        ).click()
    download = await download_info.value
    assert download.suggested_filename.endswith(".xlsx")
    saved = Path(await download.path())
    book = openpyxl.load_workbook(io.BytesIO(await asyncio.to_thread(saved.read_bytes)))
    assert book.sheetnames == ["汇总 Summary", "每日 Days"]

    # The clerk console: s1's own tally, updated as s1 serves.
    console = await context.new_page()
    watch_console(console, errors)
    await console.goto(hall.page_url(f"/counter/{BRANCH}/1", "s1"))
    tally = console.locator("#tally")
    await expect(tally).to_be_visible()
    await expect(console.locator("#tally-served")).to_have_text("2")
    await press_shortcut(console, "n")
    await expect(console.locator("#cur-number")).not_to_have_text("—")
    await press_shortcut(console, "c")
    await expect(console.locator("#tally-served")).to_have_text("3")
    assert not errors, errors
    await context.close()


def _clock(seconds: float) -> str:
    """common.js's clockDuration: whole seconds (halves up) as m:ss."""
    s = math.floor(abs(seconds) + 0.5)
    return f"{s // 60}:{s % 60:02d}"


async def test_dashboard_shows_how_good_todays_estimates_were(hall, browser):
    """A001 and A002 are called at once; their quotes are then set to 121 s [0, 300] and 600 s
    [300, 900]: a mean error and a bias of about 6 minutes (too long), one of the two inside its
    range. Nothing of b was called: no figures."""
    tickets = [await hall.issue("a") for _ in range(2)]
    await hall.counter("1", "open", who="s1")
    for _ in tickets:
        await hall.counter("1", "next", who="s1")
    ids = [uuid.UUID(t["id"]) for t in tickets]
    dsn = hall.database_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        complete = "SELECT count(*) FROM estimate_quotes WHERE ticket_id = ANY($1)"
        complete += " AND quoted_s IS NOT NULL AND waited_s IS NOT NULL"
        for _ in range(200):  # the server's writer keeps the quotes within a moment
            if await conn.fetchval(complete, ids) == 2:
                break
            await asyncio.sleep(0.05)
        for ticket_id, quote in zip(ids, [(121, 0, 300), (600, 300, 900)], strict=True):
            await conn.execute(
                "UPDATE estimate_quotes SET quoted_s = $2, low_s = $3, high_s = $4"
                " WHERE ticket_id = $1 AND waited_s IS NOT NULL",
                ticket_id,
                *quote,
            )
    finally:
        await conn.close()
    async with hall.http() as http:
        report = await ok(await http.get(f"/api/v1/branches/{BRANCH}/reports/daily", headers=ADMIN))
    a = next(s for s in report["services"] if s["service"] == "a")
    assert a["estimate_in_range_pct"] == 50.0
    assert a["estimate_mae_s"] == pytest.approx(360, abs=5)
    assert a["estimate_bias_s"] == pytest.approx(-360, abs=5)

    errors: list[str] = []
    context = await new_context(browser, 1920, 1400)
    dashboard = await context.new_page()
    watch_console(dashboard, errors)
    await dashboard.goto(hall.page_url(f"/dashboard/{BRANCH}", "manager"))
    table = dashboard.locator("#accuracy")
    await expect(table).to_have_attribute("data-state", "loaded")
    row = table.locator('tr[data-service="a"]')
    await expect(row.locator(".mae")).to_have_text(_clock(a["estimate_mae_s"]))
    await expect(row.locator(".bias")).to_contain_text(f"−{_clock(a['estimate_bias_s'])}")
    await expect(row.locator(".bias")).to_contain_text("too long")
    await expect(row.locator(".in-range")).to_have_text("50.0%")
    for cell in (".mae", ".bias", ".in-range"):
        await expect(table.locator(f'tr[data-service="b"] {cell}')).to_have_text("—")
    await expect(dashboard.locator("#periods")).to_have_attribute("data-state", "loaded")
    await screenshot(dashboard, "dashboard-estimates", full_page=True)
    assert not errors, errors
    await context.close()

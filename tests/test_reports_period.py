"""The period report, the branches report, the exports and a clerk's tally (SPEC §10, issue 22).

Two kinds of history, both with the manual clock:

- the hand-computed day of tests/test_reports.py (driven through the API), for a period of one
  day that must be that day's daily report figure by figure, and a period of three days whose
  figures are computed here by hand;
- four weeks of generated history in three branches (devtools/history.py: bulk SQL, shaped
  like the real one), for the invariants: the days add up to the period, a period of one day is
  its daily report, the branches report's rows are each branch's period total, and the daily
  rollups are exactly what the history gives.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta

import asyncpg
import openpyxl
import pytest
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import select, text

from app.branches.hours import Schedule
from app.reports import rollups
from app.reports.figures import PART_COLUMNS, Window, day_parts
from app.reports.models import ReportRollup
from app.reports.service import branch_config, report_rows
from app.reports.tally import Tallies
from devtools.history import History
from tests.helpers import ADMIN, assert_problem, make_token, ok, setup_branch
from tests.test_reports import (
    EXPECTED_COUNTERS,
    EXPECTED_SERVICES,
    EXPECTED_STAFF,
    D,
    at,
    hall_tokens,
    report,
    run_day,
)

B = "/api/v1/branches/hz01"
PERIOD = f"{B}/reports/period"
BRANCHES = "/api/v1/reports/branches"
ROWS = ("services", "counters", "staff")


async def period(client, first: date, last: date, headers=ADMIN, **params):
    query = {"from": first.isoformat(), "to": last.isoformat(), **params}
    return await ok(await client.get(PERIOD, params=query, headers=headers))


# -- the hand-computed day ----------------------------------------------------------------------


@pytest.fixture
async def tokens(client, clock):
    return await hall_tokens(client, clock)


async def test_a_period_of_one_day_is_its_daily_report(app, client, clock, tokens):
    await run_day(app, client, clock, tokens)
    at(clock, D + timedelta(days=1), "09:00")
    daily = await report(client, D, headers=tokens["manager"])
    # D is final now (closed out, nothing left over): the period reads its rollup.
    one_day = await period(client, D, D, headers=tokens["manager"])
    assert (one_day["from"], one_day["to"]) == ("2026-11-24", "2026-11-24")
    for rows in ROWS:
        assert one_day[rows] == daily[rows], rows
    assert one_day["services"] == EXPECTED_SERVICES
    assert one_day["counters"] == EXPECTED_COUNTERS
    assert one_day["staff"] == EXPECTED_STAFF
    assert one_day["days"] == [
        {
            "date": "2026-11-24",
            "issued": 9,
            "served": 5,
            # first calls 1200, 300, 600, 360 (a), 300, 1620 (b), 240 (v)
            "avg_wait_s": round((1200 + 300 + 600 + 360 + 300 + 1620 + 240) / 7, 1),
            "within_target_pct": round(100 * 4 / 7, 1),  # A002 A003 A005 B001
            # a: 2 expired + 1 cancelled, v: 1 no-show, of 9
            "abandoned_pct": round(100 * 4 / 9, 1),
        }
    ]
    assert one_day["total"] == {
        "issued": 9,
        "served": 5,
        "avg_wait_s": one_day["days"][0]["avg_wait_s"],
        "p90_wait_s": 1620.0,  # the 7th of 7 sorted waits
        "within_target_pct": one_day["days"][0]["within_target_pct"],
        "abandoned_pct": one_day["days"][0]["abandoned_pct"],
        "rating_avg": 3.6,  # 4, 5, 3, 4, 2
        "satisfaction_pct": 60.0,  # 3 of 5
        # no quote was kept (tests/test_estimate_accuracy.py keeps them)
        "estimate_mae_s": None,
        "estimate_bias_s": None,
        "estimate_in_range_pct": None,
    }
    async with app.state.sessionmaker() as session:
        assert await rollups.rolled_up_days(session, "hz01", D, D) == {D}


async def test_three_days_by_hand(app, client, clock, tokens):
    """The 23rd (one ticket, expired; counter 1 open from 23:30), D, and the 25th so far."""
    await run_day(app, client, clock, tokens)
    at(clock, D + timedelta(days=1), "09:00")
    body = await period(client, D - timedelta(days=1), D + timedelta(days=1))
    a, b, v = body["services"]
    assert (a["issued"], a["expired"], a["cancelled"], a["abandoned_pct"]) == (
        7,
        3,
        1,
        round(100 * 4 / 7, 1),
    )
    assert (a["called"], a["avg_wait_s"], a["p90_wait_s"]) == (4, 615.0, 1200.0)
    assert (b["issued"], v["issued"], v["no_show"]) == (2, 1, 1)
    counter_1 = body["counters"][0]
    # Open 23:30-24:00 on the 23rd, and 56,400 s on D; served 1,620 s of it.
    assert (counter_1["open_s"], counter_1["serving_s"]) == (1800.0 + 56400.0, 1620.0)
    assert counter_1["utilisation"] == round(1620 / 58200, 3)
    s1 = body["staff"][0]
    # Signed in 23:30 on the 23rd to 00:40 on D; served A001.
    assert (s1["staff"], s1["signed_in_s"], s1["served"]) == ("s1", 4200.0, 1)
    assert s1["served_per_hour"] == round(1 / (4200 / 3600), 1)
    assert [(d["date"], d["issued"], d["served"]) for d in body["days"]] == [
        ("2026-11-23", 1, 0),
        ("2026-11-24", 9, 5),
        ("2026-11-25", 0, 0),
    ]
    assert body["days"][0]["abandoned_pct"] == 100.0
    assert body["days"][2]["avg_wait_s"] is None
    # The 23rd and D are final and rolled up; the 25th is today, from the history.
    async with app.state.sessionmaker() as session:
        built = await rollups.rolled_up_days(
            session, "hz01", D - timedelta(days=1), D + timedelta(days=1)
        )
    assert built == {D - timedelta(days=1), D}


async def test_a_clerk_reads_their_own_tally_only(app, client, clock, tokens):
    await run_day(app, client, clock, tokens)
    # run_day ends just after D, at the close-out: s4 asks for D.
    url = f"{B}/reports/staff/s4"
    mine = await ok(await client.get(url, params={"date": D.isoformat()}, headers=tokens["s4"]))
    assert (mine["staff"], mine["date"], mine["served"], mine["avg_service_s"]) == (
        "s4",
        "2026-11-24",
        2,
        510.0,
    )
    assert mine["signed_in_s"] == 54000.0
    assert_problem(
        await client.get(f"{B}/reports/staff/s2", headers=tokens["s4"]), 403, contains="own"
    )
    # The manager reads anyone's; a clerk who did nothing that day has zeros.
    theirs = await ok(await client.get(f"{B}/reports/staff/s2", headers=tokens["manager"]))
    assert theirs["served"] == 0 and theirs["avg_service_s"] is None


# -- generated history --------------------------------------------------------------------------

FIRST = date(2026, 10, 19)  # a Monday: four weeks to 2026-11-15
WEEKS = 4
COUNTERS = {str(n): {"name": f"{n}号窗口", "services": ["a", "b", "v"]} for n in range(1, 5)}
BRANCH_CODES = ("hz01", "hz02", "sh01")
ADDITIVE = ("issued", "served")


@pytest.fixture
async def history(app, client, database_url):
    """Three branches with four weeks of history each (different sizes)."""
    for code in BRANCH_CODES:
        await setup_branch(client, code, counters=COUNTERS)
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for n, code in enumerate(BRANCH_CODES):
            await History(code, FIRST, 7 * WEEKS, 30 + 10 * n, len(COUNTERS)).load(conn)
    finally:
        await conn.close()
    return FIRST, FIRST + timedelta(days=7 * WEEKS - 1)


async def test_the_days_add_up_to_the_period(client, history):
    first, last = history
    body = await period(client, first, last)
    days = body["days"]
    assert len(days) == 7 * WEEKS and days[0]["date"] == first.isoformat()
    for figure in ADDITIVE:
        total = body["total"][figure]
        assert total > 0
        assert sum(d[figure] for d in days) == total
        assert sum(s[figure] for s in body["services"]) == total
    # Clerks and counters serve what the business types served.
    assert sum(c["served"] for c in body["counters"]) == body["total"]["served"]
    assert sum(s["served"] for s in body["staff"]) == body["total"]["served"]
    # Weeks add up to the four weeks, count by count.
    weeks = [
        await period(client, first + timedelta(days=7 * w), first + timedelta(days=7 * w + 6))
        for w in range(WEEKS)
    ]
    for rows, key in (("services", "service"), ("counters", "counter"), ("staff", "staff")):
        for row in body[rows]:
            for figure in ("called", "served", "no_show", "transferred", "expired", "ratings"):
                parts = [
                    next((r[figure] for r in week[rows] if r[key] == row[key]), 0) for week in weeks
                ]
                assert sum(parts) == row[figure], (rows, row[key], figure)
    for row in body["staff"]:
        assert row["signed_in_s"] == pytest.approx(
            sum(
                next(r["signed_in_s"] for r in w["staff"] if r["staff"] == row["staff"])
                for w in weeks
            )
        )


async def test_one_day_of_the_history_is_its_daily_report(client, history):
    first, _ = history
    for day in (first, first + timedelta(days=10)):
        daily = await ok(
            await client.get(f"{B}/reports/daily", params={"date": day.isoformat()}, headers=ADMIN)
        )
        one_day = await period(client, day, day)
        for rows in ROWS:
            assert one_day[rows] == daily[rows], (day, rows)


async def test_the_estimates_accuracy_over_the_history(app, client, history):
    """The accuracy figures of four weeks, against the tickets' own first calls and quotes."""
    first, last = history
    body = await period(client, first, last)
    async with app.state.sessionmaker() as session:
        rows = await session.execute(
            text(
                """
                SELECT t.issued_service AS service, count(*) AS n,
                       avg(abs(x.waited - q.quoted_s)) AS mae, avg(x.waited - q.quoted_s) AS bias,
                       100.0 * count(*) FILTER (WHERE x.waited BETWEEN q.low_s AND q.high_s)
                           / count(*) AS in_range
                FROM tickets t
                JOIN estimate_quotes q ON q.ticket_id = t.id AND q.quoted_s IS NOT NULL
                CROSS JOIN LATERAL
                    (SELECT extract(epoch FROM t.called_at - t.issued_at) AS waited) AS x
                WHERE t.branch = 'hz01' AND t.called_at IS NOT NULL
                GROUP BY ROLLUP (t.issued_service)
                """
            )
        )
        expected = {
            r.service or "total": tuple(round(float(v), 1) for v in (r.mae, r.bias, r.in_range))
            for r in rows
        }
    assert expected["a"][0] > 0 and expected["total"][1] != 0  # the history has errors
    got = {
        row["service"]: (
            row["estimate_mae_s"],
            row["estimate_bias_s"],
            row["estimate_in_range_pct"],
        )
        for row in body["services"]
    }
    total = body["total"]
    got["total"] = (
        total["estimate_mae_s"],
        total["estimate_bias_s"],
        total["estimate_in_range_pct"],
    )
    assert got == expected


async def test_the_branches_report_is_each_branchs_period_total(client, history):
    first, last = history
    body = await ok(
        await client.get(
            BRANCHES, params={"from": first.isoformat(), "to": last.isoformat()}, headers=ADMIN
        )
    )
    assert [r["branch"] for r in body["branches"]] == list(BRANCH_CODES)
    for row in body["branches"]:
        each = await ok(
            await client.get(
                f"/api/v1/branches/{row['branch']}/reports/period",
                params={"from": first.isoformat(), "to": last.isoformat()},
                headers=ADMIN,
            )
        )
        assert {k: row[k] for k in each["total"]} == each["total"]
        assert row["name"] == f"Branch {row['branch']}" and row["timezone"] == "Asia/Shanghai"
    sizes = [r["issued"] for r in body["branches"]]
    assert sizes == [7 * WEEKS * (30 + 10 * n) for n in range(3)]


async def test_the_rollups_are_exactly_the_history(app, client, clock, history):
    first, last = history
    await period(client, first, last)  # rolls the final days up on the way
    schedule = Schedule.from_config("Asia/Shanghai", None, [], 0)
    now = clock.now()
    columns = [getattr(ReportRollup, name) for name in PART_COLUMNS]

    def key(part):
        return tuple(getattr(part, name) for name in PART_COLUMNS)

    async def stored(session):
        rows = await session.execute(select(*columns).where(ReportRollup.branch == "hz01"))
        return sorted(map(key, rows.all()))

    async with app.state.sessionmaker() as session:
        assert await rollups.final_through(session, "hz01", now) >= last
        assert await rollups.rolled_up_days(session, "hz01", first, last) == {
            first + timedelta(days=n) for n in range(7 * WEEKS)
        }
        # What is stored is what the history gives, part by part.
        live = await day_parts(session, "hz01", Window.of(first, last, schedule, now))
        assert await stored(session) == sorted(key(p) for p in live if p.scope != "hour")
        # Added up, the rolled-up parts (counters' and clerks' summed in the database) make
        # the same rows as the live ones.
        config = await branch_config(session, "hz01")
        from_rollups = Tallies.of(
            await rollups.rolled_up_parts(session, "hz01", first, last), config.targets
        )
        from_history = Tallies.of([p for p in live if p.scope != "hour"], config.targets)
        assert report_rows(from_rollups, config) == report_rows(from_history, config)
        assert from_rollups.days == from_history.days
        await session.rollback()
        # Rebuilt from scratch, they are the same again.
        before = await stored(session)
        days = await rollups.rebuild_rollups(session, "hz01", schedule, now)
        assert days >= 7 * WEEKS
        assert await stored(session) == before


# -- exports ------------------------------------------------------------------------------------


async def test_exports(client, history):
    first, last = history
    query = {"from": first.isoformat(), "to": last.isoformat()}
    body = await period(client, first, last)
    response = await client.get(PERIOD, params={**query, "format": "csv"}, headers=ADMIN)
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == (
        'attachment; filename="hallq-hz01-2026-10-19-2026-11-15.csv"'
    )
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert list(rows[0])[:5] == ["from", "to", "scope", "code", "name"]
    assert rows[0]["issued"] == str(body["services"][0]["issued"])
    # The estimate's accuracy: the business types' rows, a negative bias as a number.
    assert list(rows[0])[-3:] == ["estimate_mae_s", "estimate_bias_s", "estimate_in_range_pct"]
    for row, json_row in zip(rows, body["services"], strict=False):
        for column in ("estimate_mae_s", "estimate_bias_s", "estimate_in_range_pct"):
            assert float(row[column]) == json_row[column], column
    assert any(float(r["estimate_bias_s"]) < 0 for r in rows[:3])
    assert all(r["estimate_mae_s"] == "" for r in rows if r["scope"] != "service")

    response = await client.get(PERIOD, params={**query, "format": "xlsx"}, headers=ADMIN)
    assert response.headers["content-type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == ["汇总 Summary", "每日 Days"]
    summary, days = book["汇总 Summary"], book["每日 Days"]
    assert isinstance(summary, Worksheet) and isinstance(days, Worksheet)
    header = [c.value for c in summary[1]]
    assert header[:4] == ["起始日期 from", "截止日期 to", "类别 scope", "代码 code"]
    assert "满意率% satisfaction_pct" in header
    assert header[-3:] == [
        "预计等候误差(秒) estimate_mae_s",
        "预计等候偏差(秒) estimate_bias_s",
        "落在预计区间% estimate_in_range_pct",
    ]
    first_row = {str(h).split(" ")[-1]: c.value for h, c in zip(header, summary[2], strict=True)}
    assert isinstance(first_row["from"], datetime) and first_row["from"].date() == first
    assert first_row["issued"] == body["services"][0]["issued"]  # a number, not text
    assert isinstance(first_row["avg_wait_s"], float)
    assert first_row["estimate_bias_s"] == body["services"][0]["estimate_bias_s"]
    assert days.max_row == 1 + 7 * WEEKS
    assert days["A2"].value.date() == first and days["B2"].value == body["days"][0]["issued"]

    response = await client.get(BRANCHES, params={**query, "format": "xlsx"}, headers=ADMIN)
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == ["营业厅 Branches"]
    assert isinstance(book.active, Worksheet)
    assert [c.value for c in book.active["C"]][1:] == list(BRANCH_CODES)
    response = await client.get(BRANCHES, params={**query, "format": "csv"}, headers=ADMIN)
    assert response.content.startswith(b"\xef\xbb\xbf")
    branch_rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert float(branch_rows[0]["estimate_mae_s"]) == body["total"]["estimate_mae_s"]


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "contains"),
    [
        ({"from": "2026-11-10", "to": "2026-11-01"}, "after"),
        ({"from": "2025-01-01", "to": "2026-01-02"}, "at most 366"),
        ({"from": "2026-02-30", "to": "2026-03-01"}, "calendar date"),
        ({"from": "2026-11-01", "to": "yesterday"}, "to"),
        ({"from": "2026-11-01"}, "to"),
        ({"from": "2026-11-01", "to": "2026-11-02", "format": "pdf"}, "format"),
        ({"from": "2026-11-01", "to": "2026-12-31"}, "after today"),
        ({"from": "1999-12-01", "to": "1999-12-31"}, "2000"),
    ],
)
async def test_bad_input(client, params, contains):
    await setup_branch(client)
    for url in (PERIOD, BRANCHES):
        assert_problem(await client.get(url, params=params, headers=ADMIN), 422, contains=contains)


async def test_a_year_and_a_leap_day_is_allowed(client):
    await setup_branch(client)
    body = await period(client, date(2023, 11, 24), date(2024, 11, 23))  # 366 days
    assert len(body["days"]) == 366
    assert body["total"]["issued"] == 0


async def test_who_reads_what(client):
    await setup_branch(client)
    manager = await make_token(client, "manager", "hz01")
    query = {"from": "2026-11-01", "to": "2026-11-24"}
    await ok(await client.get(PERIOD, params=query, headers=manager))
    assert_problem(await client.get(BRANCHES, params=query, headers=manager), 403)


async def test_xlsx_keeps_odd_names_harmless(client):
    """A name is free text: a formula stays text, a control character (which no workbook can
    hold) becomes U+FFFD."""
    await setup_branch(client, services={"a": {"name": "=1+1\x1b", "prefix": "A"}}, counters={})
    response = await client.get(f"{B}/reports/daily", params={"format": "xlsx"}, headers=ADMIN)
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    assert isinstance(sheet, Worksheet)
    names = [c.value for c in sheet["D"]]
    assert names == ["名称 name", "'=1+1\ufffd"]


async def test_a_visit_longer_than_a_day_is_read_from_the_full_history(client, clock):
    """A ticket whose issue lies before the window's day of look-back (nobody closed the day
    out): its visit start is looked up in the whole history, as the daily report always did."""
    await setup_branch(client, counters={"1": {"name": "1", "services": ["a"]}})
    day = date(2026, 11, 20)
    at(clock, day, "23:00")
    await ok(await client.post(f"{B}/tickets", json={"service": "a"}, headers=ADMIN), 201)
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    at(clock, day, "23:30")
    await ok(await client.post(f"{B}/counters/1/next", headers=ADMIN))
    at(clock, day + timedelta(days=2), "10:00")
    await ok(await client.post(f"{B}/counters/1/complete", headers=ADMIN))
    body = await report(client, day + timedelta(days=2))
    a = body["services"][0]
    assert (a["served"], a["avg_service_s"]) == (1, 34.5 * 3600)
    first = await report(client, day)
    assert (first["services"][0]["called"], first["services"][0]["avg_wait_s"]) == (1, 1800.0)
    # The same in a period of the three days (the call and the issue are in its look-back).
    three = await period(client, day, day + timedelta(days=2))
    assert (three["services"][0]["served"], three["services"][0]["called"]) == (1, 1)

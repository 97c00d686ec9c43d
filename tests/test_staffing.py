"""The staffing plan's API (SPEC §11, issue 23): the forecast from a history whose answer is
known, the counters open, the plan where Erlang C gives the answer, no history, the what-if,
permissions and bad input. The plan's search in the simulated hall: tests/test_staffing_plan.py.

The history (`history`): branch hz01 opens 09:00-12:00 on weekdays; counters 1 (a, b) and 2
(b, a). On the Tuesdays before D = Tuesday 2026-11-24, tickets are issued at 09:10 (type a) and
10:20 (type b):

| Tuesday | a at 09:10 | b at 10:20 | counts? |
|---|---|---|---|
| 10-20 | 9 | 0 | no: five weeks back, the branch reads four |
| 10-27 | 2 | 1 | yes |
| 11-03 | 4 | 1 | yes |
| 11-10 | 10 | 10 | no: declared a holiday afterwards |
| 11-17 | 6 | 4 | yes; two a are served, 300 s and 600 s at the counter |

and 5 of type a on Wednesday 11-18 (another weekday). So on D the forecast is a: (2+4+6)/3 = 4
at 09:00 and b: (1+1+4)/3 = 2 at 10:00, over 3 days; a's service time is 450 s, b's the default
300 s. On D counter 1 opens at 09:00 and counter 2 at 09:45; the clock stands at 10:30.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.helpers import ADMIN, assert_problem, make_token, ok, setup_branch

B = "/api/v1/branches/hz01"
PLAN = f"{B}/staffing"
WHAT_IF = f"{B}/staffing/what-if"
TZ = ZoneInfo("Asia/Shanghai")
D = date(2026, 11, 24)
BRANCH = {
    "name": "Branch hz01",
    "timezone": "Asia/Shanghai",
    "hours": {day: [["09:00", "12:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
    "staffing_weeks": 4,
}
SERVICES = {
    "a": {"name": "综合业务", "prefix": "A", "target_wait_s": 600},
    "b": {"name": "缴费充值", "prefix": "B", "target_wait_s": 600},
}
COUNTERS = {
    "1": {"name": "1", "services": ["a", "b"]},
    "2": {"name": "2", "services": ["b", "a"]},
}
ISSUED = {  # day: (a at 09:10, b at 10:20)
    date(2026, 10, 20): (9, 0),
    date(2026, 10, 27): (2, 1),
    date(2026, 11, 3): (4, 1),
    date(2026, 11, 10): (10, 10),
    date(2026, 11, 17): (6, 4),
    date(2026, 11, 18): (5, 0),
}


def at(clock, day: date, hhmm: str) -> None:
    clock.set(datetime.combine(day, time.fromisoformat(hhmm), TZ))


async def issue(client, service: str, n: int) -> None:
    for _ in range(n):
        await ok(await client.post(f"{B}/tickets", json={"service": service}, headers=ADMIN), 201)


async def counter(client, code: str, action: str) -> None:
    response = await client.post(f"{B}/counters/{code}/{action}", headers=ADMIN)
    assert response.status_code in (200, 204), response.text


@pytest.fixture
async def history(client, clock):
    at(clock, date(2026, 10, 19), "08:00")
    await setup_branch(client, branch=BRANCH, services=SERVICES, counters=COUNTERS)
    for day, (a, b) in ISSUED.items():
        at(clock, day, "09:10")
        await issue(client, "a", a)
        at(clock, day, "10:20")
        await issue(client, "b", b)
        if day == date(2026, 11, 17):
            at(clock, day, "10:30")
            await counter(client, "1", "open")
            await counter(client, "1", "next")  # A001, 300 s at the counter
            at(clock, day, "10:35")
            await counter(client, "1", "next")  # A002, 600 s
            at(clock, day, "10:45")
            await counter(client, "1", "complete")
            await counter(client, "1", "close")
    # 11-10 turns out to have been a holiday (the hall closed for the day).
    body = {**BRANCH, "holidays": ["2026-11-10"]}
    await ok(await client.put(B, json=body, headers=ADMIN))
    at(clock, D, "09:00")
    await counter(client, "1", "open")
    at(clock, D, "09:45")
    await counter(client, "2", "open")
    at(clock, D, "10:30")


def erlang_share(c: int, per_hour: float, service_s: float, target_s: float) -> float:
    """1 - C(c, a) e^{-(c mu - lambda) T}, written out for the two cases the history needs."""
    lam, mu = per_hour / 3600, 1 / service_s
    a = lam / mu
    top = a**c / math.factorial(c) * c / (c - a)
    waits = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    return 1 - waits * math.exp(-(c * mu - lam) * target_s)


async def test_the_plan_of_a_known_history(client, history):
    plan = await ok(await client.get(PLAN, params={"date": D.isoformat()}, headers=ADMIN))
    assert (plan["branch"], plan["date"], plan["service_level_pct"]) == ("hz01", "2026-11-24", 80)
    assert plan["based_on"] == {"weeks": 4, "days": 3}
    assert plan["branch_counters"] == 2
    nine, ten, eleven = plan["hours"]
    assert [h["hour"] for h in plan["hours"]] == ["09:00", "10:00", "11:00"]
    assert nine["arrivals"] == {"a": 4.0, "b": 0.0}
    assert ten["arrivals"] == {"a": 0.0, "b": 2.0}
    assert eleven["arrivals"] == {"a": 0.0, "b": 0.0}
    assert nine["service_time_s"] == {"a": 450.0, "b": 300.0}
    # 09:00: only a is expected and both counters serve it: one queue, Erlang C. One counter
    # gives 74.3%, two 98.6%.
    assert erlang_share(1, 4, 450, 600) < 0.8 < erlang_share(2, 4, 450, 600)
    assert nine["computed_by"] == "erlang_c"
    assert nine["recommended_counters"] == 2
    assert nine["counter_codes"] == ["1", "2"]
    assert nine["expected_within_target_pct"] == round(100 * erlang_share(2, 4, 450, 600), 1)
    assert nine["expected_within_target_pct_by_service"] == {"a": 98.6}
    # 10:00: b only, 2 an hour of 300 s: one counter gives 96.9%.
    assert ten["recommended_counters"] == 1
    assert ten["counter_codes"] == ["2"]  # b's own counter
    assert ten["expected_within_target_pct"] == round(100 * erlang_share(1, 2, 300, 600), 1)
    # 11:00: nobody expected: one counter stays open, nothing to expect.
    assert eleven["recommended_counters"] == 1
    assert (eleven["expected_within_target_pct"], eleven["computed_by"]) == (None, "none")
    # Open: counter 1 all of 09:00-10:00 and counter 2 its last quarter (1.25); both for the
    # half hour of 10:00 so far; 11:00 has not begun.
    assert [h["open_counters"] for h in plan["hours"]] == [1, 2, None]
    assert all(h["reachable"] and h["short_services"] == [] for h in plan["hours"])


async def test_more_weeks_and_another_level(client, history):
    body = {**BRANCH, "holidays": ["2026-11-10"], "staffing_weeks": 5, "service_level_pct": 99}
    await ok(await client.put(B, json=body, headers=ADMIN))
    plan = await ok(await client.get(PLAN, headers=ADMIN))  # today: D
    assert plan["date"] == D.isoformat()
    assert (plan["based_on"], plan["service_level_pct"]) == ({"weeks": 5, "days": 4}, 99)
    assert plan["hours"][0]["arrivals"]["a"] == (9 + 2 + 4 + 6) / 4
    # 99% within target takes more than the two counters the branch has at 09:00.
    nine = plan["hours"][0]
    assert nine["recommended_counters"] == 2
    assert not nine["reachable"]
    assert nine["expected_within_target_pct"] < 99


async def test_a_holiday_and_a_closed_day_have_no_hours(client, history):
    for day in ("2026-11-10", "2026-11-21"):  # the holiday, a Saturday
        plan = await ok(await client.get(PLAN, params={"date": day}, headers=ADMIN))
        assert plan["hours"] == []


async def test_no_history(client, clock):
    await setup_branch(client, branch=BRANCH, services=SERVICES, counters=COUNTERS)
    plan = await ok(await client.get(PLAN, headers=ADMIN))
    assert plan["based_on"] == {"weeks": 4, "days": 0}
    assert [h["hour"] for h in plan["hours"]] == ["09:00", "10:00", "11:00"]
    for hour in plan["hours"]:
        assert hour["arrivals"] == {} and hour["service_time_s"] == {}
        assert hour["recommended_counters"] is None
        assert hour["expected_within_target_pct"] is None
    # T0 is 10:00: 09:00 has passed (nothing open), 10:00 has just begun, 11:00 is to come.
    assert [h["open_counters"] for h in plan["hours"]] == [0, None, None]
    answer = await ok(
        await client.get(WHAT_IF, params={"hour": "10:00", "counters": 1}, headers=ADMIN)
    )
    assert answer["expected_within_target_pct"] is None
    assert answer["based_on"]["days"] == 0


async def test_what_if(client, history):
    query = {"date": D.isoformat(), "hour": "09:00", "counters": 1}
    answer = await ok(await client.get(WHAT_IF, params=query, headers=ADMIN))
    assert answer["counters"] == 1 and answer["recommended_counters"] == 2
    assert answer["counter_codes"] == ["1"]
    assert answer["expected_within_target_pct"] == round(100 * erlang_share(1, 4, 450, 600), 1)
    assert answer["computed_by"] == "erlang_c"
    two = await ok(await client.get(WHAT_IF, params={**query, "counters": 2}, headers=ADMIN))
    assert two["expected_within_target_pct"] == 98.6


@pytest.mark.parametrize(
    ("path", "params", "status", "contains"),
    [
        (PLAN, {"date": "2026-13-01"}, 422, "not a calendar date"),
        (PLAN, {"date": "2026-02-30"}, 422, "not a calendar date"),
        (PLAN, {"date": "24.11.2026"}, 422, "date"),
        (PLAN, {"date": "1999-12-31"}, 422, "before 2000-01-01"),
        (PLAN, {"date": "2028-01-01"}, 422, "a year ahead"),
        ("/api/v1/branches/nowhere/staffing", {}, 404, "branch nowhere"),
        (WHAT_IF, {"hour": "08:00", "counters": 1}, 422, "not an opening hour"),
        (WHAT_IF, {"hour": "10:30", "counters": 1}, 422, "hour"),
        (WHAT_IF, {"hour": "10:00", "counters": 0}, 422, "counters"),
        (WHAT_IF, {"hour": "10:00", "counters": 3}, 422, "the branch has 2 counters"),
        (WHAT_IF, {"hour": "10:00"}, 422, "counters"),
        (WHAT_IF, {"date": "2026-11-10", "hour": "10:00", "counters": 1}, 422, "closed"),
    ],
)
async def test_bad_input(client, history, path, params, status, contains):
    assert_problem(await client.get(path, params=params, headers=ADMIN), status, contains=contains)


async def test_who_may_read_the_plan(client, history):
    manager = await make_token(client, "manager", "hz01")
    await ok(await client.get(PLAN, headers=manager))
    await ok(
        await client.put(f"{B}/staff/s1", json={"name": "王芳", "role": "clerk"}, headers=ADMIN),
        201,
    )
    for role, staff in (("clerk", "s1"), ("kiosk", None), ("display", None)):
        headers = await make_token(client, role, "hz01", staff)
        assert_problem(await client.get(PLAN, headers=headers), 403)
        query = {"hour": "10:00", "counters": 1}
        assert_problem(await client.get(WHAT_IF, params=query, headers=headers), 403)
    await setup_branch(client, "sh02", branch=BRANCH, services=SERVICES, counters=COUNTERS)
    other = "/api/v1/branches/sh02/staffing"
    assert_problem(await client.get(other, headers=manager), 403, contains="another branch")


async def test_the_settings_are_validated(client):
    await setup_branch(client, services={}, counters={})
    branch = await ok(await client.get(B, headers=ADMIN))
    assert (branch["service_level_pct"], branch["staffing_weeks"]) == (80, 8)
    for field, value in (
        ("service_level_pct", 0),
        ("service_level_pct", 100),
        ("staffing_weeks", 0),
        ("staffing_weeks", 53),
    ):
        body = {"name": "x", "timezone": "Asia/Shanghai", field: value}
        assert_problem(await client.put(B, json=body, headers=ADMIN), 422, contains=field)
    body = {"name": "x", "timezone": "Asia/Shanghai", "service_level_pct": 90, "staffing_weeks": 12}
    saved = await ok(await client.put(B, json=body, headers=ADMIN))
    assert (saved["service_level_pct"], saved["staffing_weeks"]) == (90, 12)


async def test_the_window_is_the_weeks_before_the_date(client, history, clock):
    """A week later the Tuesday of D itself (no tickets on it) counts, and the oldest drops."""
    later = D + timedelta(days=7)
    plan = await ok(await client.get(PLAN, params={"date": later.isoformat()}, headers=ADMIN))
    # 11-03, 11-17 and D (nothing issued on D: not a day the hall opened, by its history);
    # 10-27 is five weeks back now.
    assert plan["based_on"] == {"weeks": 4, "days": 2}
    assert plan["hours"][0]["arrivals"]["a"] == (4 + 6) / 2

"""The daily report: every figure checked against a hand-computed day in a small hall.

The scenario below is driven through the real API with the manual clock. Times are local
(Asia/Shanghai), the branch's business day starts at 00:00 (the default `day_starts_at`).
D = Tuesday 2026-11-24; the night before and the night after are used for a counter that is
open across midnight and for tickets left over at the end of a day, which the close-out
expires (SPEC §5: a ticket of an earlier business day is never called).
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.business_day.service import close_out_all_branches
from app.reports.service import erase_expired_phones
from tests.helpers import ADMIN, assert_problem, issue, make_token, ok, setup_branch

SH = ZoneInfo("Asia/Shanghai")
D = date(2026, 11, 24)
B = "/api/v1/branches/hz01"
REPORT = f"{B}/reports/daily"

SERVICES = {
    "a": {"name": "综合业务", "prefix": "A", "target_wait_s": 600},
    "b": {"name": "缴费充值", "prefix": "B", "target_wait_s": 300},
    "v": {"name": "VIP", "prefix": "V", "target_wait_s": 180},
}
COUNTERS = {
    "1": {"name": "1号窗口", "services": ["a", "b"]},
    "2": {"name": "2号窗口", "services": ["b"]},
    "9": {"name": "VIP窗口", "services": ["v", "a"]},
}
STAFF = {
    "s1": {"name": "王芳", "role": "clerk"},
    "s2": {"name": "李强", "role": "clerk"},
    "s3": {"name": "张伟", "role": "clerk"},
    "s4": {"name": "刘洋", "role": "clerk"},
}


def at(clock, day: date, hhmm: str) -> None:
    hours, minutes = hhmm.split(":")
    clock.set(datetime.combine(day, time(int(hours), int(minutes)), SH))


async def act(client, counter: str, action: str, headers, json=None) -> dict[str, Any]:
    response = await client.post(f"{B}/counters/{counter}/{action}", headers=headers, json=json)
    result: dict[str, Any] = await ok(response)
    return result


async def next_is(client, counter: str, headers, number: str) -> str:
    called = await act(client, counter, "next", headers)
    assert called["ticket"]["number"] == number, called
    ticket_id: str = called["ticket"]["id"]
    return ticket_id


async def rate(client, ticket_id: str, score: int, comment: str | None = None) -> None:
    body: dict[str, Any] = {"score": score}
    if comment is not None:
        body["comment"] = comment
    await ok(await client.post(f"/api/v1/tickets/{ticket_id}/rating", json=body, headers=ADMIN))


async def report(client, day: date | None = None, headers=ADMIN) -> dict[str, Any]:
    params = {"date": day.isoformat()} if day else {}
    body: dict[str, Any] = await ok(await client.get(REPORT, params=params, headers=headers))
    return body


@pytest.fixture
async def tokens(client, clock):
    return await hall_tokens(client, clock)


async def hall_tokens(client, clock) -> dict[str, Any]:
    """The hall of the scenario, configured the evening before D, and its tokens."""
    at(clock, D - timedelta(days=1), "22:00")
    await setup_branch(client, services=SERVICES, counters=COUNTERS, staff=STAFF)
    made = {s: await make_token(client, "clerk", "hz01", s) for s in STAFF}
    made["kiosk"] = await make_token(client, "kiosk", "hz01")
    made["manager"] = await make_token(client, "manager", "hz01")
    return made


async def run_day(app, client, clock, tk) -> dict[str, str]:
    """The scenario. Returns ticket ids by name; the comments give the figures it produces."""
    prev, nxt = D - timedelta(days=1), D + timedelta(days=1)
    ids: dict[str, str] = {}

    # The night before: s1 opens counter 1 at 23:30 (open before the day starts); a customer
    # takes A001 of the 23rd at 23:50 and walks out without cancelling.
    at(clock, prev, "23:30")
    await act(client, "1", "open", tk["s1"])
    at(clock, prev, "23:50")
    ids["left"] = (await issue(client, service="a", headers=tk["kiosk"]))["id"]  # A001/23rd
    # After midnight, before the automatic close-out of the 23rd has run: counter 1 is still
    # signed in, but the ticket of the 23rd is nobody's next.
    at(clock, D, "00:02")
    response = await client.post(f"{B}/counters/1/next", headers=tk["s1"])
    assert response.status_code == 204, response.text
    at(clock, D, "00:05")
    ids["x"] = (await issue(client, service="a", headers=tk["kiosk"]))["id"]  # A001 of D
    at(clock, D, "00:25")
    assert await next_is(client, "1", tk["s1"], "A001") == ids["x"]  # wait 1200 (> 600)
    at(clock, D, "00:35")
    await act(client, "1", "complete", tk["s1"])  # service 600, from the call
    at(clock, D, "00:40")
    await act(client, "1", "close", tk["s1"])  # counter 1 open 00:00-00:40 on D
    # The automatic close-out of the 23rd runs late, at 00:45 (housekeeping is driven by hand
    # here): it expires A001 of the 23rd (dated at the end of the 23rd; it counts on the
    # 23rd, the day it was issued). Counter 1 was already closed: nothing else to do.
    at(clock, D, "00:45")
    assert await close_out_all_branches(app.state.sessionmaker, clock) == 1

    # The morning: s4 at counter 1, s2 at counter 2, s3 at the VIP counter 9.
    at(clock, D, "09:00")
    for counter, clerk in (("1", "s4"), ("2", "s2"), ("9", "s3")):
        await act(client, counter, "open", tk[clerk])
    ids["t1"] = (await issue(client, service="a", headers=tk["kiosk"]))["id"]  # A002
    ids["t2"] = (await issue(client, service="b", headers=tk["kiosk"]))["id"]  # B001
    at(clock, D, "09:01")
    ids["t3"] = (await issue(client, service="v", headers=tk["kiosk"]))["id"]  # V001
    at(clock, D, "09:02")
    ids["t4"] = (await issue(client, service="a", headers=tk["kiosk"]))["id"]  # A003
    at(clock, D, "09:03")
    ids["t5"] = (await issue(client, service="b", headers=tk["kiosk"]))["id"]  # B002
    at(clock, D, "09:04")
    ids["t6"] = (await issue(client, service="a", headers=tk["kiosk"]))["id"]  # A004

    at(clock, D, "09:05")
    await next_is(client, "1", tk["s4"], "A002")  # wait 300 (<= 600)
    await next_is(client, "2", tk["s2"], "B001")  # wait 300 (<= 300)
    await next_is(client, "9", tk["s3"], "V001")  # wait 240 (> 180)
    at(clock, D, "09:06")
    await act(client, "1", "start", tk["s4"])
    await act(client, "2", "start", tk["s2"])
    at(clock, D, "09:10")
    await act(client, "9", "recall", tk["s3"])
    at(clock, D, "09:12")
    await act(client, "9", "no-show", tk["s3"])  # V001: a final no-show
    await next_is(client, "9", tk["s3"], "A003")  # the VIP counter helps: wait 600 (<= 600)
    at(clock, D, "09:15")
    await act(client, "9", "start", tk["s3"])
    at(clock, D, "09:16")
    await ok(await client.post(f"/api/v1/tickets/{ids['t6']}/cancel", headers=tk["kiosk"]))
    at(clock, D, "09:20")
    await act(client, "1", "complete", tk["s4"])  # A002: service 840 (09:06-09:20)
    # B001 was at the wrong counter: s2 sends it to business type a, at the front.
    await act(client, "2", "transfer", tk["s2"], json={"service": "a"})  # busy 09:06-09:20
    at(clock, D, "09:22")
    await next_is(client, "1", tk["s4"], "B001")  # a second call: no new wait
    at(clock, D, "09:25")
    await act(client, "1", "complete", tk["s4"])  # B001: service 180, from this call
    at(clock, D, "09:30")
    await act(client, "9", "complete", tk["s3"])  # A003: service 900 (09:15-09:30)
    await next_is(client, "2", tk["s2"], "B002")  # wait 1620 (> 300)
    at(clock, D, "09:31")
    await act(client, "2", "start", tk["s2"])
    at(clock, D, "09:40")
    await act(client, "2", "complete", tk["s2"])  # B002: service 540
    await act(client, "2", "pause", tk["s2"], json={"reason": "lunch"})
    at(clock, D, "10:40")
    await act(client, "2", "resume", tk["s2"])

    at(clock, D, "10:45")
    await rate(client, ids["x"], 4)
    await rate(client, ids["t1"], 5, "很好，办理很快")
    await rate(client, ids["t2"], 3)
    await rate(client, ids["t4"], 4, "ok")
    await rate(client, ids["t5"], 2)

    at(clock, D, "12:00")
    await act(client, "9", "close", tk["s3"])  # counter 9 open 09:00-12:00
    at(clock, D, "17:00")
    await act(client, "2", "close", tk["s2"])  # counter 2 open 09:00-09:40, 10:40-17:00

    # Late: two customers take A005 (23:50) and A006 (23:52) and leave. s4, still at counter 1,
    # calls A005 at 23:56 (wait 360); nobody comes, and nobody presses no-show.
    at(clock, D, "23:50")
    ids["t7"] = (await issue(client, service="a", headers=tk["kiosk"]))["id"]  # A005
    at(clock, D, "23:52")
    ids["t8"] = (await issue(client, service="a", headers=tk["kiosk"]))["id"]  # A006
    at(clock, D, "23:56")
    await next_is(client, "1", tk["s4"], "A005")  # wait 360 (<= 600)
    # At midnight the automatic close-out of D runs, dated at the end of D: A005 (called at
    # counter 1 by s4) and A006 (waiting) expire, V001 (a no-show) expires too but stays counted
    # as a no-show, and counter 1 is closed and s4 signed out (open until 24:00 on D).
    at(clock, nxt, "00:00")
    assert await close_out_all_branches(app.state.sessionmaker, clock) == 1
    for name in ("left", "t3", "t7", "t8"):
        ticket = await ok(await client.get(f"/api/v1/tickets/{ids[name]}", headers=ADMIN))
        assert ticket["status"] == "expired", (name, ticket)
    counters = await ok(await client.get(f"{B}/counters", headers=ADMIN))
    assert [(c["code"], c["state"], c["staff"]) for c in counters] == [
        ("1", "closed", None),
        ("2", "closed", None),
        ("9", "closed", None),
    ]
    return ids


def figures(**values: Any) -> dict[str, Any]:
    """A row's figures: zeros and nulls unless given. `issued`, `cancelled` and
    `abandoned_pct` are null for counters and clerks (and `abandoned_pct` for a type that
    issued nothing: nothing to divide by)."""
    row = {
        "issued": None,
        "called": 0,
        "served": 0,
        "no_show": 0,
        "cancelled": None,
        "transferred": 0,
        "expired": 0,
        "abandoned_pct": None,
        "avg_wait_s": None,
        "p90_wait_s": None,
        "avg_service_s": None,
        "within_target_pct": None,
        "rating_avg": None,
        "ratings": 0,
        "satisfaction_pct": None,
    }
    row.update(values)
    return row


def type_figures(**values: Any) -> dict[str, Any]:
    """A business type's row: its figures, and the estimate's accuracy, null unless given (the
    quotes are kept only when the tests flush them: tests/test_estimate_accuracy.py)."""
    no_quotes = {"estimate_mae_s": None, "estimate_bias_s": None, "estimate_in_range_pct": None}
    return figures(**{**no_quotes, **values})


# The hand-computed figures of D.
EXPECTED_SERVICES = [
    {
        "service": "a",
        "name": "综合业务",
        # Issued on D: A001 (00:05), A002, A003, A004, A005, A006 (A001 of the 23rd counts on
        # the 23rd). First calls on D: A001 1200, A002 300, A003 600, A005 360; B001's call is
        # under b. Within the target 600: all but A001 (3 of 4).
        # Served under a: A001 600, A002 840, B001 (after its transfer) 180, A003 900; rated
        # 4, 5, 3, 4.
        # Abandoned: A004 cancelled, A005 and A006 expired: (2 + 1 + 0) / 6.
        **type_figures(
            issued=6,
            called=4,
            served=4,
            cancelled=1,
            expired=2,
            abandoned_pct=50.0,
            avg_wait_s=(1200 + 300 + 600 + 360) / 4,  # 615.0
            p90_wait_s=1200.0,  # nearest rank: the 4th of 4 sorted waits
            avg_service_s=(600 + 840 + 180 + 900) / 4,  # 630.0
            within_target_pct=75.0,
            rating_avg=4.0,
            ratings=4,
            satisfaction_pct=75.0,  # 4, 5 and 4 of 4, 5, 3, 4
        ),
    },
    {
        "service": "b",
        "name": "缴费充值",
        # Waits B001 300, B002 1620 (target 300); B001 transferred away from b. Nothing of b
        # was cancelled, missed or left over: abandoned 0 of 2.
        **type_figures(
            issued=2,
            called=2,
            served=1,
            cancelled=0,
            transferred=1,
            abandoned_pct=0.0,
            avg_wait_s=960.0,
            p90_wait_s=1620.0,
            avg_service_s=540.0,
            within_target_pct=50.0,
            rating_avg=2.0,
            ratings=1,
            satisfaction_pct=0.0,
        ),
    },
    {
        "service": "v",
        "name": "VIP",
        # V001: a no-show, expired at the close-out: still a no-show, not expired. 1 of 1.
        **type_figures(
            issued=1,
            called=1,
            no_show=1,
            cancelled=0,
            abandoned_pct=100.0,
            avg_wait_s=240.0,
            p90_wait_s=240.0,
            within_target_pct=0.0,
        ),
    },
]

EXPECTED_COUNTERS = [
    {
        "counter": "1",
        "name": "1号窗口",
        # First calls A001 1200 (s1), A002 300, A005 360 (s4); within 600: 2 of 3.
        # Served A001 600, A002 840, B001 180 (rated 4, 5, 3). A005, called here, expired.
        **figures(
            called=3,
            served=3,
            expired=1,
            avg_wait_s=(1200 + 300 + 360) / 3,  # 620.0
            p90_wait_s=1200.0,
            avg_service_s=(600 + 840 + 180) / 3,  # 540.0
            within_target_pct=66.7,
            rating_avg=4.0,
            ratings=3,
            satisfaction_pct=66.7,  # 4 and 5 of 4, 5, 3
        ),
        # Open 00:00-00:40 (opened the evening before) and 09:00-24:00 (until the close-out).
        "open_s": 2400.0 + 15 * 3600.0,
        # Busy 00:25-00:35, 09:06-09:20, 09:22-09:25; A005's call that ended in its expiry is
        # not service.
        "serving_s": 600.0 + 840.0 + 180.0,
        "utilisation": round(1620 / 56400, 3),
    },
    {
        "counter": "2",
        "name": "2号窗口",
        **figures(
            called=2,
            served=1,
            transferred=1,
            avg_wait_s=960.0,
            p90_wait_s=1620.0,
            avg_service_s=540.0,
            within_target_pct=50.0,
            rating_avg=2.0,
            ratings=1,
            satisfaction_pct=0.0,
        ),
        # Open 09:00-09:40 and 10:40-17:00 (paused for an hour).
        "open_s": 2400.0 + 22800.0,
        # Busy 09:06-09:20 (B001 until its transfer), 09:31-09:40 (B002).
        "serving_s": 840.0 + 540.0,
        "utilisation": round(1380 / 25200, 3),
    },
    {
        "counter": "9",
        "name": "VIP窗口",
        # First calls V001 240 (target 180: late), A003 600 (target 600: in time). V001's
        # expiry is a no-show's: not counted as expired.
        **figures(
            called=2,
            served=1,
            no_show=1,
            avg_wait_s=420.0,
            p90_wait_s=600.0,
            avg_service_s=900.0,
            within_target_pct=50.0,
            rating_avg=4.0,
            ratings=1,
            satisfaction_pct=100.0,
        ),
        # Open 09:00-12:00; V001's call before its no-show is not service.
        "open_s": 10800.0,
        "serving_s": 900.0,
        "utilisation": round(900 / 10800, 3),
    },
]

EXPECTED_STAFF = [
    {
        "staff": "s1",
        "name": "王芳",
        # A001 of D: called after 1200 (> 600), served 600, rated 4.
        **figures(
            called=1,
            served=1,
            avg_wait_s=1200.0,
            p90_wait_s=1200.0,
            avg_service_s=600.0,
            within_target_pct=0.0,
            rating_avg=4.0,
            ratings=1,
            satisfaction_pct=100.0,
        ),
        # Signed in at counter 1 from the evening before until 00:40: served 1 in 40 min.
        "signed_in_s": 2400.0,
        "paused_s": 0.0,
        "served_per_hour": 1.5,
    },
    {
        "staff": "s2",
        "name": "李强",
        **figures(
            called=2,
            served=1,
            transferred=1,
            avg_wait_s=960.0,
            p90_wait_s=1620.0,
            avg_service_s=540.0,
            within_target_pct=50.0,
            rating_avg=2.0,
            ratings=1,
            satisfaction_pct=0.0,
        ),
        # Counter 2 09:00-17:00, paused 09:40-10:40: served 1 in 8 hours.
        "signed_in_s": 28800.0,
        "paused_s": 3600.0,
        "served_per_hour": 0.1,
    },
    {
        "staff": "s3",
        "name": "张伟",
        **figures(
            called=2,
            served=1,
            no_show=1,
            avg_wait_s=420.0,
            p90_wait_s=600.0,
            avg_service_s=900.0,
            within_target_pct=50.0,
            rating_avg=4.0,
            ratings=1,
            satisfaction_pct=100.0,
        ),
        # Counter 9 09:00-12:00: served 1 in 3 hours.
        "signed_in_s": 10800.0,
        "paused_s": 0.0,
        "served_per_hour": 0.3,
    },
    {
        "staff": "s4",
        "name": "刘洋",
        # A002 called (300) and served (840); B001 served (180) after its transfer; A005
        # called (360) and expired at the close-out while called at s4's counter.
        **figures(
            called=2,
            served=2,
            expired=1,
            avg_wait_s=(300 + 360) / 2,  # 330.0
            p90_wait_s=360.0,
            avg_service_s=(840 + 180) / 2,  # 510.0
            within_target_pct=100.0,
            rating_avg=4.0,
            ratings=2,
            satisfaction_pct=50.0,
        ),
        # Counter 1 from 09:00 until the close-out at the end of the day (a microsecond
        # before midnight): served 2 in 15 hours.
        "signed_in_s": 54000.0,
        "paused_s": 0.0,
        "served_per_hour": 0.1,
    },
]


def expected_hours() -> list[dict[str, Any]]:
    hours: list[dict[str, Any]] = [
        {"hour": h, "issued": 0, "called": 0, "avg_wait_s": None, "max_wait_s": None}
        for h in range(24)
    ]
    # A001 of D issued at 00:05, called at 00:25 (wait 1200).
    hours[0].update(issued=1, called=1, avg_wait_s=1200.0, max_wait_s=1200.0)
    # Six issued 09:00-09:04; first calls 300, 300, 240, 600, 1620.
    hours[9].update(issued=6, called=5, avg_wait_s=612.0, max_wait_s=1620.0)
    # A005 at 23:50, A006 at 23:52; A005 called at 23:56 (wait 360).
    hours[23].update(issued=2, called=1, avg_wait_s=360.0, max_wait_s=360.0)
    return hours


def day_part(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in ("date", "services", "counters", "staff")}


async def test_every_figure_of_a_day(app, client, clock, tokens):
    ids = await run_day(app, client, clock, tokens)
    at(clock, D + timedelta(days=1), "09:00")
    body = await report(client, D, headers=tokens["manager"])

    assert body["branch"] == "hz01" and body["timezone"] == "Asia/Shanghai"
    assert body["date"] == "2026-11-24"
    assert body["services"] == EXPECTED_SERVICES
    assert body["counters"] == EXPECTED_COUNTERS
    assert body["staff"] == EXPECTED_STAFF
    assert body["hours"] == expected_hours()
    # Comments reach the manager in the report only.
    assert [(c["number"], c["service"], c["counter"], c["staff"], c["score"], c["comment"])
            for c in body["comments"]] == [
        ("A002", "a", "1", "s4", 5, "很好，办理很快"),
        ("A003", "a", "9", "s3", 4, "ok"),
    ]  # fmt: skip
    # Nothing happened a week before.
    week = body["last_week"]
    assert week["date"] == "2026-11-17"
    assert week["staff"] == []
    assert [s["issued"] for s in week["services"]] == [0, 0, 0]
    assert [s["abandoned_pct"] for s in week["services"]] == [None, None, None]
    assert [(c["open_s"], c["utilisation"]) for c in week["counters"]] == [(0.0, None)] * 3
    assert ids  # the scenario ran to the end


async def test_the_day_before_and_the_day_after(app, client, clock, tokens):
    await run_day(app, client, clock, tokens)
    at(clock, D + timedelta(days=1), "09:00")

    before = await report(client, D - timedelta(days=1))
    # A001 of the 23rd was issued on the 23rd and never called; the close-out that ran at
    # 00:45 on the 24th (dated 00:00 on the 24th) expired it: it counts on the 23rd.
    assert before["services"] == [
        {
            "service": "a",
            "name": "综合业务",
            **type_figures(issued=1, cancelled=0, expired=1, abandoned_pct=100.0),
        },
        {"service": "b", "name": "缴费充值", **type_figures(issued=0, cancelled=0)},
        {"service": "v", "name": "VIP", **type_figures(issued=0, cancelled=0)},
    ]
    # Counter 1 opened at 23:30 and was still open at midnight: clipped to the day. The
    # expired ticket was never at a counter.
    c1 = before["counters"][0]
    assert (c1["open_s"], c1["serving_s"], c1["utilisation"]) == (1800.0, 0.0, 0.0)
    assert (c1["called"], c1["expired"]) == (0, 0)
    # s1 handled no ticket on the 23rd but was signed in at counter 1 from 23:30: a row with
    # the time and nothing served.
    assert before["staff"] == [
        {
            "staff": "s1",
            "name": "王芳",
            **figures(),
            "signed_in_s": 1800.0,
            "paused_s": 0.0,
            "served_per_hour": 0.0,
        }
    ]
    assert before["hours"][23] == {
        "hour": 23,
        "issued": 1,
        "called": 0,
        "avg_wait_s": None,
        "max_wait_s": None,
    }
    assert sum(h["issued"] + h["called"] for h in before["hours"]) == 1

    after = await report(client)  # today: the 25th, so far (09:00)
    assert after["date"] == "2026-11-25"
    # Nothing of the 24th carries over: the close-out at 00:00 expired A005, A006 and V001
    # on the 25th's clock, but they count on the 24th, the day they were issued.
    assert after["services"] == [
        {"service": "a", "name": "综合业务", **type_figures(issued=0, cancelled=0)},
        {"service": "b", "name": "缴费充值", **type_figures(issued=0, cancelled=0)},
        {"service": "v", "name": "VIP", **type_figures(issued=0, cancelled=0)},
    ]
    # Counter 1 was closed by the close-out at 00:00, s4 signed out: no night as open time.
    assert [(c["open_s"], c["serving_s"], c["utilisation"]) for c in after["counters"]] == [
        (0.0, 0.0, None)
    ] * 3
    assert [c["expired"] for c in after["counters"]] == [0, 0, 0]
    assert after["staff"] == []
    assert all(h["issued"] == 0 and h["called"] == 0 for h in after["hours"])


async def test_a_report_is_stable_and_shows_beside_next_week(app, client, clock, tokens):
    await run_day(app, client, clock, tokens)
    at(clock, D + timedelta(days=1), "09:00")
    first = await report(client, D)
    at(clock, D + timedelta(days=7), "10:00")
    again = await report(client, D)
    assert day_part(again) == day_part(first)
    assert again["hours"] == first["hours"]

    week_later = await report(client)  # today, 2026-12-01
    assert week_later["date"] == "2026-12-01"
    assert week_later["last_week"] == day_part(first)
    assert [s["issued"] for s in week_later["services"]] == [0, 0, 0]
    # Counter 1 was closed by the close-out at the end of D: nothing open, nothing to
    # divide by.
    assert [(c["open_s"], c["utilisation"]) for c in week_later["counters"]] == [(0.0, None)] * 3


def _parse(value: str, like: Any) -> Any:
    if value == "":
        return None
    if isinstance(like, bool):
        raise AssertionError("no booleans in the report")
    if isinstance(like, int):
        return int(value)
    if isinstance(like, float):
        return float(value)
    return value


async def test_csv_export_matches_the_json(app, client, clock, tokens):
    await run_day(app, client, clock, tokens)
    at(clock, D + timedelta(days=1), "09:00")
    body = await report(client, D)
    response = await client.get(
        REPORT, params={"date": "2026-11-24", "format": "csv"}, headers=tokens["manager"]
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == (
        'attachment; filename="hallq-hz01-2026-11-24.csv"'
    )
    assert response.content.startswith(b"\xef\xbb\xbf")  # BOM: spreadsheets read UTF-8
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert list(rows[0]) == [
        "date",
        "scope",
        "code",
        "name",
        "issued",
        "called",
        "served",
        "no_show",
        "cancelled",
        "transferred",
        "expired",
        "abandoned_pct",
        "avg_wait_s",
        "p90_wait_s",
        "avg_service_s",
        "within_target_pct",
        "rating_avg",
        "ratings",
        "utilisation",
        "open_s",
        "serving_s",
        "satisfaction_pct",
        "signed_in_s",
        "paused_s",
        "served_per_hour",
        "estimate_mae_s",
        "estimate_bias_s",
        "estimate_in_range_pct",
    ]
    assert [(r["scope"], r["code"]) for r in rows] == [
        ("service", "a"),
        ("service", "b"),
        ("service", "v"),
        ("counter", "1"),
        ("counter", "2"),
        ("counter", "9"),
        ("staff", "s1"),
        ("staff", "s2"),
        ("staff", "s3"),
        ("staff", "s4"),
    ]
    json_rows = [
        *(("service", r["service"], r) for r in body["services"]),
        *(("counter", r["counter"], r) for r in body["counters"]),
        *(("staff", r["staff"], r) for r in body["staff"]),
    ]
    for row, (scope, code, expected) in zip(rows, json_rows, strict=True):
        assert row["date"] == "2026-11-24"
        for column, value in row.items():
            if column in ("date", "scope", "code"):
                continue
            if column in expected:
                # Compare typed values: 700.0 in JSON is "700.0" in the file.
                want = expected[column]
                got = _parse(value, want) if want is not None else (value or None)
                assert got == want, (scope, code, column, value, want)
            else:
                # utilisation of a type, a clerk's time of a counter
                assert value == "", (scope, code, column, value)
    # Spot checks straight from the file.
    by_key = {(r["scope"], r["code"]): r for r in rows}
    assert by_key[("service", "a")]["issued"] == "6"
    assert (by_key[("service", "a")]["expired"], by_key[("service", "a")]["abandoned_pct"]) == (
        "2",
        "50.0",
    )
    assert by_key[("service", "v")]["abandoned_pct"] == "100.0"
    assert (by_key[("counter", "1")]["expired"], by_key[("counter", "1")]["abandoned_pct"]) == (
        "1",
        "",  # not applicable to a counter
    )
    assert by_key[("counter", "2")]["utilisation"] == str(round(1380 / 25200, 3))
    assert by_key[("staff", "s4")]["issued"] == ""  # not applicable to a clerk


async def test_csv_neutralises_names_that_look_like_formulas(client, clock):
    await setup_branch(
        client,
        services={"a": {"name": "=HYPERLINK(1)", "prefix": "A"}},
        counters={"1": {"name": "+1", "services": ["a"]}},
    )
    response = await client.get(REPORT, params={"format": "csv"}, headers=ADMIN)
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [r["name"] for r in rows] == ["'=HYPERLINK(1)", "'+1"]


async def test_an_empty_day(client, clock):
    await setup_branch(client)
    body = await report(client)
    assert body["date"] == "2026-11-24"  # today in Shanghai
    assert [s["service"] for s in body["services"]] == ["a", "b", "v"]
    assert body["services"][0] == {
        "service": "a",
        "name": "综合业务",
        **type_figures(issued=0, cancelled=0),  # nothing issued: abandoned_pct null, not 0
    }
    assert body["staff"] == [] and body["comments"] == []
    assert len(body["hours"]) == 24
    # Just after midnight in Shanghai (still the 23rd in UTC), "today" is the 25th.
    clock.set(datetime(2026, 11, 24, 16, 5, tzinfo=ZoneInfo("UTC")))
    assert (await report(client))["date"] == "2026-11-25"


async def test_a_day_that_starts_at_four(app, client, clock):
    """With `day_starts_at` 04:00 the report of a date spans 04:00 that day to 04:00 the next:
    the small hours belong to the day before."""
    at(clock, D, "03:00")  # still the 23rd's business day
    await setup_branch(
        client, branch={"day_starts_at": "04:00"}, staff={"s1": {"name": "王芳", "role": "clerk"}}
    )
    s1 = await make_token(client, "clerk", "hz01", "s1")
    assert (await report(client))["date"] == "2026-11-23"
    at(clock, D, "03:30")
    await act(client, "1", "open", s1)
    at(clock, D, "03:40")
    await issue(client)  # A001 of the 23rd
    at(clock, D, "03:50")
    await next_is(client, "1", s1, "A001")  # wait 600 (<= 600)
    at(clock, D, "03:55")
    await act(client, "1", "complete", s1)  # service 300
    at(clock, D, "03:58")
    await issue(client)  # A002 of the 23rd: the customer leaves
    # 04:00: the close-out of the 23rd expires A002 and closes counter 1 (signed in at 03:30).
    at(clock, D, "04:00")
    assert await close_out_all_branches(app.state.sessionmaker, clock) == 1
    at(clock, D, "04:10")
    assert (await issue(client))["number"] == "A001"  # the 24th's numbers start at 04:00
    await act(client, "1", "open", s1)
    at(clock, D, "04:30")
    await next_is(client, "1", s1, "A001")  # wait 1200 (> 600)
    at(clock, D, "04:40")
    await act(client, "1", "complete", s1)  # service 600
    at(clock, D, "05:00")

    day_before = await report(client, D - timedelta(days=1))
    # 04:00 on the 23rd to 04:00 on the 24th: A001 and A002, one served, one expired.
    assert day_before["services"][0] == {
        "service": "a",
        "name": "综合业务",
        **type_figures(
            issued=2,
            called=1,
            served=1,
            cancelled=0,
            expired=1,
            abandoned_pct=50.0,
            avg_wait_s=600.0,
            p90_wait_s=600.0,
            avg_service_s=300.0,
            within_target_pct=100.0,
        ),
    }
    c1 = day_before["counters"][0]
    # Open 03:30-04:00 (closed by the close-out at the boundary); busy 03:50-03:55.
    assert (c1["open_s"], c1["serving_s"], c1["utilisation"]) == (1800.0, 300.0, 0.167)
    assert [(s["staff"], s["called"], s["served"]) for s in day_before["staff"]] == [("s1", 1, 1)]
    assert day_before["hours"][3] == {
        "hour": 3,
        "issued": 2,
        "called": 1,
        "avg_wait_s": 600.0,
        "max_wait_s": 600.0,
    }
    assert sum(h["issued"] for h in day_before["hours"]) == 2

    today = await report(client)  # the 24th from 04:00, so far (05:00)
    assert today["date"] == "2026-11-24"
    assert today["services"][0] == {
        "service": "a",
        "name": "综合业务",
        **type_figures(
            issued=1,
            called=1,
            served=1,
            cancelled=0,
            abandoned_pct=0.0,
            avg_wait_s=1200.0,
            p90_wait_s=1200.0,
            avg_service_s=600.0,
            within_target_pct=0.0,
        ),
    }
    c1 = today["counters"][0]
    # Open 04:10-05:00 (now); busy 04:30-04:40.
    assert (c1["open_s"], c1["serving_s"], c1["utilisation"]) == (3000.0, 600.0, 0.2)
    assert today["hours"][3]["issued"] == 0  # 03:00-04:00 of the 24th was the 23rd's
    assert today["hours"][4] == {
        "hour": 4,
        "issued": 1,
        "called": 1,
        "avg_wait_s": 1200.0,
        "max_wait_s": 1200.0,
    }


async def test_who_may_read_reports(client, clock):
    await setup_branch(client, staff={"s1": {"name": "王芳", "role": "clerk"}})
    await setup_branch(client, "sh02")
    manager = await make_token(client, "manager", "hz01")
    await ok(await client.get(REPORT, headers=manager))
    for role, staff in (("kiosk", None), ("display", None), ("clerk", "s1")):
        token = await make_token(client, role, "hz01", staff)
        assert_problem(await client.get(REPORT, headers=token), 403)
    other = await make_token(client, "manager", "sh02")
    assert_problem(await client.get(REPORT, headers=other), 403, contains="another branch")
    assert_problem(await client.get(REPORT, params={"format": "csv"}, headers=other), 403)
    monitor = await make_token(client, "monitor")
    assert_problem(await client.get(REPORT, headers=monitor), 403)
    assert_problem(await client.get(REPORT), 401)
    assert_problem(await client.get("/api/v1/branches/nope/reports/daily", headers=ADMIN), 404)


@pytest.mark.parametrize(
    ("params", "contains"),
    [
        ({"date": "2026-02-30"}, "calendar date"),
        ({"date": "24/11/2026"}, "date"),
        ({"date": "2026-11-24T00:00:00"}, "date"),
        ({"date": "1764000000"}, "date"),
        ({"date": ""}, "date"),
        ({"date": "2026-11-25"}, "after today"),
        ({"date": "0001-01-01"}, "before 2000-01-01"),
        ({"format": "xml"}, "format"),
    ],
)
async def test_bad_input(client, params, contains):
    await setup_branch(client)
    assert_problem(await client.get(REPORT, params=params, headers=ADMIN), 422, contains=contains)


async def test_a_requeued_no_show_is_not_a_no_show(client, clock):
    await setup_branch(client, staff={"s1": {"name": "王芳", "role": "clerk"}})
    s1 = await make_token(client, "clerk", "hz01", "s1")
    await act(client, "1", "open", s1)  # 10:00
    late = await issue(client)  # A001
    await issue(client)  # A002
    clock.advance(minutes=5)
    await next_is(client, "1", s1, "A001")  # 10:05, wait 300
    clock.advance(minutes=1)
    await act(client, "1", "no-show", s1)
    clock.advance(minutes=1)  # 10:07: the customer turns up
    await ok(await client.post(f"/api/v1/tickets/{late['id']}/requeue", headers=s1))
    await next_is(client, "1", s1, "A002")  # wait 420
    clock.advance(minutes=3)
    await next_is(client, "1", s1, "A001")  # 10:10: completes A002 (180), A001 called again
    clock.advance(minutes=5)
    await act(client, "1", "complete", s1)  # 10:15: A001 served 300, from its second call
    clock.advance(minutes=5)

    body = await report(client)
    assert body["services"][0] == {
        "service": "a",
        "name": "综合业务",
        **type_figures(
            issued=2,
            called=2,
            served=2,
            cancelled=0,
            abandoned_pct=0.0,  # both served in the end: nothing abandoned
            avg_wait_s=360.0,
            p90_wait_s=420.0,
            avg_service_s=240.0,
            within_target_pct=100.0,
        ),
    }
    counter = body["counters"][0]
    # Open 10:00-10:20; busy 10:07-10:10 and 10:10-10:15 (the first call ended in a no-show).
    assert (counter["no_show"], counter["open_s"], counter["serving_s"]) == (0, 1200.0, 480.0)
    assert counter["utilisation"] == 0.4
    assert body["staff"][0]["no_show"] == 0


# -- phone numbers are erased once the business day is over ------------------------------------


async def phone_of(client, ticket_id: str) -> str | None:
    ticket = await ok(await client.get(f"/api/v1/tickets/{ticket_id}", headers=ADMIN))
    phone: str | None = ticket["phone"]
    return phone


async def erase(app, clock) -> int:
    async with app.state.sessionmaker() as session:
        return await erase_expired_phones(session, clock.now())


async def test_phones_are_erased_when_the_business_day_is_over(app, client, clock):
    utc = ZoneInfo("UTC")
    clock.set(datetime(2026, 11, 22, 2, 0, tzinfo=utc))  # 10:00 on the 22nd in Shanghai
    await setup_branch(client)
    await setup_branch(client, "ny01", branch={"timezone": "America/New_York"})
    phone = "13812345678"
    ids: dict[str, str] = {}
    # Shanghai, the 22nd: a ticket that is never called (counter 1 does not serve v).
    ids["old_waiting"] = (await issue(client, service="v", phone=phone))["id"]
    # Shanghai, the 23rd: one served, one still waiting, one without a phone.
    clock.set(datetime(2026, 11, 23, 2, 0, tzinfo=utc))
    ids["done"] = (await issue(client, phone=phone))["id"]
    await act(client, "1", "open", ADMIN)
    await next_is(client, "1", ADMIN, "A001")
    await act(client, "1", "complete", ADMIN)
    ids["waiting"] = (await issue(client, service="b", phone=phone))["id"]
    ids["no_phone"] = (await issue(client))["id"]
    # New York, 21:00 on the 23rd: served.
    clock.set(datetime(2026, 11, 24, 2, 0, tzinfo=utc))
    ids["ny"] = (await issue(client, "ny01", phone=phone))["id"]
    ny = "/api/v1/branches/ny01/counters/1"
    await ok(await client.post(f"{ny}/open", headers=ADMIN))
    await ok(await client.post(f"{ny}/next", headers=ADMIN))
    await ok(await client.post(f"{ny}/complete", headers=ADMIN))
    # Shanghai, the 24th: today's customer.
    ids["today"] = (await issue(client, phone=phone))["id"]

    # 11:00 on the 24th in Shanghai; 22:00 on the 23rd in New York.
    clock.set(datetime(2026, 11, 24, 3, 0, tzinfo=utc))
    assert await erase(app, clock) == 2
    phones = {name: await phone_of(client, tid) for name, tid in ids.items()}
    assert phones == {
        "old_waiting": None,  # two days old: erased even though it still waits
        "done": None,  # the 23rd is over in Shanghai
        "waiting": "138****5678",  # yesterday's, still in the queue: its SMS may still go out
        "no_phone": None,
        "ny": "138****5678",  # still the 23rd in New York
        "today": "138****5678",
    }
    assert await erase(app, clock) == 0  # nothing more is due

    # 14:00 on the 25th in Shanghai, 01:00 on the 25th in New York.
    clock.set(datetime(2026, 11, 25, 6, 0, tzinfo=utc))
    assert await erase(app, clock) == 2
    assert await phone_of(client, ids["waiting"]) is None
    assert await phone_of(client, ids["ny"]) is None
    assert await phone_of(client, ids["today"]) == "138****5678"  # yesterday's, still waiting

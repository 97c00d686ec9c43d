"""The hall settings of SPEC §7 through the API: special hours (and issuing under them), the
business type's guide, the staff number. The hours logic itself is tested in test_hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import ADMIN, assert_problem, issue, make_token, ok, setup_branch

B = "/api/v1/branches/hz01"
WEEKDAYS = {d: [["09:00", "17:00"]] for d in ["mon", "tue", "wed", "thu", "fri"]}
# 24 December 2026 (a Thursday) closes at noon; summer opens at 08:00 and on Saturdays.
CHRISTMAS_EVE = {"from": "2026-12-24", "to": "2026-12-24", "hours": {"thu": [["09:00", "12:00"]]}}
SUMMER = {
    "from": "2026-07-01",
    "to": "2026-08-31",
    "hours": {d: [["08:00", "18:00"]] for d in ["mon", "tue", "wed", "thu", "fri", "sat"]},
}
BRANCH: dict[str, Any] = {
    "name": "杭州01营业厅",
    "timezone": "Asia/Shanghai",
    "hours": WEEKDAYS,
    "special_hours": [CHRISTMAS_EVE, SUMMER],
}


def shanghai(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC) - timedelta(hours=8)


# -- special hours ---------------------------------------------------------------------------------


async def test_special_hours_are_stored_in_date_order_and_returned(client):
    created = await ok(await client.put(B, json=BRANCH, headers=ADMIN), 201)
    assert created["special_hours"] == [SUMMER, CHRISTMAS_EVE]
    config = await ok(await client.get(B, headers=ADMIN))
    assert config["special_hours"] == [SUMMER, CHRISTMAS_EVE]
    # PUT replaces: without them, none.
    reset = await ok(await client.put(B, json={**BRANCH, "special_hours": []}, headers=ADMIN))
    assert reset["special_hours"] == []
    plain = await ok(await client.put(B, json={"name": "x", "timezone": "UTC"}, headers=ADMIN))
    assert plain["special_hours"] == []


def _with(*ranges: dict[str, Any]) -> dict[str, Any]:
    return {**BRANCH, "special_hours": list(ranges)}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (_with({**SUMMER, "to": "2026-06-30"}), "'to' is before 'from'"),
        (_with(SUMMER, {**CHRISTMAS_EVE, "from": "2026-08-31"}), "overlap"),
        (_with(CHRISTMAS_EVE, CHRISTMAS_EVE), "overlap"),
        (_with({**SUMMER, "hours": {"mon": [["18:00", "08:00"]]}}), "hours.mon"),
        (_with({**SUMMER, "hours": {"monday": []}}), "not a weekday"),
        (_with({**SUMMER, "from": "2026-02-30"}), "special_hours.0.from"),
        (_with({"from": "2026-07-01", "hours": {}}), "special_hours.0.to"),
        (_with({**SUMMER, "colour": "red"}), "special_hours.0.colour"),
        (_with(*[CHRISTMAS_EVE] * 101), "at most 100"),
    ],
)
async def test_bad_special_hours_are_a_422_that_says_what_is_wrong(client, body, fragment):
    problem = assert_problem(await client.put(B, json=body, headers=ADMIN), 422, contains=fragment)
    assert problem["type"] == "/problems/validation-error"
    assert any("special_hours" in ".".join(e["loc"]) for e in problem["errors"]), problem


@pytest.mark.parametrize(
    ("when", "opens_at"),
    [
        (shanghai(12, 24, 12, 0), "2026-12-25T09:00:00+08:00"),  # Christmas Eve afternoon
        (shanghai(6, 30, 8, 30), "2026-06-30T09:00:00+08:00"),  # the day before summer
        (shanghai(6, 30, 17, 0), "2026-07-01T08:00:00+08:00"),  # summer starts next morning
        (shanghai(9, 1, 8, 0), "2026-09-01T09:00:00+08:00"),  # summer is over
        (shanghai(8, 30, 10, 0), "2026-08-31T08:00:00+08:00"),  # a Sunday in summer
    ],
)
async def test_issuing_is_refused_outside_special_hours(client, clock, when, opens_at):
    await setup_branch(client, branch=BRANCH)
    clock.set(when)
    problem = assert_problem(
        await client.post(f"{B}/tickets", json={"service": "a"}, headers=ADMIN), 409
    )
    assert problem["type"] == "/problems/branch-closed"
    assert problem["reason"] == "closed"
    assert problem["opens_at"] == opens_at


@pytest.mark.parametrize(
    "when",
    [
        shanghai(12, 24, 11, 59),  # Christmas Eve morning
        shanghai(7, 1, 8, 0),  # the first summer morning, before the weekly opening
        shanghai(8, 29, 10, 0),  # a summer Saturday
        shanghai(8, 31, 17, 59),  # the last summer evening
    ],
)
async def test_issuing_is_allowed_inside_special_hours(client, clock, when):
    await setup_branch(client, branch=BRANCH)
    clock.set(when)
    assert (await issue(client))["number"] == "A001"


async def test_a_change_of_special_hours_applies_to_issuing_at_once(client, clock):
    await setup_branch(client, branch={**BRANCH, "special_hours": []})
    clock.set(shanghai(12, 24, 15, 0))
    await issue(client)  # a normal Thursday afternoon
    await ok(await client.put(B, json=BRANCH, headers=ADMIN))  # now it closes at noon
    assert_problem(await client.post(f"{B}/tickets", json={"service": "a"}, headers=ADMIN), 409)


# -- the business type's guide ---------------------------------------------------------------------

GUIDE = {"zh": "请携带本人身份证原件。", "en": "Please bring your ID card."}


async def test_a_guide_is_returned_with_its_type(client):
    await setup_branch(client)
    svc = {"name": "新开户", "prefix": "C", "guide": GUIDE}
    created = await ok(await client.put(f"{B}/services/c", json=svc, headers=ADMIN), 201)
    assert created["guide"] == GUIDE
    kiosk = await make_token(client, "kiosk", "hz01")
    config = await ok(await client.get(B, headers=kiosk))
    guides = {s["code"]: s["guide"] for s in config["services"]}
    assert guides["c"] == GUIDE and guides["a"] is None
    # Chinese alone is enough; at exactly 500 characters; surrounding blanks are trimmed.
    zh_only = {"zh": f" {'证' * 500} "}
    updated = await ok(
        await client.put(f"{B}/services/c", json={**svc, "guide": zh_only}, headers=ADMIN)
    )
    assert updated["guide"] == {"zh": "证" * 500, "en": None}
    # PUT replaces: without a guide, none.
    cleared = await ok(
        await client.put(f"{B}/services/c", json={**svc, "guide": None}, headers=ADMIN)
    )
    assert cleared["guide"] is None


@pytest.mark.parametrize(
    ("guide", "where"),
    [
        ({"zh": "证" * 501}, "guide.zh"),
        ({"zh": "证件", "en": "x" * 501}, "guide.en"),
        ({"en": "ID card"}, "guide.zh"),
        ({"zh": "   "}, "guide.zh"),
        ({"zh": "证件", "fr": "pièce"}, "guide.fr"),
        ("请携带身份证", "guide"),
    ],
)
async def test_a_bad_guide_is_a_422(client, guide, where):
    await setup_branch(client)
    problem = assert_problem(
        await client.put(
            f"{B}/services/c", json={"name": "C", "prefix": "C", "guide": guide}, headers=ADMIN
        ),
        422,
        contains=where,
    )
    assert any(where in ".".join(e["loc"]) for e in problem["errors"]), problem


async def test_a_guide_over_500_characters_says_so(client):
    await setup_branch(client)
    body = {"name": "C", "prefix": "C", "guide": {"zh": "证" * 501}}
    assert_problem(
        await client.put(f"{B}/services/c", json=body, headers=ADMIN),
        422,
        contains="at most 500 characters",
    )


# -- the staff number ------------------------------------------------------------------------------


async def test_staff_number(client):
    await setup_branch(client)
    person = {"name": "王芳", "role": "clerk", "number": " 10086 "}
    created = await ok(await client.put(f"{B}/staff/s9", json=person, headers=ADMIN), 201)
    assert created == {"code": "s9", "name": "王芳", "role": "clerk", "number": "10086"}
    without = await ok(
        await client.put(f"{B}/staff/s9", json={"name": "王芳", "role": "clerk"}, headers=ADMIN)
    )
    assert without["number"] is None
    for number in ["", "x" * 17, "10 086", "工号1", "-1", 10086]:
        assert_problem(
            await client.put(f"{B}/staff/s9", json={**person, "number": number}, headers=ADMIN),
            422,
            contains="number",
        )

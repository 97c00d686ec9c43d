"""Configuring branches, business types, counters and staff: idempotent create-or-update."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import ADMIN, assert_problem, make_token, ok, setup_branch

B = "/api/v1/branches/hz01"
BRANCH = {
    "name": "杭州01营业厅",
    "timezone": "Asia/Shanghai",
    "hours": {"mon": [["09:00", "12:00"], ["13:00", "17:30"]], "sat": [["10:00", "16:00"]]},
    "holidays": ["2026-10-01", "2026-10-02"],
    "issue_cutoff_min": 15,
    "min_open_counters": 2,
}


async def test_put_branch_creates_then_updates_idempotently(client):
    created = await client.put(B, json=BRANCH, headers=ADMIN)
    assert created.status_code == 201
    body = created.json()
    assert body["code"] == "hz01"
    assert body["hours"] == BRANCH["hours"]
    assert body["holidays"] == ["2026-10-01", "2026-10-02"]
    assert body["requeue_after"] == 2
    again = await client.put(B, json=BRANCH, headers=ADMIN)
    assert again.status_code == 200
    assert again.json() == body
    changed = await ok(await client.put(B, json={**BRANCH, "name": "新名字"}, headers=ADMIN))
    assert changed["name"] == "新名字"
    # PUT replaces: an omitted optional field returns to its default (always open).
    reset = await ok(await client.put(B, json={"name": "x", "timezone": "UTC"}, headers=ADMIN))
    assert reset["hours"] is None and reset["holidays"] == [] and reset["min_open_counters"] == 0


async def test_concurrent_puts_of_one_branch_agree(client):
    responses = await asyncio.gather(*(client.put(B, json=BRANCH, headers=ADMIN) for _ in range(8)))
    assert sorted(r.status_code for r in responses) == [200] * 7 + [201]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"timezone": "Asia/Shanghai"}, "name"),
        ({"name": "x"}, "timezone"),
        ({"name": "x", "timezone": "Mars/Olympus"}, "timezone"),
        ({"name": "x", "timezone": "UTC", "hours": {"funday": [["09:00", "10:00"]]}}, "hours"),
        ({"name": "x", "timezone": "UTC", "hours": {"mon": [["9am", "10:00"]]}}, "hours"),
        ({"name": "x", "timezone": "UTC", "hours": {"mon": [["10:00", "09:00"]]}}, "hours"),
        ({"name": "x", "timezone": "UTC", "hours": {"mon": [["22:00", "02:00"]]}}, "hours"),
        (
            {
                "name": "x",
                "timezone": "UTC",
                "hours": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]},
            },
            "hours",
        ),
        ({"name": "x", "timezone": "UTC", "hours": {"mon": [["09:00"]]}}, "hours"),
        ({"name": "x", "timezone": "UTC", "holidays": ["2026-13-01"]}, "holidays"),
        ({"name": "x", "timezone": "UTC", "issue_cutoff_min": -5}, "issue_cutoff_min"),
        ({"name": "x", "timezone": "UTC", "min_open_counters": "two"}, "min_open_counters"),
        ({"name": "x", "timezone": "UTC", "requeue_after": 999}, "requeue_after"),
        ({"name": "x", "timezone": "UTC", "colour": "red"}, "colour"),
        ({"name": "", "timezone": "UTC"}, "name"),
        ({"name": "x" * 101, "timezone": "UTC"}, "name"),
        ({"name": "x", "timezone": "UTC", "announcement": {"zh": "请到窗口"}}, "announcement"),
        (
            {"name": "x", "timezone": "UTC", "announcement": {"en": "{number} {counter} {x}"}},
            "announcement",
        ),
    ],
)
async def test_bad_branch_configuration_is_a_422_that_names_the_field(client, body, fragment):
    problem = assert_problem(await client.put(B, json=body, headers=ADMIN), 422)
    assert any(fragment in ".".join(e["loc"]) for e in problem["errors"]), problem


async def test_bad_codes_in_the_path(client):
    for code in ["has space", "-lead", "x" * 33, "中文", "a.b"]:
        assert_problem(
            await client.put(f"/api/v1/branches/{code}", json=BRANCH, headers=ADMIN), 422
        )


async def test_services(client):
    await ok(await client.put(B, json=BRANCH, headers=ADMIN), 201)
    svc = {"name": "综合业务", "prefix": "A"}
    created = await client.put(f"{B}/services/a", json=svc, headers=ADMIN)
    assert created.status_code == 201
    assert created.json() == {
        "code": "a",
        "name": "综合业务",
        "prefix": "A",
        "target_wait_s": 600,
        "max_wait_s": 1800,
        "queue_alert_per_counter": 10,
        "guide": None,
    }
    assert (await client.put(f"{B}/services/a", json=svc, headers=ADMIN)).status_code == 200
    updated = await ok(
        await client.put(
            f"{B}/services/a",
            json={**svc, "target_wait_s": 180, "max_wait_s": None, "queue_alert_per_counter": 4},
            headers=ADMIN,
        )
    )
    assert updated["target_wait_s"] == 180 and updated["max_wait_s"] is None
    # Two types cannot share a prefix: their numbers would collide.
    problem = assert_problem(
        await client.put(f"{B}/services/b", json={"name": "B", "prefix": "A"}, headers=ADMIN),
        409,
        contains="prefix A",
    )
    assert "a" in problem["detail"]
    for body in [
        {"name": "B", "prefix": "b"},
        {"name": "B", "prefix": "ABCD"},
        {"name": "B", "prefix": "A1"},
        {"name": "B", "prefix": "B", "target_wait_s": 0},
        {"name": "B"},
    ]:
        assert_problem(await client.put(f"{B}/services/b", json=body, headers=ADMIN), 422)
    assert_problem(
        await client.put("/api/v1/branches/nope/services/a", json=svc, headers=ADMIN), 404
    )
    config = await ok(await client.get(B, headers=ADMIN))
    assert [s["code"] for s in config["services"]] == ["a"]


async def test_staff(client):
    await ok(await client.put(B, json=BRANCH, headers=ADMIN), 201)
    person = {"name": "王芳", "role": "clerk"}
    assert (await client.put(f"{B}/staff/s1", json=person, headers=ADMIN)).status_code == 201
    again = await client.put(f"{B}/staff/s1", json=person, headers=ADMIN)
    assert again.status_code == 200 and again.json() == {
        "code": "s1",
        "name": "王芳",
        "role": "clerk",
        "number": None,
    }
    assert_problem(
        await client.put(f"{B}/staff/s2", json={"name": "x", "role": "boss"}, headers=ADMIN), 422
    )
    assert_problem(
        await client.put("/api/v1/branches/nope/staff/s1", json=person, headers=ADMIN), 404
    )


async def test_who_may_configure(client):
    await setup_branch(client)
    await setup_branch(client, "sh02")
    manager = await make_token(client, "manager", "hz01")
    svc = {"name": "新开户", "prefix": "C"}
    assert (await client.put(f"{B}/services/c", json=svc, headers=manager)).status_code == 201
    assert_problem(
        await client.put("/api/v1/branches/sh02/services/c", json=svc, headers=manager), 403
    )
    # A manager cannot create branches: a new branch belongs to no manager yet.
    assert_problem(await client.put("/api/v1/branches/new1", json=BRANCH, headers=manager), 403)
    for role in ["kiosk", "display"]:
        token = await make_token(client, role, "hz01")
        assert_problem(await client.put(f"{B}/services/c", json=svc, headers=token), 403)
        assert_problem(await client.put(B, json=BRANCH, headers=token), 403)
    monitor = await make_token(client, "monitor")
    assert_problem(await client.put(B, json=BRANCH, headers=monitor), 403)


async def test_branch_config_is_readable_by_branch_roles(client):
    await setup_branch(client)
    kiosk = await make_token(client, "kiosk", "hz01")
    config = await ok(await client.get(B, headers=kiosk))
    assert [s["prefix"] for s in config["services"]] == ["A", "B", "V"]
    assert config["timezone"] == "Asia/Shanghai"
    assert_problem(await client.get("/api/v1/branches/nope", headers=ADMIN), 404)


async def test_branch_list_is_every_branch_for_admin_and_the_own_one_for_a_manager(client):
    await setup_branch(client, "sh02")
    await setup_branch(client, staff={"s1": {"name": "王芳", "role": "clerk"}})
    everything = await ok(await client.get("/api/v1/branches", headers=ADMIN))
    assert [b["code"] for b in everything] == ["hz01", "sh02"]
    assert set(everything[0]) == {"code", "name", "timezone"}
    manager = await make_token(client, "manager", "sh02")
    assert [b["code"] for b in await ok(await client.get("/api/v1/branches", headers=manager))] == [
        "sh02"
    ]
    for role in ["clerk", "kiosk", "display"]:
        token = await make_token(client, role, "hz01", "s1" if role == "clerk" else None)
        assert_problem(await client.get("/api/v1/branches", headers=token), 403)
    assert_problem(await client.get("/api/v1/branches"), 401)


async def test_staff_list_carries_roles_for_the_console(client):
    await ok(await client.put(B, json=BRANCH, headers=ADMIN), 201)
    await ok(
        await client.put(f"{B}/staff/s2", json={"name": "李雷", "role": "manager"}, headers=ADMIN),
        201,
    )
    await ok(
        await client.put(
            f"{B}/staff/s1", json={"name": "王芳", "role": "clerk", "number": "0107"}, headers=ADMIN
        ),
        201,
    )
    listed = await ok(await client.get(f"{B}/staff", headers=ADMIN))
    assert listed == [
        {"code": "s1", "name": "王芳", "role": "clerk", "number": "0107"},
        {"code": "s2", "name": "李雷", "role": "manager", "number": None},
    ]
    assert_problem(await client.get("/api/v1/branches/nope/staff", headers=ADMIN), 404)
    kiosk = await make_token(client, "kiosk", "hz01")
    assert_problem(await client.get(f"{B}/staff", headers=kiosk), 403)

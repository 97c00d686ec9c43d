"""The counter workflow: every action, every refused transition, and the history it leaves."""

from __future__ import annotations

import pytest

from tests.helpers import ADMIN, assert_problem, issue, make_token, ok, setup_branch

B = "/api/v1/branches/hz01"
STAFF = {
    "s1": {"name": "王芳", "role": "clerk"},
    "s2": {"name": "李强", "role": "clerk"},
    "m1": {"name": "陈经理", "role": "manager"},
}


@pytest.fixture
async def hall(client):
    await setup_branch(client, staff=STAFF)
    return {
        "s1": await make_token(client, "clerk", "hz01", "s1"),
        "s2": await make_token(client, "clerk", "hz01", "s2"),
        "manager": await make_token(client, "manager", "hz01"),
        "kiosk": await make_token(client, "kiosk", "hz01"),
    }


async def act(client, counter, action, headers=ADMIN, status=200, json=None):
    response = await client.post(f"{B}/counters/{counter}/{action}", headers=headers, json=json)
    if status >= 400:
        return assert_problem(response, status)
    return await ok(response, status)


async def ticket(client, ticket_id):
    return await ok(await client.get(f"/api/v1/tickets/{ticket_id}", headers=ADMIN))


async def test_open_signs_the_clerk_in(client, hall):
    result = await act(client, "1", "open", hall["s1"])
    assert result["counter"]["state"] == "open"
    assert result["counter"]["staff"] == "s1"
    assert result["ticket"] is None
    listed = await ok(await client.get(f"{B}/counters", headers=hall["kiosk"]))
    assert [(c["code"], c["state"], c["staff"]) for c in listed] == [
        ("1", "open", "s1"),
        ("2", "closed", None),
        ("9", "closed", None),
    ]
    # Opening again as the same clerk changes nothing.
    again = await act(client, "1", "open", hall["s1"])
    assert again["counter"]["state"] == "open"


async def test_a_clerk_is_at_one_counter_at_a_time(client, hall):
    await act(client, "1", "open", hall["s1"])
    body = await act(client, "2", "open", hall["s1"], status=409)
    assert "counter 1" in body["detail"]


async def test_a_signed_in_counter_is_not_taken_over(client, hall):
    await act(client, "1", "open", hall["s1"])
    body = await act(client, "1", "open", hall["s2"], status=409)
    assert "s1" in body["detail"]


async def test_a_clerk_operates_only_the_counter_they_are_signed_in_at(client, hall):
    await act(client, "1", "open", hall["s1"])
    await issue(client)
    await act(client, "1", "next", hall["s2"], status=403)
    await act(client, "2", "next", hall["s1"], status=403)
    # A manager operates any counter of the branch without signing in.
    result = await act(client, "1", "next", hall["manager"])
    assert result["ticket"]["number"] == "A001"


async def test_kiosk_and_display_tokens_cannot_operate_counters(client, hall):
    display = await make_token(client, "display", "hz01")
    await act(client, "1", "open", hall["kiosk"], status=403)
    await act(client, "1", "open", display, status=403)


async def test_next_calls_completes_and_reports_nobody_waiting(client, hall, clock):
    await act(client, "1", "open", hall["s1"])
    first = await issue(client)
    clock.advance(30)
    second = await issue(client)
    clock.advance(30)

    called = await act(client, "1", "next", hall["s1"])
    assert called["ticket"]["id"] == first["id"]
    assert called["ticket"]["status"] == "called"
    assert called["ticket"]["counter"] == "1"
    assert called["counter"]["current"]["number"] == "A001"

    clock.advance(120)
    called = await act(client, "1", "next", hall["s1"])
    assert called["ticket"]["id"] == second["id"]
    done = await ticket(client, first["id"])
    assert done["status"] == "done"
    assert done["counter"] is None
    assert done["finished_at"] is not None

    clock.advance(60)
    response = await client.post(f"{B}/counters/1/next", headers=hall["s1"])
    assert response.status_code == 204 and response.content == b""
    assert (await ticket(client, second["id"]))["status"] == "done"
    counters = await ok(await client.get(f"{B}/counters", headers=ADMIN))
    assert counters[0]["current"] is None


async def test_next_is_refused_unless_open(client, hall):
    await issue(client)
    body = await act(client, "1", "next", ADMIN, status=409)
    assert "closed" in body["detail"]
    await act(client, "1", "open", hall["s1"])
    await act(client, "1", "pause", hall["s1"], json={"reason": "lunch"})
    body = await act(client, "1", "next", hall["s1"], status=409)
    assert body["counter_state"] == "paused" and "resume" in body["detail"]
    await act(client, "1", "resume", hall["s1"])
    assert (await act(client, "1", "next", hall["s1"]))["ticket"]["number"] == "A001"


async def test_pause_and_resume(client, hall):
    await act(client, "1", "pause", hall["manager"], status=409)  # closed
    await act(client, "1", "open", hall["s1"])
    paused = await act(client, "1", "pause", hall["s1"])
    assert paused["counter"]["state"] == "paused"
    assert (await act(client, "1", "pause", hall["s1"]))["counter"]["state"] == "paused"
    resumed = await act(client, "1", "resume", hall["s1"])
    assert resumed["counter"]["state"] == "open"
    assert (await act(client, "1", "resume", hall["s1"]))["counter"]["state"] == "open"


async def test_close_with_a_customer_waits_for_the_ticket_to_end(client, hall):
    await act(client, "1", "open", hall["s1"])
    t = await issue(client)
    await issue(client)
    await act(client, "1", "next", hall["s1"])
    closing = await act(client, "1", "close", hall["s1"])
    assert closing["counter"]["state"] == "closing"
    assert closing["counter"]["current"]["id"] == t["id"]
    # Closing: no new calls.
    body = await act(client, "1", "next", hall["s1"], status=409)
    assert "closing" in body["detail"]
    done = await act(client, "1", "complete", hall["s1"])
    assert done["counter"]["state"] == "closed"
    assert done["counter"]["staff"] is None
    assert done["ticket"]["status"] == "done"
    # The clerk is signed out: they may open another counter now.
    assert (await act(client, "2", "open", hall["s1"]))["counter"]["state"] == "open"


async def test_close_an_idle_counter_closes_at_once(client, hall):
    await act(client, "1", "open", hall["s1"])
    closed = await act(client, "1", "close", hall["s1"])
    assert closed["counter"]["state"] == "closed"
    # Signed out: the clerk can no longer act at the counter.
    await act(client, "1", "next", hall["s1"], status=403)


async def test_shift_handover_keeps_the_current_ticket(client, hall):
    await act(client, "1", "open", hall["s1"])
    t = await issue(client)
    await act(client, "1", "next", hall["s1"])
    await act(client, "1", "start", hall["s1"])
    await act(client, "1", "close", hall["s1"])  # s1 signs out: closing
    taken = await act(client, "1", "open", hall["s2"])  # s2 signs in
    assert taken["counter"]["state"] == "open"
    assert taken["counter"]["staff"] == "s2"
    assert taken["counter"]["current"]["id"] == t["id"]
    done = await act(client, "1", "complete", hall["s2"])
    assert done["ticket"]["status"] == "done"
    history = (await ticket(client, t["id"]))["history"]
    assert [(h["type"], h["staff"]) for h in history] == [
        ("ticket.issued", None),
        ("ticket.near", None),
        ("ticket.called", "s1"),
        ("ticket.serving", "s1"),
        ("ticket.completed", "s2"),
    ]


async def test_recall_start_complete(client, hall, clock):
    await act(client, "1", "open", hall["s1"])
    t = await issue(client)
    await act(client, "1", "recall", hall["s1"], status=409)  # nothing called yet
    await act(client, "1", "next", hall["s1"])
    clock.advance(20)
    recalled = await act(client, "1", "recall", hall["s1"])
    assert recalled["ticket"]["recall_count"] == 1
    recalled = await act(client, "1", "recall", hall["s1"])
    assert recalled["ticket"]["recall_count"] == 2
    clock.advance(10)
    serving = await act(client, "1", "start", hall["s1"])
    assert serving["ticket"]["status"] == "serving"
    assert serving["ticket"]["served_at"] is not None
    body = await act(client, "1", "recall", hall["s1"], status=409)
    assert body["ticket_status"] == "serving"
    await act(client, "1", "start", hall["s1"], status=409)
    await act(client, "1", "no-show", hall["s1"], status=409)
    clock.advance(300)
    done = await act(client, "1", "complete", hall["s1"])
    assert done["ticket"]["status"] == "done"
    assert done["counter"]["current"] is None
    assert done["counter"]["state"] == "open"
    await act(client, "1", "complete", hall["s1"], status=409)
    detail = await ticket(client, t["id"])
    types = [h["type"] for h in detail["history"]]
    assert types == [
        "ticket.issued",
        "ticket.near",
        "ticket.called",
        "ticket.recalled",
        "ticket.recalled",
        "ticket.serving",
        "ticket.completed",
    ]
    completed = detail["history"][-1]
    assert completed["data"]["service_s"] == 300
    recall_event = detail["history"][2]
    assert recall_event["data"]["announcement"]["zh"] == "请A001号到1号窗口办理"
    assert recall_event["data"]["announcement"]["en"] == "Ticket A001, please go to counter 1"


async def test_complete_without_start_counts_service_from_the_call(client, hall, clock):
    await act(client, "1", "open", hall["s1"])
    await issue(client)
    await act(client, "1", "next", hall["s1"])
    clock.advance(200)
    done = await act(client, "1", "complete", hall["s1"])
    assert done["ticket"]["served_at"] == done["ticket"]["called_at"]


async def test_no_show_and_requeue(client, hall):
    await act(client, "1", "open", hall["s1"])
    missed = await issue(client)
    others = [await issue(client) for _ in range(4)]
    await act(client, "1", "next", hall["s1"])
    await act(client, "1", "recall", hall["s1"])
    gone = await act(client, "1", "no-show", hall["s1"])
    assert gone["ticket"]["status"] == "no_show"
    assert gone["counter"]["current"] is None

    # Re-queue is for no-shows only.
    body = assert_problem(
        await client.post(f"/api/v1/tickets/{others[0]['id']}/requeue", headers=hall["s1"]), 409
    )
    assert body["ticket_status"] == "waiting"
    back = await ok(
        await client.post(f"/api/v1/tickets/{missed['id']}/requeue", headers=hall["kiosk"])
    )
    assert back["status"] == "waiting"
    assert back["number"] == "A001"  # keeps its number
    # Held back behind the others for now (requeue_after = 2 by default).
    assert back["position"] == 5

    called = [(await act(client, "1", "next", hall["s1"]))["ticket"]["number"] for _ in range(3)]
    # Called after at most two other tickets.
    assert called == ["A002", "A003", "A001"]
    history = (await ticket(client, missed["id"]))["history"]
    assert [h["type"] for h in history] == [
        "ticket.issued",
        "ticket.near",
        "ticket.called",
        "ticket.recalled",
        "ticket.no_show",
        "ticket.requeued",
        "ticket.called",
    ]
    assert_problem(
        await client.post(f"/api/v1/tickets/{missed['id']}/requeue", headers=hall["s1"]), 409
    )


async def test_requeue_after_is_a_branch_setting(client, hall):
    await ok(
        await client.put(
            B, json={"name": "hz01", "timezone": "Asia/Shanghai", "requeue_after": 0}, headers=ADMIN
        )
    )
    await act(client, "1", "open", hall["s1"])
    missed = await issue(client)
    await issue(client)
    await act(client, "1", "next", hall["s1"])
    await act(client, "1", "no-show", hall["s1"])
    back = await ok(await client.post(f"/api/v1/tickets/{missed['id']}/requeue", headers=ADMIN))
    assert back["position"] == 1
    assert (await act(client, "1", "next", hall["s1"]))["ticket"]["number"] == "A001"


async def test_requeue_is_refused_on_a_later_business_day(client, hall, clock):
    await act(client, "1", "open", hall["s1"])
    missed = await issue(client)
    await act(client, "1", "next", hall["s1"])
    await act(client, "1", "no-show", hall["s1"])
    clock.advance(hours=24)
    body = assert_problem(
        await client.post(f"/api/v1/tickets/{missed['id']}/requeue", headers=ADMIN), 409
    )
    assert "new number" in body["detail"]


async def test_transfer_to_another_type_goes_to_the_front(client, hall, clock):
    await act(client, "1", "open", hall["s1"])
    await act(client, "2", "open", hall["s2"])
    t = await issue(client, service="a")
    clock.advance(60)
    b_waiting = [await issue(client, service="b") for _ in range(2)]
    await act(client, "1", "next", hall["s1"])  # A001 at counter 1
    moved = await act(client, "1", "transfer", hall["s1"], json={"service": "b"})
    assert moved["ticket"]["status"] == "waiting"
    assert moved["ticket"]["service"] == "b"
    assert moved["ticket"]["number"] == "A001"
    assert moved["ticket"]["issued_at"] == t["issued_at"]
    assert moved["ticket"]["position"] == 1
    assert moved["counter"]["current"] is None
    # Counter 2 (own type b) calls the transferred ticket before the b tickets.
    assert (await act(client, "2", "next", hall["s2"]))["ticket"]["id"] == t["id"]
    assert (await act(client, "2", "next", hall["s2"]))["ticket"]["id"] == b_waiting[0]["id"]
    history = (await ticket(client, t["id"]))["history"]
    handled = [(h["type"], h["counter"], h["staff"]) for h in history]
    assert handled == [
        ("ticket.issued", None, None),
        ("ticket.near", None, None),
        ("ticket.called", "1", "s1"),
        ("ticket.transferred", "1", "s1"),
        ("ticket.called", "2", "s2"),
        ("ticket.completed", "2", "s2"),
    ]
    transferred = history[3]["data"]
    assert transferred["from"] == {"counter": "1", "service": "a", "status": "called"}
    assert transferred["to"] == {"service": "b", "counter": None, "position": "front"}


async def test_service_time_restarts_after_a_transfer(client, hall, clock):
    await act(client, "1", "open", hall["s1"])
    await act(client, "2", "open", hall["s2"])
    t = await issue(client, service="a")
    await act(client, "1", "next", hall["s1"])
    await act(client, "1", "start", hall["s1"])
    clock.advance(120)
    await act(client, "1", "transfer", hall["s1"], json={"service": "b"})
    clock.advance(600)  # back in the queue: waiting, not being served
    await act(client, "2", "next", hall["s2"])
    await act(client, "2", "start", hall["s2"])
    clock.advance(180)
    await act(client, "2", "complete", hall["s2"])
    detail = await ticket(client, t["id"])
    completed = detail["history"][-1]
    assert completed["type"] == "ticket.completed"
    assert completed["data"]["service_s"] == 180


async def test_transfer_to_the_back(client, hall, clock):
    await act(client, "1", "open", hall["s1"])
    await issue(client, service="a")
    waiting = [await issue(client, service="a") for _ in range(2)]
    await act(client, "1", "next", hall["s1"])
    clock.advance(60)
    moved = await act(
        client, "1", "transfer", hall["s1"], json={"service": "a", "position": "back"}
    )
    assert moved["ticket"]["position"] == 3
    called = [(await act(client, "1", "next", hall["s1"]))["ticket"]["number"] for _ in range(3)]
    assert called == [waiting[0]["number"], waiting[1]["number"], "A001"]


async def test_transfer_to_a_counter(client, hall):
    await act(client, "1", "open", hall["s1"])
    await act(client, "2", "open", hall["s2"])
    await ok(await client.post(f"{B}/counters/9/open", headers=hall["manager"]))
    t = await issue(client, service="a")
    await issue(client, service="a")
    await act(client, "1", "next", hall["s1"])
    moved = await act(client, "1", "transfer", hall["s1"], json={"counter": "2"})
    assert moved["ticket"]["service"] == "a"  # counter 2 serves a too
    # Only counter 2 calls it: counter 9 (which also serves a) takes the other ticket.
    assert (await act(client, "9", "next", hall["manager"]))["ticket"]["number"] == "A002"
    assert (await act(client, "2", "next", hall["s2"]))["ticket"]["id"] == t["id"]


async def test_transfer_to_a_counter_of_another_type_joins_its_own_type(client, hall):
    await ok(
        await client.put(f"{B}/counters/7", json={"name": "7", "services": ["v"]}, headers=ADMIN),
        201,
    )
    await act(client, "1", "open", hall["s1"])
    await issue(client, service="a")
    await act(client, "1", "next", hall["s1"])
    moved = await act(client, "1", "transfer", hall["s1"], json={"counter": "7"})
    assert moved["ticket"]["service"] == "v"
    body = await act(client, "1", "transfer", hall["s1"], json={"counter": "7"}, status=409)
    assert body["type"] == "/problems/no-current-ticket"


async def test_transfer_refusals(client, hall):
    await act(client, "1", "open", hall["s1"])
    await issue(client)
    await act(client, "1", "transfer", hall["s1"], json={"service": "b"}, status=409)  # no ticket
    await act(client, "1", "next", hall["s1"])
    for body, fragment in [
        ({}, "target"),
        ({"service": "zz"}, "zz"),
        ({"counter": "77"}, "77"),
        ({"counter": "1"}, "own counter"),
        ({"service": "v", "counter": "2"}, "does not serve"),
    ]:
        problem = await act(client, "1", "transfer", hall["s1"], json=body, status=422)
        assert fragment in problem["detail"], (body, problem)
    assert_problem(
        await client.post(
            f"{B}/counters/1/transfer",
            json={"service": "b", "position": "middle"},
            headers=hall["s1"],
        ),
        422,
    )
    # Nothing changed: the ticket is still called at counter 1.
    listed = await ok(await client.get(f"{B}/counters/1", headers=ADMIN))
    assert listed["current"]["status"] == "called"


async def test_cancel_only_while_waiting(client, hall):
    await act(client, "1", "open", hall["s1"])
    t = await issue(client)
    waiting = await issue(client)
    await act(client, "1", "next", hall["s1"])
    body = assert_problem(
        await client.post(f"/api/v1/tickets/{t['id']}/cancel", headers=ADMIN), 409
    )
    assert body["ticket_status"] == "called"
    cancelled = await ok(
        await client.post(f"/api/v1/tickets/{waiting['id']}/cancel", headers=hall["kiosk"])
    )
    assert cancelled["status"] == "cancelled"
    assert_problem(await client.post(f"/api/v1/tickets/{waiting['id']}/cancel", headers=ADMIN), 409)
    response = await client.post(f"{B}/counters/1/next", headers=hall["s1"])
    assert response.status_code == 204


async def test_counter_profile_is_respected(client, hall):
    await act(client, "9", "open", hall["manager"])
    await issue(client, service="b")
    response = await client.post(f"{B}/counters/9/next", headers=hall["manager"])
    assert response.status_code == 204  # counter 9 serves v and a, not b
    await issue(client, service="a")
    vip = await issue(client, service="v")
    assert (await act(client, "9", "next", hall["manager"]))["ticket"]["id"] == vip["id"]


async def test_unknown_counter_and_branch(client, hall):
    assert_problem(await client.post(f"{B}/counters/77/open", headers=ADMIN), 404)
    assert_problem(await client.post("/api/v1/branches/nope/counters/1/open", headers=ADMIN), 404)
    assert_problem(await client.post(f"{B}/counters/bad code/open", headers=ADMIN), 422)


async def test_counter_configuration(client, hall):
    updated = await client.put(
        f"{B}/counters/1", json={"name": "一号", "services": ["b"]}, headers=ADMIN
    )
    assert updated.status_code == 200
    assert updated.json()["services"] == ["b"]
    for body, status, fragment in [
        ({"name": "x", "services": []}, 422, "services"),
        ({"name": "x", "services": ["a", "a"]}, 422, "twice"),
        ({"name": "x", "services": ["a", "nope"]}, 422, "nope"),
        ({"name": "x"}, 422, "services"),
        ({"name": "", "services": ["a"]}, 422, "name"),
    ]:
        assert_problem(
            await client.put(f"{B}/counters/5", json=body, headers=ADMIN), status, contains=fragment
        )
    # A manager configures their own branch; a clerk does not.
    manager = hall["manager"]
    assert (
        await client.put(f"{B}/counters/5", json={"name": "5", "services": ["a"]}, headers=manager)
    ).status_code == 201
    assert_problem(
        await client.put(
            f"{B}/counters/5", json={"name": "5", "services": ["a"]}, headers=hall["s1"]
        ),
        403,
    )


async def test_the_announcement_uses_the_counter_name_and_branch_wording(client, hall):
    await ok(
        await client.put(f"{B}/counters/1", json={"name": "3", "services": ["a"]}, headers=ADMIN)
    )
    await act(client, "1", "open", hall["s1"])
    t = await issue(client)
    await act(client, "1", "next", hall["s1"])
    history = (await ticket(client, t["id"]))["history"]
    called = next(h for h in history if h["type"] == "ticket.called")["data"]
    audio = called["announcement"].pop("audio")
    assert called["announcement"] == {
        "zh": "请A001号到3号窗口办理",
        "en": "Ticket A001, please go to counter 3",
    }
    # Its audio (tests/test_announcement_audio.py): by ticket number and counter code.
    assert audio.startswith("/api/v1/branches/hz01/announcements/A001/1/"), audio
    assert called["ticket"] == {
        "id": t["id"],
        "number": "A001",
        "service": "a",
        "priority": "normal",
    }
    assert called["counter"] == {"code": "1", "name": "3"}
    await ok(
        await client.put(
            B,
            json={
                "name": "hz01",
                "timezone": "Asia/Shanghai",
                "announcement": {
                    "zh": "{number}号请到{counter}号台",
                    "en": "{number} to desk {counter}",
                },
            },
            headers=ADMIN,
        )
    )
    await act(client, "1", "recall", hall["s1"])
    recalled = (await ticket(client, t["id"]))["history"][-1]["data"]
    new_audio = recalled["announcement"].pop("audio")
    assert recalled["announcement"] == {"zh": "A001号请到3号台", "en": "A001 to desk 3"}
    # New words, new audio: another version of the same call's path.
    assert new_audio != audio and new_audio.rsplit("/", 1)[0] == audio.rsplit("/", 1)[0]

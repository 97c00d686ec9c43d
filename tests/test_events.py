"""The event catalog as a public contract (SPEC §8): the published JSON Schema, and every event
the service emits validating against it, in the envelope the stream and webhooks send."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx
import jsonschema
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import text

from app.alerts.service import evaluate_branch
from app.core.clock import ManualClock
from app.events.catalog import (
    EVENT_DATA,
    EventType,
    TicketCalled,
    TicketTransferred,
    data_path,
    parse_data,
)
from app.stream.service import events_after
from tests.helpers import ADMIN, issue, make_token, ok, setup_branch

B = "/api/v1/branches/hz01"
PRIORITY_REASON = "抱婴者 seen at the door"


class Envelope(BaseModel):
    """SPEC §8's envelope, as a reader would check it."""

    type: EventType
    seq: int
    at: datetime
    branch: str
    data: dict[str, Any]


async def test_the_schema_document_names_every_type_and_each_is_a_valid_json_schema(client):
    assert (await client.get("/api/v1/events/schema")).status_code == 401
    await setup_branch(client)
    display = await make_token(client, "display", "hz01")
    document = await ok(await client.get("/api/v1/events/schema", headers=display))
    assert set(document) == {str(t) for t in EventType}
    for schema in document.values():
        jsonschema.Draft202012Validator.check_schema(schema)
    # `from` is the wire name of a transfer's origin, not the model's attribute name.
    assert "from" in document["ticket.transferred"]["properties"]
    assert "from_" not in document["ticket.transferred"]["properties"]


def test_every_event_type_has_a_model():
    assert set(EVENT_DATA) == set(EventType)


TICKET = {
    "id": "7f4a6a1e-4b55-4a59-9f87-7c2f3a4c9b10",
    "number": "A001",
    "service": "a",
    "priority": "normal",
}


def test_history_is_read_with_fields_a_later_version_adds_and_without_unknown_ones():
    data = {"ticket": {**TICKET, "phone": "13800138000"}, "shelf": 3}
    cancelled = parse_data("ticket.cancelled", data)
    assert cancelled.model_dump(mode="json") == {"ticket": TICKET}
    with pytest.raises(ValueError, match="wait_s"):
        parse_data("ticket.called", {"ticket": TICKET, "counter": {"code": "1", "name": "1"}})
    with pytest.raises(ValueError):
        parse_data("ticket.unknown", {})


def test_a_data_path_is_checked_against_its_model():
    assert data_path(TicketTransferred, "from", "counter") == "data -> 'from' ->> 'counter'"
    assert data_path(TicketCalled, "wait_s") == "data ->> 'wait_s'"
    with pytest.raises(LookupError, match=r"ticket\.phone"):
        data_path(TicketCalled, "ticket", "phone")
    with pytest.raises(LookupError, match="no object"):
        data_path(TicketCalled, "wait_s", "seconds")


async def _emit_every_type(app: FastAPI, client: httpx.AsyncClient, clock: ManualClock) -> None:
    """Drive one hall through every kind of event: issue, a priority change, call, recall,
    serve, complete, rate, no-show, re-queue, cancel, transfer, counters changing, an alert
    raised and cleared, a notice added, and the close-out's expiry."""
    await setup_branch(client, branch={"min_open_counters": 1})

    async def press(action: str, body: dict[str, Any] | None = None) -> Any:
        return await ok(await client.post(f"{B}/counters/1/{action}", json=body, headers=ADMIN))

    async with app.state.sessionmaker() as session:
        await evaluate_branch(session, "hz01", clock.now())  # no counter open: alert.raised
    first, second, third = (
        await issue(client),
        await issue(client),
        await issue(client, service="b"),
    )
    # The service desk makes the first customer a VIP (still first); the reason: history only.
    priority = {"priority": "vip", "reason": PRIORITY_REASON}
    await ok(
        await client.post(f"/api/v1/tickets/{first['id']}/priority", json=priority, headers=ADMIN)
    )
    await press("open")
    async with app.state.sessionmaker() as session:
        await evaluate_branch(session, "hz01", clock.now())  # a counter opened: alert.cleared
    clock.advance(30)
    await press("next")  # first is called
    await press("recall")
    await press("start")
    clock.advance(60)
    await press("complete")
    rating = {"score": 5, "comment": "熟练, my phone is 13800138000"}
    await ok(await client.post(f"/api/v1/tickets/{first['id']}/rating", json=rating, headers=ADMIN))
    await press("next")  # second is called
    await press("no-show")
    await ok(await client.post(f"/api/v1/tickets/{second['id']}/requeue", headers=ADMIN))
    await ok(await client.post(f"/api/v1/tickets/{third['id']}/cancel", headers=ADMIN))
    await press("next")  # second again
    await press("transfer", {"service": "b"})
    notice = {"text": {"zh": "投诉热线 10000", "en": "Complaints: 10000"}}
    await ok(await client.put(f"{B}/notices/hotline", json=notice, headers=ADMIN), 201)
    await ok(await client.post(f"{B}/day/close", headers=ADMIN))  # the rest expires


async def test_every_emitted_event_validates_against_the_published_schema(app, client, clock):
    await _emit_every_type(app, client, clock)
    schemas = await ok(await client.get("/api/v1/events/schema", headers=ADMIN))
    async with app.state.sessionmaker() as session, session.begin():
        emitted = await events_after(session, "hz01", 0, limit=1_000)
    seen: set[str] = set()
    for event in emitted:
        envelope = json.loads(event.message)
        assert list(envelope) == ["type", "seq", "at", "branch", "data"]
        Envelope.model_validate(envelope)
        assert envelope["branch"] == "hz01" and envelope["seq"] == event.seq
        jsonschema.validate(envelope["data"], schemas[envelope["type"]])
        read = parse_data(envelope["type"], envelope["data"])
        assert read.type == envelope["type"]
        # Written from the model, nothing more: the data reads back to exactly itself.
        assert read.model_dump(mode="json", by_alias=True) == envelope["data"]
        seen.add(envelope["type"])
    assert seen == {str(t) for t in EventType}
    everything = "".join(e.message for e in emitted)
    # Nothing private is in any payload (SPEC §8): the rating's comment, the phone in it, a
    # priority change's reason.
    assert "13800138000" not in everything and "熟练" not in everything
    assert "抱婴者" not in everything and "at the door" not in everything


async def test_a_call_event_reads_back_as_its_model(app, client, clock):
    await setup_branch(client)
    await ok(await client.post(f"{B}/tickets", json={"service": "a"}, headers=ADMIN), 201)
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    clock.advance(42)
    await ok(await client.post(f"{B}/counters/1/next", headers=ADMIN))
    async with app.state.sessionmaker() as session, session.begin():
        emitted = await events_after(session, "hz01", 0)
    calls = [json.loads(e.message) for e in emitted if '"ticket.called"' in e.message]
    [call] = [parse_data(c["type"], c["data"]) for c in calls]
    assert isinstance(call, TicketCalled)
    assert call.ticket.number == "A001" and call.counter.code == "1" and call.wait_s == 42.0
    assert call.announcement.zh == "请A001号到1号窗口办理"


async def test_the_queue_view_reads_added_fields_and_skips_an_unreadable_call(app, client, clock):
    """A later version may add fields to a call (SPEC §3: `announcement.audio`), and a record may
    be unreadable: the queue view, which every screen's snapshot is, still answers."""
    await setup_branch(client)
    for _ in range(2):
        await issue(client)
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    await ok(await client.post(f"{B}/counters/1/next", headers=ADMIN))
    await ok(await client.post(f"{B}/counters/1/next", headers=ADMIN))
    async with app.state.sessionmaker() as session, session.begin():
        seqs = list(
            await session.scalars(
                text(
                    "SELECT seq FROM branch_events WHERE branch = 'hz01'"
                    " AND type = 'ticket.called' ORDER BY seq"
                )
            )
        )
        first, second = seqs
        await session.execute(
            text(
                "UPDATE branch_events SET data = jsonb_set(data, '{announcement,audio}',"
                " '\"/audio/x.mp3\"') WHERE branch = 'hz01' AND seq = :seq"
            ),
            {"seq": first},
        )
        await session.execute(
            text("UPDATE branch_events SET data = '{}' WHERE branch = 'hz01' AND seq = :seq"),
            {"seq": second},
        )
    view = await ok(await client.get(f"{B}/queue", headers=ADMIN))
    assert [call["seq"] for call in view["recent_calls"]] == [first]
    assert view["recent_calls"][0]["ticket"]["number"] == "A001"

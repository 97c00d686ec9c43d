"""A client that stops reading: its buffer overflows, it gets a snapshot, the others go on.

The websocket is a stand-in whose sends block until the test lets them through (a real socket's
blocking depends on kernel buffer sizes); the hub, the subscription, the snapshot and the
database are the real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, cast

from app.events.service import current_seq
from app.stream.hub import CatchUp, EventHub, Subscription
from app.stream.service import StreamEvent, encode_message
from app.stream.views import _forward_events
from tests.helpers import issue, setup_branch


class BlockingSocket:
    """Records what is sent; while `stalled`, a send waits (as a full TCP buffer would)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sent: list[dict[str, Any]] = []
        self.flowing = asyncio.Event()
        self.flowing.set()

    async def send_text(self, text: str) -> None:
        await self.flowing.wait()
        self.sent.append(json.loads(text))


def event(seq: int) -> StreamEvent:
    return StreamEvent("hz01", seq, encode_message({"type": "ticket.issued", "seq": seq}))


def database_less_hub() -> EventHub:
    """A hub whose own logic is tested here; it never connects."""
    return EventHub("postgresql+asyncpg://hallq@127.0.0.1/hallq", cast(Any, None), queue_size=8)


def test_a_full_buffer_is_dropped_for_a_resync() -> None:
    sub = Subscription("hz01", maxsize=3)
    for seq in (1, 2, 3):
        sub.offer(event(seq))
    assert not sub.needs_resync and sub.queue.qsize() == 3
    sub.offer(event(4))
    assert sub.needs_resync
    assert sub.queue.qsize() == 1 and sub.queue.get_nowait() is None
    sub.offer(event(5))  # ignored until the client has taken its snapshot
    assert sub.queue.empty()


async def test_a_stalled_client_gets_a_snapshot_and_goes_on(client, app):
    await setup_branch(client, branch={"notify_ahead": None})  # only the issues' events
    settings = app.state.settings.model_copy(update={"stream_keepalive_s": 60})
    slow, fast = BlockingSocket(app), BlockingSocket(app)
    slow_sub, fast_sub = Subscription("hz01", 4), Subscription("hz01", 4)
    async with app.state.sessionmaker() as session:
        start = await current_seq(session, "hz01") or 0
    tasks = [
        asyncio.create_task(_forward_events(cast(Any, ws), sub, "hz01", start, settings))
        for ws, sub in ((slow, slow_sub), (fast, fast_sub))
    ]
    try:
        slow.flowing.clear()
        # Ten tickets really issued, their events offered to both clients as the hub would.
        tickets = [await issue(client) for _ in range(10)]
        for seq in range(start + 1, start + 11):
            for sub in (slow_sub, fast_sub):
                sub.offer(event(seq))
            await asyncio.sleep(0.01)  # the fast client keeps up
        await asyncio.sleep(0.05)
        assert [m["seq"] for m in fast.sent] == list(range(start + 1, start + 11))
        assert slow_sub.needs_resync
        assert len(slow.sent) == 0

        slow.flowing.set()
        for _ in range(100):
            if slow.sent and slow.sent[-1]["type"] == "snapshot":
                break
            await asyncio.sleep(0.02)
        kinds = [m["type"] for m in slow.sent]
        # The one send that was already under way, then the snapshot instead of the rest.
        assert kinds == ["ticket.issued", "snapshot"]
        snapshot = slow.sent[-1]
        assert snapshot["seq"] == start + 10
        waiting = {s["service"]: s["waiting"] for s in snapshot["data"]["services"]}
        assert waiting["a"] == len(tickets)

        # Live again: the next event reaches it, older ones are not repeated.
        for sub in (slow_sub, fast_sub):
            sub.offer(event(start + 9))
            sub.offer(event(start + 11))
        await asyncio.sleep(0.05)
        assert [m["seq"] for m in slow.sent[2:]] == [start + 11]
        assert [m["seq"] for m in fast.sent[10:]] == [start + 11]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_the_sweep_catches_up_a_branch_only_when_a_seq_seen_a_sweep_ago_is_undelivered() -> None:
    """A notification on its way is not a loss: a branch is caught up only when it is still
    behind what the previous sweep read as committed (app/stream/hub.py)."""
    hub = database_less_hub()
    hub._last_seq.update({"a": 5, "b": 7, "c": 3})
    # First sweep: a and b have commits not delivered yet; nothing was seen before.
    assert hub.overdue_branches({"a": 6, "b": 9, "c": 3}) == []
    hub._last_seq["a"] = 6  # a's notification arrived meanwhile; b's did not
    assert hub.overdue_branches({"a": 8, "b": 9, "c": 3}) == ["b"]
    # a has been behind 8 for a whole sweep now; b was caught up; c never fell behind.
    hub._last_seq["b"] = 9
    del hub._last_seq["c"]  # nobody here watches c any more
    assert hub.overdue_branches({"a": 8, "b": 9, "c": 4}) == ["a"]


def test_a_catch_up_finishing_after_the_last_client_left_does_not_track_the_branch_again() -> None:
    hub = database_less_hub()
    subscription = Subscription("hz01", maxsize=8)
    hub._subscriptions["hz01"] = {subscription}
    hub._last_seq["hz01"] = 5
    hub.unsubscribe(subscription)
    hub._deliver(event(6))  # read by a catch-up that began while the client was there
    # The next first client of the branch reads its current seq again instead of starting at 6.
    assert "hz01" not in hub._last_seq


async def test_one_branch_failing_to_catch_up_does_not_hold_up_the_others() -> None:
    hub = database_less_hub()
    caught_up: list[str] = []

    async def catch_up(branch: str, upto: int | None) -> None:
        if branch == "bad":
            raise TimeoutError("a read past the command timeout")
        caught_up.append(branch)

    hub._catch_up = catch_up  # type: ignore[method-assign]
    for branch in ("bad", "a", "b"):
        hub._subscriptions[branch] = {Subscription(branch, maxsize=8)}
    dispatcher = asyncio.create_task(hub._dispatch_forever())
    try:
        hub._inbox.put_nowait(CatchUp(None))  # after a reconnect: every watched branch
        for _ in range(100):
            if hub._behind:
                break
            await asyncio.sleep(0.01)
    finally:
        dispatcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dispatcher
    assert caught_up == ["a", "b"]
    assert hub._behind  # the failed one is retried at the next sweep

"""The calling-order rule: unit cases in Python, and proof that the SQL orders the same way."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.vocabulary import Priority
from app.queue.ordering import (
    CALLING_ORDER_SQL,
    LANE_FRONT,
    LANE_HELD,
    LANE_NORMAL,
    PICK_NEXT_SQL,
    PRIORITY_RANK,
    PRIORITY_SQL,
    TYPE_CUTOFFS_CTE,
    TYPE_CUTOFFS_JOIN,
    QueuedTicket,
    calling_order_key,
    choose_next,
)

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
PROFILE = ["a", "b"]


def ticket(
    name: str,
    *,
    service: str = "a",
    priority: str = "normal",
    waited_s: float = 60,
    lane: int = LANE_NORMAL,
    queued_waited_s: float | None = None,
    max_wait_s: int | None = 1800,
    target_counter: str | None = None,
    calls_since_requeue: int = 0,
) -> QueuedTicket:
    issued = NOW - timedelta(seconds=waited_s)
    queued = NOW - timedelta(seconds=queued_waited_s if queued_waited_s is not None else waited_s)
    return QueuedTicket(
        id=uuid.uuid5(uuid.NAMESPACE_DNS, name),
        service=service,
        priority=priority,
        lane=lane,
        issued_at=issued,
        queued_at=queued,
        max_wait_s=max_wait_s,
        target_counter=target_counter,
        calls_since_requeue=calls_since_requeue,
    )


def order(*tickets: QueuedTicket, profile=PROFILE, counter="1", requeue_after=2) -> list[str]:
    """The names of `tickets` in the order `counter` would call them."""
    left = list(tickets)
    called = []
    while (
        nxt := choose_next(
            left, counter=counter, profile=profile, now=NOW, requeue_after=requeue_after
        )
    ) is not None:
        called.append(_NAME_OF[nxt.id])
        left.remove(nxt)
    return called


_NAME_OF: dict[uuid.UUID, str] = {}


def t(name: str, **kwargs) -> QueuedTicket:
    made = ticket(name, **kwargs)
    _NAME_OF[made.id] = name
    return made


def test_first_come_first_served_within_a_class():
    assert order(t("late", waited_s=10), t("early", waited_s=100), t("mid", waited_s=50)) == [
        "early",
        "mid",
        "late",
    ]


def test_special_before_vip_before_normal():
    assert order(
        t("normal", waited_s=300),
        t("vip", priority="vip", waited_s=200),
        t("special", priority="special", waited_s=100),
    ) == ["special", "vip", "normal"]


def test_priority_ranks_cover_every_class_and_read_the_same_in_sql():
    assert sorted(PRIORITY_RANK, key=PRIORITY_RANK.__getitem__) == [
        Priority.SPECIAL,
        Priority.VIP,
        Priority.NORMAL,
    ]
    assert set(PRIORITY_RANK) == set(Priority)
    assert PRIORITY_SQL == "CASE t.priority WHEN 'special' THEN 0 WHEN 'vip' THEN 1 ELSE 2 END"


def test_priority_beats_profile_order():
    # A special ticket of a fallback type goes before a normal ticket of the counter's own type.
    assert order(
        t("own", service="a", waited_s=500), t("fallback-special", service="b", priority="special")
    ) == [
        "fallback-special",
        "own",
    ]


def test_profile_order_within_a_class():
    assert order(t("b-old", service="b", waited_s=900), t("a-new", service="a", waited_s=10)) == [
        "a-new",
        "b-old",
    ]
    # The same tickets at a counter whose own type is b.
    assert order(
        t("b-old2", service="b", waited_s=900),
        t("a-new2", service="a", waited_s=10),
        profile=["b", "a"],
    ) == ["b-old2", "a-new2"]


def test_types_outside_the_profile_are_never_called():
    assert order(t("other", service="c", priority="special"), t("mine", service="a")) == ["mine"]


def test_starvation_guard_puts_an_overdue_normal_ticket_before_fresh_priority():
    assert order(
        t("vip", priority="vip", waited_s=60),
        t("special", priority="special", waited_s=30),
        t("starving", waited_s=1801, max_wait_s=1800),
    ) == ["starving", "special", "vip"]


def test_starvation_guard_is_per_type_and_can_be_off():
    assert order(
        t("vip", priority="vip", waited_s=60),
        t("guard-off", waited_s=99999, max_wait_s=None),
    ) == ["vip", "guard-off"]
    # Exactly at max_wait_s counts as overdue (the guard says "waited past it").
    assert order(
        t("vip2", priority="vip", waited_s=5), t("at-limit", waited_s=600, max_wait_s=600)
    ) == [
        "at-limit",
        "vip2",
    ]


def test_overdue_tickets_keep_their_classes_among_themselves():
    assert order(
        t("old-normal", waited_s=4000),
        t("old-vip", priority="vip", waited_s=2000),
    ) == ["old-vip", "old-normal"]


def test_transferred_to_front_goes_first_keeping_issue_time():
    assert order(
        t("special", priority="special", waited_s=100),
        t("transferred", lane=LANE_FRONT, waited_s=50, queued_waited_s=1),
    ) == ["transferred", "special"]


def test_transferred_to_back_waits_behind_everyone_before_it():
    # Issued long ago but sent to the back a second ago: it queues from the transfer on.
    assert order(
        t("to-back", lane=LANE_NORMAL, waited_s=1000, queued_waited_s=1),
        t("waiting", waited_s=100),
    ) == ["waiting", "to-back"]


def test_transferred_to_one_counter_is_called_only_there():
    sent = t("sent-to-2", target_counter="2", lane=LANE_FRONT)
    assert order(sent, t("normal"), counter="1") == ["normal"]
    assert order(sent, t("normal2"), counter="2") == ["sent-to-2", "normal2"]


def test_requeued_no_show_is_held_back_until_enough_calls():
    held = t("requeued", lane=LANE_HELD, waited_s=5000, queued_waited_s=1, calls_since_requeue=1)
    # Held: behind everyone, even tickets issued later.
    assert order(held, t("x", waited_s=50), requeue_after=2) == ["x", "requeued"]
    # Its grace is used up after `requeue_after` other calls: then it goes to the front.
    due = t("due", lane=LANE_HELD, waited_s=5000, queued_waited_s=1, calls_since_requeue=2)
    assert order(due, t("special", priority="special"), requeue_after=2) == ["due", "special"]
    # requeue_after = 0: straight to the front.
    now_due = t("now-due", lane=LANE_HELD, calls_since_requeue=0)
    assert order(t("y", waited_s=99), now_due, requeue_after=0) == ["now-due", "y"]


def test_a_held_ticket_is_still_called_when_nobody_else_waits():
    assert order(t("alone", lane=LANE_HELD, calls_since_requeue=0)) == ["alone"]


def test_order_is_total_on_identical_times():
    a, b = t("same1"), t("same2")
    key_a = calling_order_key(a, now=NOW, profile=PROFILE, requeue_after=2)
    key_b = calling_order_key(b, now=NOW, profile=PROFILE, requeue_after=2)
    assert key_a != key_b


# -- the SQL orders exactly as the function does --------------------------------------------------

COUNTERS = {"1": (["a", "b"], 7), "2": (["b", "c"], 3), "3": (["c"], 11)}
SERVICE_MAX_WAIT = {"a": 600, "b": None, "c": 1200}


def _serving_calls(service: str) -> int:
    return sum(calls for profile, calls in COUNTERS.values() if service in profile)


ticket_strategy = st.fixed_dictionaries(
    {
        "service": st.sampled_from(["a", "b", "c"]),
        "priority": st.sampled_from(list(Priority)),
        "lane": st.sampled_from([LANE_FRONT, LANE_NORMAL, LANE_NORMAL, LANE_HELD]),
        # Coarse times make ties likely, so the tie-breaks are exercised too.
        "waited": st.integers(min_value=0, max_value=40).map(lambda n: n * 60),
        "queued_later": st.integers(min_value=0, max_value=40).map(lambda n: n * 60),
        "calls_since": st.integers(min_value=0, max_value=4),
        "target": st.sampled_from([None, None, None, "1", "2"]),
    }
)


async def _sql_order(
    url: str, rows: list[dict], counter: str, requeue_after: int
) -> tuple[list, list]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM tickets"))
            await conn.execute(
                text(
                    """
                    INSERT INTO tickets (id, branch, service, issued_service, business_date, seq,
                        number, priority, channel, status, issued_at, lane, queued_at, requeue_base,
                        target_counter)
                    VALUES (:id, 'p', :service, :issued_service, :d, :seq, :number, :priority,
                        'kiosk', 'waiting', :issued_at, :lane, :queued_at, :requeue_base, :target)
                    """
                ),
                [{**row, "d": date(2026, 11, 24)} for row in row_params(rows)],
            )
            profile = COUNTERS[counter][0]
            ordered = await conn.execute(
                text(
                    f"WITH {TYPE_CUTOFFS_CTE} SELECT t.id FROM tickets t {TYPE_CUTOFFS_JOIN}"
                    " WHERE t.branch = :branch AND t.status = 'waiting'"
                    " AND t.service = ANY(CAST(:profile AS text[]))"
                    " AND (t.target_counter IS NULL OR t.target_counter = :counter)"
                    f" ORDER BY {CALLING_ORDER_SQL}"
                ),
                {
                    "branch": "p",
                    "profile": profile,
                    "counter": counter,
                    "now": NOW,
                    "requeue_after": requeue_after,
                },
            )
            by_order_by = [r[0] for r in ordered]
            # And the claiming statement takes them in the same order, one by one.
            picked = []
            while True:
                claimed = (
                    await conn.execute(
                        PICK_NEXT_SQL,
                        {
                            "branch": "p",
                            "counter": counter,
                            "staff": None,
                            "profile": profile,
                            "now": NOW,
                            "requeue_after": requeue_after,
                        },
                    )
                ).first()
                if claimed is None:
                    break
                picked.append(claimed.id)
            return by_order_by, picked
    finally:
        await engine.dispose()


def row_params(rows: list[dict]) -> list[dict]:
    params = []
    for i, row in enumerate(rows):
        issued = NOW - timedelta(seconds=row["waited"])
        params.append(
            {
                "id": row["id"],
                "service": row["service"],
                # Shared by pairs, so the id tie-break is exercised too; the made-up issued_service
                # keeps the daily numbers unique.
                "seq": i // 2 + 1,
                "issued_service": f"i{i}",
                "number": f"X{i:03d}",
                "priority": row["priority"],
                "issued_at": issued,
                "lane": row["lane"],
                "queued_at": issued + timedelta(seconds=min(row["queued_later"], row["waited"])),
                "requeue_base": _serving_calls(row["service"]) - row["calls_since"]
                if row["lane"] == LANE_HELD
                else None,
                "target": row["target"],
            }
        )
    return params


async def _prepare(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO branches (code, name, timezone, created_at, updated_at)"
                    " VALUES ('p', 'P', 'UTC', :now, :now)"
                ),
                {"now": NOW},
            )
            for code, max_wait in SERVICE_MAX_WAIT.items():
                await conn.execute(
                    text(
                        """
                        INSERT INTO services (branch, code, name, prefix, max_wait_s, created_at,
                            updated_at)
                        VALUES ('p', :code, :code, upper(:code), :max_wait, :now, :now)
                        """
                    ),
                    {"code": code, "max_wait": max_wait, "now": NOW},
                )
            for code, (profile, calls) in COUNTERS.items():
                await conn.execute(
                    text(
                        """
                        INSERT INTO counters (branch, code, name, services, state, state_since,
                            calls, created_at, updated_at)
                        VALUES ('p', :code, :code, :profile, 'open', :now, :calls, :now, :now)
                        """
                    ),
                    {"code": code, "profile": profile, "calls": calls, "now": NOW},
                )
    finally:
        await engine.dispose()


def test_sql_calling_order_matches_the_rule(database_url):
    asyncio.run(_prepare(database_url))

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        rows=st.lists(ticket_strategy, min_size=1, max_size=12),
        counter=st.sampled_from(["1", "2", "3"]),
        requeue_after=st.integers(min_value=0, max_value=3),
    )
    def check(rows, counter, requeue_after):
        for row in rows:
            row["id"] = uuid.uuid4()
        params = {p["id"]: p for p in row_params(rows)}
        profile = COUNTERS[counter][0]
        queued = [
            QueuedTicket(
                id=row["id"],
                service=row["service"],
                priority=row["priority"],
                lane=row["lane"],
                issued_at=params[row["id"]]["issued_at"],
                queued_at=params[row["id"]]["queued_at"],
                max_wait_s=SERVICE_MAX_WAIT[row["service"]],
                seq=params[row["id"]]["seq"],
                target_counter=row["target"],
                calls_since_requeue=row["calls_since"],
            )
            for row in rows
        ]
        expected = [
            q.id
            for q in sorted(
                (q for q in queued if q.service in profile and q.target_counter in (None, counter)),
                key=lambda q: calling_order_key(
                    q, now=NOW, profile=profile, requeue_after=requeue_after
                ),
            )
        ]
        by_order_by, picked = asyncio.run(_sql_order(database_url, rows, counter, requeue_after))
        assert by_order_by == expected
        assert picked == expected

    check()

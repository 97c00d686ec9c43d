"""`next` in one statement (app/counters/next_statement.py): the events it builds in SQL are
the ones the Python models build, it refuses as the step-by-step action did and writes nothing
then, it notices a stale configuration, and it reads the hall and tells near tickets in two
more statements only when its call brought any near (counted with a listener on the
engine)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.auth.permissions import Principal, Role
from app.core.database import execute_alone
from app.core.migrations import alembic_config
from app.core.partitions import live_week
from app.counters.announcement import announcement, announcement_sql, call_pattern, with_audio
from app.counters.models import Counter
from app.counters.next_call import _call_config, _params
from app.counters.next_statement import counter_view_sql, next_sql, seconds_sql
from app.counters.service import counter_out
from app.events.catalog import (
    CallAnnouncement,
    CounterChanged,
    CounterRef,
    EventData,
    TicketCalled,
    TicketCompleted,
    encode_data,
    parse_data,
)
from app.queue.near import untold
from app.queue.near_after_commit import NEAR_TELL_SQL, near_read_sql
from app.queue.service import hall_params, hall_sql
from app.tickets.models import Ticket
from app.tickets.service import get_ticket, ticket_ref
from tests.conftest import T0
from tests.helpers import (
    ADMIN,
    SERVICES,
    assert_problem,
    issue,
    make_token,
    ok,
    setup_branch,
    stream_events,
)

B = "/api/v1/branches/hz01"
STAFF = {"s1": {"name": "王芳", "role": "clerk"}, "s2": {"name": "李强", "role": "clerk"}}


@contextlib.contextmanager
def statements(app: Any) -> Iterator[list[str]]:
    """The SQL of every statement the app sends while the block runs."""
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


NAMES = {
    next_sql(live_week(T0)): "next",
    next_sql(None): "next-all-weeks",
    hall_sql(live_week(T0)): "hall",
    near_read_sql(live_week(T0)): "near-read",
    NEAR_TELL_SQL: "tell",
}


def named(app: Any, sent: list[str]) -> list[str]:
    """Which of hallq's statements were sent, by name (others by their first words)."""
    dialect = app.state.engine.dialect
    known = {str(sql.compile(dialect=dialect)): name for sql, name in NAMES.items()}
    return [known.get(s, " ".join(s.split()[:3])) for s in sent]


async def next_at(client, counter: str = "1", headers=ADMIN, status: int = 200):
    response = await client.post(f"{B}/counters/{counter}/next", headers=headers)
    if status >= 400:
        return assert_problem(response, status)
    return await ok(response, status)


async def db(app: Any, sql: str, **params: Any) -> list[Any]:
    async with app.state.sessionmaker() as session, session.begin():
        result = await session.execute(text(sql), params)
        return list(result.all()) if result.returns_rows else []


async def ticket_row(app: Any, number: str) -> Ticket:
    async with app.state.sessionmaker() as session:
        ticket = (
            await session.execute(text("SELECT * FROM tickets WHERE number = :n"), {"n": number})
        ).one()
        return Ticket(**ticket._mapping)


def same_data(stored: dict[str, Any], expected: EventData) -> None:
    """What the statement stored is what the model encodes, value for value."""
    assert stored == json.loads(encode_data(expected))
    assert parse_data(expected.type, stored).model_dump() == expected.model_dump()


# -- the event data: SQL against the Python models ----------------------------------------------

AWKWARD = [
    # (counter name, zh template, en template, announcement mode)
    ("3", None, None, "auto"),
    ("VIP室", "请{number}号到{place}办理", "Number {number} to {counter}", "server"),
    ('窗口"3"\\', "{{请}}{number}号：到「{counter}」", 'It\'s {number}, {place} \\ "now"', "auto"),
    ("A\tB {x}", "{number}{number}\n{place}", "{place}: {number}", "browser"),
]


@pytest.mark.parametrize(("name", "zh", "en", "mode"), AWKWARD)
async def test_the_events_are_what_the_models_build(app, client, clock, name, zh, en, mode):
    announcement_body = {"mode": mode, "rate": 1.25, **({"zh": zh} if zh else {})}
    if en:
        announcement_body["en"] = en
    await setup_branch(client, branch={"announcement": announcement_body})
    body = {"name": name, "services": ["a", "b"]}
    await ok(await client.put(f"{B}/counters/1", json=body, headers=ADMIN))
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    await issue(client)
    await issue(client, priority="vip")
    clock.advance(12.3456)
    first = await next_at(client)
    clock.advance(0.5)
    await ok(await client.post(f"{B}/counters/1/start", headers=ADMIN))
    clock.advance(61.0004)
    second = await next_at(client)
    assert [first["ticket"]["number"], second["ticket"]["number"]] == ["A002", "A001"]

    events = await stream_events(app)
    done, called, changed = events[-3:]
    assert [done["type"], called["type"], changed["type"]] == [
        "ticket.completed",
        "ticket.called",
        "counter.changed",
    ]
    assert called["seq"] == done["seq"] + 1 == changed["seq"] - 1
    a001, a002 = await ticket_row(app, "A001"), await ticket_row(app, "A002")
    counter = CounterRef(code="1", name=name)
    same_data(
        done["data"],
        TicketCompleted(ticket=ticket_ref(a002), counter=counter, service_s=round(61.0004, 3)),
    )
    words = announcement("A001", name, zh_template=zh, en_template=en)
    if mode != "browser":
        words = with_audio(words, branch="hz01", number="A001", counter="1", rate=1.25)
    wait_s = round((clock.now() - a001.issued_at).total_seconds(), 3)
    same_data(
        called["data"],
        TicketCalled(ticket=ticket_ref(a001), counter=counter, announcement=words, wait_s=wait_s),
    )
    async with app.state.sessionmaker() as session:
        counter_row = await session.get(Counter, ("hz01", "1"))
        same_data(changed["data"], CounterChanged(counter=counter_out(counter_row, a001)))
    # The answer shows the counter as the event does.
    assert second["counter"] == changed["data"]["counter"]
    # The audio path is the one the announcements route serves (no redirect to another version).
    if mode != "browser":
        audio = called["data"]["announcement"]["audio"]
        response = await client.get(audio, headers=ADMIN)
        assert response.status_code == 200, response.status_code


async def test_the_words_are_filled_in_sql_as_python_renders_them(app, client):
    """The announcement fragment alone, for names and templates that need escaping in JSON."""
    await setup_branch(client)
    cases = [
        ('"quoted" \\ back', "{number}：{{}}到{place}", "{place}!{number}", 1.0),
        ("窗口\n二", "请{number}号", "{counter} {number} {counter}", 0.5),
        ("\u2028\x01", "{place}{number}{place}", "x{number}", 2.0),
        ("\ue000\ue001", "\ue002{number}\ue003", "{number}\ue000", 1.0),
    ]
    for name, zh, en, rate in cases:
        pattern = call_pattern(
            branch="hz01", counter="c1", counter_name=name, zh_template=zh, en_template=en,
            audio=True, rate=rate,
        )  # fmt: skip
        rows = await db(
            app,
            f"SELECT CAST({announcement_sql(':number')} AS text)",
            number="B1234",
            zh_words=pattern.zh,
            en_words=pattern.en,
            audio_path=pattern.audio_path,
            audio_material=pattern.audio_material,
            number_mark=pattern.number_mark,
            version_mark=pattern.version_mark,
        )
        assert pattern.number_mark not in name + zh + en
        words = announcement("B1234", name, zh_template=zh, en_template=en)
        expected = with_audio(words, branch="hz01", number="B1234", counter="c1", rate=rate)
        assert CallAnnouncement.model_validate_json(rows[0][0]) == expected


# -- templates and names the statement must fill in: one path for every branch ----------------


@pytest.mark.parametrize(
    "template",
    ["请{number}号（{number:*>6}）到{place}", "{number} {number[0]} {place}", "{number} {place!r}"],
)
async def test_a_template_that_formats_the_number_is_refused(client, template):
    """`next` fills in a plain {number} in SQL; a format spec, index or conversion is a 422
    that says which placeholders are allowed."""
    body = {"name": "x", "timezone": "UTC", "announcement": {"zh": template}}
    problem = assert_problem(await client.put(B, json=body, headers=ADMIN), 422)
    (error,) = [e for e in problem["errors"] if e["loc"][:3] == ["body", "announcement", "zh"]]
    assert "only {number}, {counter} and {place}" in error["msg"], error
    assert "no format spec" in error["msg"], error


async def test_marks_in_the_name_or_template_are_filled_in_one_statement(app, client):
    """The private-use characters that mark the open number are chosen among those the words
    do not hold: a counter or template holding the first choices is still one statement."""
    zh = "\ue000请{number}号到{place}\ue001"
    await setup_branch(client, branch={"announcement": {"zh": zh, "mode": "server"}})
    name = "窗\ue000\ue001\ue002"
    body = {"name": name, "services": ["a", "b"]}
    await ok(await client.put(f"{B}/counters/1", json=body, headers=ADMIN))
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    await issue(client)
    with statements(app) as sent:
        await next_at(client)
    names = named(app, sent)  # the configuration's read, a cache miss, and `next`
    assert names.count("next") == 1 and all(n.startswith("SELECT") for n in names[:-1]), names
    called = [e for e in await stream_events(app) if e["type"] == "ticket.called"][-1]
    words = announcement("A001", name, zh_template=zh)
    expected = with_audio(words, branch="hz01", number="A001", counter="1", rate=1.0)
    assert CallAnnouncement.model_validate(called["data"]["announcement"]) == expected


def test_the_migration_writes_stored_templates_plainly(pg):
    """Migration 0020: templates stored before the refusal lose their format specs."""
    name = "hallq_plain_templates"
    url = pg.create_database(name)
    try:
        config = alembic_config(url)
        before = ScriptDirectory.from_config(config).get_revision("0020").down_revision
        command.upgrade(config, str(before))
        stored = [
            ("b1", "请{number}号（{number:*>6}）到{place}", "{{No.}} {number[0]} {place!r}"),
            ("b2", "请{number}号到{place}", None),
        ]
        stored_templates(url, stored)
        command.upgrade(config, "0020")
        rows = stored_templates(url, [])
        assert rows == [
            ("b1", "请{number}号（{number}）到{place}", "{{No.}} {number} {place}"),
            ("b2", "请{number}号到{place}", None),
        ]
    finally:
        pg.drop_database(name)


def stored_templates(url: str, branches: Sequence[tuple[str, str | None, str | None]]) -> list[Any]:
    """Insert `branches` (code, zh, en) with what a branch row needs; every branch's templates."""

    async def run() -> list[Any]:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                for code, zh, en in branches:
                    await conn.execute(
                        text(
                            "INSERT INTO branches (code, name, timezone, announcement_zh,"
                            " announcement_en, created_at, updated_at)"
                            " VALUES (:code, :code, 'UTC', :zh, :en, now(), now())"
                        ),
                        {"code": code, "zh": zh, "en": en},
                    )
                result = await conn.execute(
                    text("SELECT code, announcement_zh, announcement_en FROM branches ORDER BY 1")
                )
                return [tuple(row) for row in result]
        finally:
            await engine.dispose()

    return asyncio.run(run())


async def test_seconds_are_written_as_python_writes_them(app, client):
    micros = [0, 1, 499, 12_000_000, 12_345_600, 61_000_400, 3_599_999_999, 86_400_000_100]
    for n in micros:
        interval = "CAST(:s AS bigint) * interval '1 microsecond'"
        rows = await db(app, f"SELECT CAST(to_jsonb({seconds_sql(interval)}) AS text)", s=n)
        python = json.dumps(round(timedelta(microseconds=n).total_seconds(), 3))
        assert rows[0][0] == python, n


async def test_the_counter_view_in_sql_is_counter_out_in_every_state(app, client):
    await setup_branch(client, staff=STAFF)
    clerk = await make_token(client, "clerk", "hz01", "s1")
    await issue(client)
    await issue(client)
    # 1: open with a called ticket, then closing; 2: paused, no clerk's current; 9: closed.
    await ok(await client.post(f"{B}/counters/1/open", headers=clerk))
    await next_at(client, "1", clerk)
    await ok(await client.post(f"{B}/counters/2/open", headers=ADMIN))
    await ok(await client.post(f"{B}/counters/2/pause", headers=ADMIN))
    views: dict[str, dict[str, Any]] = {}
    for step in ("open", "serving", "closing"):
        if step == "serving":
            await ok(await client.post(f"{B}/counters/1/start", headers=clerk))
        if step == "closing":
            await ok(await client.post(f"{B}/counters/1/close", headers=clerk))
        sql = counter_view_sql("c", "(SELECT * FROM tickets t WHERE t.id = c.current_ticket_id)")
        rows = await db(app, f"SELECT c.code, CAST({sql} AS text) FROM counters c")
        async with app.state.sessionmaker() as session:
            for code, view in rows:
                counter = await session.get(Counter, ("hz01", code))
                current = (
                    await get_ticket(session, counter.current_ticket_id)
                    if counter.current_ticket_id
                    else None
                )
                expected = counter_out(counter, current)
                assert json.loads(view) == json.loads(expected.model_dump_json()), (step, code)
                views[f"{step}/{code}"] = json.loads(view)
    states = {(v["state"], (v["current"] or {}).get("status")) for v in views.values()}
    assert states >= {("open", "called"), ("open", "serving"), ("closing", "serving"),
                      ("paused", None), ("closed", None)}  # fmt: skip


# -- refusals: the right problem, and nothing written -------------------------------------------


async def written(app: Any) -> tuple[Any, ...]:
    rows = await db(
        app,
        "SELECT (SELECT event_seq FROM branches WHERE code = 'hz01'),"
        " (SELECT count(*) FROM tickets WHERE status = 'waiting'),"
        " (SELECT array_agg(calls ORDER BY code) FROM counters)",
    )
    return tuple(rows[0])


async def test_refusals_write_nothing(app, client):
    await setup_branch(client, staff=STAFF)
    s1 = await make_token(client, "clerk", "hz01", "s1")
    s2 = await make_token(client, "clerk", "hz01", "s2")
    await issue(client)
    await ok(await client.post(f"{B}/counters/1/open", headers=s1))
    await ok(await client.post(f"{B}/counters/2/open", headers=ADMIN))
    await ok(await client.post(f"{B}/counters/2/pause", headers=ADMIN))
    before = await written(app)
    await next_at(client, "1", s2, status=403)  # another clerk's counter
    await next_at(client, "9", s1, status=403)  # a closed counter, not signed in there
    assert (await next_at(client, "9", status=409))["counter_state"] == "closed"
    assert (await next_at(client, "2", status=409))["counter_state"] == "paused"
    await next_at(client, "7", status=404)
    missing = await client.post("/api/v1/branches/nope/counters/1/next", headers=ADMIN)
    assert_problem(missing, 404, contains="branch nope")
    await ok(await client.post(f"{B}/counters/1/close", headers=s1))
    await ok(await client.post(f"{B}/counters/1/open", headers=s2))
    await ok(await client.post(f"{B}/counters/1/pause", headers=s2))
    before = await written(app)
    await next_at(client, "1", s2, status=409)
    assert await written(app) == before
    # The clerk signed in there calls.
    await ok(await client.post(f"{B}/counters/1/resume", headers=s2))
    assert (await next_at(client, "1", s2))["ticket"]["number"] == "A001"


async def test_closing_is_refused_with_the_state(app, client):
    await setup_branch(client)
    await issue(client)
    await issue(client)
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    await next_at(client)
    await ok(await client.post(f"{B}/counters/1/close", headers=ADMIN))
    before = await written(app)
    body = await next_at(client, status=409)
    assert body["counter_state"] == "closing"
    assert await written(app) == before


# -- a stale configuration ------------------------------------------------------------------


async def test_a_renamed_counter_is_noticed_and_the_call_made_once(app, client):
    await setup_branch(client)
    for _ in range(3):
        await issue(client)
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    await next_at(client)  # the configuration is cached now
    # Renamed behind the process's back (counters are not announced to the cache).
    await db(app, "UPDATE counters SET name = '七号窗' WHERE code = '1'")
    with statements(app) as sent:
        answer = await next_at(client)
    assert named(app, sent).count("next") == 2  # the first wrote nothing: it saw the stale name
    assert answer["counter"]["name"] == "七号窗"
    called = [e for e in await stream_events(app) if e["type"] == "ticket.called"]
    assert called[-1]["data"]["counter"]["name"] == "七号窗"
    assert called[-1]["data"]["announcement"]["zh"] == "请A002号到七号窗办理"
    assert len(called) == 2  # one call per press
    # The cache holds the new name: the next press is one statement again.
    with statements(app) as sent:
        await next_at(client)
    assert named(app, sent).count("next") == 1


async def test_a_changed_profile_is_noticed(app, client):
    await setup_branch(client)
    await issue(client, service="a")
    await issue(client, service="v")
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    await next_at(client)
    await db(app, "UPDATE counters SET services = ARRAY['v'] WHERE code = '1'")
    answer = await next_at(client)
    assert answer["ticket"]["number"] == "V001"
    assert answer["counter"]["services"] == ["v"]


# -- near: one statement when the call brings nobody near, three when it does --------------------


async def near_told(app: Any) -> list[dict[str, Any]]:
    return [e for e in await stream_events(app) if e["type"] == "ticket.near"]


async def test_one_statement_when_the_call_brings_nobody_near(app, client):
    await setup_branch(client)
    for _ in range(4):
        await issue(client)  # all four near at issue
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    await next_at(client)  # the configuration is cached now
    with statements(app) as sent:
        answer = await next_at(client)
    assert answer["ticket"]["number"] == "A002"
    assert named(app, sent) == ["next"]
    # Nobody waiting: one statement too, and a 204.
    for _ in range(2):
        await next_at(client)
    with statements(app) as sent:
        await next_at(client, status=204)
    assert named(app, sent) == ["next"]


async def test_three_statements_when_the_call_brings_a_ticket_near(app, client, clock):
    """Counter 1 serves a, then b; counter 2 b, then a. B002 is re-queued and held back until
    one more call: counter 1's call of A001 releases it to the front lane, and the estimate
    told to A005 (near by that call) counts it there (a b customer takes 1,000 s), as the
    ticket's own view does."""
    await setup_branch(client, branch={"requeue_after": 1})
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    await ok(await client.post(f"{B}/counters/2/open", headers=ADMIN))
    await next_at(client, "1", status=204)  # counter 1's configuration is cached now
    await issue(client, service="b")
    b002 = await issue(client, service="b")
    for _ in range(6):
        await issue(client)
    await next_at(client, "2")  # B001
    clock.advance(1000)
    with statements(app) as sent:
        assert (await next_at(client, "2"))["ticket"]["number"] == "B002"
    assert named(app, sent)[-1] == "next"  # nobody new near (after the configuration's read)
    clock.advance(20)
    await ok(await client.post(f"{B}/counters/2/no-show", headers=ADMIN))
    await ok(await client.post(f"/api/v1/tickets/{b002['id']}/requeue", headers=ADMIN))
    clock.advance(45)
    with statements(app) as sent:
        assert (await next_at(client, "1"))["ticket"]["number"] == "A001"
    assert named(app, sent) == ["next", "hall", "tell"]
    await assert_told_as_viewed(app, client, "A005")
    clock.advance(80)
    with statements(app) as sent:
        assert (await next_at(client, "1"))["ticket"]["number"] == "B002"  # released: first
    assert named(app, sent) == ["next"]
    clock.advance(75)
    with statements(app) as sent:
        assert (await next_at(client, "1"))["ticket"]["number"] == "A002"  # B002 completed
    assert named(app, sent) == ["next", "hall", "tell"]
    await assert_told_as_viewed(app, client, "A006")
    told = [e["data"]["ticket"]["number"] for e in await near_told(app)]
    assert told == ["B001", "B002", "A001", "A002", "A003", "A004", "A005", "A006"]


async def assert_told_as_viewed(app: Any, client: Any, number: str) -> None:
    """The last `ticket.near` told `number` what its own view says now."""
    told = (await near_told(app))[-1]["data"]
    assert told["ticket"]["number"] == number
    view = await ok(await client.get(f"/api/v1/tickets/{told['ticket']['id']}", headers=ADMIN))
    assert told["waiting_ahead"] == view["waiting_ahead"] == 3
    assert told["estimated_wait_s"] == view["estimated_wait_s"]


async def test_the_estimate_counts_the_call_and_the_completed_ticket(app, client, clock):
    """Every call here brings one ticket near; each near estimate is the ticket's own view."""
    await setup_branch(client)
    for i in range(12):
        await issue(client, service="ab"[i % 2])
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    await ok(await client.post(f"{B}/counters/2/open", headers=ADMIN))
    for round_ in range(5):
        for counter in ("1", "2"):
            clock.advance(37 + 11 * round_)
            with statements(app) as sent:
                await next_at(client, counter)
            told = (await near_told(app))[-1]
            if named(app, sent) == ["next", "hall", "tell"]:
                view = await ok(
                    await client.get(
                        f"/api/v1/tickets/{told['data']['ticket']['id']}", headers=ADMIN
                    )
                )
                assert told["data"]["estimated_wait_s"] == view["estimated_wait_s"]
                assert told["data"]["waiting_ahead"] == view["waiting_ahead"]


async def blocked(conn: asyncpg.Connection) -> bool:
    rows = await conn.fetch(
        "SELECT 1 FROM pg_stat_activity WHERE application_name = 'hallq'"
        " AND wait_event_type = 'Lock' AND datname = current_database()"
    )
    return bool(rows)


async def test_a_change_committed_during_the_call_is_read_again(app, client, pg, database_url):
    """The statement's snapshot misses a change that commits while it waits for the branch row
    (here a cancel of A002): it then reads the front again after its commit, and tells both
    tickets that the cancel and the call brought near (from its snapshot it would see one)."""
    await setup_branch(client)
    for _ in range(8):
        await issue(client)
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    await next_at(client)  # A001 called; A005 told
    conn = await asyncpg.connect(pg.dsn(database_url.rsplit("/", 1)[1]))
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("UPDATE branches SET event_seq = event_seq + 1 WHERE code = 'hz01'")
        await conn.execute("UPDATE tickets SET status = 'cancelled' WHERE number = 'A002'")
        with statements(app) as sent:
            pending = asyncio.create_task(next_at(client))
            async with asyncio.timeout(20):
                while not await blocked(conn):
                    await asyncio.sleep(0.02)
            await tx.commit()
            answer = await pending
    finally:
        await conn.close()
    assert answer["ticket"]["number"] == "A003"
    assert named(app, sent) == ["next", "near-read", "tell"]
    told = [e["data"]["ticket"]["number"] for e in await near_told(app)]
    assert told == ["A001", "A002", "A003", "A004", "A005", "A006", "A007"]


# -- the front the statement reads is the front a read after the call finds ----------------------

MANAGER_PRINCIPAL = Principal(Role.ADMIN, "test-admin")


async def next_by_statement(app: Any, settings: Any, clock: Any, counter: str) -> str | None:
    """`next` at `counter` by `next_sql` itself, every ticket untold first so that it reads the
    front of its types: the untold front it read over the tables as its call leaves them must
    be the one `near_read_sql` reads after its commit. The called number."""
    await db(app, "UPDATE tickets SET near_notified_at = NULL")
    now = clock.now()
    async with app.state.sessionmaker() as session:
        config = await _call_config(session, "hz01", counter)
        pattern = config.pattern("hz01", counter)
        params = _params("hz01", counter, MANAGER_PRINCIPAL, now, config, pattern)
        statement = next_sql(live_week(now))
        row = (await execute_alone(session, statement, params, settings))[0]
        read = {**hall_params("hz01", now, settings), "services": sorted(config.profile)}
        after = (await execute_alone(session, near_read_sql(live_week(now)), read, settings))[0]
        await session.commit()
    assert row.fresh, "nothing else ran"
    if row.number is not None:
        assert row.untold is not None, "every waiting ticket of its types is untold"
        assert untold(row.untold) == untold(after.untold)
    return str(row.number) if row.number is not None else None


async def test_the_front_read_in_the_statement_is_the_front_after_the_call(
    app, client, clock, settings
):
    """Transfers (to the front, to a counter), held and released re-queued tickets, overdue
    tickets, priorities, paused and closed counters: at every call the front of the queue read
    over the tables as the call leaves them (places, lanes, overdue flags) equals a read after
    its commit."""
    services = {**SERVICES, "a": {**SERVICES["a"], "max_wait_s": 300}}
    await setup_branch(client, branch={"requeue_after": 1, "notify_ahead": 100}, services=services)
    for service, priority in [("a", "normal"), ("b", "normal"), ("a", "vip"), ("b", "normal"),
                              ("a", "normal"), ("v", "vip"), ("b", "vip"), ("a", "normal"),
                              ("a", "special"), ("b", "normal"), ("a", "normal")]:  # fmt: skip
        await issue(client, service=service, priority=priority)
    for code in ("1", "2", "9"):
        await ok(await client.post(f"{B}/counters/{code}/open", headers=ADMIN))
    called = [await next_by_statement(app, settings, clock, "1")]  # first call: no history
    clock.advance(40)
    await ok(await client.post(f"{B}/counters/2/next", headers=ADMIN))
    await ok(await client.post(f"{B}/counters/2/start", headers=ADMIN))
    clock.advance(90)
    await ok(await client.post(f"{B}/counters/2/next", headers=ADMIN))  # completes one b
    await ok(await client.post(f"{B}/counters/2/no-show", headers=ADMIN))
    no_show = (await db(app, "SELECT id FROM tickets WHERE status = 'no_show'"))[0][0]
    await ok(await client.post(f"/api/v1/tickets/{no_show}/requeue", headers=ADMIN))
    clock.advance(30)
    called.append(await next_by_statement(app, settings, clock, "1"))  # releases the held one
    await ok(await client.post(f"{B}/counters/9/next", headers=ADMIN))
    transfer = {"service": "a", "position": "front"}
    await ok(await client.post(f"{B}/counters/9/transfer", json=transfer, headers=ADMIN))
    await ok(await client.post(f"{B}/counters/2/next", headers=ADMIN))
    await ok(await client.post(f"{B}/counters/2/transfer", json={"counter": "1"}, headers=ADMIN))
    await ok(await client.post(f"{B}/counters/9/pause", headers=ADMIN))
    clock.advance(400)  # past type a's guard: its oldest tickets are overdue
    await ok(await client.post(f"{B}/counters/1/start", headers=ADMIN))
    for _ in range(4):
        clock.advance(55)
        called.append(await next_by_statement(app, settings, clock, "1"))  # completes its own
    await ok(await client.post(f"{B}/counters/2/close", headers=ADMIN))
    called.append(await next_by_statement(app, settings, clock, "1"))
    assert None not in called, called

"""The history tables' weekly partitions (docs/partitioning.md): housekeeping makes the weeks
ahead and moves what the default partition caught into them, retention drops whole weeks,
migration 0019 partitions a database that has history and its downgrade keeps it."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from alembic import command
from sqlalchemy import text

from app.auth.permissions import Principal, Role
from app.core.migrations import alembic_config
from app.core.partitions import (
    BRANCH_EVENTS,
    TICKETS,
    WEEK,
    live_from_sql,
    live_week,
    make_partition,
    make_partitions_ahead,
    week_start,
    weeks_to_have,
)
from app.core.settings import Settings
from app.counters.next_call import _call_config, _params
from app.counters.next_statement import next_sql
from app.hall.service import queue_view
from app.queue.near_after_commit import near_read_sql
from app.queue.ordering import PICK_NEXT_SQL
from app.queue.service import hall_params, hall_sql
from app.retention import service as retention
from app.tickets.issuing import _Issue, _issue_config, issue_sql, issue_week
from app.tickets.rate_limit import forget_old_counts_and_claims
from app.tickets.schemas import TicketIn
from tests.helpers import ADMIN, issue, ok, setup_branch

B = "/api/v1/branches/hz01"
MONDAY = date(2026, 1, 5)


async def _sql(app: Any, sql: str, **params: Any) -> Any:
    async with app.state.sessionmaker() as session:
        return (await session.execute(text(sql), params)).all()


async def _where(app: Any, table: str) -> dict[str, int]:
    """Rows of `table` per partition."""
    rows = await _sql(app, f"SELECT tableoid::regclass::text, count(*) FROM {table} GROUP BY 1")
    return dict(rows)


async def _serve_one(client: Any, clock: Any, day: date) -> dict[str, Any]:
    """A ticket issued and served on `day` (09:00 in Shanghai)."""
    clock.set(datetime.combine(day, time(1, 0), UTC))
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    ticket = await ok(await client.post(f"{B}/tickets", json={"service": "a"}, headers=ADMIN), 201)
    await ok(await client.post(f"{B}/counters/1/next", headers=ADMIN))
    await ok(await client.post(f"{B}/counters/1/complete", headers=ADMIN))
    return dict(ticket)


def test_the_weeks_to_have_cover_live_dates_and_two_weeks_ahead():
    # A Tuesday: the live dates reach back into Sunday, the previous week.
    assert weeks_to_have(date(2026, 1, 6)) == [
        date(2025, 12, 29), date(2026, 1, 5), date(2026, 1, 12), date(2026, 1, 19)
    ]  # fmt: skip
    assert weeks_to_have(date(2026, 1, 8))[0] == MONDAY


async def test_housekeeping_moves_the_default_partitions_rows_into_the_week(app, client, clock):
    clock.set(datetime.combine(MONDAY, time(0), UTC))
    await setup_branch(client)
    ticket = await _serve_one(client, clock, MONDAY)
    # The migration made the weeks around the real today: this test's January is not one.
    assert await _where(app, "tickets") == {"tickets_default": 1}
    async with app.state.sessionmaker() as session:
        made = await make_partitions_ahead(session, clock.now())
        assert await make_partitions_ahead(session, clock.now()) == []
    assert "tickets_p20260105" in made and "branch_events_p20260105" in made
    assert await _where(app, "tickets") == {"tickets_p20260105": 1}
    assert set(await _where(app, "branch_events")) == {"branch_events_p20260105"}
    # The moved ticket reads and acts as before.
    got = await ok(await client.get(f"/api/v1/tickets/{ticket['id']}", headers=ADMIN))
    assert got["status"] == "done"
    await ok(await client.post(f"{B}/tickets", json={"service": "a"}, headers=ADMIN), 201)
    called = await ok(await client.post(f"{B}/counters/1/next", headers=ADMIN))
    assert called["ticket"]["number"] == "A002"


async def test_making_a_week_waits_for_a_writer_instead_of_deadlocking_with_it(app, client):
    """A writer updates its branch's row (every event does), then routes a row to the default
    partition. Making a week meanwhile must wait for it, not take the default partition first
    and then wait for `branches`: that cycle is a deadlock, and one of the two fails."""
    await setup_branch(client)
    week = MONDAY + 52 * WEEK  # no partition: its rows go to the default one
    async with app.state.sessionmaker() as writer, app.state.sessionmaker() as maker:
        await writer.execute(text("UPDATE branches SET event_seq = event_seq WHERE code = 'hz01'"))
        making = asyncio.create_task(_make_week(maker, week))
        for _ in range(100):  # until the maker waits for a lock
            waiting = await _sql(
                app,
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()",
            )
            if waiting[0][0]:
                break
            await asyncio.sleep(0.05)
        assert waiting[0][0] == 1, "the maker waits for the writer"
        await writer.execute(text("LOCK TABLE branch_events_default IN ROW EXCLUSIVE MODE"))
        await writer.commit()
        await making
    assert BRANCH_EVENTS.partition(week) in {
        name for (name,) in await _sql(app, "SELECT relname FROM pg_class WHERE relkind = 'r'")
    }


async def _make_week(session: Any, week: date) -> None:
    await make_partition(session, BRANCH_EVENTS, week)
    await session.commit()


async def test_the_live_bound_never_passes_over_a_waiting_ticket(app):
    # Shanghai's business date at 00:30 UTC is already the next UTC date; UTC-12's the one
    # before; the bound is two days before the UTC date.
    rows = await _sql(app, f"SELECT {live_from_sql()}", now=datetime(2026, 1, 5, 0, 30, tzinfo=UTC))
    assert rows == [(date(2026, 1, 3),)]


async def test_retention_drops_whole_weeks_and_deletes_the_rest(app, client, clock):
    clock.set(datetime.combine(MONDAY, time(0), UTC))
    await setup_branch(client)
    async with app.state.sessionmaker() as session:
        await make_partitions_ahead(session, clock.now())
    old = await _serve_one(client, clock, MONDAY)
    await _serve_one(client, clock, MONDAY + timedelta(days=8))  # Tuesday of the next week
    kept = await _serve_one(client, clock, MONDAY + timedelta(days=16))  # the third week
    quoted = await _sql(app, "SELECT ticket_id FROM estimate_quotes")
    assert old["id"] in {str(q.ticket_id) for q in quoted}  # its first call's wait
    # Three days kept before the 22nd: the 19th on. Events go before the 17th.
    now = datetime.combine(MONDAY + timedelta(days=17), time(2), UTC)
    removed = await retention.remove_old_history(app.state.sessionmaker, now, 3)
    assert {"tickets_p20260105", "tickets_p20260112"} <= set(removed.partitions)
    assert "branch_events_p20260105" in removed.partitions
    assert "branch_events_p20260112" not in removed.partitions  # ends after the 17th
    tickets = await _sql(app, "SELECT id FROM tickets")
    assert [str(t.id) for t in tickets] == [kept["id"]]
    quoted = await _sql(app, "SELECT ticket_id FROM estimate_quotes")
    assert {str(q.ticket_id) for q in quoted} <= {kept["id"]}
    # The second week's events went by the batched DELETE, as an unbroken prefix of the log.
    days = await _sql(app, "SELECT DISTINCT CAST(at AS date) FROM branch_events")
    assert days == [(MONDAY + timedelta(days=16),)]


async def test_migration_partitions_a_database_with_history_and_back(
    app, client, clock, database_url
):
    clock.set(datetime.combine(MONDAY, time(0), UTC))
    await setup_branch(client)
    for day in (MONDAY, MONDAY + timedelta(days=8)):
        await _serve_one(client, clock, day)
    before = await _sql(app, "SELECT id, business_date, status FROM tickets ORDER BY id")
    events = await _sql(app, "SELECT branch, seq, at, type FROM branch_events ORDER BY seq")
    await app.state.engine.dispose()
    config = alembic_config(database_url)
    await asyncio.to_thread(command.downgrade, config, "0018")
    assert await _sql(app, "SELECT id, business_date, status FROM tickets ORDER BY id") == before
    relkind = await _sql(
        app, "SELECT CAST(relkind AS text) FROM pg_class WHERE relname = 'tickets'"
    )
    assert relkind == [("r",)]
    await app.state.engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await _sql(app, "SELECT id, business_date, status FROM tickets ORDER BY id") == before
    assert await _sql(app, "SELECT branch, seq, at, type FROM branch_events ORDER BY seq") == events
    # A week made for each week that held rows.
    assert set(await _where(app, "tickets")) == {"tickets_p20260105", "tickets_p20260112"}
    await ok(await client.post(f"{B}/tickets", json={"service": "a"}, headers=ADMIN), 201)


async def test_the_calling_order_and_the_hall_read_only_recent_weeks(app):
    now = datetime.combine(MONDAY, time(2), UTC)
    async with app.state.sessionmaker() as session:
        for weeks_back in range(1, 12):  # a quarter of history
            await make_partition(session, TICKETS, MONDAY - weeks_back * WEEK)
        await session.commit()
        params = {
            "branch": "hz01", "now": now, "counter": "1", "profile": ["a"], "requeue_after": 3,
            "staff": None, "ticket_id": None, "n": 20, "rate_window_s": 600,
        }  # fmt: skip
        for statement, reach in ((PICK_NEXT_SQL, 1), (hall_sql(None), 5)):
            plan = "\n".join(
                (await session.execute(text(f"EXPLAIN {statement}"), params)).scalars()
            )
            read = {name for name in re.findall(r"on (tickets_p\d+)", plan)}
            # The live dates' week (and for the hall's history, four weeks before them).
            oldest = week_start(MONDAY - timedelta(days=2)) - (reach - 1) * WEEK
            assert read and min(read) == TICKETS.partition(oldest), (statement, read)


async def test_an_idempotency_key_is_unique_per_business_date(app, client, clock):
    clock.set(datetime.combine(MONDAY, time(1), UTC))
    await setup_branch(client)
    keyed = {**ADMIN, "Idempotency-Key": "kiosk-7-0001"}

    async def issue(replayed: bool) -> Any:
        response = await client.post(f"{B}/tickets", json={"service": "a"}, headers=keyed)
        assert ("idempotent-replayed" in response.headers) == replayed
        return await ok(response, 201)

    first = await issue(replayed=False)
    # A retry the next morning, across midnight: the original ticket, nothing new.
    clock.advance(hours=24)
    assert (await issue(replayed=True))["id"] == first["id"]
    # Two days on, the claim forgotten: the key gets a new ticket, and a retry of that one
    # gets it (two tickets now share the key, on different dates).
    clock.advance(hours=24)
    async with app.state.sessionmaker() as session:
        await forget_old_counts_and_claims(session, clock.now())
    second = await issue(replayed=False)
    assert second["id"] != first["id"] and second["number"] == "A001"
    assert (await issue(replayed=True))["id"] == second["id"]


async def test_a_counters_ticket_of_an_older_week_is_still_found(app, client, clock):
    clock.set(datetime.combine(MONDAY, time(1), UTC))
    await setup_branch(client)
    async with app.state.sessionmaker() as session:
        await make_partitions_ahead(session, clock.now())
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    await ok(await client.post(f"{B}/tickets", json={"service": "a"}, headers=ADMIN), 201)
    called = await ok(await client.post(f"{B}/counters/1/next", headers=ADMIN))
    # Left open for ten days, no close-out: the ticket is older than the live dates now.
    clock.advance(days=10)
    counters = await ok(await client.get(f"{B}/counters", headers=ADMIN))
    assert counters[0]["current"]["id"] == called["ticket"]["id"]
    await ok(await client.post(f"{B}/counters/1/next", headers=ADMIN), 204)  # none waiting
    done = await ok(await client.get(f"/api/v1/tickets/{called['ticket']['id']}", headers=ADMIN))
    assert done["status"] == "done"


async def _a_quarter_and_a_call(app: Any, client: Any, clock: Any) -> None:
    """On MONDAY, a quarter of weeks of both history tables, two tickets issued and the first
    called at counter 1."""
    clock.set(datetime.combine(MONDAY, time(1), UTC))
    await setup_branch(client)
    async with app.state.sessionmaker() as session:
        for weeks_back, table in ((n, t) for n in range(12) for t in (TICKETS, BRANCH_EVENTS)):
            await make_partition(session, table, MONDAY - weeks_back * WEEK)
        await session.commit()
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    for _ in range(2):
        await issue(client)
    await ok(await client.post(f"{B}/counters/1/next", headers=ADMIN))


async def test_next_plans_and_locks_only_the_live_weeks(app, client, clock):
    """hallq's plans are generic: PostgreSQL locks every partition a plan holds on every run,
    whatever it prunes at run time. `next` names the live week as a constant, so its plan holds
    only the weeks from there on, with a quarter of history behind them."""
    await _a_quarter_and_a_call(app, client, clock)  # one to complete
    now = clock.now()
    async with app.state.sessionmaker() as session:
        config = await _call_config(session, "hz01", "1")
        params = _params(
            "hz01", "1", Principal(Role.ADMIN, "t"), now, config, config.pattern("hz01", "1")
        )
        row = (await session.execute(next_sql(live_week(now)), params)).one()
        locks = await session.scalars(
            text("SELECT relation::regclass::text FROM pg_locks WHERE pid = pg_backend_pid()")
        )
        await session.rollback()
    assert row.number == "A002" and row.current_planned
    locked = {name for name in locks if re.fullmatch(r"tickets_p\d{8}", name or "")}
    assert locked and min(locked) == TICKETS.partition(live_week(now)), sorted(locked)


async def _counters_dates(app: Any) -> dict[str, tuple[Any, Any]]:
    """Each counter's current ticket's date as the counter keeps it, and as the ticket has it
    (both None without a current ticket)."""
    rows = await _sql(
        app,
        "SELECT c.code, c.current_business_date, t.business_date FROM counters c"
        " LEFT JOIN tickets t ON t.id = c.current_ticket_id WHERE c.branch = 'hz01'",
    )
    return {code: (kept, actual) for code, kept, actual in rows}


async def test_the_counters_current_date_follows_its_ticket(app, client, clock):
    clock.set(datetime.combine(MONDAY, time(1), UTC))
    await setup_branch(client)

    async def check(**expected: date | None) -> None:
        dates = await _counters_dates(app)
        for code, day in expected.items():
            assert dates[code] == (day, day), (code, dates[code])

    async def act(counter: str, verb: str, body: dict[str, Any] | None = None) -> Any:
        url = f"{B}/counters/{counter}/{verb}"
        return await ok(await client.post(url, json=body, headers=ADMIN))

    day1, day2 = MONDAY, MONDAY + timedelta(days=1)
    for counter in ("1", "2"):
        await act(counter, "open")
    await issue(client)
    await act("1", "next")
    await check(**{"1": day1, "2": None})
    await act("1", "recall")
    await check(**{"1": day1})
    # Left open overnight: the next day's `next` completes yesterday's ticket and calls today's.
    clock.advance(days=1)
    await issue(client)
    await act("1", "next")
    await check(**{"1": day2})
    await act("1", "transfer", {"counter": "2"})
    await check(**{"1": None})
    await act("2", "next")  # the transferred ticket
    await check(**{"2": day2})
    chosen = await issue(client)
    await act("1", "call", {"ticket": chosen["id"]})  # the service desk's call
    await check(**{"1": day2})
    await act("1", "complete")
    await check(**{"1": None, "2": day2})
    await ok(await client.post(f"{B}/day/close", headers=ADMIN))
    await check(**{"1": None, "2": None})


async def test_migration_0022_gives_a_counters_current_ticket_its_date(
    app, client, clock, database_url
):
    clock.set(datetime.combine(MONDAY, time(1), UTC))
    await setup_branch(client)
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    await issue(client)
    await ok(await client.post(f"{B}/counters/1/next", headers=ADMIN))
    await app.state.engine.dispose()
    config = alembic_config(database_url)
    await asyncio.to_thread(command.downgrade, config, "0021")
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await _counters_dates(app) == {
        "1": (MONDAY, MONDAY),
        "2": (None, None),
        "9": (None, None),
    }


async def _locked_weeks(session: Any, tables: Any = (TICKETS, BRANCH_EVENTS)) -> dict[str, date]:
    """The oldest week of each of `tables` locked by the session's transaction."""
    sql = "SELECT relation::regclass::text FROM pg_locks WHERE pid = pg_backend_pid()"
    names = [name for name in await session.scalars(text(sql)) if name is not None]
    weeks: dict[str, date] = {}
    for table in tables:
        locked = [
            table.week_of(name) for name in names if re.fullmatch(rf"{table.name}_p\d{{8}}", name)
        ]
        assert locked, (table.name, names)
        weeks[table.name] = min(week for week in locked if week is not None)
    return weeks


async def test_issuing_the_view_and_the_near_check_lock_only_their_weeks(app, client, clock):
    """As `next` (above): issuing, the queue view and the near check name their oldest weeks as
    constants, so that their generic plans hold, and lock, only those, with a quarter of
    history behind."""
    await _a_quarter_and_a_call(app, client, clock)  # a recent call
    now, live = clock.now(), live_week(clock.now())
    in_transaction = Settings(db_statement_cache_size=0)  # run in a transaction: its locks stay
    async with app.state.sessionmaker() as session:
        config = await _issue_config(session, "hz01", "a")
        business_date = config.schedule.business_date(now)
        ticket = _Issue("hz01", TicketIn(service="a"), config, uuid.uuid4(), business_date, now)
        params = {**ticket.params(Settings()), "idempotency_key": "k", "token_id": None}
        row = (await session.execute(issue_sql(issue_week(now, business_date)), params)).one()
        issuing = await _locked_weeks(session)
        await session.rollback()
        _seq, view = await queue_view(session, "hz01", now, in_transaction)
        viewing = await _locked_weeks(session)
        await session.rollback()
        read = {**hall_params("hz01", now, Settings()), "services": ["a"]}
        await session.execute(near_read_sql(live), read)  # locks what its plan holds
        checking = await _locked_weeks(session, (TICKETS,))
        await session.rollback()
    assert row.number == "A003" and view.counters[0].current is not None and view.recent_calls
    # The live week, and four weeks before it for the hall's history (the wait estimate).
    assert issuing["tickets"] == viewing["tickets"] == checking["tickets"] == live - 4 * WEEK
    assert viewing["branch_events"] == week_start(MONDAY - timedelta(days=3))


async def test_the_queue_view_shows_a_current_ticket_older_than_the_live_weeks(app, client, clock):
    """A counter left open over weeks keeps its ticket: the view reads it over every week."""
    clock.set(datetime.combine(MONDAY, time(1), UTC))
    await setup_branch(client)
    async with app.state.sessionmaker() as session:
        for weeks_back in range(-3, 2):
            await make_partition(session, TICKETS, MONDAY - weeks_back * WEEK)
        await session.commit()
    await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
    await issue(client)
    called = await ok(await client.post(f"{B}/counters/1/next", headers=ADMIN))
    later = clock.now() + 3 * WEEK
    async with app.state.sessionmaker() as session:
        _seq, view = await queue_view(session, "hz01", later, Settings())
        await session.commit()
    current = view.counters[0].current
    assert current is not None and current.number == called["ticket"]["number"]

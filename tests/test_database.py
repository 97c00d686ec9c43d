"""The app's engine on a real database: sessions are let in first come, first served
(app/core/admission.py), a wait too long is the usual 503, and the connection settings reach
PostgreSQL."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import event, exc, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import AsyncAdaptedQueuePool

from app.core.admission import FifoGate, admission_gate
from app.core.database import create_engine, create_sessionmaker
from app.core.settings import Settings
from app.main import create_app
from tests.helpers import ADMIN, assert_problem

Sessions = async_sessionmaker[AsyncSession]


@dataclass
class Db:
    engine: AsyncEngine
    sessions: Sessions

    @property
    def gate(self) -> FifoGate:
        gate = admission_gate(self.engine)
        assert gate is not None
        return gate


def open_db(database_url: str, pool_size: int, max_overflow: int = 0, timeout_s: float = 0.3) -> Db:
    """The app's engine and sessions, with a short pool timeout unless told otherwise."""
    engine = create_engine(
        Settings(
            database_url=database_url,
            db_pool_size=pool_size,
            db_max_overflow=max_overflow,
            db_connect_timeout_s=timeout_s,
        )
    )
    assert isinstance(engine.pool, AsyncAdaptedQueuePool)  # SQLAlchemy's own pool
    return Db(engine, create_sessionmaker(engine))


@pytest.fixture
async def one_place(database_url: str) -> AsyncIterator[Db]:
    """A single connection."""
    db = open_db(database_url, pool_size=1)
    yield db
    await db.engine.dispose()


@pytest.fixture
async def two_places(database_url: str) -> AsyncIterator[Db]:
    """One connection in the pool and one overflow connection."""
    db = open_db(database_url, pool_size=1, max_overflow=1)
    yield db
    await db.engine.dispose()


async def use(sessions: Sessions, name: str = "", order: list[str] | None = None) -> None:
    """Open a session, run a query on its connection, and note `name` in `order`."""
    async with sessions() as session:
        await session.execute(text("SELECT 1"))
        if order is not None:
            order.append(name)


async def turns(engine: AsyncEngine, sessions: Sessions) -> list[str]:
    """`a` holds the connection while `b`, then `c`, ask for one. `d` asks just as `a`'s
    connection goes back into the pool, before `b` has been woken; `a` asks again once it has
    closed. Returns who got the connection, in order."""
    order: list[str] = []
    newcomer: list[asyncio.Task[None]] = []

    def d_asks(*_: object) -> None:
        newcomer.append(asyncio.create_task(use(sessions, "d", order)))

    async with sessions() as a:
        await a.execute(text("SELECT 1"))
        b = asyncio.create_task(use(sessions, "b", order))
        await asyncio.sleep(0.05)
        c = asyncio.create_task(use(sessions, "c", order))
        await asyncio.sleep(0.05)
        event.listen(engine.sync_engine, "checkin", d_asks, once=True)
    await use(sessions, "a", order)
    await asyncio.gather(b, c, *newcomer)
    return order


async def test_a_connection_goes_to_whoever_waited_longest(one_place):
    assert await turns(one_place.engine, one_place.sessions) == ["b", "c", "d", "a"]


async def test_sqlalchemys_own_pool_lets_a_newcomer_go_first(one_place):
    """Why the gate exists: the same turns with sessions that skip it."""
    assert (await turns(one_place.engine, async_sessionmaker(one_place.engine)))[0] == "d"


async def line_up(sessions: Sessions) -> list[str]:
    """Ten ask while the connection is held, five more while the line drains; returns who got
    it, in order."""
    order: list[str] = []
    waiting: list[asyncio.Task[None]] = []

    async def join(name: str) -> None:
        waiting.append(asyncio.create_task(use(sessions, name, order)))
        await asyncio.sleep(0.005)  # in line before the next one asks

    async with sessions() as held:
        await held.execute(text("SELECT 1"))
        for i in range(10):
            await join(f"early-{i}")
    for i in range(5):
        await join(f"late-{i}")
    await asyncio.gather(*waiting)
    return order


async def test_a_long_line_is_served_in_arrival_order(database_url):
    db = open_db(database_url, pool_size=1, timeout_s=10)  # time enough for the last in line
    try:
        expected = [f"early-{i}" for i in range(10)] + [f"late-{i}" for i in range(5)]
        assert await line_up(db.sessions) == expected
    finally:
        await db.engine.dispose()


async def test_a_waiter_times_out_and_nothing_is_lost(one_place):
    async with one_place.sessions() as held:
        await held.execute(text("SELECT 1"))
        with pytest.raises(exc.TimeoutError):  # the pool's own error: the API answers 503
            await use(one_place.sessions)
    async with one_place.sessions() as session:  # the place and the connection are still there
        assert (await session.execute(text("SELECT 2"))).scalar_one() == 2
    assert one_place.gate.available == 1
    assert one_place.engine.pool.checkedout() == 0


async def test_a_cancelled_waiter_passes_the_connection_on(one_place):
    async with one_place.sessions() as held:
        await held.execute(text("SELECT 1"))
        cancelled = asyncio.create_task(use(one_place.sessions))
        after = asyncio.create_task(use(one_place.sessions))
        await asyncio.sleep(0.05)
    # `held` has closed and handed its place to `cancelled`, which has not run yet.
    assert not cancelled.done()
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await asyncio.wait_for(after, 1)  # got the place `cancelled` was handed (else: timeout)
    assert one_place.gate.available == 1
    assert one_place.engine.pool.checkedout() == 0


@pytest.mark.parametrize(
    ("configured", "expected"), [(None, "force_generic_plan"), ("auto", "auto")]
)
async def test_plan_cache_mode_reaches_every_connection(database_url, configured, expected):
    overrides = {} if configured is None else {"db_plan_cache_mode": configured}
    engine = create_engine(Settings(database_url=database_url, db_pool_size=2, **overrides))
    try:
        async with engine.connect() as one, engine.connect() as two:
            for conn in (one, two):
                assert (await conn.execute(text("SHOW plan_cache_mode"))).scalar_one() == expected
    finally:
        await engine.dispose()


async def test_with_overflow_as_many_sessions_run_at_once_as_there_are_connections(two_places):
    """The gate is pool_size + max_overflow wide: the overflow connection is used, a third
    session waits at the gate (not in the pool), and a place handed to a cancelled waiter goes
    on to the next one. Afterwards both places and connections are free again."""
    db = two_places
    order: list[str] = []
    async with db.sessions() as one:
        await one.execute(text("SELECT 1"))
        async with db.sessions() as two:
            await two.execute(text("SELECT 1"))
            assert db.engine.pool.checkedout() == 2
            with pytest.raises(exc.TimeoutError):
                await use(db.sessions)
            cancelled = asyncio.create_task(use(db.sessions, "cancelled", order))
            after = asyncio.create_task(use(db.sessions, "after", order))
            await asyncio.sleep(0.05)
            assert db.gate.available == 0
        # `two` has closed and handed its place to `cancelled`, which has not run yet.
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        await asyncio.wait_for(after, 1)  # beside `one`, on the other connection
        assert order == ["after"]
    assert db.gate.available == 2
    assert db.engine.pool.checkedout() == 0
    async with db.sessions() as one, db.sessions() as two:  # both connections work again
        await one.execute(text("SELECT 1"))
        await two.execute(text("SELECT 1"))
        assert db.engine.pool.checkedout() == 2


async def test_a_request_that_waits_too_long_gets_the_503_problem(settings, clock):
    """The gate's timeout is answered like the pool's always was: 503 problem, Retry-After."""
    one_place = settings.model_copy(update={"db_pool_size": 1, "db_connect_timeout_s": 0.3})
    application = create_app(one_place, clock)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://hallq.test") as client:
            async with application.state.sessionmaker() as held:
                await held.execute(text("SELECT 1"))
                response = await client.get("/api/v1/branches/hz01", headers=ADMIN)
            problem = assert_problem(response, 503)
            assert problem["type"] == "/problems/database-unavailable"
            assert response.headers["retry-after"] == "2"
            # Once the place is free, the same request is answered (404: no such branch).
            assert (await client.get("/api/v1/branches/hz01", headers=ADMIN)).status_code == 404


async def test_the_served_app_is_kept_out_of_full_collections(settings, clock):
    """uvicorn builds the app with `create_app()` and starts it; the end of the start-up freezes
    everything built so far (app/main.py's lifespan): a full collection then skips it."""
    gc.unfreeze()  # an earlier test's app may have frozen this process already
    assert gc.get_freeze_count() == 0
    app = create_app(settings, clock)
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() > 50_000


def test_importing_the_app_module_builds_and_freezes_nothing():
    """`--factory app.main:create_app`: the import has no side effects of its own."""
    check = (
        "import gc, app.main\n"
        "assert gc.get_freeze_count() == 0\n"
        "assert not hasattr(app.main, 'app')\n"
    )
    subprocess.run([sys.executable, "-c", check], check=True, timeout=60)

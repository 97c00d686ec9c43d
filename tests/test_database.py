"""The app's engine on a real database: the pool serves whoever asked first
(app/core/fair_pool.py), and the connection settings reach PostgreSQL."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util.concurrency import greenlet_spawn
from sqlalchemy.util.queue import Full

from app.core.database import create_engine
from app.core.fair_pool import FairAsyncQueuePool, FairQueue
from app.core.settings import Settings
from app.main import create_app


@pytest.fixture
async def one_connection(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The app's engine with a single connection and a short pool timeout."""
    engine = create_engine(
        Settings(database_url=database_url, db_pool_size=1, db_connect_timeout_s=0.3)
    )
    assert isinstance(engine.pool, FairAsyncQueuePool)
    yield engine
    await engine.dispose()


async def turns(engine: AsyncEngine) -> list[str]:
    """`a` holds the connection while `b`, then `c`, ask for it; `a` gives it back and asks
    again at once. Returns who got it, in order."""
    order: list[str] = []

    async def take(name: str) -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            order.append(name)

    a = await engine.connect()
    await a.execute(text("SELECT 1"))
    b = asyncio.create_task(take("b"))
    await asyncio.sleep(0.05)
    c = asyncio.create_task(take("c"))
    await asyncio.sleep(0.05)
    await a.close()
    await take("a")
    await asyncio.gather(b, c)
    return order


async def test_a_connection_goes_to_whoever_waited_longest(one_connection):
    assert await turns(one_connection) == ["b", "c", "a"]


async def test_sqlalchemys_own_pool_lets_a_newcomer_go_first(database_url):
    """Why the fair pool exists: the same turns on the stock asyncio pool."""
    engine = create_async_engine(
        database_url, poolclass=AsyncAdaptedQueuePool, pool_size=1, max_overflow=0
    )
    try:
        assert (await turns(engine))[0] == "a"
    finally:
        await engine.dispose()


async def test_a_waiter_times_out_and_nothing_is_lost(one_connection):
    held = await one_connection.connect()
    await held.execute(text("SELECT 1"))
    with pytest.raises(exc.TimeoutError):
        async with one_connection.connect():
            pass
    await held.close()
    async with one_connection.connect() as conn:  # the connection is still there
        assert (await conn.execute(text("SELECT 2"))).scalar_one() == 2
    assert one_connection.pool.checkedout() == 0


async def test_a_cancelled_waiter_passes_the_connection_on(one_connection):
    held = await one_connection.connect()
    await held.execute(text("SELECT 1"))

    async def wait_for_it() -> None:
        async with one_connection.connect() as conn:
            await conn.execute(text("SELECT 1"))

    cancelled = asyncio.create_task(wait_for_it())
    after = asyncio.create_task(wait_for_it())
    await asyncio.sleep(0.05)
    await held.close()  # handed to `cancelled`, which is cancelled before it runs
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await asyncio.wait_for(after, 1)  # got the connection `cancelled` was handed
    assert one_connection.pool.checkedout() == 0


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


async def test_a_connection_handed_to_a_cancelled_waiter_is_kept_even_when_the_pool_is_full():
    """With overflow: B's overflow connection is handed to a waiter, A's comes back to the
    queue meanwhile (full now), then the waiter is cancelled before it runs. Both connections
    stay in the pool; the next return to a full queue is refused (the pool then closes that
    connection and counts its overflow down)."""
    queue: FairQueue[str] = FairQueue(maxsize=1)
    waiter = asyncio.create_task(greenlet_spawn(queue.get, True, None))
    await asyncio.sleep(0.01)  # the waiter is in line
    queue.put_nowait("B")  # handed to the waiter
    queue.put_nowait("A")  # nobody else waits: into the queue, now full
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert queue.qsize() == 2  # neither was lost
    assert {queue.get_nowait(), queue.get_nowait()} == {"A", "B"}
    queue.put_nowait("A")
    with pytest.raises(Full):
        queue.put_nowait("B")


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

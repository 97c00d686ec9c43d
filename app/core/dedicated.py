"""Connections of their own, outside the pool, for a process's long-lived jobs (the stream's
LISTEN connection, the event notifier): opened with a name that shows in `pg_stat_activity`,
and reopened with backoff when they drop (`keep_connected`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import make_url

RECONNECT_FIRST_S = 0.2
RECONNECT_MAX_S = 5.0


class DedicatedConnector:
    def __init__(self, database_url: str, application_name: str, timeout_s: float) -> None:
        # asyncpg's arguments as SQLAlchemy reads them from the URL, so that a multi-host URL
        # (`?host=a:5432&host=b:5432&target_session_attrs=read-write`) means the same here as
        # for the pool: follow the primary after a failover.
        dialect = PGDialect_asyncpg()  # type: ignore[no-untyped-call]  # unannotated upstream
        _, self._args = dialect.create_connect_args(make_url(database_url))  # type: ignore[no-untyped-call]
        self._args.pop("prepared_statement_cache_size", None)
        self._timeout_s = timeout_s
        self._server_settings = {"application_name": application_name}

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            **self._args, timeout=self._timeout_s, server_settings=self._server_settings
        )


async def keep_connected(
    connector: DedicatedConnector,
    use: Callable[[asyncpg.Connection], Awaitable[None]],
    *,
    log: logging.Logger,
    name: str,
    on_down: Callable[[], None] = lambda: None,
) -> None:
    """Run `use` on a fresh connection, again and again, until cancelled: `use` returns or raises
    when the connection is lost (refused, reset, timed out). Between tries the delay doubles from
    0.2 s to 5 s; a connection that opens starts it over. `on_down` runs whenever the connection
    is gone, cancellation included, which closes it gracefully."""
    delay = RECONNECT_FIRST_S
    while True:
        conn: asyncpg.Connection | None = None
        try:
            conn = await connector.connect()
            delay = RECONNECT_FIRST_S
            await use(conn)
        except asyncio.CancelledError:
            on_down()
            if conn is not None:
                with contextlib.suppress(Exception):  # never hang or fail on a dead connection
                    await conn.close(timeout=2)
            raise
        except Exception as exc:
            log.warning("%s connection lost: %s", name, type(exc).__name__)
        on_down()
        if conn is not None:
            conn.terminate()
        await asyncio.sleep(delay)
        delay = min(delay * 2, RECONNECT_MAX_S)

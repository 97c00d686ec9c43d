"""Connections of their own, outside the pool, for a process's long-lived jobs (the stream's
LISTEN connection, the event notifier): opened with a name that shows in `pg_stat_activity`,
and reopened with backoff when they drop."""

from __future__ import annotations

import contextlib

import asyncpg
from sqlalchemy.engine import make_url

RECONNECT_FIRST_S = 0.2
RECONNECT_MAX_S = 5.0


def next_reconnect_delay(delay: float) -> float:
    return min(delay * 2, RECONNECT_MAX_S)


async def close_gracefully(conn: asyncpg.Connection | None) -> None:
    """On shutdown: say goodbye to the server, but never hang or fail on a dead connection."""
    if conn is not None:
        with contextlib.suppress(Exception):
            await conn.close(timeout=2)


class DedicatedConnector:
    def __init__(self, database_url: str, application_name: str, timeout_s: float) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._timeout_s = timeout_s
        self._server_settings = {"application_name": application_name}

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            self._dsn, timeout=self._timeout_s, server_settings=self._server_settings
        )

"""Real PostgreSQL for tests: one server per test run, a migrated template, cheap clones.

With DATABASE_URL set, tests use that server (its database is only used to create and drop
test databases); otherwise they start the embedded PostgreSQL under .hallq/.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from devtools.embedded_postgres import EmbeddedPostgres

ROOT = Path(__file__).resolve().parents[1]

# Tests need speed, not durability: the server is thrown away after the run.
TEST_SERVER_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


@dataclass
class TestServer:
    """Where test databases are created: `url(db)` gives an asyncpg SQLAlchemy URL."""

    __test__ = False  # not a test class, whatever its name

    base_url: str  # postgresql+asyncpg://.../<maintenance db>
    embedded: EmbeddedPostgres | None = None

    def url(self, database: str) -> str:
        return make_url(self.base_url).set(database=database).render_as_string(hide_password=False)

    def dsn(self, database: str) -> str:
        return self.url(database).replace("postgresql+asyncpg://", "postgresql://", 1)

    async def execute(self, sql: str) -> None:
        conn = await asyncpg.connect(self.dsn(make_url(self.base_url).database or "postgres"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def run(self, sql: str) -> None:
        asyncio.run(self.execute(sql))

    def create_database(self, name: str, template: str | None = None) -> str:
        clause = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
        self.run(f'CREATE DATABASE "{name}"{clause}')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_test_server() -> TestServer:
    external = os.environ.get("DATABASE_URL")
    if external:
        url = external.replace("postgresql://", "postgresql+asyncpg://", 1)
        return TestServer(base_url=url)
    data_dir = ROOT / ".hallq" / f"test-pg-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    pg = EmbeddedPostgres(data_dir, settings=TEST_SERVER_SETTINGS, delete_on_stop=True).start()
    return TestServer(base_url=pg.url("postgres"), embedded=pg)

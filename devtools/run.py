"""`make run` (`python -m devtools.run`): the quick start. Brings its own PostgreSQL unless
DATABASE_URL is set, migrates, seeds a demo branch into an empty database, prints the tokens,
and serves on 127.0.0.1:8000.

Environment: DATABASE_URL, HALLQ_ADMIN_TOKEN (generated and kept in .hallq/ if unset),
HALLQ_HOST (127.0.0.1), HALLQ_PORT (8000), HALLQ_WORKERS (1).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
from datetime import UTC, datetime

import asyncpg

from app.core.database import create_engine, create_sessionmaker
from app.core.migrations import upgrade
from app.core.settings import Settings
from app.metrics.multiproc import prepare_multiprocess_dir, remove_multiprocess_dir
from devtools.demo import DEMO_BRANCH, database_is_empty, seed_demo
from devtools.embedded_postgres import EmbeddedPostgres, terminate_on_signals
from devtools.servers import ROOT, uvicorn_argv

STATE_DIR = ROOT / ".hallq"
DATABASE = "hallq"


def _say(message: str) -> None:
    print(f"hallq: {message}", flush=True)


async def _ensure_database(pg: EmbeddedPostgres) -> None:
    conn = await asyncpg.connect(pg.dsn("postgres"))
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
            await conn.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await conn.close()


def _admin_token() -> str:
    token = os.environ.get("HALLQ_ADMIN_TOKEN")
    if token:
        return token
    path = STATE_DIR / "admin-token"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


async def _seed_if_empty(settings: Settings) -> dict[str, str] | None:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            if not await database_is_empty(session):
                return None
            return await seed_demo(session, datetime.now(UTC))
    finally:
        await engine.dispose()


def _print_tokens(admin_token: str, demo_tokens: dict[str, str], base: str) -> None:
    _say("tokens (keep them secret):")
    print(f"  {'admin':<18} {admin_token}")
    for label, token in demo_tokens.items():
        print(f"  {label.removeprefix('demo '):<18} {token}")
    kiosk = demo_tokens.get("demo kiosk", "<kiosk token>")
    print(
        "\n  try:\n"
        f"    curl -s -X POST {base}/api/v1/branches/{DEMO_BRANCH}/tickets \\\n"
        f"         -H 'Authorization: Bearer {kiosk}' -H 'Content-Type: application/json' \\\n"
        '         -d \'{"service": "a"}\'\n'
        f"    API docs: {base}/docs\n",
        flush=True,
    )
    pages = [
        ("lobby display", f"display/{DEMO_BRANCH}", "demo display"),
        ("kiosk", f"kiosk/{DEMO_BRANCH}", "demo kiosk"),
        ("clerk console", f"counter/{DEMO_BRANCH}/1", "demo clerk s1"),
        ("manager dashboard", f"dashboard/{DEMO_BRANCH}", "demo manager m1"),
    ]
    _say("pages (each keeps its token after the first visit):")
    # The console, with the admin token: set up more branches without a request by hand.
    print(f"  {'console':<18} {base}/admin?token={admin_token}")
    for title, path, label in pages:
        if label in demo_tokens:
            print(f"  {title:<18} {base}/{path}?token={demo_tokens[label]}")
    print(flush=True)


def main() -> int:
    STATE_DIR.mkdir(exist_ok=True)
    pg: EmbeddedPostgres | None = None
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url:
        _say("DATABASE_URL is not set: starting the embedded PostgreSQL (data in .hallq/pg)")
        pg = EmbeddedPostgres(STATE_DIR / "pg").start()
        terminate_on_signals(pg)
        asyncio.run(_ensure_database(pg))
        database_url = pg.url(DATABASE)
    admin_token = _admin_token()
    settings = Settings(database_url=database_url, admin_token=admin_token)

    _say("migrating the database (alembic upgrade head)")
    # The command line's logging: alembic's INFO lines show what the upgrade did.
    upgrade(settings.database_url, configure_logger=True)

    tokens_file = STATE_DIR / "demo-tokens.json"
    seeded = asyncio.run(_seed_if_empty(settings))
    if seeded is not None:
        tokens_file.write_text(json.dumps(seeded, indent=2, ensure_ascii=False))
        tokens_file.chmod(0o600)
        _say(f"created the demo branch '{DEMO_BRANCH}'")
    demo_tokens = json.loads(tokens_file.read_text()) if tokens_file.exists() else {}

    host = os.environ.get("HALLQ_HOST", "127.0.0.1")
    port = os.environ.get("HALLQ_PORT", "8000")
    workers = os.environ.get("HALLQ_WORKERS", "1")
    base = f"http://{host}:{port}"
    _print_tokens(admin_token, demo_tokens, base)

    env = dict(os.environ, DATABASE_URL=settings.database_url, HALLQ_ADMIN_TOKEN=admin_token)
    # Several workers share their HTTP request metrics through files (docs/metrics.md).
    metrics_dir = prepare_multiprocess_dir(env, int(workers) if workers.isdigit() else 1)
    argv = uvicorn_argv(host, port, workers, graceful_s=10)
    _say(f"serving on {base} (Ctrl-C stops the service and its database)")
    server = subprocess.Popen(argv, env=env, cwd=ROOT)
    try:
        return server.wait()
    except KeyboardInterrupt:
        server.send_signal(signal.SIGINT)
        return server.wait()
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=15)
        remove_multiprocess_dir(metrics_dir)
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    sys.exit(main())

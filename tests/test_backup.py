"""The backup runbook of docs/operations.md, against real PostgreSQL: `pg_dump` of a hall
that keeps issuing while it runs, `pg_restore` into a fresh server, hallq started on the copy.
Numbering continues with no number twice, the event log's seqs continue, and the reports of
past days are those of the original."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from app.core.clock import ManualClock
from app.core.settings import Settings
from app.main import create_app
from devtools.embedded_postgres import EmbeddedPostgres, postgres_bin_dir
from tests.db import ROOT, TEST_SERVER_SETTINGS
from tests.helpers import ADMIN, ADMIN_TOKEN, ok, setup_branch

B = "/api/v1/branches/hz01"
PAST = [date(2026, 3, 2) + timedelta(days=n) for n in range(3)]
TODAY = PAST[-1] + timedelta(days=1)


@contextlib.asynccontextmanager
async def _hallq(database_url: str, clock: ManualClock) -> Any:
    """A client on hallq, and the app. Its quote writer writes only when flushed (and when the
    app stops), so that the reports compared read the same quotes (app/accuracy/writer.py)."""
    settings = Settings(
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        alerts_interval_s=0,
        estimate_quote_flush_s=0,
    )
    app = create_app(settings, clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hallq.test") as c:
            yield c, app


async def _issue(client: httpx.AsyncClient) -> str:
    issued = await ok(await client.post(f"{B}/tickets", json={"service": "a"}, headers=ADMIN), 201)
    number: str = issued["number"]
    return number


async def _past_days(client: httpx.AsyncClient, clock: ManualClock) -> None:
    for day in PAST:
        clock.set(datetime.combine(day, time(1, 0), UTC))
        await ok(await client.post(f"{B}/counters/1/open", headers=ADMIN))
        for _ in range(5):
            await _issue(client)
        for _ in range(4):
            clock.advance(minutes=5)
            await ok(await client.post(f"{B}/counters/1/next", headers=ADMIN))
            clock.advance(minutes=3)
            await ok(await client.post(f"{B}/counters/1/complete", headers=ADMIN))
        await ok(await client.post(f"{B}/day/close", headers=ADMIN))


async def _reports(client: httpx.AsyncClient) -> list[Any]:
    reports = []
    for day in PAST:
        report = await ok(await client.get(f"{B}/reports/daily?date={day}", headers=ADMIN))
        report.pop("generated_at")
        reports.append(report)
    return reports


async def _run(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode(errors="replace")


async def _log(dsn: str) -> tuple[list[int], list[str]]:
    conn = await asyncpg.connect(dsn)
    try:
        seqs = [r["seq"] for r in await conn.fetch("SELECT seq FROM branch_events ORDER BY seq")]
        numbers = [
            r["number"]
            for r in await conn.fetch(
                "SELECT number FROM tickets WHERE business_date = $1 ORDER BY seq", TODAY
            )
        ]
    finally:
        await conn.close()
    return seqs, numbers


async def test_dump_of_a_live_hall_restores_and_carries_on(database_url: str) -> None:
    bin_dir = postgres_bin_dir()
    clock = ManualClock(datetime.combine(PAST[0], time(0, 0), UTC))
    dump = Path(tempfile.mkdtemp(prefix="hallq-backup-")) / "hall.dump"
    source_dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    async with _hallq(database_url, clock) as (client, app):
        await setup_branch(client)
        await _past_days(client, clock)
        await app.state.quotes.flush()
        reports = await _reports(client)
        clock.set(datetime.combine(TODAY, time(1, 0), UTC))

        # The hall keeps issuing while pg_dump runs.
        issuing = True

        async def kiosk() -> list[str]:
            numbers = []
            while issuing:
                numbers.append(await _issue(client))
            return numbers

        busy = asyncio.create_task(kiosk())
        await asyncio.sleep(0.3)
        await _run(str(bin_dir / "pg_dump"), "--format=custom", f"--file={dump}", source_dsn)
        issuing = False
        issued_live = await busy
    assert len(issued_live) > 5

    fresh = EmbeddedPostgres(
        Path(tempfile.mkdtemp(prefix="hallq-restored-", dir=ROOT / ".hallq")),
        settings=TEST_SERVER_SETTINGS,
        delete_on_stop=True,
    ).start()
    try:
        await _run(str(bin_dir / "createdb"), f"--maintenance-db={fresh.dsn()}", "hall")
        await _run(
            str(bin_dir / "pg_restore"),
            "--no-owner",
            "--no-privileges",
            f"--dbname={fresh.dsn('hall')}",
            str(dump),
        )
        seqs_before, numbers_before = await _log(fresh.dsn("hall"))
        # The dump is one consistent snapshot: a gap-free log, numbers 1..n, part of what the
        # kiosk got (the rest was issued after the snapshot and is not in the copy).
        assert seqs_before == list(range(1, len(seqs_before) + 1))
        assert numbers_before == [f"A{n:03d}" for n in range(1, len(numbers_before) + 1)]
        assert set(numbers_before) <= set(issued_live)

        async with _hallq(fresh.url("hall"), clock) as (restored, _):
            assert (await restored.get("/readyz")).status_code == 200
            assert await _reports(restored) == reports
            more = [await _issue(restored) for _ in range(3)]
        seqs_after, numbers_after = await _log(fresh.dsn("hall"))
        n = len(numbers_before)
        assert more == [f"A{k:03d}" for k in range(n + 1, n + 4)]
        assert len(set(numbers_after)) == len(numbers_after)
        assert seqs_after == list(range(1, len(seqs_before) + 4))
    finally:
        fresh.stop()

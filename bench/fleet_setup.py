"""B7's fleet: thousands of branches made fast. One template branch is configured through the API
(business types, 10 counters with their profiles, staff, counters opened by their clerks); the
others are copies of its configuration rows written straight into the database, each with
tokens of its own (a kiosk, a display shared by its two screens, a manager for its dashboard,
a clerk per counter), as app/tokens would write them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.auth.service import hash_secret, new_token
from bench import pg as pgmod
from bench.harness import DATABASE, Bench
from bench.servers import profiles

TEMPLATE = "f0000"
COUNTERS = 10
# Configuration tables copied from the template, and the column that names the branch.
CONFIG_TABLES = (("branches", "code"), ("services", "branch"), ("staff", "branch"),
                 ("counters", "branch"))  # fmt: skip


@dataclass
class FleetBranch:
    code: str
    kiosk: str
    display: str
    manager: str
    clerks: dict[str, str] = field(default_factory=dict)  # counter code -> clerk token

    def config(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "kiosk": self.kiosk,
            "display": self.display,
            "manager": self.manager,
            "clerks": self.clerks,
        }


def branch_code(i: int) -> str:
    return f"f{i:04d}"


def make_template(bench: Bench) -> None:
    """The template branch, through the API: its counters open, each with its clerk."""
    setup = bench.setup()
    try:
        setup.branch(TEMPLATE, profiles(COUNTERS), open_counters=True)
    finally:
        setup.close()


def grow_fleet(bench: Bench, first: int, last: int) -> list[FleetBranch]:
    """Branches `first`..`last` (inclusive), copied from the template, with their tokens."""
    codes = [branch_code(i) for i in range(first, last + 1)]
    fleet = [_tokens(code) for code in codes]
    asyncio.run(_insert(bench, codes, fleet))
    return fleet


def _tokens(code: str) -> FleetBranch:
    def token() -> str:
        return new_token()[2]

    branch = FleetBranch(code, kiosk=token(), display=token(), manager=token())
    branch.clerks = {str(c): token() for c in range(1, COUNTERS + 1)}
    return branch


def _token_rows(fleet: list[FleetBranch], now: datetime) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for branch in fleet:
        named: list[tuple[str, str, str | None]] = [
            (role, token, None)
            for role, token in (
                ("kiosk", branch.kiosk),
                ("display", branch.display),
                ("manager", branch.manager),
            )
        ]
        named += [("clerk", t, f"s{c}") for c, t in branch.clerks.items()]
        for role, token, staff in named:
            _, token_id, secret = token.split(".", 2)
            rows.append((token_id, hash_secret(secret), role, branch.code, staff, "bench B7", now))
    return rows


async def _insert(bench: Bench, codes: list[str], fleet: list[FleetBranch]) -> None:
    assert bench.pg is not None
    conn = await pgmod.connect(bench.pg, DATABASE)
    try:
        async with conn.transaction():
            for table, key in CONFIG_TABLES:
                columns = [
                    r["column_name"]
                    for r in await conn.fetch(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_name = $1 ORDER BY ordinal_position",
                        table,
                    )
                ]
                chosen = ", ".join(
                    "c.code" if col == key else ("'Fleet ' || c.code" if (table, col) ==
                                                 ("branches", "name") else f"t.{col}")
                    for col in columns
                )  # fmt: skip
                await conn.execute(
                    f"INSERT INTO {table} ({', '.join(columns)}) "
                    f"SELECT {chosen} FROM {table} t, unnest($1::text[]) AS c(code) "
                    f"WHERE t.{key} = $2",
                    codes,
                    TEMPLATE,
                )
            # Each copy's counters are open with their clerk, serving nobody yet.
            await conn.execute(
                "UPDATE counters SET current_ticket_id = NULL, current_business_date = NULL"
                " WHERE branch = ANY($1::text[])",
                codes,
            )
            await conn.executemany(
                "INSERT INTO api_tokens (id, secret_hash, role, branch, staff, label, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                _token_rows(fleet, datetime.now(UTC)),
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()

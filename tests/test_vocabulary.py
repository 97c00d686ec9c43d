"""The domain's vocabularies (StrEnums) are the values the database accepts and the API shows.

The migrations are frozen history that spell the values out; the models generate their check
constraints from the enums. These tests hold them together: a migrated database's
constraints, the models' constraints and the OpenAPI document list exactly each enum's values.
"""

from __future__ import annotations

import asyncio
import re
from enum import StrEnum

import asyncpg
import httpx
import pytest
from sqlalchemy import CheckConstraint

from app.core.vocabulary import (
    AlertKind,
    AnnouncementMode,
    Channel,
    CounterState,
    Priority,
    TicketStatus,
)
from app.models import Base

# check constraint -> (table, the enum whose values it allows)
CONSTRAINTS: dict[str, tuple[str, type[StrEnum]]] = {
    "ck_tickets_status": ("tickets", TicketStatus),
    "ck_tickets_priority": ("tickets", Priority),
    "ck_tickets_channel": ("tickets", Channel),
    "ck_counters_state": ("counters", CounterState),
    "ck_alerts_kind": ("alerts", AlertKind),
    "ck_branches_announcement_mode": ("branches", AnnouncementMode),
}

_QUOTED = re.compile(r"'([^']*)'")


def values_of(enum: type[StrEnum]) -> list[str]:
    return [member.value for member in enum]


@pytest.mark.parametrize("name", sorted(CONSTRAINTS))
def test_model_check_constraints_list_the_enum_values(name: str) -> None:
    table, enum = CONSTRAINTS[name]
    (constraint,) = [
        c
        for c in Base.metadata.tables[table].constraints
        if isinstance(c, CheckConstraint) and c.name == name
    ]
    assert _QUOTED.findall(str(constraint.sqltext)) == values_of(enum)


def test_migrated_check_constraints_list_the_enum_values(database_url: str) -> None:
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def definitions() -> dict[str, str]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint"
                " WHERE contype = 'c' AND conname = ANY($1::text[])",
                list(CONSTRAINTS),
            )
        finally:
            await conn.close()
        return {row["conname"]: row["def"] for row in rows}

    found = asyncio.run(definitions())
    assert sorted(found) == sorted(CONSTRAINTS)
    for name, (_, enum) in CONSTRAINTS.items():
        # e.g. CHECK ((status = ANY (ARRAY['waiting'::text, 'called'::text, ...])))
        assert _QUOTED.findall(found[name]) == values_of(enum), name


async def test_openapi_lists_the_enum_values(client: httpx.AsyncClient) -> None:
    components = (await client.get("/openapi.json")).json()["components"]["schemas"]
    for enum in (TicketStatus, Priority, Channel, CounterState, AlertKind, AnnouncementMode):
        assert components[enum.__name__]["enum"] == values_of(enum)
        assert components[enum.__name__]["type"] == "string"

"""Partitioned history: `tickets` by week of `business_date`, `branch_events` by week of `at`
(UTC), each with a DEFAULT partition (docs/partitioning.md). The tables are rebuilt: the old one
is renamed, a partitioned one of the same columns made with the partition key in every unique
key, a partition made for every week that holds rows and for the weeks around today, the rows
copied, the old table dropped. Housekeeping makes the later weeks (app/core/partitions.py).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WEEK = timedelta(days=7)

# Each table: partition key, whether it is a timestamptz (cut at UTC days), the unique keys and
# indexes before (0018) and after, and its foreign key.
TABLES = {
    "tickets": {
        "key": "business_date",
        "timestamp": False,
        "before": [
            "ALTER TABLE {t} ADD CONSTRAINT pk_tickets PRIMARY KEY (id)",
            "CREATE UNIQUE INDEX uq_tickets_branch_idempotency_key ON {t}"
            " (branch, idempotency_key) WHERE idempotency_key IS NOT NULL",
            "CREATE UNIQUE INDEX uq_tickets_code ON {t} (code)",
        ],
        "after": [
            "ALTER TABLE {t} ADD CONSTRAINT pk_tickets PRIMARY KEY (id, business_date)",
            "CREATE UNIQUE INDEX uq_tickets_branch_idempotency_key ON {t}"
            " (branch, idempotency_key, business_date) WHERE idempotency_key IS NOT NULL",
            "CREATE UNIQUE INDEX uq_tickets_code ON {t} (code, business_date)",
        ],
        "common": [
            "ALTER TABLE {t} ADD CONSTRAINT uq_tickets_branch_issued_service_business_date_seq"
            " UNIQUE (branch, issued_service, business_date, seq)",
            "CREATE INDEX ix_tickets_waiting ON {t} (branch, service, lane, queued_at)"
            " WHERE status = 'waiting'",
            "CREATE INDEX ix_tickets_branch_business_date ON {t} (branch, business_date)",
            "CREATE INDEX ix_tickets_unfinished ON {t} (branch, business_date)"
            " WHERE status IN ('waiting', 'called', 'serving', 'no_show')",
            "CREATE INDEX ix_tickets_done_recent ON {t} (branch, service, finished_at)"
            " WHERE status = 'done'",
            "CREATE INDEX ix_tickets_phone_to_erase ON {t} (branch, business_date)"
            " WHERE phone IS NOT NULL",
            "ALTER TABLE {t} ADD CONSTRAINT fk_tickets_branch_services FOREIGN KEY"
            " (branch, service) REFERENCES services (branch, code) ON DELETE RESTRICT",
        ],
        "names": [
            "pk_tickets",
            "uq_tickets_branch_issued_service_business_date_seq",
            "uq_tickets_branch_idempotency_key",
            "uq_tickets_code",
            "ix_tickets_waiting",
            "ix_tickets_branch_business_date",
            "ix_tickets_unfinished",
            "ix_tickets_done_recent",
            "ix_tickets_phone_to_erase",
        ],
    },
    "branch_events": {
        "key": "at",
        "timestamp": True,
        "before": ["ALTER TABLE {t} ADD CONSTRAINT pk_branch_events PRIMARY KEY (branch, seq)"],
        "after": ["ALTER TABLE {t} ADD CONSTRAINT pk_branch_events PRIMARY KEY (branch, seq, at)"],
        "common": [
            "CREATE INDEX ix_branch_events_ticket_id ON {t} (ticket_id)"
            " WHERE ticket_id IS NOT NULL",
            "CREATE INDEX ix_branch_events_branch_type_at ON {t} (branch, type, at)",
            "ALTER TABLE {t} ADD CONSTRAINT fk_branch_events_branch_branches FOREIGN KEY"
            " (branch) REFERENCES branches (code) ON DELETE CASCADE",
        ],
        "names": [
            "pk_branch_events",
            "ix_branch_events_ticket_id",
            "ix_branch_events_branch_type_at",
        ],
    },
}


def _drop_keys(table: str, renamed: str) -> None:
    """Free the index names of `renamed` (the old table) for the new one."""
    for name in TABLES[table]["names"]:
        op.execute(f"ALTER TABLE {renamed} DROP CONSTRAINT IF EXISTS {name}")
        op.execute(f"DROP INDEX IF EXISTS {name}")


def _keys(table: str, which: str) -> None:
    for statement in [*TABLES[table][which], *TABLES[table]["common"]]:
        op.execute(statement.format(t=table))


def _weeks(table: str, source: str) -> list[date]:
    """Every week `source` holds rows of, and those around today (as housekeeping makes)."""
    key = TABLES[table]["key"]
    day = f"CAST(timezone('UTC', {key}) AS date)" if TABLES[table]["timestamp"] else key
    held = op.get_bind().execute(
        sa.text(f"SELECT DISTINCT CAST(date_trunc('week', {day}) AS date) FROM {source}")  # noqa: S608
    )
    today = datetime.now(UTC).date()
    first = today - timedelta(days=2)
    first -= timedelta(days=first.weekday())
    around = [first + i * WEEK for i in range(4)]
    return sorted({*(row[0] for row in held), *around})


def _bound(table: str, day: date) -> str:
    return f"'{day.isoformat()} 00:00+00'" if TABLES[table]["timestamp"] else f"'{day.isoformat()}'"


def _partition(table: str) -> None:
    old = f"{table}_0018"
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    _drop_keys(table, old)
    op.execute(
        f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        f" PARTITION BY RANGE ({TABLES[table]['key']})"
    )
    _keys(table, "after")
    for week in _weeks(table, old):
        op.execute(
            f"CREATE TABLE {table}_p{week:%Y%m%d} PARTITION OF {table}"
            f" FOR VALUES FROM ({_bound(table, week)}) TO ({_bound(table, week + WEEK)})"
        )
    op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
    op.execute(f"INSERT INTO {table} SELECT * FROM {old}")  # noqa: S608
    op.execute(f"DROP TABLE {old}")
    # No ANALYZE: an empty partition analyzed says "no rows" to the planner, and hallq's
    # statements are planned once per connection (generic plans), so a sort of the whole day
    # would stay chosen over an index until autovacuum's analyze invalidated it (a B1 run
    # measured twice the PostgreSQL CPU per issue). Never analyzed, PostgreSQL assumes a few
    # pages; autovacuum analyzes the partitions holding copied rows soon enough.


def _unpartition(table: str) -> None:
    old = f"{table}_0019"
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    for name in TABLES[table]["names"]:
        op.execute(f"ALTER TABLE {old} DROP CONSTRAINT IF EXISTS {name}")
        op.execute(f"DROP INDEX IF EXISTS {name}")
    op.execute(f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    op.execute(f"INSERT INTO {table} SELECT * FROM {old}")  # noqa: S608
    op.execute(f"DROP TABLE {old}")  # with its partitions
    _keys(table, "before")


def upgrade() -> None:
    for table in TABLES:
        _partition(table)


def downgrade() -> None:
    for table in TABLES:
        _unpartition(table)

"""Announce configuration changes on channel `hallq_config`, for the per-process cache of
tokens, branches and business types (app/core/config_cache.py).

Statement-level triggers: one notification per changing statement (and PostgreSQL folds equal
notifications of a transaction into one). The branches trigger names every column but
`event_seq`, which every event updates and which is not configuration. TRUNCATE is announced
too (tests empty tables between cases).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOTIFY_FUNCTION = """
CREATE FUNCTION hallq_notify_config() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hallq_config', TG_TABLE_NAME);
    RETURN NULL;
END
$$
"""

BRANCH_CONFIG_COLUMNS = (
    "code, name, timezone, hours, holidays, issue_cutoff_min, min_open_counters, "
    "requeue_after, announcement_zh, announcement_en, created_at, updated_at"
)

TRIGGERS = {
    "api_tokens_config_notify": "UPDATE OR DELETE OR TRUNCATE ON api_tokens",
    "branches_config_notify": f"UPDATE OF {BRANCH_CONFIG_COLUMNS} OR DELETE OR TRUNCATE"
    " ON branches",
    "services_config_notify": "INSERT OR UPDATE OR DELETE OR TRUNCATE ON services",
}


def upgrade() -> None:
    op.execute(NOTIFY_FUNCTION)
    for name, events in TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {name} AFTER {events}"
            " FOR EACH STATEMENT EXECUTE FUNCTION hallq_notify_config()"
        )


def downgrade() -> None:
    for name, events in TRIGGERS.items():
        table = events.rsplit(" ON ", 1)[1]
        op.execute(f"DROP TRIGGER {name} ON {table}")
    op.execute("DROP FUNCTION hallq_notify_config()")

"""Devices (SPEC §7, issue 19): a token's coarse `last_seen_at` and a kiosk's `out_of_service`.

`last_seen_at` is written at most once a minute per token and process (app/auth/seen.py), and is
not configuration: the token table's NOTIFY trigger (0004) now names every column but it, so a
device being seen never empties the processes' configuration caches. `out_of_service` is
configuration and is announced like the rest.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGER = "api_tokens_config_notify"
CONFIG_COLUMNS = (
    "id, secret_hash, role, branch, staff, label, created_by, created_at, revoked_at, "
    "out_of_service"
)


def _replace_trigger(events: str) -> None:
    op.execute(f"DROP TRIGGER {TRIGGER} ON api_tokens")
    op.execute(
        f"CREATE TRIGGER {TRIGGER} AFTER {events} ON api_tokens"
        " FOR EACH STATEMENT EXECUTE FUNCTION hallq_notify_config()"
    )


def upgrade() -> None:
    op.add_column("api_tokens", sa.Column("last_seen_at", sa.DateTime(timezone=True)))
    op.add_column(
        "api_tokens",
        sa.Column("out_of_service", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    _replace_trigger(f"UPDATE OF {CONFIG_COLUMNS} OR DELETE OR TRUNCATE")


def downgrade() -> None:
    _replace_trigger("UPDATE OR DELETE OR TRUNCATE")
    op.drop_column("api_tokens", "out_of_service")
    op.drop_column("api_tokens", "last_seen_at")

"""Idempotency-Keys claimed by issues (app/tickets/service.py, ISSUE_SQL), so that issuing can
run as one autocommitted statement without giving numbers back.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "issue_keys",
        sa.Column("branch", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("branch", "key", name=op.f("pk_issue_keys")),
    )


def downgrade() -> None:
    op.drop_table("issue_keys")

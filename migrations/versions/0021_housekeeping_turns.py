"""Housekeeping rounds claimed by one process at a time (`housekeeping_turns`): the close-out
survey, the alert survey and the sweeps run once per interval for the whole deployment, not once
per server process.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "housekeeping_turns",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_housekeeping_turns")),
    )


def downgrade() -> None:
    op.drop_table("housekeeping_turns")

"""Staffing (SPEC §11): a branch's `service_level_pct` (the share of customers to call within
their type's target wait, default 80) and `staffing_weeks` (how many weeks of history the
arrivals forecast reads, default 8). Existing branches get the defaults.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-20
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "branches",
        sa.Column("service_level_pct", sa.Integer(), server_default="80", nullable=False),
    )
    op.add_column(
        "branches",
        sa.Column("staffing_weeks", sa.Integer(), server_default="8", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_branches_service_level_pct"), "branches", "service_level_pct BETWEEN 1 AND 99"
    )
    op.create_check_constraint(
        op.f("ck_branches_staffing_weeks"), "branches", "staffing_weeks BETWEEN 1 AND 52"
    )


def downgrade() -> None:
    # Dropping a column drops its check constraint with it.
    op.drop_column("branches", "staffing_weeks")
    op.drop_column("branches", "service_level_pct")

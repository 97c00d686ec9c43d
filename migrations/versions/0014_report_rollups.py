"""Report rollups (SPEC §10, issue 22): the additive parts of each final business day's report
figures, per branch, day, scope, code and business type, and the days rolled up.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-12
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = ("issued", "called", "served", "no_show", "cancelled", "transferred", "expired")


def upgrade() -> None:
    op.create_table(
        "report_rollup_days",
        sa.Column("branch", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["branch"],
            ["branches.code"],
            name=op.f("fk_report_rollup_days_branch_branches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("branch", "day", name=op.f("pk_report_rollup_days")),
    )
    op.create_table(
        "report_rollups",
        sa.Column("branch", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in COUNTS),
        sa.Column("waits", postgresql.ARRAY(postgresql.DOUBLE_PRECISION()), nullable=False),
        sa.Column("service_sum", sa.Float(), nullable=False),
        sa.Column("service_n", sa.BigInteger(), nullable=False),
        sa.Column("rating_sum", sa.BigInteger(), nullable=False),
        sa.Column("ratings", sa.BigInteger(), nullable=False),
        sa.Column("satisfied", sa.BigInteger(), nullable=False),
        sa.Column("open_s", sa.Float(), nullable=False),
        sa.Column("serving_s", sa.Float(), nullable=False),
        sa.Column("signed_in_s", sa.Float(), nullable=False),
        sa.Column("paused_s", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["branch"],
            ["branches.code"],
            name=op.f("fk_report_rollups_branch_branches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "branch", "day", "scope", "code", "service", name=op.f("pk_report_rollups")
        ),
    )


def downgrade() -> None:
    op.drop_table("report_rollups")
    op.drop_table("report_rollup_days")

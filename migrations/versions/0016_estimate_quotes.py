"""The wait estimate's accuracy, measured live (SPEC §11, issue 23): each ticket's quoted wait
and its wait until the first call (`estimate_quotes`), the errors of tickets whose quote was
written after that call (`estimate_late_errors`, for hallq_estimate_error_seconds), and the
accuracy's additive parts in the report rollups (zero on days rolled up before: no quotes were
kept then).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-15
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLLUP_COLUMNS = (
    ("estimates", sa.BigInteger()),
    ("estimate_abs_error_s", sa.Float()),
    ("estimate_error_s", sa.Float()),
    ("estimate_in_range", sa.BigInteger()),
)


def upgrade() -> None:
    op.create_table(
        "estimate_quotes",
        sa.Column("ticket_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("branch", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("quoted_s", sa.Integer(), nullable=True),
        sa.Column("low_s", sa.Integer(), nullable=True),
        sa.Column("high_s", sa.Integer(), nullable=True),
        sa.Column("waited_s", sa.Float(), nullable=True),
        sa.Column("quoted_after_call", sa.Boolean(), server_default="false", nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_estimate_quotes")),
    )
    op.create_table(
        "estimate_late_errors",
        sa.Column("branch", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("le", sa.Float(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("branch", "service", "le", name=op.f("pk_estimate_late_errors")),
    )
    for name, type_ in ROLLUP_COLUMNS:
        op.add_column("report_rollups", sa.Column(name, type_, server_default="0", nullable=False))


def downgrade() -> None:
    for name, _ in reversed(ROLLUP_COLUMNS):
        op.drop_column("report_rollups", name)
    op.drop_table("estimate_late_errors")
    op.drop_table("estimate_quotes")

"""Alerts (raised and cleared by the evaluator) and per-process stream client counts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stream_presence",
        sa.Column("process_id", sa.Text(), nullable=False),
        sa.Column("branch", sa.Text(), nullable=False),
        sa.Column("clients", sa.Integer(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("process_id", "branch", name=op.f("pk_stream_presence")),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("branch", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), server_default="", nullable=False),
        sa.Column("service", sa.Text(), nullable=True),
        sa.Column("counter", sa.Text(), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('long_wait', 'queue_length', 'too_few_counters')", name=op.f("ck_alerts_kind")
        ),
        sa.ForeignKeyConstraint(
            ["branch"],
            ["branches.code"],
            name=op.f("fk_alerts_branch_branches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index("ix_alerts_branch_since", "alerts", ["branch", "since"], unique=False)
    op.create_index(
        "uq_alerts_active",
        "alerts",
        ["branch", "kind", "subject"],
        unique=True,
        postgresql_where=sa.text("cleared_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_alerts_active", table_name="alerts", postgresql_where=sa.text("cleared_at IS NULL")
    )
    op.drop_index("ix_alerts_branch_since", table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("stream_presence")

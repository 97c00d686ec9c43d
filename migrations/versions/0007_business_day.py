"""The business day (SPEC §5) and the service desk (§6): each branch's `day_starts_at` and
`clerks_may_pick`, the `expired` ticket status, a history-only `note` on
events, and the close-outs table whose unique index
lets one process claim a day's automatic close-out.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A migration keeps its own copy of the vocabulary: app/core/vocabulary.py may change later.
STATUSES_BEFORE = "('waiting', 'called', 'serving', 'done', 'no_show', 'cancelled')"
STATUSES_AFTER = "('waiting', 'called', 'serving', 'done', 'no_show', 'cancelled', 'expired')"


def upgrade() -> None:
    op.add_column(
        "branches",
        sa.Column("day_starts_at", sa.Time(), server_default="00:00", nullable=False),
    )
    op.add_column(
        "branches",
        sa.Column("clerks_may_pick", sa.Boolean(), server_default="false", nullable=False),
    )
    op.drop_constraint(op.f("ck_tickets_status"), "tickets", type_="check")
    op.create_check_constraint(op.f("ck_tickets_status"), "tickets", f"status IN {STATUSES_AFTER}")
    op.add_column("branch_events", sa.Column("note", sa.Text(), nullable=True))
    op.create_index(
        "ix_tickets_unfinished",
        "tickets",
        ["branch", "business_date"],
        postgresql_where=sa.text("status IN ('waiting', 'called', 'serving', 'no_show')"),
    )
    op.create_table(
        "day_closeouts",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("branch", sa.Text(), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("automatic", sa.Boolean(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expired", sa.Integer(), server_default="0", nullable=False),
        sa.Column("completed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("counters_closed", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["branch"],
            ["branches.code"],
            name=op.f("fk_day_closeouts_branch_branches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_day_closeouts")),
    )
    op.create_index(
        "uq_day_closeouts_automatic",
        "day_closeouts",
        ["branch", "business_date"],
        unique=True,
        postgresql_where=sa.text("automatic"),
    )


def downgrade() -> None:
    op.drop_index("uq_day_closeouts_automatic", table_name="day_closeouts")
    op.drop_table("day_closeouts")
    op.drop_column("branch_events", "note")
    op.drop_index("ix_tickets_unfinished", table_name="tickets")
    op.execute("UPDATE tickets SET status = 'cancelled' WHERE status = 'expired'")
    op.drop_constraint(op.f("ck_tickets_status"), "tickets", type_="check")
    op.create_check_constraint(op.f("ck_tickets_status"), "tickets", f"status IN {STATUSES_BEFORE}")
    op.drop_column("branches", "clerks_may_pick")
    op.drop_column("branches", "day_starts_at")

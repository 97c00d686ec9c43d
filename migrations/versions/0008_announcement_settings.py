"""The branch's announcement settings (SPEC §3, issue 26): how screens speak a call (`mode`:
browser, server or auto), how many times (`repeat`), how fast (`rate`) and with which browser
voice (`voice`). Existing branches get the defaults: auto, once, normal speed, no voice.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A migration keeps its own copy of the vocabulary: app/core/vocabulary.py may change later.
MODES = "('browser', 'server', 'auto')"


def upgrade() -> None:
    op.add_column(
        "branches",
        sa.Column("announcement_mode", sa.Text(), server_default="auto", nullable=False),
    )
    op.add_column(
        "branches",
        sa.Column("announcement_repeat", sa.Integer(), server_default="1", nullable=False),
    )
    op.add_column(
        "branches",
        sa.Column("announcement_rate", sa.Double(), server_default="1.0", nullable=False),
    )
    op.add_column("branches", sa.Column("announcement_voice", sa.Text(), nullable=True))
    op.create_check_constraint(
        op.f("ck_branches_announcement_mode"), "branches", f"announcement_mode IN {MODES}"
    )
    op.create_check_constraint(
        op.f("ck_branches_announcement_repeat"), "branches", "announcement_repeat BETWEEN 1 AND 3"
    )
    op.create_check_constraint(
        op.f("ck_branches_announcement_rate"), "branches", "announcement_rate BETWEEN 0.5 AND 2.0"
    )
    op.create_check_constraint(
        op.f("ck_branches_announcement_voice"),
        "branches",
        "char_length(announcement_voice) <= 100",
    )


def downgrade() -> None:
    # Dropping a column drops its check constraint with it.
    op.drop_column("branches", "announcement_voice")
    op.drop_column("branches", "announcement_rate")
    op.drop_column("branches", "announcement_repeat")
    op.drop_column("branches", "announcement_mode")

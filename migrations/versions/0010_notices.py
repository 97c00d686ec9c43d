"""Notices (SPEC §7, issue 19): a branch's words for the lobby ticker and the kiosk, each
current between two optional instants, shown by `position` (the API's `order`), then code.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A migration keeps its own copy of the limit: app/notices/models.py may change later.
TEXT_MAX = 500


def upgrade() -> None:
    op.create_table(
        "notices",
        sa.Column("branch", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("text_zh", sa.Text(), nullable=False),
        sa.Column("text_en", sa.Text(), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("position", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            f"char_length(text_zh) BETWEEN 1 AND {TEXT_MAX}", name=op.f("ck_notices_text_zh")
        ),
        sa.CheckConstraint(
            f"char_length(text_en) BETWEEN 1 AND {TEXT_MAX}", name=op.f("ck_notices_text_en")
        ),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_notices_ends_after_start")),
        sa.ForeignKeyConstraint(
            ["branch"],
            ["branches.code"],
            name=op.f("fk_notices_branch_branches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("branch", "code", name=op.f("pk_notices")),
    )


def downgrade() -> None:
    op.drop_table("notices")

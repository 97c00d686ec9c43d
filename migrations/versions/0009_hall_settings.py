"""The hall settings of SPEC §7 (issue 19): a branch's `special_hours` (date ranges whose hours
replace the weekly hours), a business type's `guide` (shown by the kiosk and printed on the
ticket) and a staff member's `number` (工号). Existing rows get no special hours, no guide and
no number (the nullable columns default to NULL).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "branches",
        sa.Column("special_hours", postgresql.JSONB(), server_default="[]", nullable=False),
    )
    op.add_column(
        "services",
        sa.Column("guide", postgresql.JSONB(), nullable=True),
    )
    op.add_column("staff", sa.Column("number", sa.Text(), nullable=True))
    op.create_check_constraint(op.f("ck_staff_number"), "staff", "char_length(number) <= 16")


def downgrade() -> None:
    # Dropping a column drops its check constraint with it.
    op.drop_column("staff", "number")
    op.drop_column("services", "guide")
    op.drop_column("branches", "special_hours")

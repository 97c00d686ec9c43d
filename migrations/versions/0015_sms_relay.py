"""The SMS relay (SPEC §9): a webhook of kind `sms`, configured from the environment
(HALLQ_SMS_URL, HALLQ_SMS_SECRET), delivered like any webhook but with a body of its own.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "webhooks",
        sa.Column("kind", sa.Text(), server_default="webhook", nullable=False),
    )
    op.create_check_constraint(op.f("ck_webhooks_kind"), "webhooks", "kind IN ('webhook', 'sms')")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_webhooks_kind"), "webhooks", type_="check")
    op.drop_column("webhooks", "kind")

"""The customer's phone (SPEC §9, issue 21): ticket codes, the near notice, remote join.

- `tickets.code`: the ticket's public key (at least 60 random bits; 16 characters of a 32-letter
  alphabet from the application, 80 bits). Existing tickets get 20 hex digits of a random UUID
  (76 random bits). Unique.
- `tickets.near_notified_at`: when `ticket.near` was emitted for it (once per ticket).
- `branches.notify_ahead` (default 3; NULL: no near notices), `branches.online_join` (JSON `{enabled, daily_limit,
  services}`, NULL: disabled), `branches.sms_templates` (JSON `{near, called}`, NULL: defaults).
- `public_rate`: requests per client address and minute for the public routes; UNLOGGED (a
  crash forgets the current minute's counts, nothing else).
- `online_joins`: remote joins per branch and business day (the daily limit) and per branch,
  client address and hour (three an hour).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-12
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RANDOM_CODE = "substr(replace(CAST(gen_random_uuid() AS text), '-', ''), 1, 20)"


def upgrade() -> None:
    # The default fills existing rows (and any insert that names no code: the benchmark's
    # hand-written SQL); hallq itself always gives its own 80-bit code.
    op.add_column(
        "tickets",
        sa.Column("code", sa.Text(), server_default=sa.text(RANDOM_CODE), nullable=False),
    )
    op.create_index("uq_tickets_code", "tickets", ["code"], unique=True)
    op.add_column("tickets", sa.Column("near_notified_at", sa.DateTime(timezone=True)))
    op.add_column(
        "branches", sa.Column("notify_ahead", sa.Integer(), server_default="3", nullable=True)
    )
    op.add_column("branches", sa.Column("online_join", JSONB()))
    op.add_column("branches", sa.Column("sms_templates", JSONB()))
    op.create_table(
        "public_rate",
        sa.Column("address", sa.Text(), primary_key=True),
        sa.Column("window_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("requests", sa.Integer(), nullable=False),
        prefixes=["UNLOGGED"],
    )
    op.create_table(
        "online_joins",
        sa.Column("branch", sa.Text(), primary_key=True),
        # '' for the branch's daily count, else the client address of an hourly count.
        sa.Column("address", sa.Text(), primary_key=True),
        sa.Column("window_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("joins", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("online_joins")
    op.drop_table("public_rate")
    op.drop_column("branches", "sms_templates")
    op.drop_column("branches", "online_join")
    op.drop_column("branches", "notify_ahead")
    op.drop_column("tickets", "near_notified_at")
    op.drop_index("uq_tickets_code", table_name="tickets")
    op.drop_column("tickets", "code")

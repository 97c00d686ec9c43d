"""Stream presence written as it changes: a heartbeat row per server process
(`stream_processes`), and per-branch client counts (`stream_presence`) written only when a count
changes, so that a process with thousands of branches writes one row per round, not thousands.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stream_processes",
        sa.Column("process_id", sa.Text(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("process_id", name=op.f("pk_stream_processes")),
    )
    # Presence is a few seconds' state: the processes running the new code report afresh.
    op.execute("DELETE FROM stream_presence")
    op.drop_column("stream_presence", "heartbeat_at")
    op.create_foreign_key(
        op.f("fk_stream_presence_process_id_stream_processes"),
        "stream_presence",
        "stream_processes",
        ["process_id"],
        ["process_id"],
        ondelete="CASCADE",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_stream_presence_process_id_stream_processes"),
        "stream_presence",
        type_="foreignkey",
    )
    op.execute("DELETE FROM stream_presence")
    op.add_column(
        "stream_presence", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False)
    )
    op.drop_table("stream_processes")

"""The counter's current ticket's business date beside its id (`current_business_date`): the
ticket's partition key, so that `next` and the counters list read the one partition that holds
it instead of probing every week (docs/partitioning.md, "A counter's current ticket").

And two partial indexes of the waiting tickets for the near check's front: the plain ones
(normal lane, never moved) of a type and priority class in calling order, and the few others
(app/queue/ordering.py: `type_front_candidates_sql`).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("counters", sa.Column("current_business_date", sa.Date(), nullable=True))
    # A current ticket that no longer exists (retention dropped its week) is let go: the pair
    # is then either complete or empty.
    op.execute(
        """
        UPDATE counters c SET current_business_date = t.business_date
        FROM tickets t WHERE t.id = c.current_ticket_id
        """
    )
    op.execute(
        "UPDATE counters SET current_ticket_id = NULL"
        " WHERE current_ticket_id IS NOT NULL AND current_business_date IS NULL"
    )
    op.create_index(
        op.f("ix_tickets_waiting_plain"),
        "tickets",
        ["branch", "service", "priority", "issued_at", "seq", "id"],
        postgresql_where=sa.text("status = 'waiting' AND lane = 1 AND queued_at = issued_at"),
    )
    op.create_index(
        op.f("ix_tickets_waiting_moved"),
        "tickets",
        ["branch", "service", "business_date"],
        postgresql_where=sa.text("status = 'waiting' AND (lane <> 1 OR queued_at <> issued_at)"),
    )
    op.create_check_constraint(
        op.f("ck_counters_current_with_date"),
        "counters",
        "(current_ticket_id IS NULL) = (current_business_date IS NULL)",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_counters_current_with_date"), "counters", type_="check")
    op.drop_column("counters", "current_business_date")
    op.drop_index(op.f("ix_tickets_waiting_moved"), table_name="tickets")
    op.drop_index(op.f("ix_tickets_waiting_plain"), table_name="tickets")

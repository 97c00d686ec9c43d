"""Initial schema: branches, business types, staff, counters, tokens, tickets, the event log.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Every committed event is announced on the `hallq_events` channel, so that each server process
# (one LISTEN connection each) can push it to its screens. NOTIFY payloads are limited to 8000
# bytes: a larger event is announced by reference and the listener reads it from the table.
NOTIFY_FUNCTION = """
CREATE FUNCTION hallq_notify_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload text;
BEGIN
    payload := json_build_object(
        'branch', NEW.branch, 'seq', NEW.seq, 'type', NEW.type,
        'at', to_char(NEW.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'data', NEW.data)::text;
    IF octet_length(payload) > 7500 THEN
        payload := json_build_object('branch', NEW.branch, 'seq', NEW.seq, 'ref', true)::text;
    END IF;
    PERFORM pg_notify('hallq_events', payload);
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("branch", sa.Text(), nullable=True),
        sa.Column("staff", sa.Text(), nullable=True),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "role IN ('admin', 'manager', 'clerk', 'kiosk', 'display', 'monitor')",
            name=op.f("ck_api_tokens_role"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
    )
    op.create_table(
        "branches",
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("hours", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "holidays", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False
        ),
        sa.Column("issue_cutoff_min", sa.Integer(), server_default="0", nullable=False),
        sa.Column("min_open_counters", sa.Integer(), server_default="0", nullable=False),
        sa.Column("requeue_after", sa.Integer(), server_default="2", nullable=False),
        sa.Column("announcement_zh", sa.Text(), nullable=True),
        sa.Column("announcement_en", sa.Text(), nullable=True),
        sa.Column("event_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_branches")),
    )
    op.create_table(
        "ticket_sequences",
        sa.Column("branch", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("last_value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "branch", "service", "business_date", name=op.f("pk_ticket_sequences")
        ),
    )
    op.create_table(
        "branch_events",
        sa.Column("branch", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ticket_id", sa.UUID(), nullable=True),
        sa.Column("counter", sa.Text(), nullable=True),
        sa.Column("staff", sa.Text(), nullable=True),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["branch"],
            ["branches.code"],
            name=op.f("fk_branch_events_branch_branches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("branch", "seq", name=op.f("pk_branch_events")),
    )
    op.create_index(
        "ix_branch_events_branch_type_at", "branch_events", ["branch", "type", "at"], unique=False
    )
    op.create_index(
        "ix_branch_events_ticket_id",
        "branch_events",
        ["ticket_id"],
        unique=False,
        postgresql_where=sa.text("ticket_id IS NOT NULL"),
    )
    op.create_table(
        "counters",
        sa.Column("branch", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("services", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("state", sa.Text(), server_default="closed", nullable=False),
        sa.Column("staff", sa.Text(), nullable=True),
        sa.Column("current_ticket_id", sa.UUID(), nullable=True),
        sa.Column("state_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pause_reason", sa.Text(), nullable=True),
        sa.Column("calls", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('closed', 'open', 'paused', 'closing')", name=op.f("ck_counters_state")
        ),
        sa.ForeignKeyConstraint(
            ["branch"],
            ["branches.code"],
            name=op.f("fk_counters_branch_branches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("branch", "code", name=op.f("pk_counters")),
    )
    op.create_index(
        "uq_counters_branch_staff_signed_in",
        "counters",
        ["branch", "staff"],
        unique=True,
        postgresql_where="staff IS NOT NULL",
    )
    op.create_table(
        "services",
        sa.Column("branch", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("target_wait_s", sa.Integer(), server_default="600", nullable=False),
        sa.Column("max_wait_s", sa.Integer(), nullable=True),
        sa.Column("queue_alert_per_counter", sa.Integer(), server_default="10", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("target_wait_s > 0", name=op.f("ck_services_target_wait_positive")),
        sa.ForeignKeyConstraint(
            ["branch"],
            ["branches.code"],
            name=op.f("fk_services_branch_branches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("branch", "code", name=op.f("pk_services")),
        sa.UniqueConstraint("branch", "prefix", name=op.f("uq_services_branch_prefix")),
    )
    op.create_table(
        "staff",
        sa.Column("branch", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('clerk', 'manager')", name=op.f("ck_staff_role")),
        sa.ForeignKeyConstraint(
            ["branch"], ["branches.code"], name=op.f("fk_staff_branch_branches"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("branch", "code", name=op.f("pk_staff")),
    )
    op.create_table(
        "tickets",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("branch", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("issued_service", sa.Text(), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("number", sa.Text(), nullable=False),
        sa.Column("priority", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lane", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requeue_base", sa.Integer(), nullable=True),
        sa.Column("target_counter", sa.Text(), nullable=True),
        sa.Column("counter", sa.Text(), nullable=True),
        sa.Column("staff", sa.Text(), nullable=True),
        sa.Column("called_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_called_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("served_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recall_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("transfer_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.Column("rating", sa.SmallInteger(), nullable=True),
        sa.Column("rating_comment", sa.Text(), nullable=True),
        sa.Column("rated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "channel IN ('kiosk', 'staff', 'online', 'appointment')",
            name=op.f("ck_tickets_channel"),
        ),
        sa.CheckConstraint(
            "priority IN ('normal', 'vip', 'special')", name=op.f("ck_tickets_priority")
        ),
        sa.CheckConstraint(
            "status IN ('waiting', 'called', 'serving', 'done', 'no_show', 'cancelled')",
            name=op.f("ck_tickets_status"),
        ),
        sa.CheckConstraint("lane IN (0, 1, 2)", name=op.f("ck_tickets_lane")),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name=op.f("ck_tickets_rating")),
        sa.ForeignKeyConstraint(
            ["branch", "service"],
            ["services.branch", "services.code"],
            name=op.f("fk_tickets_branch_services"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
        sa.UniqueConstraint(
            "branch",
            "issued_service",
            "business_date",
            "seq",
            name=op.f("uq_tickets_branch_issued_service_business_date_seq"),
        ),
    )
    op.create_index(
        "ix_tickets_branch_business_date", "tickets", ["branch", "business_date"], unique=False
    )
    op.create_index(
        "ix_tickets_done_recent",
        "tickets",
        ["branch", "service", "finished_at"],
        unique=False,
        postgresql_where=sa.text("status = 'done'"),
    )
    op.create_index(
        "ix_tickets_phone_to_erase",
        "tickets",
        ["branch", "business_date"],
        unique=False,
        postgresql_where=sa.text("phone IS NOT NULL"),
    )
    op.create_index(
        "ix_tickets_waiting",
        "tickets",
        ["branch", "service", "lane", "queued_at"],
        unique=False,
        postgresql_where=sa.text("status = 'waiting'"),
    )
    op.create_index(
        "uq_tickets_branch_idempotency_key",
        "tickets",
        ["branch", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.execute(NOTIFY_FUNCTION)
    op.execute(
        "CREATE TRIGGER branch_events_notify AFTER INSERT ON branch_events"
        " FOR EACH ROW EXECUTE FUNCTION hallq_notify_event()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS branch_events_notify ON branch_events")
    op.execute("DROP FUNCTION IF EXISTS hallq_notify_event()")
    op.drop_index(
        "uq_tickets_branch_idempotency_key",
        table_name="tickets",
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.drop_index(
        "ix_tickets_waiting", table_name="tickets", postgresql_where=sa.text("status = 'waiting'")
    )
    op.drop_index(
        "ix_tickets_phone_to_erase",
        table_name="tickets",
        postgresql_where=sa.text("phone IS NOT NULL"),
    )
    op.drop_index(
        "ix_tickets_done_recent", table_name="tickets", postgresql_where=sa.text("status = 'done'")
    )
    op.drop_index("ix_tickets_branch_business_date", table_name="tickets")
    op.drop_table("tickets")
    op.drop_table("staff")
    op.drop_table("services")
    op.drop_index(
        "uq_counters_branch_staff_signed_in",
        table_name="counters",
        postgresql_where="staff IS NOT NULL",
    )
    op.drop_table("counters")
    op.drop_index(
        "ix_branch_events_ticket_id",
        table_name="branch_events",
        postgresql_where=sa.text("ticket_id IS NOT NULL"),
    )
    op.drop_index("ix_branch_events_branch_type_at", table_name="branch_events")
    op.drop_table("branch_events")
    op.drop_table("ticket_sequences")
    op.drop_table("branches")
    op.drop_table("api_tokens")

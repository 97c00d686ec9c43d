"""Events are notified after the commit by the process that wrote them
(app/events/notifier.py), no longer by a NOTIFY trigger inside the writing transaction: a
notifying commit holds PostgreSQL's cluster-wide notify lock through its WAL flush.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As created by 0001, for a downgrade (a migration keeps its own copy: 0001 may not change).
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
    op.execute("DROP TRIGGER IF EXISTS branch_events_notify ON branch_events")
    op.execute("DROP FUNCTION IF EXISTS hallq_notify_event()")


def downgrade() -> None:
    op.execute(NOTIFY_FUNCTION)
    op.execute(
        "CREATE TRIGGER branch_events_notify AFTER INSERT ON branch_events"
        " FOR EACH ROW EXECUTE FUNCTION hallq_notify_event()"
    )

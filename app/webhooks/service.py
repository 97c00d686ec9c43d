"""Webhooks: the API's create-or-update, reads and delete, and the delivery SQL (cursors,
claims, what a delivery records).

A webhook's progress is a cursor per branch over `branch_events` (`webhook_cursors`): events
after `delivered_seq` are still to be delivered. Recording an event writes nothing here; a
cursor moves when a delivery succeeds, so a process that dies mid-delivery leaves the event
behind its cursor and it is sent again (at least once). Work is shared by claiming a cursor
with a session-level advisory lock on the delivering process's own connection: a process that
dies drops its connection, and with it its claims (docs/decisions.md).
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import not_found
from app.events.wire import ENVELOPE_SQL
from app.webhooks.models import Webhook, WebhookCursor, WebhookDelivery
from app.webhooks.schemas import (
    SECRET_PREFIX,
    DeliveryOut,
    WebhookCreated,
    WebhookIn,
    WebhookOut,
)

SECRET_BYTES = 32
# Why a webhook stopped by itself: the alert's name (SPEC §8).
WEBHOOK_FAILING = "webhook_failing"
# The attempts kept per webhook for GET .../deliveries; older ones are pruned.
DELIVERIES_KEPT = 1000


WEBHOOK_KIND = "webhook"  # the API's; the other kind is the SMS relay (app/webhooks/sms.py)


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def webhook_out(webhook: Webhook) -> WebhookOut:
    return WebhookOut.model_validate(webhook, from_attributes=True)


# -- the API ------------------------------------------------------------------------------------

# A new or widened webhook starts at each branch's current seq: it gets events from now on, not
# the branch's history. A branch created later has no cursor and starts at 0, its beginning.
_START_CURSORS = text(
    """
    INSERT INTO webhook_cursors (webhook_id, branch, delivered_seq)
    SELECT :id, code, event_seq FROM branches
    WHERE CAST(:branches AS text[]) IS NULL OR code = ANY(CAST(:branches AS text[]))
    ON CONFLICT (webhook_id, branch) DO NOTHING
    """
)
# A branch no longer watched forgets its cursor, so that watching it again starts afresh.
_DROP_CURSORS = text(
    """
    DELETE FROM webhook_cursors
    WHERE webhook_id = :id AND CAST(:branches AS text[]) IS NOT NULL
      AND NOT branch = ANY(CAST(:branches AS text[]))
    """
)


async def put_webhook(
    session: AsyncSession, webhook_id: str, body: WebhookIn, now: datetime
) -> tuple[WebhookCreated, bool]:
    """Create or update; True when created. A secret is generated only for a new webhook that
    names none, and shown only in this answer; an update without one keeps the old secret."""
    generated = new_secret() if body.secret is None else None
    # Insert first, so that two PUTs of a new id at once do not both try to create it.
    created = await session.scalar(
        insert(Webhook)
        .values(
            id=webhook_id, url=body.url, secret=body.secret or generated, enabled=body.enabled,
            failures=0, created_at=now, updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(Webhook.id)
    )  # fmt: skip
    webhook = await session.get(Webhook, webhook_id, with_for_update=True, populate_existing=True)
    assert webhook is not None  # inserted, or there already (deletes wait for our lock)
    if body.enabled and not (created or webhook.enabled):
        # Re-enabled: deliver at once, from where the cursors stopped.
        webhook.failures = 0
        webhook.retry_at = webhook.failing_since = webhook.disabled_reason = None
    webhook.url = body.url
    webhook.events = [str(e) for e in body.events] if body.events is not None else None
    webhook.branches = body.branches
    webhook.secret = body.secret or webhook.secret
    webhook.enabled = body.enabled
    webhook.updated_at = now
    await session.flush()
    params = {"id": webhook_id, "branches": webhook.branches}
    await session.execute(_DROP_CURSORS, params)
    await session.execute(_START_CURSORS, params)
    await session.commit()
    answer = WebhookCreated.model_validate(webhook, from_attributes=True)
    answer.secret = generated if created else None
    return answer, created is not None


async def get_webhook(session: AsyncSession, webhook_id: str) -> Webhook:
    webhook = await session.get(Webhook, webhook_id)
    if webhook is None or webhook.kind != WEBHOOK_KIND:  # the SMS relay is not the API's
        raise not_found(f"webhook {webhook_id}")
    return webhook


async def list_webhooks(session: AsyncSession) -> list[WebhookOut]:
    rows = await session.scalars(
        select(Webhook).where(Webhook.kind == WEBHOOK_KIND).order_by(Webhook.id)
    )
    return [webhook_out(w) for w in rows]


async def delete_webhook(session: AsyncSession, webhook_id: str) -> None:
    """Its cursors and delivery log go with it (ON DELETE CASCADE)."""
    gone = await session.scalar(
        delete(Webhook)
        .where(Webhook.id == webhook_id, Webhook.kind == WEBHOOK_KIND)
        .returning(Webhook.id)
    )
    if gone is None:
        await session.rollback()
        raise not_found(f"webhook {webhook_id}")
    await session.commit()


async def recent_deliveries(
    session: AsyncSession, webhook_id: str, limit: int
) -> list[DeliveryOut]:
    """The latest attempts, newest first."""
    await get_webhook(session, webhook_id)
    rows = await session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == webhook_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    return [
        DeliveryOut(
            webhook_id=d.webhook_id,
            event=f"{d.branch}:{d.seq}",
            type=d.type,
            attempt=d.attempt,
            status_code=d.status_code,
            error=d.error,
            at=d.at,
        )
        for d in rows
    ]


# -- metrics ------------------------------------------------------------------------------------

# Events not yet delivered, per webhook: what each watched branch has committed past its cursor
# (events of types it does not want count until the cursor passes them).
_BACKLOG = text(
    """
    SELECT w.id, coalesce(sum(greatest(b.event_seq - coalesce(c.delivered_seq, 0), 0)), 0)
    FROM webhooks w
    LEFT JOIN branches b ON w.branches IS NULL OR b.code = ANY(w.branches)
    LEFT JOIN webhook_cursors c ON c.webhook_id = w.id AND c.branch = b.code
    GROUP BY w.id
    """
)


async def read_backlog(session: AsyncSession) -> dict[str, int]:
    return {wid: int(n) for wid, n in (await session.execute(_BACKLOG)).all()}


async def read_delivery_totals(session: AsyncSession) -> tuple[int, int]:
    """(delivered, failed) over every webhook that exists."""
    row = (
        await session.execute(
            select(
                func.coalesce(func.sum(WebhookCursor.delivered), 0),
                func.coalesce(func.sum(WebhookCursor.failed), 0),
            )
        )
    ).one()
    return int(row[0]), int(row[1])


# -- delivery: asyncpg statements for the delivering connection ----------------------------------

# Namespace of the cursors' advisory locks (the two-key form: namespace, hashtext(key)).
CURSOR_LOCK_NAMESPACE = 0x6877  # "hw"

# (webhook, branch) pairs with something to deliver now; $2 limits it to some branches.
DUE_SQL = """
    SELECT w.id, b.code
    FROM webhooks w
    JOIN branches b ON w.branches IS NULL OR b.code = ANY(w.branches)
    LEFT JOIN webhook_cursors c ON c.webhook_id = w.id AND c.branch = b.code
    WHERE w.enabled AND (w.retry_at IS NULL OR w.retry_at <= $1)
      AND b.event_seq > coalesce(c.delivered_seq, 0)
      AND ($2::text[] IS NULL OR b.code = ANY($2::text[]))
"""
ANY_ENABLED_SQL = "SELECT EXISTS (SELECT 1 FROM webhooks WHERE enabled)"
CLAIM_SQL = "SELECT pg_try_advisory_lock($1, hashtext($2 || '/' || $3))"
RELEASE_SQL = "SELECT pg_advisory_unlock($1, hashtext($2 || '/' || $3))"

# The webhook as it is now (it may have changed or stopped since the claim) and the cursor.
LOAD_SQL = """
    SELECT w.kind, w.url, w.secret, w.events, w.failures,
           coalesce(c.delivered_seq, 0) AS delivered_seq, coalesce(c.attempts, 0) AS attempts
    FROM webhooks w
    LEFT JOIN webhook_cursors c ON c.webhook_id = w.id AND c.branch = $2
    WHERE w.id = $1 AND w.enabled AND (w.retry_at IS NULL OR w.retry_at <= $3)
      AND (w.branches IS NULL OR $2 = ANY(w.branches))
"""
EVENTS_SQL = f"""
    SELECT seq, type, {ENVELOPE_SQL} AS envelope FROM branch_events
    WHERE branch = $1 AND seq > $2 ORDER BY seq LIMIT $3
"""  # noqa: S608 - a constant fragment

# Whether the webhook (still) watches the branch: a delivery that ends after the webhook was
# deleted, or the branch taken out of its `branches`, writes no cursor for it.
_WATCHING = """watching AS (
        SELECT 1 FROM webhooks WHERE id = $1 AND (branches IS NULL OR $2 = ANY(branches))
    )"""
# Delivered events ($4... one array each): the cursor moves to $3 (never back: after a rare double
# delivery, the later write wins), counts them, and the log gets an entry for each. With no
# events, only the cursor moves (past events the webhook does not want).
DELIVERED_SQL = f"""
    WITH {_WATCHING},
    moved AS (
        INSERT INTO webhook_cursors AS c (webhook_id, branch, delivered_seq, delivered)
        SELECT $1, $2, $3, cardinality($4::bigint[]) FROM watching
        ON CONFLICT (webhook_id, branch) DO UPDATE
        SET delivered_seq = greatest(c.delivered_seq, excluded.delivered_seq),
            attempts = CASE WHEN excluded.delivered > 0 THEN 0 ELSE c.attempts END,
            delivered = c.delivered + excluded.delivered
    )
    INSERT INTO webhook_deliveries (webhook_id, branch, seq, type, attempt, status_code, at)
    SELECT $1, $2, d.seq, d.type, d.attempt, d.status_code, d.at
    FROM watching, unnest($4::bigint[], $5::text[], $6::int[], $7::int[], $8::timestamptz[])
        AS d(seq, type, attempt, status_code, at)
"""  # noqa: S608 - constant fragments
# A success after failures: the endpoint works again.
RECOVERED_SQL = """
    UPDATE webhooks SET failures = 0, retry_at = NULL, failing_since = NULL
    WHERE id = $1 AND failures > 0
"""
# A failed attempt at the event after $3 (the cursor moves up to $3, past unwanted events): the
# cursor counts it, the log says why, and the webhook waits for the next step of `$9`
# (seconds); once it has failed for `$10` seconds it is disabled: `webhook_failing`. Branches
# delivered at the same moment fail together: only the first failure of a round moves the
# webhook a step along the backoff, the others find it waiting already.
FAILED_SQL = f"""
    WITH {_WATCHING},
    moved AS (
        INSERT INTO webhook_cursors AS c (webhook_id, branch, delivered_seq, attempts, failed)
        SELECT $1, $2, $3, 1, 1 FROM watching
        ON CONFLICT (webhook_id, branch) DO UPDATE
        SET delivered_seq = greatest(c.delivered_seq, excluded.delivered_seq),
            attempts = c.attempts + 1, failed = c.failed + 1
    ),
    logged AS (
        INSERT INTO webhook_deliveries
            (webhook_id, branch, seq, type, attempt, status_code, error, at)
        SELECT $1, $2, $4, $5, $6, $7, $11, $8 FROM watching
    )
    UPDATE webhooks SET
        failures = CASE WHEN retry_at > $8 THEN failures ELSE failures + 1 END,
        failing_since = coalesce(failing_since, $8),
        retry_at = CASE WHEN retry_at > $8 THEN retry_at ELSE $8 + make_interval(
            secs => ($9::float8[])[least(failures + 1, cardinality($9::float8[]))]) END,
        enabled = enabled AND $8 - coalesce(failing_since, $8) < make_interval(secs => $10),
        disabled_reason = CASE
            WHEN $8 - coalesce(failing_since, $8) >= make_interval(secs => $10)
            THEN $12 ELSE disabled_reason END
    WHERE id = $1
    RETURNING enabled
"""  # noqa: S608 - constant fragments
# Keep the latest `DELIVERIES_KEPT` attempts per webhook.
PRUNE_SQL = f"""
    DELETE FROM webhook_deliveries d
    USING (
        SELECT webhook_id, id FROM (
            SELECT webhook_id, id,
                   row_number() OVER (PARTITION BY webhook_id ORDER BY id DESC) AS n
            FROM webhook_deliveries
        ) ranked
        WHERE n = {DELIVERIES_KEPT}
    ) oldest_kept
    WHERE d.webhook_id = oldest_kept.webhook_id AND d.id < oldest_kept.id
"""  # noqa: S608 - a constant

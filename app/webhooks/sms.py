"""The SMS relay (SPEC §9): texts to customers' phones through the operator's SMS gateway.

With `HALLQ_SMS_URL` and `HALLQ_SMS_SECRET` set, a ticket with a phone number gets a text on
`ticket.near` and on `ticket.called`. The relay is a webhook of kind `sms` (id `_sms`, which the
API's ids cannot name, and which the API neither lists nor changes), so it is delivered exactly
like one: its own cursor per branch over the event log, in order, signed, retried with backoff,
shared by the processes. Only the body differs: `{kind, phone, text, ticket: {number, branch}}`,
made at delivery from the ticket as it is then. This is the only way a phone number leaves
hallq; a ticket without one (or whose number was erased with its day) is passed over.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.vocabulary import places

SMS_RELAY_ID = "_sms"
SMS_KIND = "sms"
SMS_EVENTS = ("ticket.near", "ticket.called")
EVENT_KINDS = {"ticket.near": "near", "ticket.called": "called"}
# When the branch has set none (SPEC §9: `sms_templates: {near, called}`).
DEFAULT_TEMPLATES = {
    "near": "【{branch}】您的号码 {number} 前面还有 {ahead} 位，请回到大厅等候叫号。",
    "called": "【{branch}】请 {number} 号到 {counter} 办理。",
}


@dataclass(frozen=True)
class RelaySettings:
    url: str
    secret: str


# Created (with cursors at every branch's current head: no texts for what happened before) or
# updated; switched back on when the environment names it again.
_PUT_RELAY = text(
    """
    WITH relay AS (
        INSERT INTO webhooks (id, kind, url, secret, events, enabled, failures, created_at,
                              updated_at)
        VALUES (:id, :kind, :url, :secret, CAST(:events AS text[]), true, 0, :now, :now)
        ON CONFLICT (id) DO UPDATE
        SET url = excluded.url, secret = excluded.secret, events = excluded.events,
            updated_at = excluded.updated_at,
            enabled = true, disabled_reason = NULL,
            failures = CASE WHEN webhooks.enabled THEN webhooks.failures ELSE 0 END,
            retry_at = CASE WHEN webhooks.enabled THEN webhooks.retry_at END,
            failing_since = CASE WHEN webhooks.enabled THEN webhooks.failing_since END
        RETURNING (xmax = 0) AS created
    )
    INSERT INTO webhook_cursors (webhook_id, branch, delivered_seq)
    SELECT :id, code, event_seq FROM branches WHERE (SELECT created FROM relay)
    ON CONFLICT (webhook_id, branch) DO NOTHING
    """
)
_STOP_RELAY = text("UPDATE webhooks SET enabled = false, updated_at = :now WHERE id = :id")


async def configure_sms_relay(
    session: AsyncSession, relay: RelaySettings | None, now: datetime
) -> None:
    """Make the relay what the environment says: on with its URL and secret, or off."""
    if relay is None:
        await session.execute(_STOP_RELAY, {"id": SMS_RELAY_ID, "now": now})
    else:
        await session.execute(
            _PUT_RELAY,
            {
                "id": SMS_RELAY_ID,
                "kind": SMS_KIND,
                "url": relay.url,
                "secret": relay.secret,
                "events": list(SMS_EVENTS),
                "now": now,
            },
        )
    await session.commit()


# The ticket as it is at delivery, its branch's name and wording, and the calling counter.
SMS_TICKET_SQL = """
    SELECT t.phone, t.number, b.name AS branch_name, b.sms_templates, c.name AS counter_name
    FROM tickets t
    JOIN branches b ON b.code = t.branch
    LEFT JOIN counters c ON c.branch = t.branch AND c.code = $3
    WHERE t.id = $1 AND t.branch = $2
"""


async def sms_body(
    conn: asyncpg.Connection, branch: str, event_type: str, envelope: str
) -> bytes | None:
    """The gateway's body for one event, or None when nothing is to be sent."""
    kind = EVENT_KINDS.get(event_type)
    if kind is None:
        return None
    data: dict[str, Any] = json.loads(envelope)["data"]
    counter = (data.get("counter") or {}).get("code")
    row = await conn.fetchrow(SMS_TICKET_SQL, uuid.UUID(data["ticket"]["id"]), branch, counter)
    if row is None or not row["phone"]:
        return None
    chosen = json.loads(row["sms_templates"] or "null") or {}  # JSON null: none chosen
    templates = {**DEFAULT_TEMPLATES, **chosen}
    words = {
        "number": row["number"],
        # as the lobby says it: a counter named "3" is 3号窗口
        "counter": places(row["counter_name"])[0] if row["counter_name"] else "",
        "ahead": data.get("waiting_ahead", ""),
        "branch": row["branch_name"],
    }
    body = {
        "kind": kind,
        "phone": row["phone"],
        "text": templates[kind].format(**words),
        "ticket": {"number": row["number"], "branch": branch},
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

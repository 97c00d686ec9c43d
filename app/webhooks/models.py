"""Webhooks: a subscription, its delivery cursor per branch, and the log of recent attempts.

A webhook's progress through a branch's event log is one row, `webhook_cursors`, advanced when
a delivery succeeds: recording an event writes nothing for webhooks (docs/decisions.md).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base


class Webhook(Base):
    __tablename__ = "webhooks"

    __table_args__ = (CheckConstraint("kind IN ('webhook', 'sms')", name="kind"),)

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    # `sms`: the SMS relay (app/webhooks/sms.py), set from the environment, not by the API.
    kind: Mapped[str] = mapped_column(Text, server_default="webhook")
    url: Mapped[str] = mapped_column(Text)
    # NULL: every event type, every branch.
    events: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    branches: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    # `whsec_…`, kept as given: delivery signs with it. Never logged, never returned again.
    secret: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=true())
    # The endpoint's current run of failures: how many, when to try again, since when.
    failures: Mapped[int] = mapped_column(Integer, server_default="0")
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Why delivery stopped by itself (`webhook_failing`); NULL while enabled or disabled by hand.
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebhookCursor(Base):
    """Where a webhook stands in one branch's event log: every event up to `delivered_seq` was
    delivered (or is not one it wants)."""

    __tablename__ = "webhook_cursors"

    webhook_id: Mapped[str] = mapped_column(
        Text, ForeignKey("webhooks.id", ondelete="CASCADE"), primary_key=True
    )
    branch: Mapped[str] = mapped_column(
        Text, ForeignKey("branches.code", ondelete="CASCADE"), primary_key=True
    )
    delivered_seq: Mapped[int] = mapped_column(BigInteger)
    # Failed attempts at the event after `delivered_seq` (the log's `attempt` counts from 1).
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    # hallq_webhook_deliveries_total, counted where every process can read it.
    delivered: Mapped[int] = mapped_column(BigInteger, server_default="0")
    failed: Mapped[int] = mapped_column(BigInteger, server_default="0")


class WebhookDelivery(Base):
    """One attempt at delivering one event (kept for the most recent attempts only)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_webhook_id_id", "webhook_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(Text, ForeignKey("webhooks.id", ondelete="CASCADE"))
    branch: Mapped[str] = mapped_column(Text)
    seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

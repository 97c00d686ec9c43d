"""Branches (营业厅), their business types (业务类型) and staff."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Integer,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base
from app.core.vocabulary import AnnouncementMode, sql_list

# The range of `announcement_rate` (app/branches/schemas.py refuses others with a 422).
ANNOUNCEMENT_RATE_MIN, ANNOUNCEMENT_RATE_MAX = 0.5, 2.0
ANNOUNCEMENT_REPEAT_MAX = 3
ANNOUNCEMENT_VOICE_MAX = 100
STAFF_NUMBER_MAX = 16
# Staffing (SPEC §11): the share of customers to call within target, and the weeks of history
# the forecast reads (app/branches/schemas.py refuses values outside these).
SERVICE_LEVEL_PCT_MIN, SERVICE_LEVEL_PCT_MAX = 1, 99
STAFFING_WEEKS_MIN, STAFFING_WEEKS_MAX = 1, 52


class Branch(Base):
    __tablename__ = "branches"
    __table_args__ = (
        CheckConstraint(
            f"announcement_mode IN {sql_list(AnnouncementMode)}", name="announcement_mode"
        ),
        CheckConstraint(
            f"announcement_repeat BETWEEN 1 AND {ANNOUNCEMENT_REPEAT_MAX}",
            name="announcement_repeat",
        ),
        CheckConstraint(
            f"announcement_rate BETWEEN {ANNOUNCEMENT_RATE_MIN} AND {ANNOUNCEMENT_RATE_MAX}",
            name="announcement_rate",
        ),
        CheckConstraint(
            f"char_length(announcement_voice) <= {ANNOUNCEMENT_VOICE_MAX}",
            name="announcement_voice",
        ),
        CheckConstraint(
            f"service_level_pct BETWEEN {SERVICE_LEVEL_PCT_MIN} AND {SERVICE_LEVEL_PCT_MAX}",
            name="service_level_pct",
        ),
        CheckConstraint(
            f"staffing_weeks BETWEEN {STAFFING_WEEKS_MIN} AND {STAFFING_WEEKS_MAX}",
            name="staffing_weeks",
        ),
    )

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(Text)
    # {"mon": [["09:00", "17:00"]], ...} in the branch's timezone; NULL means always open.
    hours: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # [{"from": "2026-07-01", "to": "2026-08-31", "hours": {...}}] in date order (SPEC §7): for
    # the dates of a range its hours replace `hours`. Validated by app/branches/schemas.py.
    special_hours: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    holidays: Mapped[list[str]] = mapped_column(JSONB, server_default="[]")
    issue_cutoff_min: Mapped[int] = mapped_column(Integer, server_default="0")
    min_open_counters: Mapped[int] = mapped_column(Integer, server_default="0")
    requeue_after: Mapped[int] = mapped_column(Integer, server_default="2")
    # The boundary of the business day in the branch's timezone (SPEC §5): numbers restart and
    # the day is closed out there.
    day_starts_at: Mapped[time] = mapped_column(Time, server_default="00:00")
    # Whether clerks may call a chosen ticket (SPEC §6); managers always may.
    clerks_may_pick: Mapped[bool] = mapped_column(Boolean, server_default="false")
    # Announcement wording per branch; NULL uses the built-in templates.
    announcement_zh: Mapped[str | None] = mapped_column(Text)
    announcement_en: Mapped[str | None] = mapped_column(Text)
    # How screens speak a call (browser voice, the server's audio, or either), how many times,
    # how fast (1.0: each engine's normal speed), and the browser voice screens prefer (a
    # name as the browser lists it; NULL: the display chooses a Chinese voice itself).
    announcement_mode: Mapped[str] = mapped_column(Text, server_default=AnnouncementMode.AUTO)
    announcement_repeat: Mapped[int] = mapped_column(Integer, server_default="1")
    announcement_rate: Mapped[float] = mapped_column(Double, server_default="1.0")
    announcement_voice: Mapped[str | None] = mapped_column(Text)
    # The customer's phone (SPEC §9): `ticket.near` once a waiting ticket has at most this many
    # ahead (NULL: never); remote join {enabled, daily_limit, services} (NULL: disabled); SMS
    # wording {near, called} (NULL: the built-in wording).
    notify_ahead: Mapped[int | None] = mapped_column(Integer, server_default="3")
    online_join: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    sms_templates: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    # Staffing (SPEC §11, app/staffing): the share of customers a plan must call within their
    # type's target wait, and the weeks of history its arrivals forecast reads.
    service_level_pct: Mapped[int] = mapped_column(Integer, server_default="80")
    staffing_weeks: Mapped[int] = mapped_column(Integer, server_default="8")
    # The last per-branch event sequence number handed out (see app.events.service).
    event_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Service(Base):
    """A business type: its own ticket prefix and daily number sequence."""

    __tablename__ = "services"
    __table_args__ = (
        UniqueConstraint("branch", "prefix"),
        CheckConstraint("target_wait_s > 0", name="target_wait_positive"),
    )

    branch: Mapped[str] = mapped_column(
        Text, ForeignKey("branches.code", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    prefix: Mapped[str] = mapped_column(Text)
    target_wait_s: Mapped[int] = mapped_column(Integer, server_default="600")
    # Starvation guard: a ticket waiting longer than this goes before priority tickets that have
    # not. NULL disables it for the type.
    max_wait_s: Mapped[int | None] = mapped_column(Integer)
    queue_alert_per_counter: Mapped[int] = mapped_column(Integer, server_default="10")
    # {"zh": ..., "en": ...}: shown by the kiosk after the choice and printed on the ticket;
    # NULL: no guide.
    guide: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Staff(Base):
    __tablename__ = "staff"
    __table_args__ = (
        CheckConstraint("role IN ('clerk', 'manager')", name="role"),
        CheckConstraint(f"char_length(number) <= {STAFF_NUMBER_MAX}", name="number"),
    )

    branch: Mapped[str] = mapped_column(
        Text, ForeignKey("branches.code", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    number: Mapped[str | None] = mapped_column(Text)  # 工号, optional
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

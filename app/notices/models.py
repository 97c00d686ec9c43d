"""Notices: a branch's announcements to its customers (hours, closures, the complaint hotline)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base

# The longest text of a notice, per language (app/notices/schemas.py refuses longer with a 422).
NOTICE_TEXT_MAX = 500


class Notice(Base):
    __tablename__ = "notices"
    __table_args__ = (
        CheckConstraint(f"char_length(text_zh) BETWEEN 1 AND {NOTICE_TEXT_MAX}", name="text_zh"),
        CheckConstraint(f"char_length(text_en) BETWEEN 1 AND {NOTICE_TEXT_MAX}", name="text_en"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
    )

    branch: Mapped[str] = mapped_column(
        Text, ForeignKey("branches.code", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(Text, primary_key=True)
    text_zh: Mapped[str] = mapped_column(Text)
    text_en: Mapped[str | None] = mapped_column(Text)
    # The notice is current from `starts_at` (inclusive) to `ends_at` (exclusive); NULL: open.
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Where it stands among the current notices: lower first, then by code.
    position: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

"""Counts that guard the public routes (SPEC §9)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base


class PublicRate(Base):
    """Public requests per client address and minute (UNLOGGED: a crash forgets the minute)."""

    __tablename__ = "public_rate"
    __table_args__ = {"prefixes": ["UNLOGGED"]}  # noqa: RUF012 - SQLAlchemy's own attribute

    address: Mapped[str] = mapped_column(Text, primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    requests: Mapped[int] = mapped_column(Integer)


class OnlineJoin(Base):
    """Remote joins counted per branch: per business day (`address` '', `window_start` the
    day's date at 00:00 UTC, a key only) for `daily_limit`, and per client address and hour."""

    __tablename__ = "online_joins"

    branch: Mapped[str] = mapped_column(Text, primary_key=True)
    address: Mapped[str] = mapped_column(Text, primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    joins: Mapped[int] = mapped_column(Integer)

"""API tokens. Only a hash of the secret is stored; the secret is shown once, at creation."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, DateTime, LargeBinary, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base


class ApiToken(Base):
    __tablename__ = "api_tokens"
    __table_args__ = (
        CheckConstraint(
            "role IN ('admin', 'manager', 'clerk', 'kiosk', 'display', 'monitor')", name="role"
        ),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary)
    role: Mapped[str] = mapped_column(Text)
    branch: Mapped[str | None] = mapped_column(Text)
    staff: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Written at most once a minute per token and process (app/auth/seen.py); not configuration.
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A kiosk out of service issues nothing (SPEC §7).
    out_of_service: Mapped[bool] = mapped_column(Boolean, server_default=false())

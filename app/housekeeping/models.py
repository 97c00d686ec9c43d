"""When each kind of housekeeping round last started, in any process: a round is claimed by the
one process that finds it due (app/housekeeping/service.py), not run by every process."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base


class HousekeepingTurn(Base):
    __tablename__ = "housekeeping_turns"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

"""Which server process has how many stream clients per branch, so that any process can report
the total (hallq_stream_clients) when Prometheus scrapes it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base


class StreamPresence(Base):
    __tablename__ = "stream_presence"

    process_id: Mapped[str] = mapped_column(Text, primary_key=True)
    branch: Mapped[str] = mapped_column(Text, primary_key=True)
    clients: Mapped[int] = mapped_column(Integer)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

"""Which server process has how many stream clients per branch, so that any process can report
the total (hallq_stream_clients) when Prometheus scrapes it. A process's counts count while its
heartbeat is fresh (app/stream/presence.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base


class StreamProcess(Base):
    __tablename__ = "stream_processes"

    process_id: Mapped[str] = mapped_column(Text, primary_key=True)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StreamPresence(Base):
    __tablename__ = "stream_presence"

    process_id: Mapped[str] = mapped_column(
        Text, ForeignKey("stream_processes.process_id", ondelete="CASCADE"), primary_key=True
    )
    branch: Mapped[str] = mapped_column(Text, primary_key=True)
    clients: Mapped[int] = mapped_column(Integer)

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from app.alerts.models import AlertKind
from app.counters.schemas import CounterOut


class ServiceQueue(BaseModel):
    service: str
    name: str
    prefix: str
    waiting: int
    longest_wait_s: int
    estimated_wait_s: int


class RecentCall(BaseModel):
    seq: int
    at: datetime
    type: str
    ticket: dict[str, Any]
    counter: dict[str, Any]
    announcement: dict[str, str] | None = None


class AlertOut(BaseModel):
    kind: AlertKind
    service: str | None = None
    counter: str | None = None
    since: datetime
    detail: str


class QueueView(BaseModel):
    branch: str
    services: list[ServiceQueue]
    counters: list[CounterOut]
    recent_calls: list[RecentCall]
    alerts: list[AlertOut]

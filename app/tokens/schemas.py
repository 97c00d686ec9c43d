from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from app.auth.permissions import Role
from app.core.codes import Code


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    branch: Code | None = None
    staff: Code | None = None
    label: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None


class TokenCreated(BaseModel):
    id: str
    token: str
    role: Role
    branch: str | None
    staff: str | None
    label: str | None
    created_at: datetime

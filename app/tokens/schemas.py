from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from app.auth.permissions import Role
from app.core.codes import Code

Label = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    branch: Code | None = None
    staff: Code | None = None
    label: Label | None = None
    # Only for a clerk's pairing link: the counter whose console it opens (docs/devices.md).
    counter: Code | None = None


class Pairing(BaseModel):
    """A device's pairing link and its QR code (SVG), returned once, at creation."""

    url: str
    qr_svg: str


class TokenCreated(BaseModel):
    id: str
    token: str
    role: Role
    branch: str | None
    staff: str | None
    label: str | None
    created_at: datetime
    pairing: Pairing | None = None


class TokenView(BaseModel):
    """A token as the device list shows it: never its secret (SPEC §7)."""

    id: str
    role: Role
    branch: str | None
    staff: str | None
    label: str | None
    created_at: datetime
    last_seen_at: datetime | None
    online: bool
    out_of_service: bool


class TokenPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Label | None = None
    out_of_service: bool | None = None

"""The webhooks API's bodies (SPEC §8): what a PUT may say, what the API shows."""

from __future__ import annotations

import base64
import binascii
import ipaddress
from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.core.codes import Code
from app.events.catalog import EventType

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix, not a secret
# Standard Webhooks keys are 24 to 64 bytes; hallq generates 32.
SECRET_MIN_BYTES = 24
SECRET_MAX_BYTES = 64
URL_MAX = 2000
URL_RULE = "https://, or http:// to a loopback address (127.0.0.0/8, ::1, localhost)"
LIST_MAX = 100


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """The URL rule of SPEC §8. Raises ValueError (a 422) saying which part is wrong."""
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError("a URL has no spaces or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # refuses a port that is not a number in range
    except ValueError as exc:
        raise ValueError("not a valid URL") from exc
    if not host:
        raise ValueError(f"the URL names no host; it must be {URL_RULE}")
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and _is_loopback(host):
        return url
    raise ValueError(f"the URL must be {URL_RULE}")


def check_secret(secret: str) -> str:
    """`whsec_` + base64 of 24 to 64 bytes."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a secret starts with {SECRET_PREFIX}")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"a secret is {SECRET_PREFIX} followed by base64") from exc
    if not SECRET_MIN_BYTES <= len(key) <= SECRET_MAX_BYTES:
        raise ValueError(
            f"a secret holds {SECRET_MIN_BYTES} to {SECRET_MAX_BYTES} bytes (after base64)"
        )
    return secret


WebhookUrl = Annotated[str, StringConstraints(min_length=8, max_length=URL_MAX)]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl = Field(description=f"where events are POSTed: {URL_RULE}")
    events: Annotated[list[EventType], Field(min_length=1, max_length=LIST_MAX)] | None = Field(
        default=None, description="the event types to deliver; omitted or null: all"
    )
    branches: Annotated[list[Code], Field(min_length=1, max_length=LIST_MAX)] | None = Field(
        default=None, description="the branches whose events to deliver; omitted or null: all"
    )
    secret: Annotated[str, StringConstraints(max_length=200)] | None = Field(
        default=None,
        description=f"{SECRET_PREFIX} + base64 of {SECRET_MIN_BYTES}-{SECRET_MAX_BYTES} bytes; "
        "omitted: one is generated when the webhook is created and returned once",
    )
    enabled: bool = Field(
        default=True,
        description="false pauses delivery; true (again) resumes where it stopped",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        return None if value is None else check_secret(value)

    @field_validator("events", "branches")
    @classmethod
    def _no_repeats(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("a list names each item once")
        return value


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[EventType] | None
    branches: list[str] | None
    enabled: bool
    failing_since: datetime | None = Field(
        description="the first of the current run of failed deliveries; null: none failing"
    )
    retry_at: datetime | None = Field(description="when delivery is tried again after a failure")
    disabled_reason: str | None = Field(
        description="`webhook_failing`: disabled after 24 h of failures; a PUT with "
        "`enabled: true` resumes where it stopped"
    )
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookOut):
    """The answer to a PUT: `secret` only when one was generated, this once."""

    secret: str | None = Field(
        default=None, description="the generated secret, shown only in this answer"
    )


class WebhookList(BaseModel):
    webhooks: list[WebhookOut]


class DeliveryOut(BaseModel):
    webhook_id: str
    event: str = Field(description="`<branch>:<seq>`, the `webhook-id` header")
    type: str
    attempt: int
    status_code: int | None
    error: str | None
    at: datetime


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]

"""Turning a bearer secret into a Principal (token management: app/tokens/).

A token reads `hq.<id>.<secret>`. The id finds the row; the secret is compared, in constant time,
as a SHA-256 hash (secrets are 256 random bits, so a plain hash is enough: there is nothing to
brute-force). The secret is returned once, at creation, and never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import ApiToken
from app.auth.permissions import Principal, Role
from app.core.config_cache import read_through
from app.core.errors import Problem

ADMIN_TOKEN_ID = "env-admin"  # noqa: S105 - an id, not a secret
_PREFIX = "hq"


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def new_token() -> tuple[str, str, str]:
    """A fresh (id, secret, token string)."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return token_id, secret, f"{_PREFIX}.{token_id}.{secret}"


def unauthorized(detail: str) -> Problem:
    return Problem(
        401,
        "unauthorized",
        detail,
        title="Unauthorized",
        headers={"WWW-Authenticate": 'Bearer realm="hallq"'},
    )


async def authenticate(
    session: AsyncSession, raw: str | None, admin_token: str | None
) -> Principal:
    if not raw:
        raise unauthorized("a bearer token is required (Authorization: Bearer <token>)")
    if admin_token and hmac.compare_digest(raw.encode(), admin_token.encode()):
        return Principal(role=Role.ADMIN, token_id=ADMIN_TOKEN_ID)
    parts = raw.split(".")
    if len(parts) != 3 or parts[0] != _PREFIX or not parts[1] or len(parts[1]) > 64:
        raise unauthorized("the token is not valid")
    row = await _token_row(session, parts[1])
    # Compare even when the row is missing, so timing does not tell ids apart.
    expected = row.secret_hash if row is not None else b"\0" * 32
    if not hmac.compare_digest(expected, hash_secret(parts[2])) or row is None:
        raise unauthorized("the token is not valid")
    if row.revoked:
        raise unauthorized("the token has been revoked")
    return row.principal


@dataclass(frozen=True)
class _TokenRow:
    """What authenticating needs of a token row; kept in the configuration cache."""

    secret_hash: bytes
    revoked: bool
    principal: Principal


async def _token_row(session: AsyncSession, token_id: str) -> _TokenRow | None:
    async def load() -> _TokenRow | None:
        row = await session.get(ApiToken, token_id)
        if row is None:
            return None
        principal = Principal(
            role=Role(row.role),
            token_id=row.id,
            branch=row.branch,
            staff=row.staff,
            out_of_service=row.out_of_service,
        )
        return _TokenRow(row.secret_hash, row.revoked_at is not None, principal)

    return await read_through(session, ("token", token_id), load)

"""Tokens: creating, revoking, and turning a bearer secret into a Principal.

A token reads `hq.<id>.<secret>`. The id finds the row; the secret is compared, in constant time,
as a SHA-256 hash (secrets are 256 random bits, so a plain hash is enough: there is nothing to
brute-force). The secret is returned once, at creation, and never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import ApiToken
from app.auth.permissions import MANAGER_GRANTABLE, Principal, Role, forbidden
from app.auth.schemas import TokenCreate
from app.branches.models import Branch, Staff
from app.core.config_cache import forget_config, read_through
from app.core.errors import Problem, not_found, unprocessable

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
            role=Role(row.role), token_id=row.id, branch=row.branch, staff=row.staff
        )
        return _TokenRow(row.secret_hash, row.revoked_at is not None, principal)

    return await read_through(session, ("token", token_id), load)


def _check_scope(body: TokenCreate) -> None:
    role = body.role
    if role in (Role.ADMIN, Role.MONITOR):
        if body.branch is not None or body.staff is not None:
            raise unprocessable("token-scope", f"a {role} token has no branch or staff")
        return
    if body.branch is None:
        raise unprocessable("token-scope", f"a {role} token needs a branch")
    if role is Role.CLERK and body.staff is None:
        raise unprocessable("token-scope", "a clerk token needs a staff member")
    if role not in (Role.CLERK, Role.MANAGER) and body.staff is not None:
        raise unprocessable("token-scope", f"a {role} token has no staff member")


async def create_token(
    session: AsyncSession, creator: Principal, body: TokenCreate, now: datetime
) -> tuple[ApiToken, str]:
    _check_scope(body)
    if not creator.is_admin:
        if creator.role is not Role.MANAGER:
            raise forbidden(f"a {creator.role} token may not manage tokens")
        if body.role not in MANAGER_GRANTABLE:
            raise forbidden(f"a manager may not create {body.role} tokens")
        if body.branch != creator.branch:
            raise forbidden("a manager may only create tokens for their own branch")
    if body.branch is not None and await session.get(Branch, body.branch) is None:
        raise unprocessable("unknown-branch", f"branch {body.branch} does not exist")
    if body.staff is not None:
        staff = await session.get(Staff, (body.branch, body.staff))
        if staff is None:
            raise unprocessable(
                "unknown-staff", f"staff {body.staff} does not exist in branch {body.branch}"
            )
    token_id, secret, token = new_token()
    row = ApiToken(
        id=token_id,
        secret_hash=hash_secret(secret),
        role=body.role.value,
        branch=body.branch,
        staff=body.staff,
        label=body.label,
        created_by=creator.token_id,
        created_at=now,
    )
    session.add(row)
    await session.commit()
    return row, token


async def revoke_token(
    session: AsyncSession, revoker: Principal, token_id: str, now: datetime
) -> None:
    row = await session.get(ApiToken, token_id)
    if row is None:
        raise not_found(f"token {token_id}")
    if not revoker.is_admin:
        allowed = (
            revoker.role is Role.MANAGER
            and row.branch == revoker.branch
            and Role(row.role) in MANAGER_GRANTABLE
        )
        if not allowed:
            raise forbidden(
                "a manager may only revoke clerk, kiosk and display tokens of their branch"
            )
    if row.revoked_at is None:
        await session.execute(
            update(ApiToken).where(ApiToken.id == token_id).values(revoked_at=now)
        )
    await session.commit()
    forget_config(session)

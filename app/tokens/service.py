"""Token management: creating and revoking the tokens of kiosks, screens, clerks and managers
(SPEC §2). A token's secret is returned once, at creation, and never stored (app/auth/service.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import ApiToken
from app.auth.permissions import MANAGER_GRANTABLE, Principal, Role, forbidden
from app.auth.service import hash_secret, new_token
from app.branches.models import Branch, Staff
from app.core.config_cache import forget_config
from app.core.errors import not_found, unprocessable
from app.tokens.schemas import TokenCreate


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

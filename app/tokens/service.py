"""Token management: creating and revoking the tokens of kiosks, screens, clerks and managers
(SPEC §2). A token's secret is returned once, at creation, and never stored (app/auth/service.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import ApiToken
from app.auth.permissions import MANAGER_GRANTABLE, Action, Principal, Role, forbidden
from app.auth.service import hash_secret, new_token
from app.branches.models import Branch, Staff
from app.core.config_cache import forget_config
from app.core.errors import not_found, unprocessable
from app.tokens.schemas import TokenCreate, TokenPatch


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
    if role not in (Role.CLERK, Role.DISPLAY) and body.counter is not None:
        raise unprocessable(
            "token-scope",
            "only a clerk's or a display's pairing link names a counter (its console, or the "
            "counter screen above it)",
        )


# Tokens sit below counters in the layers (.importlinter): the table, not the model.
_COUNTER_EXISTS = text("SELECT EXISTS (SELECT 1 FROM counters WHERE branch = :b AND code = :c)")


async def _counter_exists(session: AsyncSession, branch: str | None, counter: str) -> bool:
    return bool(await session.scalar(_COUNTER_EXISTS, {"b": branch, "c": counter}))


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
    if body.counter is not None and not await _counter_exists(session, body.branch, body.counter):
        raise unprocessable(
            "unknown-counter", f"counter {body.counter} does not exist in branch {body.branch}"
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


def _check_manages(principal: Principal, row: ApiToken, verb: str) -> None:
    """Admin manages every token; a manager the clerk, kiosk and display tokens of their
    branch."""
    if principal.is_admin:
        return
    allowed = (
        principal.role is Role.MANAGER
        and row.branch == principal.branch
        and Role(row.role) in MANAGER_GRANTABLE
    )
    if not allowed:
        raise forbidden(
            f"a manager may only {verb} clerk, kiosk and display tokens of their branch"
        )


async def revoke_token(
    session: AsyncSession, revoker: Principal, token_id: str, now: datetime
) -> None:
    row = await session.get(ApiToken, token_id)
    if row is None:
        raise not_found(f"token {token_id}")
    _check_manages(revoker, row, "revoke")
    if row.revoked_at is None:
        await session.execute(
            update(ApiToken).where(ApiToken.id == token_id).values(revoked_at=now)
        )
    await session.commit()
    forget_config(session)


def listed_branch(principal: Principal, branch: str | None) -> str | None:
    """The branch whose tokens `principal` may list (None: every branch, admin only)."""
    if principal.is_admin:
        return branch
    if principal.role is not Role.MANAGER:
        raise forbidden(f"a {principal.role} token may not {Action.MANAGE_TOKENS}")
    if branch is not None and branch != principal.branch:
        raise forbidden("a manager may only list the tokens of their own branch")
    return principal.branch


async def list_tokens(session: AsyncSession, branch: str | None) -> list[ApiToken]:
    """The live (unrevoked) tokens, of one branch or all, oldest first."""
    query = select(ApiToken).where(ApiToken.revoked_at.is_(None))
    if branch is not None:
        query = query.where(ApiToken.branch == branch)
    rows = await session.scalars(query.order_by(ApiToken.created_at, ApiToken.id))
    return list(rows)


async def live_token(session: AsyncSession, token_id: str) -> ApiToken:
    row = await session.get(ApiToken, token_id)
    if row is None or row.revoked_at is not None:
        raise not_found(f"token {token_id}")
    return row


async def patch_token(
    session: AsyncSession, principal: Principal, token_id: str, body: TokenPatch
) -> ApiToken:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    if not changes:
        raise unprocessable("empty-patch", "give label or out_of_service")
    if "out_of_service" in changes and changes["out_of_service"] is None:
        raise unprocessable("bad-out-of-service", "out_of_service is true or false, not null")
    row = await live_token(session, token_id)
    _check_manages(principal, row, "change")
    if changes.get("out_of_service") and row.role != Role.KIOSK:
        raise unprocessable("token-role", "only a kiosk token can be set out of service")
    for name, value in changes.items():
        setattr(row, name, value)
    await session.commit()  # the loaded row keeps its values: no read back
    # This process at once; the others by the token table's NOTIFY trigger (migration 0011).
    forget_config(session)
    return row

"""A per-token limit on issuing tickets: a stuck kiosk button or a script must not flood a
branch's queue. Counted in PostgreSQL (one upsert per issue, in a fixed one-minute window, inside
the issuing statement of app/tickets/issuing.py), so the limit holds however many server
processes the requests are spread over. Refused requests are counted too: the token is refused
until its minute is over either way."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.permissions import Principal
from app.core.errors import Problem

WINDOW = timedelta(minutes=1)

_FORGET_OLD = text("DELETE FROM issue_rate WHERE window_start < :before")
# An Idempotency-Key's claim matters while its original may still be in flight; once its ticket
# is committed, a retry finds the ticket itself. A day is plenty.
_FORGET_OLD_KEYS = text("DELETE FROM issue_keys WHERE claimed_at < :before")
KEY_CLAIM_KEPT = timedelta(days=1)


def limited_token(principal: Principal, per_minute: int) -> str | None:
    """The token whose issues are counted, or None: the admin token (operators, load tests) is
    not limited, and a limit of 0 turns it off."""
    if per_minute <= 0 or principal.is_admin:
        return None
    return principal.token_id


def window_start(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


def too_many_in_this_minute(kind: str, detail: str, now: datetime) -> Problem:
    """429 with Retry-After: the end of the minute (`detail` is followed by "try again in
    N s")."""
    retry_after = max(1, math.ceil((window_start(now) + WINDOW - now).total_seconds()))
    return Problem(
        429,
        kind,
        f"{detail}; try again in {retry_after} s",
        title="Too Many Requests",
        headers={"Retry-After": str(retry_after)},
        retry_after_s=retry_after,
    )


def too_many_tickets(per_minute: int, now: datetime) -> Problem:
    """429 with Retry-After: the end of the token's minute."""
    return too_many_in_this_minute(
        "too-many-tickets", f"this token may issue {per_minute} tickets a minute", now
    )


async def forget_old_counts_and_claims(session: AsyncSession, now: datetime) -> None:
    """Drop past minutes' counts and old Idempotency-Key claims."""
    async with session.begin():
        await session.execute(_FORGET_OLD, {"before": now - 2 * WINDOW})
        await session.execute(_FORGET_OLD_KEYS, {"before": now - KEY_CLAIM_KEPT})

"""A per-token limit on issuing tickets: a stuck kiosk button or a script must not flood a
branch's queue. Counted in PostgreSQL (one upsert per issue, in a fixed one-minute window), so
the limit holds however many server processes the requests are spread over."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.permissions import Principal
from app.core.errors import Problem

WINDOW = timedelta(minutes=1)


_COUNT_ISSUE = text(
    """
    INSERT INTO issue_rate (token_id, window_start, issued) VALUES (:token_id, :window_start, 1)
    ON CONFLICT (token_id, window_start) DO UPDATE SET issued = issue_rate.issued + 1
    RETURNING issued
    """
)

_FORGET_OLD = text("DELETE FROM issue_rate WHERE window_start < :before")


async def check_issue_rate(
    session: AsyncSession, principal: Principal, now: datetime, per_minute: int
) -> None:
    """Count this issue against the token's minute, in the caller's transaction; 429 with
    Retry-After beyond the limit.

    The admin token (operators, load tests) is not limited; 0 turns the limit off."""
    if per_minute <= 0 or principal.is_admin:
        return
    window_start = now.replace(second=0, microsecond=0)
    issued = (
        await session.execute(
            _COUNT_ISSUE, {"token_id": principal.token_id, "window_start": window_start}
        )
    ).scalar_one()
    # No commit of its own: the count commits with the ticket (one transaction, one WAL flush);
    # a refusal rolls it back, which leaves the token at its limit, still refused.
    if issued > per_minute:
        retry_after = max(1, math.ceil((window_start + WINDOW - now).total_seconds()))
        raise Problem(
            429,
            "too-many-tickets",
            f"this token may issue {per_minute} tickets a minute; try again in {retry_after} s",
            title="Too Many Requests",
            headers={"Retry-After": str(retry_after)},
            retry_after_s=retry_after,
        )


async def forget_old_windows(session: AsyncSession, now: datetime) -> None:
    async with session.begin():
        await session.execute(_FORGET_OLD, {"before": now - 2 * WINDOW})

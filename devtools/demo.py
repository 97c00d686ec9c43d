"""The demo branch `make run` creates in an empty database, so a new user can try hallq at once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.permissions import Principal, Role
from app.auth.service import ADMIN_TOKEN_ID
from app.branches.models import Branch
from app.branches.schemas import BranchIn, ServiceIn, StaffIn
from app.branches.service import put_branch, put_service, put_staff
from app.counters.schemas import CounterIn
from app.counters.service import put_counter
from app.tokens.schemas import TokenCreate
from app.tokens.service import create_token

DEMO_BRANCH = "demo"

SERVICES = {
    "a": ("套餐变更 / 增值业务 General business", "A", 600),
    "b": ("缴费充值 Bill payment & top-up", "B", 600),
    "c": ("新开户 New account", "C", 900),
    "d": ("销户 Account closure", "D", 900),
    "v": ("全球通 VIP", "V", 180),
}
COUNTERS = {
    "1": ["a", "b"],
    "2": ["b", "a"],
    "3": ["c", "a"],
    "4": ["d", "c"],
    "5": ["v", "a"],
}
STAFF = {
    "s1": ("王芳", "clerk"),
    "s2": ("李强", "clerk"),
    "s3": ("张伟", "clerk"),
    "m1": ("陈经理", "manager"),
}
TOKENS = [
    ("manager", "m1"),
    ("kiosk", None),
    ("display", None),
    ("clerk", "s1"),
    ("clerk", "s2"),
    ("clerk", "s3"),
]


async def database_is_empty(session: AsyncSession) -> bool:
    return (await session.scalar(select(func.count()).select_from(Branch))) == 0


async def seed_demo(session: AsyncSession, now: datetime) -> dict[str, str]:
    """Create the demo branch and its tokens; returns {label: token}."""
    await put_branch(
        session,
        DEMO_BRANCH,
        BranchIn(name="示范营业厅 Demo hall", timezone="Asia/Shanghai", min_open_counters=2),
        now,
    )
    for code, (name, prefix, target) in SERVICES.items():
        await put_service(
            session,
            DEMO_BRANCH,
            code,
            ServiceIn(name=name, prefix=prefix, target_wait_s=target),
            now,
        )
    for code, profile in COUNTERS.items():
        await put_counter(session, DEMO_BRANCH, code, CounterIn(name=code, services=profile), now)
    for code, (name, role) in STAFF.items():
        await put_staff(session, DEMO_BRANCH, code, StaffIn(name=name, role=role), now)
    admin = Principal(role=Role.ADMIN, token_id=ADMIN_TOKEN_ID)
    tokens: dict[str, str] = {}
    for role, staff in TOKENS:
        label = f"demo {role}" + (f" {staff}" if staff else "")
        _, secret = await create_token(
            session,
            admin,
            TokenCreate(role=Role(role), branch=DEMO_BRANCH, staff=staff, label=label),
            now,
        )
        tokens[label] = secret
    _, tokens["demo monitor"] = await create_token(
        session, admin, TokenCreate(role=Role.MONITOR, label="demo monitor"), now
    )
    return tokens

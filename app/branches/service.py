"""Configuring branches, business types and staff: idempotent create-or-update."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.branches.hours import Schedule, parse_day_start
from app.branches.models import Branch, Service, Staff
from app.branches.schemas import (
    Announcement,
    BranchConfigOut,
    BranchIn,
    BranchOut,
    BranchSummary,
    Guide,
    OnlineJoin,
    ServiceIn,
    ServiceOut,
    SmsTemplates,
    SpecialHoursRange,
    StaffCard,
    StaffIn,
    StaffOut,
)
from app.core.config_cache import forget_config
from app.core.errors import conflict, not_found
from app.core.vocabulary import AnnouncementMode


async def _upsert_and_commit(
    session: AsyncSession,
    model: type[Any],
    keys: dict[str, Any],
    values: dict[str, Any],
    now: datetime,
) -> bool:
    """INSERT .. ON CONFLICT DO UPDATE in one statement (safe under concurrent PUTs), then
    commit and drop the cached configuration. Returns True when the row was created."""
    stmt = (
        insert(model)
        .values(**keys, **values, created_at=now, updated_at=now)
        .on_conflict_do_update(index_elements=list(keys), set_={**values, "updated_at": now})
        .returning(text("(xmax = 0)"))  # xmax is 0 on a freshly inserted row
    )
    created = bool((await session.execute(stmt)).scalar_one())
    await session.commit()
    forget_config(session)
    return created


async def get_branch(session: AsyncSession, code: str) -> Branch:
    branch = await session.get(Branch, code)
    if branch is None:
        raise not_found(f"branch {code}")
    return branch


async def list_branches(session: AsyncSession, only: str | None) -> list[BranchSummary]:
    """Every branch by code, or the one named by `only` (a manager's own)."""
    query = select(Branch).order_by(Branch.code)
    if only is not None:
        query = query.where(Branch.code == only)
    return [
        BranchSummary(code=b.code, name=b.name, timezone=b.timezone)
        for b in await session.scalars(query)
    ]


def schedule_of(branch: Branch) -> Schedule:
    return Schedule.from_config(
        branch.timezone,
        branch.hours,
        branch.holidays,
        branch.issue_cutoff_min,
        branch.day_starts_at,
        branch.special_hours,
    )


async def put_branch(session: AsyncSession, code: str, body: BranchIn, now: datetime) -> bool:
    announcement = body.announcement or Announcement()
    values = {
        "name": body.name,
        "timezone": body.timezone,
        "hours": body.hours,
        "special_hours": [special.as_config() for special in body.special_hours],
        "holidays": sorted(d.isoformat() for d in body.holidays),
        "issue_cutoff_min": body.issue_cutoff_min,
        "min_open_counters": body.min_open_counters,
        "requeue_after": body.requeue_after,
        "announcement_zh": announcement.zh,
        "announcement_en": announcement.en,
        "announcement_mode": announcement.mode,
        "announcement_repeat": announcement.repeat,
        "announcement_rate": announcement.rate,
        "announcement_voice": announcement.voice,
        "day_starts_at": parse_day_start(body.day_starts_at),
        "clerks_may_pick": body.clerks_may_pick,
        "notify_ahead": body.notify_ahead,
        "online_join": body.online_join.model_dump() if body.online_join else None,
        "sms_templates": body.sms_templates.model_dump() if body.sms_templates else None,
        "service_level_pct": body.service_level_pct,
        "staffing_weeks": body.staffing_weeks,
    }
    return await _upsert_and_commit(session, Branch, {"code": code}, values, now)


def announcement_of(branch: Branch) -> Announcement:
    return Announcement(
        zh=branch.announcement_zh,
        en=branch.announcement_en,
        mode=AnnouncementMode(branch.announcement_mode),
        repeat=branch.announcement_repeat,
        rate=branch.announcement_rate,
        voice=branch.announcement_voice,
    )


def branch_out(branch: Branch) -> BranchOut:
    return BranchOut(
        code=branch.code,
        name=branch.name,
        timezone=branch.timezone,
        hours=branch.hours,
        special_hours=[SpecialHoursRange.model_validate(s) for s in branch.special_hours],
        holidays=[date.fromisoformat(d) for d in branch.holidays],
        issue_cutoff_min=branch.issue_cutoff_min,
        min_open_counters=branch.min_open_counters,
        requeue_after=branch.requeue_after,
        announcement=announcement_of(branch),
        day_starts_at=branch.day_starts_at.strftime("%H:%M"),
        clerks_may_pick=branch.clerks_may_pick,
        notify_ahead=branch.notify_ahead,
        online_join=online_join_of(branch),
        sms_templates=SmsTemplates.model_validate(branch.sms_templates)
        if branch.sms_templates
        else None,
        service_level_pct=branch.service_level_pct,
        staffing_weeks=branch.staffing_weeks,
    )


def online_join_of(branch: Branch) -> OnlineJoin:
    """The branch's remote join settings (disabled when never set)."""
    return OnlineJoin.model_validate(branch.online_join or {})


async def put_service(
    session: AsyncSession, branch: str, code: str, body: ServiceIn, now: datetime
) -> bool:
    await get_branch(session, branch)
    values = body.model_dump()
    try:
        return await _upsert_and_commit(
            session, Service, {"branch": branch, "code": code}, values, now
        )
    except IntegrityError as exc:
        await session.rollback()
        if "uq_services_branch_prefix" in str(exc.orig):
            owner = await session.scalar(
                select(Service.code).where(Service.branch == branch, Service.prefix == body.prefix)
            )
            raise conflict(
                "prefix-taken",
                f"prefix {body.prefix} is already used by business type {owner} in branch {branch}",
            ) from None
        raise


def service_out(service: Service) -> ServiceOut:
    return ServiceOut(
        code=service.code,
        name=service.name,
        prefix=service.prefix,
        target_wait_s=service.target_wait_s,
        max_wait_s=service.max_wait_s,
        queue_alert_per_counter=service.queue_alert_per_counter,
        guide=None if service.guide is None else Guide.model_validate(service.guide),
    )


# The branch's business types in `list_services`' order, as one value: an array of records of
# code, name and prefix (NULL: none), for the queue view's statement. Parameter: :branch.
SERVICES_COLUMN = """(SELECT array_agg(ROW(s.code, s.name, s.prefix) ORDER BY s.prefix, s.code)
                      FROM services s WHERE s.branch = :branch)"""


async def list_services(session: AsyncSession, branch: str) -> list[Service]:
    rows = await session.scalars(
        select(Service).where(Service.branch == branch).order_by(Service.prefix, Service.code)
    )
    return list(rows)


async def get_service(session: AsyncSession, branch: str, code: str) -> Service:
    service = await session.get(Service, (branch, code))
    if service is None:
        raise not_found(f"business type {code} in branch {branch}")
    return service


async def put_staff(
    session: AsyncSession, branch: str, code: str, body: StaffIn, now: datetime
) -> bool:
    await get_branch(session, branch)
    return await _upsert_and_commit(
        session,
        Staff,
        {"branch": branch, "code": code},
        {"name": body.name, "role": body.role, "number": body.number},
        now,
    )


async def list_staff(session: AsyncSession, branch: str) -> list[StaffOut]:
    """The staff of a branch with their roles (the console edits them)."""
    await get_branch(session, branch)
    rows = await session.scalars(select(Staff).where(Staff.branch == branch).order_by(Staff.code))
    return [StaffOut(code=p.code, name=p.name, role=p.role, number=p.number) for p in rows]


async def branch_config(session: AsyncSession, code: str) -> BranchConfigOut:
    branch = await get_branch(session, code)
    services = await list_services(session, code)
    staff = await session.scalars(select(Staff).where(Staff.branch == code).order_by(Staff.code))
    return BranchConfigOut(
        **branch_out(branch).model_dump(),
        services=[service_out(s) for s in services],
        staff=[StaffCard(code=p.code, name=p.name, number=p.number) for p in staff],
    )

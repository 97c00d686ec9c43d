"""Notices: create-or-update, delete, list, and the current ones for the queue view.

Every change records a `notices.changed` event carrying the branch's current notices after it.
Changes of one branch's notices take turns on a per-branch advisory lock taken first, so the
list each event carries includes every change committed before it: the last event a screen has
seen is the truth (the branch row lock that `record_events` takes last only orders commits).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.branches.service import get_branch
from app.core.errors import not_found, unprocessable
from app.events.catalog import NoticesChanged, NoticeText, NoticeView
from app.events.service import NewEvent, record_events
from app.notices.models import Notice
from app.notices.schemas import NoticeIn, NoticeOut

# Namespace of the notices' advisory locks (the two-key form: namespace, hashtext(branch)).
NOTICE_LOCK_NAMESPACE = 0x686E  # "hn"
_LOCK = text("SELECT pg_advisory_xact_lock(:ns, hashtext(:branch))")


class Shown(Protocol):
    """What the queue view shows of a notice: a `Notice`, or a row of `NOTICES_COLUMN`."""

    @property
    def code(self) -> str: ...
    @property
    def text_zh(self) -> str: ...
    @property
    def text_en(self) -> str | None: ...
    @property
    def starts_at(self) -> datetime | None: ...
    @property
    def ends_at(self) -> datetime | None: ...


class NoticeRow(NamedTuple):
    code: str
    text_zh: str
    text_en: str | None
    starts_at: datetime | None
    ends_at: datetime | None


# Every notice of the branch in display order (`order`, then code) as one value, an array of
# records of NoticeRow's fields (NULL: none), for the queue view's statement. Parameter: :branch.
NOTICES_COLUMN = """(SELECT array_agg(ROW(n.code, n.text_zh, n.text_en, n.starts_at, n.ends_at)
                                ORDER BY n.position, n.code)
                      FROM notices n WHERE n.branch = :branch)"""


def is_current(notice: Shown, now: datetime) -> bool:
    """`from` <= now < `to`, a missing bound open."""
    started = notice.starts_at is None or notice.starts_at <= now
    return started and (notice.ends_at is None or now < notice.ends_at)


def next_change(notices: Sequence[Shown], now: datetime) -> datetime | None:
    """The next instant after `now` at which a notice becomes current or ends, if any."""
    bounds = [b for n in notices for b in (n.starts_at, n.ends_at) if b is not None and b > now]
    return min(bounds, default=None)


def notice_text(notice: Shown) -> NoticeText:
    return NoticeText(zh=notice.text_zh, en=notice.text_en)


def notice_out(notice: Notice, now: datetime) -> NoticeOut:
    return NoticeOut(
        code=notice.code,
        text=notice_text(notice),
        from_=notice.starts_at,
        to=notice.ends_at,
        order=notice.position,
        current=is_current(notice, now),
    )


@dataclass(frozen=True)
class CurrentNotices:
    """What the queue view shows: the current notices, and when that list changes by itself."""

    notices: list[NoticeView]
    change_at: datetime | None


async def _all(session: AsyncSession, branch: str) -> list[Notice]:
    """Every notice of the branch in display order (`order`, then code)."""
    rows = await session.scalars(
        select(Notice)
        .where(Notice.branch == branch)
        .order_by(Notice.position, Notice.code)
        .execution_options(populate_existing=True)  # as written by this session's upsert
    )
    return list(rows)


async def current_notices(session: AsyncSession, branch: str, now: datetime) -> CurrentNotices:
    return current_among(await _all(session, branch), now)


def current_in_column(rows: Iterable[Sequence[Any]] | None, now: datetime) -> CurrentNotices:
    """The current notices from the value of `NOTICES_COLUMN`."""
    return current_among([NoticeRow(*row) for row in rows or ()], now)


def current_among(notices: Sequence[Shown], now: datetime) -> CurrentNotices:
    """The current ones of `notices` (in display order)."""
    return CurrentNotices(
        notices=[
            NoticeView(code=n.code, text=notice_text(n)) for n in notices if is_current(n, now)
        ],
        change_at=next_change(notices, now),
    )


async def list_notices(session: AsyncSession, branch: str, now: datetime) -> list[NoticeOut]:
    await get_branch(session, branch)
    return [notice_out(n, now) for n in await _all(session, branch)]


async def get_notice(session: AsyncSession, branch: str, code: str) -> Notice:
    notice = await session.get(Notice, (branch, code))
    if notice is None:
        raise not_found(f"notice {code} of branch {branch}")
    return notice


def _check_period(body: NoticeIn) -> None:
    if body.from_ is not None and body.to is not None and body.to <= body.from_:
        raise unprocessable(
            "notice-period",
            f"`to` ({body.to.isoformat()}) must be after `from` ({body.from_.isoformat()})",
        )


async def _begin_change(session: AsyncSession, branch: str) -> None:
    await get_branch(session, branch)
    await session.execute(_LOCK, {"ns": NOTICE_LOCK_NAMESPACE, "branch": branch})


async def _record_change(session: AsyncSession, branch: str, now: datetime) -> None:
    """Record `notices.changed` with the current list, then commit."""
    current = await current_notices(session, branch, now)
    await record_events(session, branch, now, [NewEvent(NoticesChanged(notices=current.notices))])
    await session.commit()


async def put_notice(
    session: AsyncSession, branch: str, code: str, body: NoticeIn, now: datetime
) -> bool:
    """Create or update a notice; True when it was created."""
    _check_period(body)
    await _begin_change(session, branch)
    values = {
        "text_zh": body.text.zh,
        "text_en": body.text.en,
        "starts_at": body.from_,
        "ends_at": body.to,
        "position": body.order,
    }
    stmt = (
        insert(Notice)
        .values(branch=branch, code=code, **values, created_at=now, updated_at=now)
        .on_conflict_do_update(
            index_elements=["branch", "code"], set_={**values, "updated_at": now}
        )
        .returning(text("(xmax = 0)"))  # xmax is 0 on a freshly inserted row
    )
    created = bool((await session.execute(stmt)).scalar_one())
    await _record_change(session, branch, now)
    return created


async def delete_notice(session: AsyncSession, branch: str, code: str, now: datetime) -> None:
    await _begin_change(session, branch)
    gone = await session.scalar(
        delete(Notice).where(Notice.branch == branch, Notice.code == code).returning(Notice.code)
    )
    if gone is None:
        await session.rollback()
        raise not_found(f"notice {code} of branch {branch}")
    await _record_change(session, branch, now)

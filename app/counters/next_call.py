"""The clerk's `next` in one round trip: `next_sql` (next_statement.py) completes the current
ticket, calls the best waiting one and writes the history, autocommitted; a second statement
tells the tickets the call brought near, only when there are any (app/queue/near_after_commit.py).
Why, and what it changed: docs/decisions.md, "next in one round trip"."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Row, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.permissions import Principal, Role
from app.branches.models import Branch
from app.branches.service import get_branch
from app.core.config_cache import read_through, session_cache
from app.core.database import execute_alone
from app.core.errors import Problem, not_found
from app.core.partitions import live_week
from app.core.settings import Settings
from app.core.vocabulary import AnnouncementMode
from app.counters.action import ActionResult, check_operator, state_conflict
from app.counters.announcement import CallPattern, call_pattern
from app.counters.models import Counter
from app.counters.next_statement import next_sql
from app.counters.service import counter_out
from app.events.notifier import notify_after_commit
from app.queue.near import untold
from app.queue.near_after_commit import check_near, hall_after_commit, tell_near
from app.tickets.models import Ticket

# A stale configuration or a current ticket the statement's snapshot could not see (called
# after it began): the statement wrote nothing; it runs again, this many times at most.
ATTEMPTS = 3
_TICKET_COLUMNS = [(attr.key, attr.columns[0].name) for attr in inspect(Ticket).column_attrs]


@dataclass(frozen=True)
class CallConfig:
    """What the call is rendered from before the statement runs, kept in the configuration
    cache. The statement compares it with the rows it locks and writes nothing if it is stale."""

    counter_name: str
    profile: tuple[str, ...]
    requeue_after: int
    zh_template: str | None
    en_template: str | None
    mode: str
    rate: float

    def pattern(self, branch: str, counter: str) -> CallPattern:
        return call_pattern(
            branch=branch,
            counter=counter,
            counter_name=self.counter_name,
            zh_template=self.zh_template,
            en_template=self.en_template,
            audio=self.mode != AnnouncementMode.BROWSER,
            rate=self.rate,
        )


def _cache_key(branch: str, counter: str) -> Hashable:
    return ("call", branch, counter)


async def _call_config(session: AsyncSession, branch: str, code: str) -> CallConfig:
    async def load() -> CallConfig | None:
        row = (
            await session.execute(
                select(
                    Counter.name,
                    Counter.services,
                    Branch.requeue_after,
                    Branch.announcement_zh,
                    Branch.announcement_en,
                    Branch.announcement_mode,
                    Branch.announcement_rate,
                )
                .join(Branch, Branch.code == Counter.branch)
                .where(Counter.branch == branch, Counter.code == code)
            )
        ).first()
        return None if row is None else CallConfig(row[0], tuple(row[1]), *row[2:])

    config = await read_through(session, _cache_key(branch, code), load)
    if config is None:
        await get_branch(session, branch)  # 404 for the branch if that is what is missing
        raise not_found(f"counter {code} in branch {branch}")
    return config


def _config_seen(row: Row[Any]) -> CallConfig:
    """The configuration as the statement found it."""
    return CallConfig(
        row.counter_name,
        tuple(row.counter_services),
        row.branch_requeue_after,
        row.branch_zh,
        row.branch_en,
        row.branch_mode,
        row.branch_rate,
    )


def _params(
    branch: str,
    code: str,
    principal: Principal,
    now: datetime,
    config: CallConfig,
    pattern: CallPattern,
) -> dict[str, object]:
    return {
        "branch": branch,
        "now": now,
        "counter": code,
        "counter_name": config.counter_name,
        "profile": list(config.profile),
        "requeue_after": config.requeue_after,
        "zh_template": config.zh_template,
        "en_template": config.en_template,
        "mode": config.mode,
        "rate": config.rate,
        "any_counter": principal.role in (Role.ADMIN, Role.MANAGER),
        "clerk": principal.staff if principal.role is Role.CLERK else None,
        "principal_staff": principal.staff,
        "zh_words": pattern.zh,
        "en_words": pattern.en,
        "audio_path": pattern.audio_path,
        "audio_material": pattern.audio_material,
        "number_mark": pattern.number_mark,
        "version_mark": pattern.version_mark,
    }


async def call_next(
    session: AsyncSession,
    branch: str,
    code: str,
    principal: Principal,
    now: datetime,
    settings: Settings,
) -> ActionResult:
    """Complete the current ticket (if any) and call the best waiting one, atomically.
    The result's ticket is None when nobody waits for this counter."""
    config = await _call_config(session, branch, code)
    press = _Press(session, branch, code, principal, now, settings)
    return await press.run(config)


@dataclass(frozen=True)
class _Press:
    """One press of `next`: who pressed it where, and when."""

    session: AsyncSession
    branch: str
    code: str
    principal: Principal
    now: datetime
    settings: Settings

    async def run(self, config: CallConfig) -> ActionResult:
        session, branch, code = self.session, self.branch, self.code
        cache = session_cache(session)
        # The live weeks only, unless the counter holds a ticket of an older one.
        week: date | None = live_week(self.now)
        for _attempt in range(ATTEMPTS):
            pattern = config.pattern(branch, code)
            generation = cache.generation if cache is not None else 0
            params = _params(branch, code, self.principal, self.now, config, pattern)
            row = (await execute_alone(session, next_sql(week), params, self.settings))[0]
            await self._refuse(row)
            if not row.current_planned:
                week = None
            if not row.config_ok:
                config = _config_seen(row)
                if cache is not None:
                    cache.put(_cache_key(branch, code), config, generation)
                continue
            if row.current_seen and row.current_planned:
                return await self._called(config, row)
        await session.commit()
        raise Problem(409, "counter-busy", f"counter {code} kept changing; press next again")

    async def _refuse(self, row: Row[Any]) -> None:
        """The 404, 403 or 409 of a statement that wrote nothing, in the order `begin_action`
        checks them."""
        if row.counter_found and row.operator_ok and row.state_ok:
            return
        await self.session.commit()
        if not row.counter_found:
            await get_branch(self.session, self.branch)
            raise not_found(f"counter {self.code} in branch {self.branch}")
        seen = Counter(code=self.code, state=row.counter_state, staff=row.counter_staff)
        check_operator(self.principal, seen)
        raise state_conflict(seen, "call the next ticket")

    async def _called(self, config: CallConfig, row: Row[Any]) -> ActionResult:
        """After the statement: notify its events, tell the tickets its call brought near, and
        answer with the counter and the called ticket."""
        logged = zip(row.logged_seqs, row.logged_envelopes, strict=True)
        notify_after_commit(self.session, self.branch, list(logged))
        await self.session.commit()
        called = None
        if row.id is not None:
            called = Ticket(**{key: row._mapping[name] for key, name in _TICKET_COLUMNS})
            await self._tell_near(config, row)
        counter = Counter(
            code=self.code,
            name=row.counter_name,
            state=row.counter_state,
            services=list(row.counter_services),
            staff=row.counter_staff,
        )
        return ActionResult(counter_out(counter, called), called)

    async def _tell_near(self, config: CallConfig, row: Row[Any]) -> None:
        """The near check of a call: from the statement's own read when it saw everything
        committed before it (then only when its call brought a ticket near, with the hall read
        now, after the commit, for their estimates), else by a read of its own (a concurrent
        change committed in between)."""
        session, branch, now, settings = self.session, self.branch, self.now, self.settings
        if not row.fresh:
            await check_near(session, branch, config.profile, now, settings)
            return
        near = untold(row.untold)
        if near:
            hall = await hall_after_commit(session, branch, now, settings)
            await tell_near(session, branch, now, near, hall, settings)

"""Alerts (SPEC §1): which conditions hold now, and raising and clearing them as events.

`desired_alerts` is the rule, a pure function of the branch's state; `evaluate_branch` compares
it with the active alerts and writes the difference. Several server processes may evaluate at
once: a per-branch advisory lock taken for the transaction lets only one of them do a branch at
a time, and the one that comes second sees what the first committed, so each alert is raised
once (the partial unique index `uq_alerts_active` is the backstop).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.alerts.models import Alert
from app.alerts.schemas import AlertOut
from app.branches.models import Branch
from app.branches.service import schedule_of
from app.core.clock import Clock
from app.core.vocabulary import AlertKind
from app.events.catalog import AlertCleared, AlertRaised
from app.events.service import NewEvent, record_events
from app.queue.ordering import WAITING_FOR_TYPE, type_cutoffs_cte

# Namespace of the advisory locks (the two-key form: namespace, hashtext(branch)).
ALERT_LOCK_NAMESPACE = 0x6871  # "hq"


@dataclass(frozen=True)
class ServiceState:
    service: str
    target_wait_s: int
    queue_alert_per_counter: int
    waiting: int
    over_target: int  # waiting tickets past target_wait_s
    open_counters: int  # counters in state `open` whose profile includes the type


@dataclass(frozen=True)
class BranchState:
    in_hours: bool
    min_open_counters: int
    open_counters: int
    services: Sequence[ServiceState]


@dataclass(frozen=True)
class AlertCondition:
    kind: AlertKind
    subject: str  # the service or counter code, '' for the branch
    service: str | None
    counter: str | None
    detail: str


def desired_alerts(state: BranchState) -> dict[tuple[str, str], AlertCondition]:
    """The alerts that should be active for this state, keyed by (kind, subject)."""
    wanted: dict[tuple[str, str], AlertCondition] = {}
    for svc in state.services:
        if svc.over_target > 0:
            wanted[(AlertKind.LONG_WAIT, svc.service)] = AlertCondition(
                AlertKind.LONG_WAIT,
                svc.service,
                svc.service,
                None,
                f"{svc.over_target} waiting past the {svc.target_wait_s} s target for "
                f"{svc.service}",
            )
        # Waiting per open counter; with no counter open, any queue past the threshold counts.
        if svc.waiting > svc.queue_alert_per_counter * max(svc.open_counters, 1):
            wanted[(AlertKind.QUEUE_LENGTH, svc.service)] = AlertCondition(
                AlertKind.QUEUE_LENGTH,
                svc.service,
                svc.service,
                None,
                f"{svc.waiting} waiting for {svc.service} at {svc.open_counters} open "
                f"counter(s), above {svc.queue_alert_per_counter} per counter",
            )
    if state.in_hours and state.open_counters < state.min_open_counters:
        wanted[(AlertKind.TOO_FEW_COUNTERS, "")] = AlertCondition(
            AlertKind.TOO_FEW_COUNTERS,
            "",
            None,
            None,
            f"{state.open_counters} counter(s) open, the branch minimum is "
            f"{state.min_open_counters}",
        )
    return wanted


# The state of several branches at once: the evaluator surveys every branch in one round trip
# per statement rather than a transaction per branch (evaluate_all_branches).
_SERVICE_STATES = text(
    f"""
    WITH {type_cutoffs_cte("s.branch = ANY(CAST(:branches AS text[]))")}
    SELECT s.branch, s.code, s.target_wait_s, s.queue_alert_per_counter,
           count(t.id) AS waiting,
           count(t.id) FILTER (
               WHERE t.issued_at
                     < CAST(:now AS timestamptz) - make_interval(secs => s.target_wait_s)
           ) AS over_target,
           (SELECT count(*) FROM counters c
             WHERE c.branch = s.branch AND c.state = 'open' AND s.code = ANY(c.services))
               AS open_counters
    FROM services s
    JOIN type_cutoffs tc ON tc.branch = s.branch AND tc.code = s.code
    LEFT JOIN tickets t ON {WAITING_FOR_TYPE}
    GROUP BY s.branch, s.code, s.target_wait_s, s.queue_alert_per_counter
    ORDER BY s.branch, s.code
    """  # noqa: S608 - constant fragments
)

_OPEN_COUNTERS = text(
    """
    SELECT branch, count(*) FROM counters
    WHERE branch = ANY(CAST(:branches AS text[])) AND state = 'open'
    GROUP BY branch
    """
)


async def read_branch_states(
    session: AsyncSession, branches: Sequence[Branch], now: datetime
) -> dict[str, BranchState]:
    """The state of each of `branches`, by branch code."""
    codes = [branch.code for branch in branches]
    params = {"branches": codes, "now": now}
    services: dict[str, list[ServiceState]] = {code: [] for code in codes}
    rows = (await session.execute(_SERVICE_STATES, params)).all()
    for branch, code, target, per_counter, waiting, over, open_counters in rows:
        services[branch].append(
            ServiceState(
                service=code,
                target_wait_s=target,
                queue_alert_per_counter=per_counter,
                waiting=waiting,
                over_target=over,
                open_counters=open_counters,
            )
        )
    open_by_branch = {code: count for code, count in await session.execute(_OPEN_COUNTERS, params)}
    return {
        branch.code: BranchState(
            in_hours=schedule_of(branch).is_business_hours(now),
            min_open_counters=branch.min_open_counters,
            open_counters=open_by_branch.get(branch.code, 0),
            services=services[branch.code],
        )
        for branch in branches
    }


def alert_out(alert: Alert) -> AlertOut:
    return AlertOut.model_validate(alert, from_attributes=True)


# The branch's active alerts as `active_alerts` orders them, as one value: an array of records
# of AlertOut's fields (NULL: none), for the queue view's statement. Parameter: :branch.
ACTIVE_ALERTS_COLUMN = """(SELECT array_agg(ROW(a.kind, a.service, a.counter, a.since, a.detail)
                                     ORDER BY a.since, a.id)
                           FROM alerts a WHERE a.branch = :branch AND a.cleared_at IS NULL)"""


def alerts_in_column(rows: Iterable[Sequence[Any]] | None) -> list[AlertOut]:
    """The alerts from the value of `ACTIVE_ALERTS_COLUMN`."""
    return [
        AlertOut(kind=kind, service=service, counter=counter, since=since, detail=detail)
        for kind, service, counter, since, detail in rows or ()
    ]


def _raised(alert: Alert) -> NewEvent:
    return NewEvent(AlertRaised.model_validate(alert, from_attributes=True), counter=alert.counter)


def _cleared(alert: Alert) -> NewEvent:
    data = AlertCleared.model_validate(alert, from_attributes=True)  # cleared_at is set
    return NewEvent(data, counter=alert.counter)


async def active_alerts(session: AsyncSession, branch: str | None = None) -> list[Alert]:
    """The active alerts of `branch` (None: of every branch)."""
    query = select(Alert).where(Alert.cleared_at.is_(None)).order_by(Alert.since, Alert.id)
    if branch is not None:
        query = query.where(Alert.branch == branch)
    return list((await session.execute(query)).scalars())


async def evaluate_branch(session: AsyncSession, branch_code: str, now: datetime) -> int:
    """Raise and clear the branch's alerts in one transaction; returns how many changed.

    Returns -1 without doing anything if another process is evaluating the branch right now.
    """
    async with session.begin():
        locked = (
            await session.execute(
                text("SELECT pg_try_advisory_xact_lock(:ns, hashtext(:branch))"),
                {"ns": ALERT_LOCK_NAMESPACE, "branch": branch_code},
            )
        ).scalar_one()
        if not locked:
            return -1
        branch = await session.get(Branch, branch_code)
        if branch is None:
            return 0
        wanted = desired_alerts((await read_branch_states(session, [branch], now))[branch_code])
        active = {(a.kind, a.subject): a for a in await active_alerts(session, branch_code)}
        events: list[NewEvent] = []
        for key, alert in active.items():
            if key not in wanted:
                alert.cleared_at = now
                events.append(_cleared(alert))
        for key, condition in wanted.items():
            if key in active:
                # Still on: keep its `since`, refresh what it says (the queue view shows it).
                active[key].detail = condition.detail
                continue
            alert = Alert(
                branch=branch_code,
                kind=condition.kind,
                subject=condition.subject,
                service=condition.service,
                counter=condition.counter,
                since=now,
                detail=condition.detail,
            )
            session.add(alert)
            events.append(_raised(alert))
        await session.flush()
        if events:
            await record_events(session, branch_code, now, events)
        return len(events)


@dataclass(frozen=True)
class Survey:
    """What a look at every branch found: where alerts must be raised or cleared, and the
    active alerts whose condition still holds but reads differently now."""

    to_evaluate: list[str]  # branch codes, for evaluate_branch
    details: dict[int, str]  # alert id -> what it says now


async def survey_branches(session: AsyncSession, now: datetime) -> Survey:
    """Compare every branch's desired alerts with its active ones, reading only: a handful of
    statements whatever the number of branches. A branch whose set of alerts must change is
    left to `evaluate_branch`, which decides again under its lock."""
    branches = list(await session.scalars(select(Branch).order_by(Branch.code)))
    states = await read_branch_states(session, branches, now)
    active: dict[str, dict[tuple[str, str], Alert]] = {}
    for alert in await active_alerts(session):
        active.setdefault(alert.branch, {})[(alert.kind, alert.subject)] = alert
    to_evaluate: list[str] = []
    details: dict[int, str] = {}
    for branch in branches:
        wanted = desired_alerts(states[branch.code])
        current = active.get(branch.code, {})
        if wanted.keys() != current.keys():
            to_evaluate.append(branch.code)
            continue
        for key, condition in wanted.items():
            if current[key].detail != condition.detail:
                details[current[key].id] = condition.detail
    return Survey(to_evaluate, details)


# Rows are locked in id order and busy ones skipped: another process evaluating the branch
# (which updates the same rows) is never waited for, so the two cannot deadlock.
_REFRESH_DETAILS = text(
    """
    WITH free AS (
        SELECT id FROM alerts
        WHERE id = ANY(CAST(:ids AS bigint[])) AND cleared_at IS NULL
        ORDER BY id
        FOR UPDATE SKIP LOCKED
    )
    UPDATE alerts SET detail = v.detail
    FROM unnest(CAST(:ids AS bigint[]), CAST(:details AS text[])) AS v(id, detail)
    WHERE alerts.id = v.id AND alerts.id IN (SELECT id FROM free)
    """
)


async def refresh_details(session: AsyncSession, details: dict[int, str]) -> None:
    """Say what active alerts are about now (the queue view shows it), in one statement,
    without the branch's advisory lock: the detail carries no event. An alert another process
    is writing at that moment keeps its detail until the next round."""
    if details:
        await session.execute(
            _REFRESH_DETAILS, {"ids": list(details), "details": list(details.values())}
        )


async def evaluate_all_branches(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock
) -> int:
    """One round over every branch; returns how many alerts were raised or cleared."""
    async with sessionmaker() as session, session.begin():
        survey = await survey_branches(session, clock.now())
        await refresh_details(session, survey.details)
    changed = 0
    for code in survey.to_evaluate:
        async with sessionmaker() as session:
            changed += max(0, await evaluate_branch(session, code, clock.now()))
    return changed

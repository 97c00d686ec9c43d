"""Issuing a ticket: one statement takes the number, writes the ticket and its event, and reads
the hall for its position and estimated wait."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Row, TextClause, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.accuracy.service import Quote
from app.accuracy.writer import QuoteWriter
from app.branches.hours import Schedule
from app.branches.models import Branch, Service
from app.branches.service import get_branch, schedule_of
from app.core.config_cache import read_through
from app.core.errors import Problem, conflict, unprocessable
from app.core.partitions import from_week_sql, live_week, week_start
from app.core.settings import Settings
from app.core.vocabulary import TicketStatus
from app.events.catalog import (
    EventType,
    IssuedTicketRef,
    TicketIssued,
    encode_data,
)
from app.events.notifier import notify_after_commit
from app.events.service import append_events_sql
from app.queue.estimate import estimate_wait, new_ticket_place
from app.queue.near import lock_branch, record_near
from app.queue.ordering import LANE_NORMAL
from app.queue.service import (
    HALL_CTE,
    hall_columns,
    hall_from_row,
    hall_params,
)
from app.tickets.code import new_ticket_code
from app.tickets.models import Ticket
from app.tickets.rate_limit import too_many_tickets, window_start
from app.tickets.schemas import (
    TicketIn,
    TicketOut,
    mask_phone,
)
from app.tickets.service import get_ticket, ticket_out


@dataclass(frozen=True)
class IssuedTicket:
    ticket: TicketOut
    replayed: bool  # an Idempotency-Key retry returned the ticket issued before


@dataclass(frozen=True)
class IssueConfig:
    """What issuing needs of a branch and business type; kept in the configuration cache."""

    schedule: Schedule
    service: str
    prefix: str
    notify_ahead: int | None


async def _issue_config(session: AsyncSession, branch: str, service: str) -> IssueConfig:
    async def load() -> IssueConfig | None:
        row = (
            await session.execute(
                select(Branch, Service)
                .join(Service, Service.branch == Branch.code)
                .where(Branch.code == branch, Service.code == service)
            )
        ).first()
        return (
            None
            if row is None
            else IssueConfig(schedule_of(row[0]), service, row[1].prefix, row[0].notify_ahead)
        )

    config = await read_through(session, ("issue", branch, service), load)
    if config is None:
        await get_branch(session, branch)  # 404 if the branch itself is missing
        raise unprocessable(
            "unknown-service", f"business type {service} does not exist in branch {branch}"
        )
    return config


async def _by_idempotency_key(session: AsyncSession, branch: str, key: str) -> Ticket | None:
    # The newest: the key is unique per business date only (docs/partitioning.md).
    return await session.scalar(
        select(Ticket)
        .where(Ticket.branch == branch, Ticket.idempotency_key == key)
        .order_by(Ticket.business_date.desc())
        .limit(1)
    )


def _check_replay(existing: Ticket, body: TicketIn) -> None:
    if existing.service != body.service or existing.priority != body.priority:
        raise unprocessable(
            "idempotency-key-reused",
            "this Idempotency-Key was already used for a different ticket request "
            f"({existing.service}/{existing.priority})",
        )


# Issuing is one statement, run on its own (autocommit): one round trip, and the business type's
# sequence row and the branch row (event seqs) are locked only while it runs, never across a
# round trip to this process. In order:
# - `replayed`: the ticket an Idempotency-Key already got; if there is one nothing is written;
# - `counted`: the token's issues this minute (app/tickets/rate_limit.py), when it is limited;
#   past the limit nothing else is written (the count stays: the token is refused either way);
# - `claimed`: the Idempotency-Key, claimed before a number is taken. A retry racing its
#   original waits here (primary key) until the original commits, then claims nothing and
#   issues nothing: no number is ever taken and given back, so numbers stay gap-free;
# - `numbered`, `issued`, `event_seqs`, `logged`: the next daily number of the type, the
#   ticket, and its `ticket.issued` event (app/events/service.py: append_events_sql; the number
#   is put into the event data here, where it is known);
# - the hall (app/queue/service.py), read from the statement's snapshot, without the new ticket:
#   its position and estimated wait follow from it (app/queue/estimate.py: new_ticket_place).
_LOG_ISSUED = append_events_sql(
    branch=":branch",
    count="1",
    when="EXISTS (SELECT FROM issued)",
    rows=f"""
        SELECT 1, '{EventType.TICKET_ISSUED}', CAST(:now AS timestamptz), issued.id, NULL, NULL,
               jsonb_set(CAST(:event_data AS jsonb), '{{ticket,number}}', to_jsonb(issued.number))
        FROM issued""",  # noqa: S608 - a constant fragment
)


def issue_week(now: datetime, business_date: date) -> date:
    """The oldest week issuing reads: the live week, or the week of the day before the
    branch's business date (a retry across midnight) if earlier (a branch far west of UTC)."""
    return min(live_week(now), week_start(business_date - timedelta(days=1)))


@cache
def issue_sql(week: date) -> TextClause:
    """Issuing over the tickets partitions from `week` (`issue_week`) on, as a constant, so
    that even its generic plan holds only those: one text per week, prepared once per
    connection."""
    return text(_issue_sql_text(week))


def _issue_sql_text(week: date) -> str:
    return f"""
    WITH {HALL_CTE},
    replayed AS (
        SELECT id FROM tickets
        WHERE branch = :branch AND idempotency_key = CAST(:idempotency_key AS text)
          -- today's partition, and yesterday's for a retry across midnight (docs/partitioning.md)
          AND business_date >= CAST(:business_date AS date) - 1
          AND {from_week_sql("business_date", week)}
        -- the key is unique per date only: a key reused days later may have two tickets
        ORDER BY business_date DESC LIMIT 1
    ),
    counted AS (
        INSERT INTO issue_rate (token_id, window_start, issued)
        SELECT CAST(:token_id AS text), CAST(:window_start AS timestamptz), 1
        WHERE CAST(:token_id AS text) IS NOT NULL AND NOT EXISTS (SELECT FROM replayed)
        ON CONFLICT (token_id, window_start) DO UPDATE SET issued = issue_rate.issued + 1
        RETURNING issued
    ),
    allowed AS (
        SELECT WHERE NOT EXISTS (SELECT FROM replayed)
                 AND coalesce((SELECT issued FROM counted), 0) <= :per_minute
    ),
    claimed AS (
        INSERT INTO issue_keys (branch, key, claimed_at)
        SELECT :branch, CAST(:idempotency_key AS text), CAST(:now AS timestamptz) FROM allowed
        WHERE CAST(:idempotency_key AS text) IS NOT NULL
        ON CONFLICT (branch, key) DO NOTHING
        RETURNING key
    ),
    numbered AS (
        INSERT INTO ticket_sequences AS seqs (branch, service, business_date, last_value)
        SELECT :branch, :service, CAST(:business_date AS date), 1 FROM allowed
        WHERE CAST(:idempotency_key AS text) IS NULL OR EXISTS (SELECT FROM claimed)
        ON CONFLICT (branch, service, business_date)
        DO UPDATE SET last_value = seqs.last_value + 1
        RETURNING last_value
    ),
    issued AS (
        INSERT INTO tickets (id, branch, service, issued_service, business_date, seq, number,
                             priority, channel, phone, status, issued_at, lane, queued_at,
                             idempotency_key, code)
        SELECT CAST(:ticket_id AS uuid), :branch, :service, :service,
               CAST(:business_date AS date), last_value,
               :prefix || CASE WHEN last_value < 1000 THEN lpad(CAST(last_value AS text), 3, '0')
                               ELSE CAST(last_value AS text) END,
               :priority, :channel, CAST(:phone AS text), 'waiting', CAST(:now AS timestamptz),
               {LANE_NORMAL}, CAST(:now AS timestamptz), CAST(:idempotency_key AS text), :code
        FROM numbered
        RETURNING id, seq, number
    ),
    {_LOG_ISSUED}
    SELECT {hall_columns(week)},
           (SELECT id FROM replayed) AS replayed_id,
           (SELECT issued FROM counted) AS issued_this_minute,
           (SELECT seq FROM issued) AS seq,
           (SELECT number FROM issued) AS number,
           (SELECT seq FROM logged) AS event_seq,
           (SELECT envelope FROM logged) AS envelope
    """  # noqa: S608 - constant fragments; every value is a bound parameter


async def issue_ticket(
    session: AsyncSession,
    branch_code: str,
    body: TicketIn,
    *,
    idempotency_key: str | None,
    limited_token: str | None,
    now: datetime,
    settings: Settings,
    quotes: QuoteWriter | None = None,
) -> IssuedTicket:
    """Issue a number of `body.service`; with an Idempotency-Key already used, the ticket it got.
    `limited_token` is counted against the issue rate (None: not limited). The new ticket's
    quoted wait goes to `quotes`, which writes it after the answer (docs/accuracy.md)."""
    config = await _issue_config(session, branch_code, body.service)
    schedule = config.schedule
    refusal = schedule.issue_refusal(now)
    if refusal is not None:
        # Closed: a retry of a ticket issued before still gets it; nothing new is issued.
        if idempotency_key is not None:
            existing = await _by_idempotency_key(session, branch_code, idempotency_key)
            if existing is not None:
                return await _replay(session, existing, body, now, settings)
        raise conflict(
            "branch-closed",
            refusal.describe(),
            reason=refusal.reason,
            opens_at=refusal.opens_at.isoformat() if refusal.opens_at else None,
        )
    business_date = schedule.business_date(now)
    ticket_id = uuid.uuid4()
    if session.in_transaction():
        await session.commit()  # the configuration was read (a cache miss): end that read
    # Behind a transaction pooler (no statement cache) a statement prepared outside a
    # transaction may run on another server connection: there, issuing takes a transaction.
    options = {} if settings.statements_need_transaction else {"isolation_level": "AUTOCOMMIT"}
    connection = await session.connection(execution_options=options)
    issue = _Issue(branch_code, body, config, ticket_id, business_date, now)
    params = issue.params(settings)
    params.update(idempotency_key=idempotency_key, token_id=limited_token)
    statement = issue_sql(issue_week(now, business_date))
    row = (await connection.execute(statement, params)).one()
    if row.event_seq is not None:
        notify_after_commit(session, branch_code, [(row.event_seq, row.envelope)])
    # Ends the session's transaction (nothing to commit under autocommit), and notifies.
    await session.commit()
    if row.replayed_id is not None:
        return await _replay(
            session, await get_ticket(session, row.replayed_id), body, now, settings
        )
    per_minute = settings.issue_rate_per_minute
    if row.issued_this_minute is not None and row.issued_this_minute > per_minute:
        raise too_many_tickets(per_minute, now)  # nothing was issued
    if row.number is None:
        # Another request with the same Idempotency-Key committed first (we waited for it on
        # the claim). Nothing was issued here; return theirs.
        assert idempotency_key is not None
        existing = await _by_idempotency_key(session, branch_code, idempotency_key)
        if existing is None:  # pragma: no cover - the conflicting row was committed
            raise Problem(409, "idempotency-race", "retry the request")
        return await _replay(session, existing, body, now, settings)

    issued = issue.ticket_out(row, settings)
    if quotes is not None:
        quotes.add(issue.quote(issued))
    ahead, notify_ahead = issued.waiting_ahead, config.notify_ahead
    if ahead is not None and notify_ahead is not None and ahead <= notify_ahead:
        # Near already (a quiet hall): `ticket.near` in a transaction of its own, which checks
        # the front of the type again under the branch lock (app/queue/near.py). Only then:
        # a busy hall's issues stay one statement.
        await lock_branch(session, branch_code)
        await record_near(session, branch_code, [config.service], now, settings)
        await session.commit()
    return IssuedTicket(issued, replayed=False)


@dataclass(frozen=True)
class _Issue:
    """One ticket being issued: the request, its business type, the id and day it gets."""

    branch: str
    body: TicketIn
    config: IssueConfig
    ticket_id: uuid.UUID
    business_date: date
    now: datetime
    code: str = field(default_factory=new_ticket_code)

    def params(self, settings: Settings) -> dict[str, object]:
        """`issue_sql`'s parameters for the ticket (the caller adds the request's key and token)."""
        event_data = TicketIssued(
            ticket=IssuedTicketRef(
                id=self.ticket_id,
                number="",  # set by the statement, which takes it
                service=self.config.service,
                priority=self.body.priority,
                channel=self.body.channel,
                issued_at=self.now,
            )
        )
        return {
            **hall_params(self.branch, self.now, settings),
            "window_start": window_start(self.now),
            "per_minute": settings.issue_rate_per_minute,
            "service": self.config.service,
            "business_date": self.business_date,
            "ticket_id": self.ticket_id,
            "prefix": self.config.prefix,
            "priority": self.body.priority,
            "channel": self.body.channel,
            "phone": self.body.phone,
            "now": self.now,
            "event_data": encode_data(event_data),
            "code": self.code,
        }

    def ticket_out(self, row: Row[Any], settings: Settings) -> TicketOut:
        """The ticket just issued, placed in the hall the statement read (without it)."""
        # A new ticket is never overdue (max_wait_s is at least 1 s): its place is its class's end.
        hall = hall_from_row(row, settings).hall
        place = new_ticket_place(hall, self.config.service, self.body.priority)
        estimate = estimate_wait(hall, place)
        return TicketOut(
            id=self.ticket_id,
            code=self.code,
            number=row.number,
            service=self.config.service,
            priority=self.body.priority,
            channel=self.body.channel,
            status=TicketStatus.WAITING,
            business_date=self.business_date,
            issued_at=self.now,
            position=place.ahead + 1,
            waiting_ahead=place.ahead,
            estimated_wait_s=estimate.median_s,
            estimated_wait_range_s=estimate.range_s,
            recall_count=0,
            counter=None,
            called_at=None,
            served_at=None,
            finished_at=None,
            phone=mask_phone(self.body.phone),
            rating=None,
        )

    def quote(self, issued: TicketOut) -> Quote:
        """The wait `issued` was quoted, for the estimate's measured accuracy."""
        assert issued.estimated_wait_s is not None and issued.estimated_wait_range_s is not None
        low, high = issued.estimated_wait_range_s
        return Quote(self.ticket_id, self.branch, self.config.service, issued.estimated_wait_s,
                     low, high)  # fmt: skip


async def _replay(
    session: AsyncSession, existing: Ticket, body: TicketIn, now: datetime, settings: Settings
) -> IssuedTicket:
    """The ticket an Idempotency-Key already got, as it is now."""
    _check_replay(existing, body)
    return IssuedTicket(await ticket_out(session, existing, now, settings), replayed=True)

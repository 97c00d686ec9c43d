"""Retention: tickets of business days older than `history_days`, the events before them, and
the day's bookkeeping (numbering, close-outs, cleared alerts, report rollups, the tickets' wait
quotes) are removed by housekeeping in small batches, branch by branch. The days kept are
untouched, so their reports do not change.

Both history tables are partitioned by week (app/core/partitions.py): a week wholly before the
kept days is detached and dropped first, in one short transaction (`drop_old_partitions`), and
the batched DELETEs remove the rest (the days of a partly kept week, the default partition).
`history_days` is one setting for every branch, so a week is past for all branches at once.

Events are removed as the oldest prefix of each branch's log (by `seq`) that is older than a
margin of two days before the first kept business date: every event of a kept day (whatever
the branch's timezone and day boundary) is later than that, and the log keeps no hole.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.partitions import (
    BRANCH_EVENTS,
    LOCK_TIMEOUT,
    PARTITION_LOCK_NAMESPACE,
    TICKETS,
    WEEK,
    PartitionedTable,
)

log = logging.getLogger("hallq.retention")

BATCH = 2000  # rows of each kind per branch and statement: short transactions, small locks
EVENT_MARGIN = timedelta(days=2)

_BRANCHES = text("SELECT code FROM branches ORDER BY code")
RETENTION_LOCK_NAMESPACE = 0x6872  # "hr"
# One process at a time per branch: the statement's deletes run in no fixed order, so two
# processes on one branch could deadlock; the second skips the branch this round.
_CLAIM_BRANCH = text("SELECT pg_try_advisory_xact_lock(:ns, hashtext(:branch))")

# One round trip per branch; SKIP LOCKED lets two processes share the work without waiting.
_REMOVE_OLD = text(
    """
    WITH old_tickets AS (
        SELECT id, business_date FROM tickets
        WHERE branch = :branch AND business_date < :first_kept
        ORDER BY business_date LIMIT :batch FOR UPDATE SKIP LOCKED
    ),
    gone_tickets AS (
        DELETE FROM tickets t USING old_tickets o
        WHERE t.id = o.id AND t.business_date = o.business_date RETURNING 1
    ),
    -- their quoted and actual waits (app/accuracy); the late errors' totals stay, as counters
    gone_quotes AS (
        DELETE FROM estimate_quotes q USING old_tickets o WHERE q.ticket_id = o.id RETURNING 1
    ),
    oldest_events AS (
        SELECT seq, at FROM branch_events WHERE branch = :branch ORDER BY seq LIMIT :batch
    ),
    gone_events AS (
        DELETE FROM branch_events e USING oldest_events o
        WHERE e.branch = :branch AND e.seq = o.seq AND e.at = o.at
          AND o.seq < coalesce((SELECT min(seq) FROM oldest_events WHERE at >= :events_before),
                               9223372036854775807)
        RETURNING 1
    ),
    gone_numbering AS (
        DELETE FROM ticket_sequences
        WHERE branch = :branch AND business_date < :first_kept RETURNING 1
    ),
    gone_closeouts AS (
        DELETE FROM day_closeouts
        WHERE branch = :branch AND business_date < :first_kept RETURNING 1
    ),
    gone_alerts AS (
        DELETE FROM alerts WHERE branch = :branch AND cleared_at < :events_before RETURNING 1
    ),
    gone_rollups AS (
        DELETE FROM report_rollups WHERE branch = :branch AND day < :first_kept RETURNING 1
    ),
    gone_rollup_days AS (
        DELETE FROM report_rollup_days WHERE branch = :branch AND day < :first_kept RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone_tickets) AS tickets,
           (SELECT count(*) FROM gone_events) AS events,
           (SELECT count(*) FROM gone_numbering) + (SELECT count(*) FROM gone_closeouts)
             + (SELECT count(*) FROM gone_alerts) + (SELECT count(*) FROM gone_rollups)
             + (SELECT count(*) FROM gone_rollup_days)
             + (SELECT count(*) FROM gone_quotes) AS bookkeeping
    """
)


@dataclass
class Removed:
    tickets: int = 0
    events: int = 0
    bookkeeping: int = 0
    partitions: list[str] = field(default_factory=list)  # dropped whole

    @property
    def full_batch(self) -> bool:
        """A batch was full somewhere: more is left, come back soon."""
        return self.tickets >= BATCH or self.events >= BATCH

    def add(self, tickets: int, events: int, bookkeeping: int) -> None:
        self.tickets += tickets
        self.events += events
        self.bookkeeping += bookkeeping


def first_kept_date(now: datetime, history_days: int) -> date:
    """The oldest business date kept: `history_days` days before today (UTC)."""
    return now.astimezone(UTC).date() - timedelta(days=history_days)


_PARTITIONS = text(
    """
    SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = CAST(:parent AS regclass) ORDER BY c.relname
    """
)
# The quotes of a partition's tickets go with it (no foreign key: app/accuracy/models.py).
_DROP_QUOTES = "DELETE FROM estimate_quotes q USING {partition} t WHERE q.ticket_id = t.id"


async def _weeks_before(session: AsyncSession, table: PartitionedTable, end: date) -> list[str]:
    """The partitions of `table` whose week ends on or before `end`."""
    names = await session.scalars(_PARTITIONS, {"parent": table.name})
    weeks = ((name, table.week_of(name)) for name in names)
    return [name for name, week in weeks if week is not None and week + WEEK <= end]


async def drop_old_partitions(
    sessionmaker: async_sessionmaker[AsyncSession], first_kept: date, events_before: datetime
) -> list[str]:
    """Detach and drop the weeks of tickets before `first_kept` and of events before
    `events_before` (a UTC midnight), each in a short transaction of its own. A plain DETACH:
    CONCURRENTLY is refused while a default partition exists, and cannot run in a transaction."""
    dropped = []
    async with sessionmaker() as session:
        events_end = events_before.astimezone(UTC).date()
        old = [(TICKETS, n) for n in await _weeks_before(session, TICKETS, first_kept)]
        old += [(BRANCH_EVENTS, n) for n in await _weeks_before(session, BRANCH_EVENTS, events_end)]
        await session.commit()
        for table, name in old:
            await session.execute(
                text("SELECT pg_advisory_xact_lock(:ns, 0)"), {"ns": PARTITION_LOCK_NAMESPACE}
            )
            await session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            if await session.scalar(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": name}):
                if table is TICKETS:
                    await session.execute(text(_DROP_QUOTES.format(partition=name)))
                await session.execute(text(f"ALTER TABLE {table.name} DETACH PARTITION {name}"))
                await session.execute(text(f"DROP TABLE {name}"))
                dropped.append(name)
            await session.commit()
    return dropped


async def remove_old_history(
    sessionmaker: async_sessionmaker[AsyncSession], now: datetime, history_days: int
) -> Removed:
    """One batch per branch (each in its own transaction); what it removed."""
    first_kept = first_kept_date(now, history_days)
    events_before = datetime.combine(first_kept, time(0), UTC) - EVENT_MARGIN
    removed = Removed(partitions=await drop_old_partitions(sessionmaker, first_kept, events_before))
    async with sessionmaker() as session:
        branches = list(await session.scalars(_BRANCHES))
    for branch in branches:
        async with sessionmaker() as session:
            claim = {"ns": RETENTION_LOCK_NAMESPACE, "branch": branch}
            if not await session.scalar(_CLAIM_BRANCH, claim):
                continue
            row = (
                await session.execute(
                    _REMOVE_OLD,
                    {
                        "branch": branch,
                        "first_kept": first_kept,
                        "events_before": events_before,
                        "batch": BATCH,
                    },
                )
            ).one()
            await session.commit()
        removed.add(row.tickets, row.events, row.bookkeeping)
    if removed.partitions:
        log.info("retention: dropped partitions %s", ", ".join(removed.partitions))
    if removed.tickets or removed.events:
        log.info(
            "retention: removed %d tickets and %d events before %s",
            removed.tickets,
            removed.events,
            first_kept.isoformat(),
        )
    return removed

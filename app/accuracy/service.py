"""Keeping a ticket's quote and its first call's wait side by side, exactly once whichever
comes first (docs/accuracy.md).

Issuing is one statement whose hall read the estimate is computed from, in Python, after it
ran: the quote cannot be written by that statement, and a second round trip would slow every
issue. So each process's `QuoteWriter` (app/accuracy/writer.py) writes the quotes it collects
in batches, a fraction of a second later, and a ticket may be called before its quote is
written. Both sides write the same row (`estimate_quotes`, keyed by the ticket) with an
upsert, so the primary key serialises them: the second to arrive completes the pair.

- The first call (`keep_first_call_sql`, inside `next`'s own statement and the desk's call)
  keeps the wait. If the quote is there, the error belongs to the call: the metrics count it
  with the call's `ticket.called` event, in the event log's commit order.
- The writer (`FLUSH_QUOTES_SQL`) keeps the quote. If the ticket was called already, the error
  belongs to the flush: it marks the row `quoted_after_call` and adds the error to
  `estimate_late_errors` in the same statement.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# hallq_estimate_error_seconds' bucket bounds (seconds; actual - quoted, so an underestimate is
# positive): symmetric, with the hall standards' 3 and 10 minutes among them.
ERROR_BUCKETS: tuple[float, ...] = (
    -1800, -1200, -900, -600, -300, -180, -120, -60, -30,
    0,
    30, 60, 120, 180, 300, 600, 900, 1200, 1800,
)  # fmt: skip


@dataclass(frozen=True)
class Quote:
    """The wait a ticket was quoted at issue: the median and the 10th-90th percentile range."""

    ticket_id: uuid.UUID
    branch: str
    service: str
    median_s: int
    low_s: int
    high_s: int


def keep_first_call_sql(called: str) -> str:
    """The first call's wait of the tickets in `called` (SQL for a relation of ticket rows just
    marked called: id, branch, issued_service, issued_at, called_at, last_called_at), kept
    beside their quotes. `called_at` is the first call's time, so only where it equals the
    last call's is this the first call; a later call (after a re-queue or a transfer) keeps
    nothing."""
    # SQL fragments from the code, never values:
    return f"""
    INSERT INTO estimate_quotes AS q (ticket_id, branch, service, waited_s)
    SELECT c.id, c.branch, c.issued_service, extract(epoch FROM c.called_at - c.issued_at)
    FROM {called} AS c
    WHERE c.called_at = c.last_called_at
    ON CONFLICT (ticket_id) DO UPDATE SET waited_s = excluded.waited_s
    WHERE q.waited_s IS NULL
    """  # noqa: S608


# The first call of one ticket marked called by the desk (app/counters/calls.py: call_chosen).
KEEP_CHOSEN_FIRST_CALL_SQL = text(
    keep_first_call_sql(
        "(SELECT id, branch, issued_service, issued_at, called_at, last_called_at FROM tickets"
        " WHERE id = :ticket_id)"
    )
)

# The quotes of a batch, in one autocommitted statement. Its commit need not wait for a WAL
# flush (a quote lost in a crash only leaves its ticket out of the figures), so
# `synchronous_commit` is set for its own implicit transaction. A quote already written is
# never changed, so a retry of a batch whose answer was lost writes and counts nothing twice.
FLUSH_QUOTES_SQL = text(
    """
    WITH unflushed AS (SELECT set_config('synchronous_commit', 'off', true)),
    incoming AS (
        SELECT i.* FROM unflushed, unnest(
            CAST(:ticket_ids AS uuid[]), CAST(:branches AS text[]), CAST(:services AS text[]),
            CAST(:quoted AS int[]), CAST(:low AS int[]), CAST(:high AS int[])
        ) AS i(ticket_id, branch, service, quoted_s, low_s, high_s)
    ),
    kept AS (
        INSERT INTO estimate_quotes AS q (ticket_id, branch, service, quoted_s, low_s, high_s)
        SELECT ticket_id, branch, service, quoted_s, low_s, high_s FROM incoming
        ON CONFLICT (ticket_id) DO UPDATE
        SET quoted_s = excluded.quoted_s, low_s = excluded.low_s, high_s = excluded.high_s,
            quoted_after_call = q.waited_s IS NOT NULL
        WHERE q.quoted_s IS NULL
        RETURNING q.branch, q.service, q.waited_s - q.quoted_s AS error_s, q.quoted_after_call
    ),
    late AS (
        INSERT INTO estimate_late_errors AS l (branch, service, le, n)
        SELECT branch, service, le, count(*)
        FROM (
            SELECT k.branch, k.service,
                   coalesce((SELECT min(b) FROM unnest(CAST(:bounds AS float8[])) AS b
                             WHERE b >= k.error_s), 'Infinity') AS le
            FROM kept k
            WHERE k.quoted_after_call
        ) AS late_errors
        GROUP BY branch, service, le
        -- in a fixed order, so that two processes' flushes take these rows' locks alike
        ORDER BY branch, service, le
        ON CONFLICT (branch, service, le) DO UPDATE SET n = l.n + excluded.n
    )
    SELECT count(*) AS kept, count(*) FILTER (WHERE quoted_after_call) AS after_call FROM kept
    """
)


@dataclass(frozen=True)
class Flushed:
    kept: int  # quotes written
    after_call: int  # of them, of tickets already called


async def write_quotes(
    session: AsyncSession, quotes: Sequence[Quote], *, autocommit: bool = True
) -> Flushed:
    """Write `quotes` in one statement (a quote already kept stays as it is): autocommitted,
    unless a transaction pooler needs statements in a transaction (as issuing does)."""
    options = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    connection = await session.connection(execution_options=options)
    row = (await connection.execute(FLUSH_QUOTES_SQL, flush_params(quotes))).one()
    await session.commit()
    return Flushed(kept=int(row.kept), after_call=int(row.after_call))


def flush_params(quotes: Sequence[Quote]) -> dict[str, object]:
    """`FLUSH_QUOTES_SQL`'s parameters: the quotes as arrays, and the error buckets."""
    return {
        "ticket_ids": [q.ticket_id for q in quotes],
        "branches": [q.branch for q in quotes],
        "services": [q.service for q in quotes],
        "quoted": [q.median_s for q in quotes],
        "low": [q.low_s for q in quotes],
        "high": [q.high_s for q in quotes],
        "bounds": list(ERROR_BUCKETS),
    }

"""The daily report, computed in SQL from the branch history, and the erasure of phone numbers
once a business day is over.

A report covers one business day of a branch: from its `day_starts_at` to the next, in the
branch's timezone (`[00:00, 24:00)` by default). Each figure counts on the day its event
happened (issue, first call, completion, no-show, cancel, transfer; an expiry on the day the
ticket was issued) and for the business type, counter and clerk named by that event;
docs/reports.md defines every figure. For the current day the window ends now, so the report
is the day so far.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import CursorResult, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.branches.hours import Schedule
from app.branches.models import Service, Staff
from app.branches.service import get_branch, schedule_of
from app.core.errors import unprocessable
from app.core.vocabulary import TicketStatus, sql_list
from app.counters.models import Counter
from app.events.catalog import (
    TICKET_SERVICE,
    CounterChanged,
    EventType,
    TicketExpired,
    TicketTransferred,
    data_path,
)
from app.reports.schemas import (
    CounterRow,
    DailyReport,
    DayFigures,
    HourRow,
    RatingComment,
    ServiceRow,
    StaffRow,
)
from app.tickets.models import FINISHED

logger = logging.getLogger("hallq.reports")

# Fields of event data the report reads, checked against the event catalog's models
# (app/events/catalog.py) when this module is imported.
_FROM_SERVICE = data_path(TicketTransferred, "from", "service")
_FROM_COUNTER = data_path(TicketTransferred, "from", "counter")
_COUNTER_STATE = data_path(CounterChanged, "counter", "state")
_EXPIRED_FROM = data_path(TicketExpired, "previous_status")

# The moments a ticket's visit at a counter starts being counted as service: the clerk
# pressed `start` (serving), else the last call or recall (`complete` from `called`). The latest
# of them before the visit ends is where the clerk's time with the customer began.
_VISIT_STARTS = (EventType.TICKET_CALLED, EventType.TICKET_RECALLED, EventType.TICKET_SERVING)
_VISIT_ENDS = (EventType.TICKET_COMPLETED, EventType.TICKET_TRANSFERRED)
_VISIT_START = f"""
    SELECT p.at FROM branch_events p
    WHERE p.branch = e.branch AND p.ticket_id = e.ticket_id
      AND p.type IN {sql_list(_VISIT_STARTS)}
      AND p.seq < e.seq
    ORDER BY p.seq DESC LIMIT 1
"""  # noqa: S608 - constant fragments

# One row per fact of the day, then one GROUPING SETS pass for every scope. `:start`/`:end`
# bound the day; `:day` is the business date.
_FIGURES = text(
    f"""
    WITH
    first_calls AS (
        SELECT e.counter, e.staff, t.issued_service AS service, e.at,
               extract(epoch FROM e.at - t.issued_at)::float8 AS wait_s,
               s.target_wait_s
        FROM branch_events e
        JOIN tickets t ON t.id = e.ticket_id
        JOIN services s ON s.branch = t.branch AND s.code = t.issued_service
        WHERE e.branch = :branch AND e.type = '{EventType.TICKET_CALLED}'
          AND e.at >= :start AND e.at < :end
          AND NOT EXISTS (
              SELECT 1 FROM branch_events p
              WHERE p.branch = e.branch AND p.ticket_id = e.ticket_id
                AND p.type = '{EventType.TICKET_CALLED}' AND p.seq < e.seq)
    ),
    completions AS (
        SELECT e.counter, e.staff, e.{TICKET_SERVICE} AS service, e.at,
               extract(epoch FROM e.at - visit.at)::float8 AS service_s, t.rating
        FROM branch_events e
        JOIN tickets t ON t.id = e.ticket_id
        LEFT JOIN LATERAL ({_VISIT_START}) visit ON true
        WHERE e.branch = :branch AND e.type = '{EventType.TICKET_COMPLETED}'
          AND e.at >= :start AND e.at < :end
    ),
    facts AS (
        SELECT 'issued' AS kind, t.issued_service AS service, NULL::text AS counter,
               NULL::text AS staff, t.issued_at AS at, NULL::float8 AS wait_s,
               NULL::boolean AS within, NULL::float8 AS service_s, NULL::int AS rating
        FROM tickets t
        WHERE t.branch = :branch AND t.business_date = :day
        UNION ALL
        SELECT 'called', service, counter, staff, at, wait_s, wait_s <= target_wait_s,
               NULL, NULL
        FROM first_calls
        UNION ALL
        SELECT 'served', service, counter, staff, at, NULL, NULL, service_s, rating
        FROM completions
        UNION ALL
        -- a no-show counts once it is final: the customer was not re-queued afterwards
        SELECT 'no_show', e.{TICKET_SERVICE}, e.counter, e.staff, e.at,
               NULL, NULL, NULL, NULL
        FROM branch_events e
        WHERE e.branch = :branch AND e.type = '{EventType.TICKET_NO_SHOW}'
          AND e.at >= :start AND e.at < :end
          AND NOT EXISTS (
              SELECT 1 FROM branch_events r
              WHERE r.branch = e.branch AND r.ticket_id = e.ticket_id
                AND r.type = '{EventType.TICKET_REQUEUED}' AND r.seq > e.seq)
        UNION ALL
        -- cancelled under the type it was waiting for; never at a counter
        SELECT 'cancelled', e.{TICKET_SERVICE}, NULL, NULL, e.at,
               NULL, NULL, NULL, NULL
        FROM branch_events e
        WHERE e.branch = :branch AND e.type = '{EventType.TICKET_CANCELLED}'
          AND e.at >= :start AND e.at < :end
        UNION ALL
        -- transferred away from this type, counter and clerk
        SELECT 'transferred', e.{_FROM_SERVICE}, e.{_FROM_COUNTER}, e.staff,
               e.at, NULL, NULL, NULL, NULL
        FROM branch_events e
        WHERE e.branch = :branch AND e.type = '{EventType.TICKET_TRANSFERRED}'
          AND e.at >= :start AND e.at < :end
        UNION ALL
        -- expired at a close-out, on the day it was issued; a no-show that expired ended as a
        -- no-show and counts there
        SELECT 'expired', e.{TICKET_SERVICE}, e.counter, e.staff, e.at,
               NULL, NULL, NULL, NULL
        FROM branch_events e
        JOIN tickets t ON t.id = e.ticket_id
        WHERE e.branch = :branch AND e.type = '{EventType.TICKET_EXPIRED}'
          AND e.at >= :start  -- never before its issue: keeps to ix_branch_events_branch_type_at
          AND t.business_date = :day AND e.{_EXPIRED_FROM} <> '{TicketStatus.NO_SHOW}'
    ),
    located AS (
        SELECT facts.*, extract(hour FROM at AT TIME ZONE :tz)::int AS hour FROM facts
    )
    SELECT
        CASE WHEN GROUPING(service) = 0 THEN 'service'
             WHEN GROUPING(counter) = 0 THEN 'counter'
             WHEN GROUPING(staff) = 0 THEN 'staff'
             ELSE 'hour' END AS scope,
        CASE WHEN GROUPING(service) = 0 THEN service
             WHEN GROUPING(counter) = 0 THEN counter
             WHEN GROUPING(staff) = 0 THEN staff
             ELSE hour::text END AS code,
        count(*) FILTER (WHERE kind = 'issued') AS issued,
        count(*) FILTER (WHERE kind = 'called') AS called,
        count(*) FILTER (WHERE kind = 'served') AS served,
        count(*) FILTER (WHERE kind = 'no_show') AS no_show,
        count(*) FILTER (WHERE kind = 'cancelled') AS cancelled,
        count(*) FILTER (WHERE kind = 'transferred') AS transferred,
        count(*) FILTER (WHERE kind = 'expired') AS expired,
        avg(wait_s) AS avg_wait_s,
        percentile_disc(0.9) WITHIN GROUP (ORDER BY wait_s) AS p90_wait_s,
        max(wait_s) AS max_wait_s,
        count(*) FILTER (WHERE within) AS within_target,
        avg(service_s) AS avg_service_s,
        avg(rating)::float8 AS rating_avg,
        count(rating) AS ratings
    FROM located
    GROUP BY GROUPING SETS ((service), (counter), (staff), (hour))
    """  # noqa: S608 - only the constant _VISIT_START is interpolated
)

# Utilisation: per counter, the time it was open (states open and closing, from its
# counter.changed events, starting from the state it was in when the day began) and, within
# that, the time a customer was at it (visit start -> completion or transfer away).
_UTILISATION = text(
    f"""
    WITH
    states AS (
        SELECT c.code AS counter, before.seq, before.at, before.state
        FROM counters c
        CROSS JOIN LATERAL (
            SELECT e.seq, e.at, e.{_COUNTER_STATE} AS state
            FROM branch_events e
            WHERE e.branch = c.branch AND e.type = '{EventType.COUNTER_CHANGED}'
              AND e.counter = c.code
              AND e.at < :start
            ORDER BY e.at DESC, e.seq DESC LIMIT 1
        ) before
        WHERE c.branch = :branch
        UNION ALL
        SELECT e.counter, e.seq, e.at, e.{_COUNTER_STATE}
        FROM branch_events e
        WHERE e.branch = :branch AND e.type = '{EventType.COUNTER_CHANGED}'
          AND e.at >= :start AND e.at < :end
    ),
    spans AS (
        SELECT counter, state, greatest(at, :start) AS s,
               least(coalesce(lead(at) OVER (PARTITION BY counter ORDER BY seq), :until),
                     :until) AS e
        FROM states
    ),
    open_time AS (
        SELECT counter, range_agg(tstzrange(s, e)) AS open
        FROM spans WHERE state IN ('open', 'closing') AND e > s
        GROUP BY counter
    ),
    visits AS (
        SELECT e.counter, greatest(visit.at, :start) AS s, least(e.at, :until) AS e
        FROM branch_events e
        CROSS JOIN LATERAL ({_VISIT_START}) visit
        WHERE e.branch = :branch
          AND e.type IN {sql_list(_VISIT_ENDS)}
          AND e.at > :start AND e.at < :horizon
    ),
    busy AS (
        SELECT counter, range_agg(tstzrange(s, e)) AS busy
        FROM visits WHERE e > s
        GROUP BY counter
    )
    SELECT o.counter,
           (SELECT coalesce(sum(extract(epoch FROM upper(r) - lower(r))), 0)::float8
            FROM unnest(o.open) AS r) AS open_s,
           (SELECT coalesce(sum(extract(epoch FROM upper(r) - lower(r))), 0)::float8
            FROM unnest(o.open * b.busy) AS r) AS serving_s
    FROM open_time o LEFT JOIN busy b USING (counter)
    """  # noqa: S608 - only the constant _VISIT_START is interpolated
)

_COMMENTS = text(
    f"""
    SELECT t.number, e.{TICKET_SERVICE} AS service, e.counter, e.staff,
           t.rating AS score, t.rating_comment AS comment, t.rated_at
    FROM branch_events e
    JOIN tickets t ON t.id = e.ticket_id
    WHERE e.branch = :branch AND e.type = '{EventType.TICKET_COMPLETED}'
      AND e.at >= :start AND e.at < :end
      AND t.rating_comment IS NOT NULL
    ORDER BY e.seq
    """  # noqa: S608 - constant fragments
)


@dataclass(frozen=True)
class DayWindow:
    day: date
    start: datetime  # the business day's start (its `day_starts_at`)
    end: datetime  # the next day's start
    # min(end, now): open spans and visits still going on are counted up to here (events
    # themselves are taken from the whole day: none can be later than now)
    until: datetime

    @classmethod
    def of(cls, day: date, schedule: Schedule, now: datetime) -> DayWindow:
        start = schedule.day_start(day)
        end = schedule.day_start(day + timedelta(days=1))
        return cls(day, start, end, min(end, now))

    def params(self, branch: str, tz: str) -> dict[str, Any]:
        return {
            "branch": branch,
            "tz": tz,
            "day": self.day,
            "start": self.start,
            "end": self.end,
            "until": self.until,
            # A visit at a counter ends (completed, transferred) at most a day after the day.
            "horizon": self.end + timedelta(days=1),
        }


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


# The figures of a type, counter or clerk with nothing in the day.
_NO_FIGURES = SimpleNamespace(
    issued=0,
    called=0,
    served=0,
    no_show=0,
    cancelled=0,
    transferred=0,
    expired=0,
    avg_wait_s=None,
    p90_wait_s=None,
    avg_service_s=None,
    within_target=0,
    rating_avg=None,
    ratings=0,
)


def _figures(row: Any | None, *, name: str | None, for_type: bool) -> dict[str, Any]:
    if row is None:
        row = _NO_FIGURES
    return {
        "name": name,
        "issued": row.issued if for_type else None,
        "called": row.called,
        "served": row.served,
        "no_show": row.no_show,
        "cancelled": row.cancelled if for_type else None,
        "transferred": row.transferred,
        "expired": row.expired,
        "abandoned_pct": (
            _pct(row.expired + row.cancelled + row.no_show, row.issued) if for_type else None
        ),
        "avg_wait_s": _round(row.avg_wait_s),
        "p90_wait_s": _round(row.p90_wait_s),
        "avg_service_s": _round(row.avg_service_s),
        "within_target_pct": _pct(row.within_target, row.called),
        "rating_avg": _round(row.rating_avg, 2),
        "ratings": row.ratings,
    }


def _codes(configured: Iterable[str], seen: Iterable[str]) -> list[str]:
    return sorted(set(configured) | set(seen))


async def _configured_names(session: AsyncSession, branch: str) -> dict[str, dict[str, str]]:
    services = await session.execute(
        select(Service.code, Service.name).where(Service.branch == branch)
    )
    counters = await session.execute(
        select(Counter.code, Counter.name).where(Counter.branch == branch)
    )
    staff = await session.execute(select(Staff.code, Staff.name).where(Staff.branch == branch))
    return {
        "service": {code: name for code, name in services},
        "counter": {code: name for code, name in counters},
        "staff": {code: name for code, name in staff},
    }


async def _day_figures(
    session: AsyncSession,
    branch: str,
    tz: str,
    window: DayWindow,
    names: dict[str, dict[str, str]],
) -> tuple[DayFigures, list[HourRow]]:
    """The figures of `window` per business type, counter and clerk, and its hour by hour."""
    params = window.params(branch, tz)
    by_scope: dict[str, dict[str, Any]] = {"service": {}, "counter": {}, "staff": {}, "hour": {}}
    for row in (await session.execute(_FIGURES, params)).all():
        if row.code is not None:
            by_scope[row.scope][row.code] = row
    utilisation = {row.counter: row for row in (await session.execute(_UTILISATION, params)).all()}

    services = [
        ServiceRow(
            service=code,
            **_figures(
                by_scope["service"].get(code), name=names["service"].get(code), for_type=True
            ),
        )
        for code in _codes(names["service"], by_scope["service"])
    ]
    counters = []
    for code in _codes(names["counter"], by_scope["counter"]):
        use = utilisation.get(code)
        open_s = float(use.open_s) if use else 0.0
        serving_s = float(use.serving_s) if use else 0.0
        counters.append(
            CounterRow(
                counter=code,
                **_figures(
                    by_scope["counter"].get(code), name=names["counter"].get(code), for_type=False
                ),
                utilisation=round(serving_s / open_s, 3) if open_s > 0 else None,
                open_s=round(open_s, 1),
                serving_s=round(serving_s, 1),
            )
        )
    # Clerks: those who appear in the day's history (a configured clerk who did not work that
    # day has no row).
    staff = [
        StaffRow(
            staff=code,
            **_figures(by_scope["staff"][code], name=names["staff"].get(code), for_type=False),
        )
        for code in sorted(by_scope["staff"])
    ]
    hours = []
    for hour in range(24):
        of_hour = by_scope["hour"].get(str(hour))
        hours.append(
            HourRow(
                hour=hour,
                issued=of_hour.issued if of_hour else 0,
                called=of_hour.called if of_hour else 0,
                avg_wait_s=_round(of_hour.avg_wait_s) if of_hour else None,
                max_wait_s=_round(of_hour.max_wait_s) if of_hour else None,
            )
        )
    figures = DayFigures(date=window.day, services=services, counters=counters, staff=staff)
    return figures, hours


EARLIEST_REPORT_DATE = date(2000, 1, 1)


def parse_report_date(value: str | None, today: date) -> date:
    """The `date` query parameter: YYYY-MM-DD, not after today; missing means today."""
    if value is None:
        return today
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise unprocessable(
            "invalid-date", f"date {value!r} is not a calendar date as YYYY-MM-DD"
        ) from None
    if day < EARLIEST_REPORT_DATE:
        raise unprocessable(
            "invalid-date",
            f"date {day.isoformat()} is before {EARLIEST_REPORT_DATE.isoformat()}: hallq keeps "
            "no history that old",
        )
    if day > today:
        raise unprocessable(
            "date-in-future",
            f"date {day.isoformat()} is after today ({today.isoformat()}) in the branch's "
            "timezone: there is nothing to report yet",
        )
    return day


async def daily_report(
    session: AsyncSession, branch_code: str, day: str | None, now: datetime
) -> DailyReport:
    branch = await get_branch(session, branch_code)
    timezone = branch.timezone
    schedule = schedule_of(branch)
    report_day = parse_report_date(day, schedule.business_date(now))
    names = await _configured_names(session, branch_code)
    window = DayWindow.of(report_day, schedule, now)
    figures, hours = await _day_figures(session, branch_code, timezone, window, names)
    week_before = DayWindow.of(report_day - timedelta(days=7), schedule, now)
    last_week, _ = await _day_figures(session, branch_code, timezone, week_before, names)
    comments = [
        RatingComment.model_validate(dict(row))
        for row in (
            await session.execute(_COMMENTS, window.params(branch_code, timezone))
        ).mappings()
    ]
    await session.rollback()  # read-only: end the transaction
    return DailyReport(
        branch=branch_code,
        timezone=timezone,
        generated_at=now,
        last_week=last_week,
        hours=hours,
        comments=comments,
        **figures.model_dump(),
    )


# -- CSV export ---------------------------------------------------------------------------------

CSV_COLUMNS: Sequence[str] = (
    "date",
    "scope",
    "code",
    "name",
    "issued",
    "called",
    "served",
    "no_show",
    "cancelled",
    "transferred",
    "expired",
    "abandoned_pct",
    "avg_wait_s",
    "p90_wait_s",
    "avg_service_s",
    "within_target_pct",
    "rating_avg",
    "ratings",
    "utilisation",
    "open_s",
    "serving_s",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    if value is None:
        return ""
    cell = str(value)
    # A name starting like a formula would run as one in a spreadsheet: make it text.
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def report_csv(report: DailyReport) -> str:
    """One table: a row per business type, counter and clerk of the day, `scope` telling which.
    UTF-8 with a byte-order mark, so that spreadsheet programs read the Chinese names right."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    scoped: list[tuple[str, str, dict[str, Any]]] = [
        *(("service", r.service, r.model_dump()) for r in report.services),
        *(("counter", r.counter, r.model_dump()) for r in report.counters),
        *(("staff", r.staff, r.model_dump()) for r in report.staff),
    ]
    for scope, code, values in scoped:
        values.update(date=report.date.isoformat(), scope=scope, code=code)
        writer.writerow([_cell(values.get(column)) for column in CSV_COLUMNS])
    return "\ufeff" + out.getvalue()


# -- privacy ------------------------------------------------------------------------------------


_TODAY = Schedule.business_date_sql("b")
_ERASE_PHONES = text(
    f"""
    UPDATE tickets t SET phone = NULL
    FROM branches b
    WHERE b.code = t.branch AND t.phone IS NOT NULL
      AND t.business_date < {_TODAY}
      AND (t.status IN {sql_list(FINISHED)} OR t.business_date < {_TODAY} - 1)
    """  # noqa: S608 - constant fragments
)


async def erase_expired_phones(session: AsyncSession, now: datetime) -> int:
    """Erase the phone numbers of tickets whose business day is over in their branch's
    timezone; returns how many were erased. Commits.

    An expired ticket's number goes with its day (the close-out ends tickets of earlier days
    before this runs). One of yesterday somehow still open keeps it until the day after. Safe
    to run from several processes at once and as often as wanted (a no-op when nothing is
    due)."""
    result = cast("CursorResult[Any]", await session.execute(_ERASE_PHONES, {"now": now}))
    await session.commit()
    erased = result.rowcount
    if erased:
        logger.info("erased %d phone numbers of finished business days", erased)
    return erased

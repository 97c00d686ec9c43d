"""What the staffing plan starts from, read from the branch history in SQL (docs/staffing.md):

- the opening hours of the asked date, one row per clock hour they touch;
- arrivals per business type and hour: the tickets issued in that clock hour, averaged over
  the same weekday of the last `staffing_weeks` weeks before the date, leaving out the days
  the branch was closed (holidays, weekdays without hours, and days on which not a single
  ticket was issued: a closure the schedule does not know, or days before the branch had any
  history);
- service times per type: the counter time of each ticket served, from its (last) call to done
  (the wait estimate's definition, app/queue/service.py), over every day of the same weeks;
- the priority mix per type, from the same tickets as the arrivals;
- the counters open in each hour that has begun: the time-weighted mean number of counters
  `open` or `closing` (serving; a paused counter does not serve), rounded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.branches.hours import Schedule
from app.core.vocabulary import CounterState, sql_list
from app.events.catalog import CounterChanged, EventType, data_path

HOUR_S = 3600.0
# A service time's coefficient of variation when the history has too few tickets to tell.
DEFAULT_CV = 1.0


@dataclass(frozen=True)
class PlanHour:
    """A clock hour the branch is open on the asked date, e.g. 09:00-10:00, and which part of
    it is open (a branch opening at 09:30 is open from 1800 s into its 09:00 hour)."""

    hour: int  # local clock hour, 0-23
    start: datetime  # when the clock hour begins
    open_from_s: float
    open_until_s: float

    @property
    def label(self) -> str:
        return f"{self.hour:02d}:00"

    @property
    def open_s(self) -> float:
        return self.open_until_s - self.open_from_s


def opening_hours(schedule: Schedule, day: date) -> list[PlanHour]:
    """The clock hours of `day` that its opening periods touch, in order."""
    spans: dict[int, tuple[int, int]] = {}  # hour -> open minutes within it, [from, until)
    for start_min, end_min in schedule.periods_on(day):
        for hour in range(start_min // 60, math.ceil(end_min / 60)):
            begin = max(start_min - hour * 60, 0)
            end = min(end_min - hour * 60, 60)
            earlier = spans.get(hour)
            if earlier is not None:  # two periods in one clock hour (a short break): span both
                begin, end = min(begin, earlier[0]), max(end, earlier[1])
            spans[hour] = (begin, end)
    return [
        PlanHour(hour, datetime.combine(day, time(hour), schedule.tz), begin * 60.0, end * 60.0)
        for hour, (begin, end) in sorted(spans.items())
    ]


def same_weekdays(schedule: Schedule, day: date, weeks: int) -> list[date]:
    """The same weekday in each of the `weeks` weeks before `day`, newest first, without the
    days the schedule had the branch closed."""
    earlier = (day - timedelta(weeks=k) for k in range(1, weeks + 1))
    return [d for d in earlier if schedule.periods_on(d)]


@dataclass(frozen=True)
class ServiceTime:
    """The counter time per ticket of a business type over the window."""

    mean_s: float
    cv: float
    tickets: int  # how many it was measured on (0: the configured default)


@dataclass(frozen=True)
class Forecast:
    days: tuple[date, ...]  # the days the arrivals are averaged over
    arrivals: dict[int, dict[str, float]]  # hour -> business type -> mean arrivals in that hour
    service_times: dict[str, ServiceTime]  # types with served tickets in the window
    default_service: ServiceTime  # for a type without any
    priorities: dict[str, dict[str, float]] = field(default_factory=dict)  # type -> class share

    def service_time(self, service: str) -> ServiceTime:
        return self.service_times.get(service, self.default_service)


# Tickets issued on the given local dates, by date, clock hour, business type (the one issued
# for) and priority. The business-day bounds keep the scan on ix_tickets_branch_business_date.
_ARRIVALS_SQL = text(
    """
    SELECT local.day, local.hour, t.issued_service AS service, t.priority, count(*) AS n
    FROM tickets t
    CROSS JOIN LATERAL (
        SELECT CAST(t.issued_at AT TIME ZONE :tz AS date) AS day,
               CAST(extract(hour FROM t.issued_at AT TIME ZONE :tz) AS int) AS hour
    ) AS local
    WHERE t.branch = :branch
      AND t.business_date BETWEEN CAST(:first AS date) - 1 AND CAST(:last AS date) + 1
      AND local.day = ANY(CAST(:days AS date[]))
    GROUP BY 1, 2, 3, 4
    """
)

# Counter time per served ticket, by business type, over [:start, :end).
_SERVICE_TIMES_SQL = text(
    """
    SELECT t.service, count(*) AS n, avg(h.s) AS mean_s, stddev_samp(h.s) AS sd_s
    FROM tickets t
    CROSS JOIN LATERAL (
        SELECT greatest(0, extract(epoch FROM t.finished_at
                                   - coalesce(t.last_called_at, t.served_at))) AS s
    ) AS h
    WHERE t.branch = :branch AND t.status = 'done'
      AND t.finished_at >= :start AND t.finished_at < :end
      AND h.s IS NOT NULL
    GROUP BY t.service
    """
)

_COUNTER_STATE = data_path(CounterChanged, "counter", "state")
_SERVING = (CounterState.OPEN, CounterState.CLOSING)

# Per hour starting at :starts[i] (until :until at the latest): the seconds counters spent open
# or closing in it. A counter's state at :start is that of its last change before then.
_OPEN_SECONDS_SQL = text(
    f"""
    WITH changes AS (
        SELECT c.code AS counter, before.seq, before.at, before.state
        FROM counters c
        CROSS JOIN LATERAL (
            SELECT e.seq, e.at, e.{_COUNTER_STATE} AS state
            FROM branch_events e
            WHERE e.branch = c.branch AND e.type = '{EventType.COUNTER_CHANGED}'
              AND e.counter = c.code AND e.at < :start
            ORDER BY e.at DESC, e.seq DESC LIMIT 1
        ) AS before
        WHERE c.branch = :branch
        UNION ALL
        SELECT e.counter, e.seq, e.at, e.{_COUNTER_STATE}
        FROM branch_events e
        WHERE e.branch = :branch AND e.type = '{EventType.COUNTER_CHANGED}'
          AND e.at >= :start AND e.at < :until
    ),
    spans AS (
        SELECT state, greatest(at, :start) AS s,
               least(coalesce(lead(at) OVER (PARTITION BY counter ORDER BY seq), :until),
                     :until) AS e
        FROM changes
    ),
    hours AS (
        SELECT h AS hs, h + interval '1 hour' AS he
        FROM unnest(CAST(:starts AS timestamptz[])) AS h
    )
    SELECT hours.hs,
           -- least() and greatest() skip NULLs: an hour without spans must add nothing
           coalesce(sum(extract(epoch FROM least(spans.e, hours.he)
                                            - greatest(spans.s, hours.hs)))
                    FILTER (WHERE spans.s IS NOT NULL), 0) AS open_s
    FROM hours
    LEFT JOIN spans ON spans.state IN {sql_list(_SERVING)}
                   AND spans.s < hours.he AND spans.e > hours.hs
    GROUP BY hours.hs
    """  # noqa: S608 - constant fragments
)


async def read_forecast(
    session: AsyncSession,
    branch: str,
    schedule: Schedule,
    day: date,
    weeks: int,
    default_service_s: float,
) -> Forecast:
    """Arrivals, service times and the priority mix for `day` from the `weeks` before it."""
    candidates = same_weekdays(schedule, day, weeks)
    counts: dict[date, dict[tuple[int, str], int]] = {}
    by_class: dict[str, dict[str, int]] = {}
    if candidates:
        rows = await session.execute(
            _ARRIVALS_SQL,
            {
                "branch": branch,
                "tz": schedule.tz.key,
                "days": candidates,
                "first": min(candidates),
                "last": max(candidates),
            },
        )
        for row in rows:
            per_day = counts.setdefault(row.day, {})
            key = (row.hour, row.service)
            per_day[key] = per_day.get(key, 0) + row.n
            shares = by_class.setdefault(row.service, {})
            shares[row.priority] = shares.get(row.priority, 0) + row.n
    used = tuple(sorted(counts))
    arrivals: dict[int, dict[str, float]] = {}
    for per_day in counts.values():
        for (hour, service), n in per_day.items():
            by_type = arrivals.setdefault(hour, {})
            by_type[service] = by_type.get(service, 0.0) + n / len(used)
    window_start = schedule.day_start(day - timedelta(weeks=weeks))
    times = await read_service_times(session, branch, window_start, schedule.day_start(day))
    return Forecast(
        days=used,
        arrivals=arrivals,
        service_times=times,
        default_service=ServiceTime(mean_s=default_service_s, cv=DEFAULT_CV, tickets=0),
        priorities={
            service: {p: n / sum(shares.values()) for p, n in sorted(shares.items())}
            for service, shares in by_class.items()
        },
    )


async def read_service_times(
    session: AsyncSession, branch: str, start: datetime, end: datetime
) -> dict[str, ServiceTime]:
    """Counter time per served ticket, by business type, over [start, end)."""
    rows = await session.execute(_SERVICE_TIMES_SQL, {"branch": branch, "start": start, "end": end})
    times: dict[str, ServiceTime] = {}
    for row in rows:
        mean = float(row.mean_s)
        if mean <= 0:
            continue
        cv = float(row.sd_s) / mean if row.sd_s is not None and row.n >= 2 else DEFAULT_CV
        times[row.service] = ServiceTime(mean_s=mean, cv=cv, tickets=row.n)
    return times


async def open_counters(
    session: AsyncSession, branch: str, hours: Sequence[PlanHour], now: datetime
) -> dict[int, int | None]:
    """Per hour, the mean number of counters open (or closing) during it, rounded; for the
    hour going on now, during its part so far; None for hours still to come."""
    begun = [h for h in hours if h.start < now]
    result: dict[int, int | None] = {h.hour: None for h in hours}
    if not begun:
        return result
    until = min(now, begun[-1].start + timedelta(seconds=HOUR_S))
    rows = await session.execute(
        _OPEN_SECONDS_SQL,
        {
            "branch": branch,
            "start": begun[0].start,
            "until": until,
            "starts": [h.start for h in begun],
        },
    )
    open_s: dict[datetime, float] = {row.hs: float(row.open_s) for row in rows}
    for h in begun:
        elapsed = (min(until, h.start + timedelta(seconds=HOUR_S)) - h.start).total_seconds()
        seconds = open_s.get(h.start, 0.0)
        result[h.hour] = round(seconds / elapsed) if elapsed > 0 else None
    return result

"""Business hours: is issuing open now, and if not, why and when it opens next.

Pure functions over the branch's configuration and a local time, so they test on their own.
Hours are given per weekday in the branch's timezone as [start, end) periods; "24:00" may end
a day. Periods do not cross midnight: split them into two days' periods instead. Special hours
(SPEC §7) are date ranges whose own weekly hours replace the branch's for the dates they cover.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")

Period = tuple[int, int]  # minutes since local midnight, [start, end)
WeeklyHours = dict[str, list[Period]]

# How many special-hours ranges a branch may have (app/branches/schemas.py refuses more).
SPECIAL_HOURS_MAX = 100


def parse_day_start(value: str) -> time:
    """`day_starts_at`: a time of day as HH:MM, 00:00 to 23:59."""
    minutes = parse_hhmm(value)
    if minutes == 24 * 60:
        raise ValueError(f"{value!r}: a business day starts between 00:00 and 23:59")
    return time(minutes // 60, minutes % 60)


def clock_change_at(tz: ZoneInfo, start: time, years: range) -> date | None:
    """A date in `years` on which `start` does not exist in `tz` or happens twice (a
    daylight-saving change), if any. A business day must start at one well-defined instant,
    the same in Python and in PostgreSQL, so such a `day_starts_at` is refused."""
    first = date(years.start, 1, 1)
    previous = datetime.combine(first - timedelta(days=1), time(12), tz).utcoffset()
    for offset in range((date(years.stop, 1, 1) - first).days):
        day = first + timedelta(days=offset)
        noon = datetime.combine(day, time(12), tz).utcoffset()
        if noon != previous:  # the clocks changed since yesterday's noon
            for candidate in (day - timedelta(days=1), day):
                local = datetime.combine(candidate, start, tz)
                there_and_back = local.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
                twice = local.replace(fold=0).utcoffset() != local.replace(fold=1).utcoffset()
                if twice or there_and_back != local.replace(tzinfo=None):
                    return candidate
        previous = noon
    return None


def parse_hhmm(value: str) -> int:
    if not _HHMM.match(value):
        raise ValueError(f"{value!r} is not a time of day as HH:MM (00:00 to 24:00)")
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def parse_hours(hours: Mapping[str, Sequence[Sequence[str]]]) -> dict[str, list[Period]]:
    """Validate the `hours` object of a branch; raises ValueError saying what is wrong."""
    parsed: dict[str, list[Period]] = {}
    for day, periods in hours.items():
        if day not in WEEKDAYS:
            raise ValueError(f"hours: {day!r} is not a weekday (use {', '.join(WEEKDAYS)})")
        day_periods: list[Period] = []
        for period in periods:
            if len(period) != 2:
                raise ValueError(f"hours.{day}: each period is [start, end]")
            start, end = parse_hhmm(period[0]), parse_hhmm(period[1])
            if start == 24 * 60 or end <= start:
                raise ValueError(
                    f"hours.{day}: {period[0]}-{period[1]} must end after it starts "
                    "(periods cannot cross midnight)"
                )
            day_periods.append((start, end))
        day_periods.sort()
        for (_, prev_end), (next_start, _) in pairwise(day_periods):
            if next_start < prev_end:
                raise ValueError(f"hours.{day}: periods overlap")
        parsed[day] = day_periods
    return parsed


@dataclass(frozen=True)
class SpecialHours:
    """Weekly hours that replace the branch's from `first` to `last`, both included."""

    first: date
    last: date
    hours: WeeklyHours

    def covers(self, day: date) -> bool:
        return self.first <= day <= self.last

    def describe(self) -> str:
        return f"{self.first.isoformat()}..{self.last.isoformat()}"


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def parse_special_hours(ranges: Sequence[Mapping[str, Any]]) -> tuple[SpecialHours, ...]:
    """Validate a branch's `special_hours` ([{from, to, hours}], dates as `date` or ISO text);
    raises ValueError saying what is wrong. Returns the ranges in date order."""
    if len(ranges) > SPECIAL_HOURS_MAX:
        raise ValueError(f"at most {SPECIAL_HOURS_MAX} special-hours ranges")
    parsed = []
    for entry in ranges:
        first, last = _as_date(entry["from"]), _as_date(entry["to"])
        if last < first:
            raise ValueError(f"{first.isoformat()}..{last.isoformat()}: 'to' is before 'from'")
        try:
            hours = parse_hours(entry["hours"])
        except ValueError as exc:
            raise ValueError(f"{first.isoformat()}..{last.isoformat()}: {exc}") from None
        parsed.append(SpecialHours(first, last, hours))
    parsed.sort(key=lambda special: special.first)
    for earlier, later in pairwise(parsed):
        if later.first <= earlier.last:
            raise ValueError(
                f"{earlier.describe()} and {later.describe()} overlap "
                "(a date can have one set of hours)"
            )
    return tuple(parsed)


@dataclass(frozen=True)
class Schedule:
    """A branch's opening rules, in its own timezone."""

    tz: ZoneInfo
    hours: WeeklyHours | None  # None: always open (outside special hours)
    holidays: frozenset[date]
    issue_cutoff_min: int = 0
    day_starts_at: time = time(0)
    special: tuple[SpecialHours, ...] = ()  # in date order, never overlapping

    @classmethod
    def from_config(
        cls,
        timezone: str,
        hours: Mapping[str, Sequence[Sequence[str]]] | None,
        holidays: Sequence[str],
        issue_cutoff_min: int,
        day_starts_at: time = time(0),
        special_hours: Sequence[Mapping[str, Any]] = (),
    ) -> Schedule:
        return cls(
            tz=ZoneInfo(timezone),
            hours=parse_hours(hours) if hours is not None else None,
            holidays=frozenset(date.fromisoformat(d) for d in holidays),
            issue_cutoff_min=issue_cutoff_min,
            day_starts_at=day_starts_at,
            special=parse_special_hours(special_hours),
        )

    def business_date(self, when: datetime) -> date:
        """The business day a moment belongs to: the local date of the last `day_starts_at`
        (SPEC §5). With "04:00", 03:59 on the 2nd still belongs to the 1st."""
        local = when.astimezone(self.tz)
        offset = timedelta(hours=self.day_starts_at.hour, minutes=self.day_starts_at.minute)
        return (local.replace(tzinfo=None) - offset).date()

    @staticmethod
    def business_date_sql(branch: str, now: str = ":now") -> str:
        """`business_date` in SQL, for the `branches` row aliased `branch` at timestamptz `now`
        (tests check that the two agree)."""
        return (
            f"CAST(CAST({now} AS timestamptz) AT TIME ZONE {branch}.timezone"
            f" - CAST({branch}.day_starts_at AS interval) AS date)"
        )

    @staticmethod
    def day_start_sql(branch: str, day: str) -> str:
        """`day_start` in SQL: when business day `day` (SQL date) of `branch` begins."""
        return (
            f"((CAST({day} AS timestamp) + CAST({branch}.day_starts_at AS interval))"
            f" AT TIME ZONE {branch}.timezone)"
        )

    def day_start(self, day: date) -> datetime:
        """The moment business day `day` begins; it ends where `day + 1` begins."""
        return datetime.combine(day, self.day_starts_at, self.tz)

    def hours_on(self, day: date) -> WeeklyHours | None:
        """The weekly hours that apply on `day`: a special range's if one covers it, else the
        branch's (None: always open). Holidays are not considered here."""
        for special in self.special:
            if special.covers(day):
                return special.hours
        return self.hours

    def periods_on(self, day: date) -> list[Period]:
        """The opening periods of local date `day`: none on a holiday, the whole day when
        always open."""
        if day in self.holidays:
            return []
        hours = self.hours_on(day)
        if hours is None:
            return [(0, 24 * 60)]
        return hours.get(WEEKDAYS[day.weekday()], [])

    def is_business_hours(self, when: datetime) -> bool:
        """Within opening hours (ignoring the issue cut-off)."""
        local = when.astimezone(self.tz)
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.periods_on(local.date()))

    def issue_refusal(self, when: datetime) -> IssueClosed | None:
        """None if a ticket may be issued at `when`; otherwise why not and when it opens next."""
        local = when.astimezone(self.tz)
        day = local.date()
        minute = local.hour * 60 + local.minute + local.second / 60
        if day in self.holidays:
            return IssueClosed("holiday", self.next_opening(when))
        periods = self.periods_on(day)
        for start, end in periods:
            if start <= minute < end:
                if minute >= end - self.issue_cutoff_min:
                    return IssueClosed(
                        "cutoff", self.next_opening(when), closes_at=self._at(day, end)
                    )
                return None
        return IssueClosed("closed", self.next_opening(when))

    def next_opening(self, when: datetime) -> datetime | None:
        """The next moment after `when` at which issuing opens (within a year), if any."""
        local = when.astimezone(self.tz)
        minute = local.hour * 60 + local.minute
        for offset in range(0, 367):
            day = local.date() + timedelta(days=offset)
            for start, end in self.periods_on(day):
                if end - self.issue_cutoff_min <= start:
                    continue  # the cut-off swallows the whole period
                if offset == 0 and start <= minute:
                    continue
                return self._at(day, start)
        return None

    def _at(self, day: date, minute: int) -> datetime:
        if minute >= 24 * 60:
            return datetime.combine(day + timedelta(days=1), time(0), self.tz)
        return datetime.combine(day, time(minute // 60, minute % 60), self.tz)


@dataclass(frozen=True)
class IssueClosed:
    reason: str  # "closed" | "holiday" | "cutoff"
    opens_at: datetime | None
    closes_at: datetime | None = None

    def describe(self) -> str:
        opens = (
            f"; it opens again at {self.opens_at.isoformat(timespec='minutes')}"
            if self.opens_at
            else "; no opening hours are scheduled within a year"
        )
        if self.reason == "holiday":
            return "the branch is closed today (holiday)" + opens
        if self.reason == "cutoff":
            assert self.closes_at is not None
            return (
                "ticket issuing has stopped before closing time "
                f"({self.closes_at.isoformat(timespec='minutes')})" + opens
            )
        return "the branch is closed now" + opens

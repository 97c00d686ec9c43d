"""The history tables' native partitions (docs/partitioning.md): `tickets` by `business_date`
and `branch_events` by `at` (UTC), one partition per week (Monday to Monday), and a DEFAULT
partition for rows outside the weeks made (a clock far off, a test's fake date).

Housekeeping makes the partitions ahead (`make_partitions_ahead`), moving any rows the default
partition holds for the week first; retention detaches and drops whole weeks
(app/retention/service.py). Old weeks stop changing, so autovacuum only visits this week's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

WEEK = timedelta(days=7)
# Made ahead of today: housekeeping that stops for two weeks still finds this week's partition.
WEEKS_AHEAD = 2
# A branch's business date is never more than two days before the UTC date (timezones down to
# UTC-12, a day that starts up to 24 h late): live tickets are never older than this.
LIVE_DAYS_BEFORE_UTC = 2
PARTITION_LOCK_NAMESPACE = 0x6870  # "hp": one process makes or drops partitions at a time
# Partition maintenance never queues the hot statements behind it for long.
LOCK_TIMEOUT = "2s"

_PARTITION_NAME = re.compile(r"^(tickets|branch_events)_(p\d{8}|default)$")


def is_partition_name(name: str | None) -> bool:
    """A partition of a history table: not in the models, made by migrations and housekeeping."""
    return name is not None and _PARTITION_NAME.match(name) is not None


def modelled(name: str | None, type_: str, _parents: object) -> bool:
    """Alembic's `include_name`: autogenerate compares the models' tables, and the partitions
    are made by the migrations and housekeeping, not modelled."""
    return not (type_ == "table" and is_partition_name(name))


def live_from_sql(now: str = ":now") -> str:
    """The oldest business date a live ticket (waiting, called today) can have at `now`, in SQL
    that PostgreSQL prunes partitions with when the plan starts (immutable in `now`)."""
    return f"(CAST(timezone('UTC', CAST({now} AS timestamptz)) AS date) - {LIVE_DAYS_BEFORE_UTC})"


def live_dates_sql(alias: str = "t", now: str = ":now") -> str:
    """`alias` (a tickets row) is of a date a live ticket can have: prunes old partitions."""
    return f"{alias}.business_date >= {live_from_sql(now)}"


def recent_dates_sql(alias: str = "t", days: int = 28) -> str:
    """`alias` (a tickets row) is of the last `days` days before the live dates: for readers of
    recent history (the wait estimate's service times and arrivals), a few partitions."""
    return f"{alias}.business_date >= {live_from_sql()} - {days}"


def live_week(now: datetime) -> date:
    """The Monday of the week of the oldest live date at `now`: the first partition a live
    ticket can be in."""
    return week_start(now.astimezone(UTC).date() - timedelta(days=LIVE_DAYS_BEFORE_UTC))


def from_week_sql(business_date: str, week: date | None) -> str:
    """`business_date` (SQL: a tickets row's) is of `week` or later, as a constant: PostgreSQL
    prunes the older partitions when it plans, so that even a generic plan holds (and locks)
    only the weeks from `week` on. None: every week (TRUE). A statement with it changes text
    once a week."""
    return "TRUE" if week is None else f"{business_date} >= DATE '{week.isoformat()}'"


def week_start(day: date) -> date:
    """The Monday that starts `day`'s week (PostgreSQL's date_trunc('week'))."""
    return day - timedelta(days=day.weekday())


@dataclass(frozen=True)
class PartitionedTable:
    """A history table partitioned by week on `key`: a date, or a timestamptz cut at UTC days."""

    name: str
    key: str
    key_is_timestamp: bool
    # The tables its foreign keys reference: attaching a partition locks them (SHARE ROW
    # EXCLUSIVE), so `make_partition` locks them first, before the default partition.
    references: tuple[str, ...] = ()

    def partition(self, start: date) -> str:
        return f"{self.name}_p{start:%Y%m%d}"

    @property
    def default(self) -> str:
        return f"{self.name}_default"

    def week_of(self, partition: str) -> date | None:
        """The week a partition's name starts (None: the default partition)."""
        return None if partition == self.default else date.fromisoformat(partition[-8:])

    def bound(self, day: date) -> str:
        return f"'{day.isoformat()} 00:00+00'" if self.key_is_timestamp else f"'{day.isoformat()}'"

    @property
    def week_sql(self) -> str:
        """SQL: the Monday of the row's week (UTC for a timestamp)."""
        day = f"timezone('UTC', {self.key})" if self.key_is_timestamp else self.key
        return f"CAST(date_trunc('week', {day}) AS date)"

    def partition_of_sql(self, start: date) -> str:
        """CREATE the week's partition unless it exists: for a bulk load into an idle database
        (bench/b5_history.py); a live one makes its weeks with `make_partition`."""
        return (
            f"CREATE TABLE IF NOT EXISTS {self.partition(start)} PARTITION OF {self.name}"
            f" FOR VALUES FROM ({self.bound(start)}) TO ({self.bound(start + WEEK)})"
        )

    def in_week(self, start: date) -> str:
        """SQL: the row's key is in the week starting `start`."""
        return f"{self.key} >= {self.bound(start)} AND {self.key} < {self.bound(start + WEEK)}"


TICKETS = PartitionedTable("tickets", "business_date", False, references=("services",))
BRANCH_EVENTS = PartitionedTable("branch_events", "at", True, references=("branches",))
PARTITIONED = (TICKETS, BRANCH_EVENTS)

_MISSING = text("SELECT n FROM unnest(CAST(:names AS text[])) AS n WHERE to_regclass(n) IS NULL")
_CLAIM = text("SELECT pg_advisory_xact_lock(:ns, 0)")


def weeks_to_have(today: date) -> list[date]:
    """The weeks whose partitions should exist on `today` (UTC): live dates to WEEKS_AHEAD on."""
    first = week_start(today - timedelta(days=LIVE_DAYS_BEFORE_UTC))
    last = week_start(today) + WEEKS_AHEAD * WEEK
    return [first + i * WEEK for i in range((last - first) // WEEK + 1)]


async def make_partition(session: AsyncSession, table: PartitionedTable, start: date) -> None:
    """Make the week's partition in the current transaction: a table of the parent's shape,
    the default partition's rows of the week moved into it, attached (which builds its indexes).
    ATTACH takes a lighter lock on the parent than CREATE ... PARTITION OF."""
    name, statements = table.partition(start), []
    # Writers lock the referenced table (every event updates its branch's row) before the
    # partitions; taken in the other order, as ATTACH would, a writer that routes a row to the
    # default partition deadlocks with it.
    if table.references:
        statements.append(f"LOCK TABLE {', '.join(table.references)} IN SHARE ROW EXCLUSIVE MODE")
    statements.append(
        f"CREATE TABLE {name} (LIKE {table.name} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    moved = f"DELETE FROM {table.default} WHERE {table.in_week(start)} RETURNING *"  # noqa: S608
    statements.append(f"WITH moved AS ({moved}) INSERT INTO {name} SELECT * FROM moved")  # noqa: S608
    statements.append(
        f"ALTER TABLE {table.name} ATTACH PARTITION {name}"
        f" FOR VALUES FROM ({table.bound(start)}) TO ({table.bound(start + WEEK)})"
    )
    for statement in statements:
        await session.execute(text(statement))


async def make_partitions_ahead(session: AsyncSession, now: datetime) -> list[str]:
    """Make the partitions `weeks_to_have` that are missing, and those of the weeks the default
    partitions hold rows of (which keeps them empty), each in a transaction of its own; the
    names made. One process at a time: the others skip what it made."""
    weeks = weeks_to_have(now.astimezone(UTC).date())
    wanted = {table.partition(week): (table, week) for table in PARTITIONED for week in weeks}
    for table in PARTITIONED:
        held = await session.scalars(text(f"SELECT DISTINCT {table.week_sql} FROM {table.default}"))  # noqa: S608
        wanted.update({table.partition(week): (table, week) for week in held})
    missing = list(await session.scalars(_MISSING, {"names": list(wanted)}))
    await session.commit()
    made = []
    for name in missing:
        await session.execute(_CLAIM, {"ns": PARTITION_LOCK_NAMESPACE})
        await session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        if await session.scalar(text("SELECT to_regclass(:name) IS NULL"), {"name": name}):
            await make_partition(session, *wanted[name])
            made.append(name)
        await session.commit()
    return made

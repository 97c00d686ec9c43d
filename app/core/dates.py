"""Dates as the API takes them in query parameters (a report's day, a plan's date)."""

from __future__ import annotations

from datetime import date

from app.core.errors import unprocessable

# hallq keeps no history older than this: a date before it is a mistake, not a question.
EARLIEST_DATE = date(2000, 1, 1)


def parse_query_date(value: str) -> date:
    """YYYY-MM-DD, a calendar date not before EARLIEST_DATE; else a 422 `invalid-date`."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise unprocessable(
            "invalid-date", f"date {value!r} is not a calendar date as YYYY-MM-DD"
        ) from None
    if day < EARLIEST_DATE:
        raise unprocessable(
            "invalid-date",
            f"date {day.isoformat()} is before {EARLIEST_DATE.isoformat()}: hallq keeps no "
            "history that old",
        )
    return day

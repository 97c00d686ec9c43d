"""Business hours as pure functions (the API side is in test_tickets)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from app.branches.hours import Schedule, parse_hours

WEEKDAYS = {d: [["09:00", "17:00"]] for d in ["mon", "tue", "wed", "thu", "fri"]}


def at(text: str, tz: str = "UTC") -> datetime:
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz))


def test_no_hours_means_always_open():
    schedule = Schedule.from_config("Asia/Shanghai", None, [], 0)
    assert schedule.issue_refusal(at("2026-11-28T03:00")) is None
    assert schedule.is_business_hours(at("2026-11-28T03:00"))


def test_holidays_close_even_an_always_open_branch():
    schedule = Schedule.from_config("Asia/Shanghai", None, ["2026-11-28"], 0)
    refusal = schedule.issue_refusal(at("2026-11-28T10:00", "Asia/Shanghai"))
    assert refusal is not None and refusal.reason == "holiday"
    assert refusal.opens_at == at("2026-11-29T00:00", "Asia/Shanghai")


def test_24_00_ends_the_day_and_the_next_opening_is_found():
    schedule = Schedule.from_config("UTC", {"sat": [["20:00", "24:00"]]}, [], 0)
    assert schedule.issue_refusal(at("2026-11-28T23:59")) is None
    refusal = schedule.issue_refusal(at("2026-11-29T00:00"))
    assert refusal is not None and refusal.opens_at == at("2026-12-05T20:00")


def test_business_date_is_local():
    schedule = Schedule.from_config("Asia/Shanghai", None, [], 0)
    assert schedule.business_date(datetime(2026, 11, 24, 16, 30, tzinfo=UTC)) == date(2026, 11, 25)


def test_opening_across_a_daylight_saving_change():
    schedule = Schedule.from_config("Europe/Berlin", WEEKDAYS, [], 0)
    # Saturday 28 March 2026; clocks go forward on Sunday the 29th.
    refusal = schedule.issue_refusal(at("2026-03-28T12:00", "Europe/Berlin"))
    assert refusal is not None
    assert refusal.opens_at == at("2026-03-30T09:00", "Europe/Berlin")
    assert refusal.opens_at.utcoffset() == timedelta(hours=2)  # summer time by then


def test_a_cutoff_that_swallows_a_period_skips_it():
    schedule = Schedule.from_config(
        "UTC", {"mon": [["09:00", "09:10"], ["10:00", "12:00"]]}, [], 15
    )
    refusal = schedule.issue_refusal(at("2026-11-30T08:00"))
    assert refusal is not None and refusal.opens_at == at("2026-11-30T10:00")


def test_no_opening_within_a_year():
    schedule = Schedule.from_config("UTC", {}, [], 0)
    refusal = schedule.issue_refusal(at("2026-11-30T08:00"))
    assert refusal is not None and refusal.opens_at is None
    assert "no opening hours" in refusal.describe()


@pytest.mark.parametrize(
    "hours",
    [
        {"mon": [["09:00", "09:00"]]},
        {"mon": [["24:00", "24:00"]]},
        {"mon": [["09:00", "25:00"]]},
        {"mon": [["9:00", "10:00"]]},
        {"xyz": []},
        {"mon": [["09:00", "11:00"], ["10:59", "12:00"]]},
    ],
)
def test_invalid_hours(hours):
    with pytest.raises(ValueError):
        parse_hours(hours)

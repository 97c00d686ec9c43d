"""Business hours as pure functions (the API side is in test_tickets)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from app.branches.hours import Schedule, parse_hours, parse_special_hours

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


# -- special hours (SPEC §7) -----------------------------------------------------------------------

SUMMER = {
    "from": "2026-07-01",
    "to": "2026-08-31",
    "hours": {d: [["08:00", "18:00"]] for d in ["mon", "tue", "wed", "thu", "fri", "sat"]},
}
ONE_DAY = {"from": "2026-12-31", "to": "2026-12-31", "hours": {"thu": [["09:00", "12:00"]]}}


def special(*ranges: dict, holidays: tuple[str, ...] = ()) -> Schedule:
    return Schedule.from_config("UTC", WEEKDAYS, list(holidays), 0, special_hours=list(ranges))


def test_special_hours_replace_the_weekly_hours_inclusively():
    schedule = special(SUMMER)
    assert schedule.issue_refusal(at("2026-07-01T08:00")) is None  # first day, earlier opening
    assert schedule.issue_refusal(at("2026-08-31T17:30")) is None  # last day, later closing
    assert schedule.issue_refusal(at("2026-08-29T10:00")) is None  # a Saturday, open in summer
    # The day after the range: the weekly hours again.
    assert schedule.issue_refusal(at("2026-09-01T08:30")) is not None
    assert schedule.issue_refusal(at("2026-06-30T17:30")) is not None
    assert schedule.is_business_hours(at("2026-07-04T09:00"))
    assert not schedule.is_business_hours(at("2026-07-05T09:00"))  # Sunday: not in its hours


def test_a_one_day_range_and_the_next_opening_around_it():
    schedule = special(ONE_DAY)
    refusal = schedule.issue_refusal(at("2026-12-31T13:00"))  # New Year's Eve: closes at noon
    assert refusal is not None and refusal.reason == "closed"
    assert refusal.opens_at == at("2027-01-01T09:00")  # a Friday: weekly hours again
    # From the evening before, the special day's own opening.
    assert schedule.next_opening(at("2026-12-30T18:00")) == at("2026-12-31T09:00")


def test_next_opening_skips_a_closed_special_range():
    closed_week = {"from": "2026-12-07", "to": "2026-12-13", "hours": {}}  # renovation
    refusal = special(closed_week).issue_refusal(at("2026-12-04T17:30"))  # Friday evening
    assert refusal is not None and refusal.opens_at == at("2026-12-14T09:00")


def test_next_opening_enters_a_special_range():
    refusal = special(SUMMER).issue_refusal(at("2026-06-30T17:30"))
    assert refusal is not None and refusal.opens_at == at("2026-07-01T08:00")


def test_holidays_still_close_a_day_with_special_hours():
    refusal = special(SUMMER, holidays=("2026-07-02",)).issue_refusal(at("2026-07-02T10:00"))
    assert refusal is not None and refusal.reason == "holiday"
    assert refusal.opens_at == at("2026-07-03T08:00")


def test_special_hours_apply_to_an_always_open_branch():
    schedule = Schedule.from_config("UTC", None, [], 0, special_hours=[ONE_DAY])
    assert schedule.issue_refusal(at("2026-12-30T03:00")) is None
    assert schedule.issue_refusal(at("2026-12-31T03:00")) is not None
    assert schedule.hours_on(date(2027, 1, 1)) is None


def test_special_hours_in_the_branch_timezone():
    schedule = Schedule.from_config("Asia/Shanghai", WEEKDAYS, [], 0, special_hours=[ONE_DAY])
    # 02:00 UTC on the 31st is 10:00 in Shanghai, inside the special day's morning.
    assert schedule.issue_refusal(datetime(2026, 12, 31, 2, 0, tzinfo=UTC)) is None
    assert schedule.issue_refusal(datetime(2026, 12, 31, 5, 0, tzinfo=UTC)) is not None


@pytest.mark.parametrize(
    ("ranges", "fragment"),
    [
        ([{**ONE_DAY, "to": "2026-12-30"}], "'to' is before 'from'"),
        ([SUMMER, {**SUMMER, "from": "2026-08-31", "to": "2026-09-30"}], "overlap"),
        ([ONE_DAY, {**ONE_DAY, "hours": {}}], "overlap"),
        ([{**ONE_DAY, "hours": {"thu": [["12:00", "09:00"]]}}], "hours.thu"),
        ([{**ONE_DAY, "hours": {"day": []}}], "not a weekday"),
        ([ONE_DAY] * 101, "at most 100"),
    ],
)
def test_invalid_special_hours(ranges, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_special_hours(ranges)


def test_adjacent_ranges_do_not_overlap():
    ranges = parse_special_hours([{**SUMMER, "from": "2026-09-01", "to": "2026-09-30"}, SUMMER])
    assert [r.first for r in ranges] == [date(2026, 7, 1), date(2026, 9, 1)]  # in date order

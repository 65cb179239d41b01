"""core.time: UTC stored, the association's zone decides the day; month arithmetic."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from membership.core.time import (
    add_months, as_utc, local_date, local_midnight_utc, local_today, period_end, to_local, utcnow)

NEW_YEAR_EVE = datetime(2026, 12, 31, 18, 30, tzinfo=timezone.utc)


def test_utcnow_is_aware_utc():
    now = utcnow()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)


def test_as_utc_takes_naive_values_as_utc_and_converts_aware_ones():
    assert as_utc(datetime(2026, 1, 1, 12, 0)) == datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    dhaka = datetime(2026, 1, 1, 6, 0, tzinfo=ZoneInfo("Asia/Dhaka"))
    assert as_utc(dhaka) == datetime(2026, 1, 1, 0, 0, tzinfo=timezone.utc)
    assert as_utc(dhaka).tzinfo == timezone.utc


@pytest.mark.parametrize("zone, day", [
    ("Asia/Dhaka", date(2027, 1, 1)),          # UTC+6: 00:30 on New Year's Day
    ("Asia/Kolkata", date(2027, 1, 1)),        # UTC+5:30: exactly midnight
    ("Europe/London", date(2026, 12, 31)),
    ("America/New_York", date(2026, 12, 31)),  # 13:30
    ("Pacific/Kiritimati", date(2027, 1, 1)),  # UTC+14
])
def test_local_date_at_new_year(zone, day):
    assert local_date(NEW_YEAR_EVE, zone) == day
    assert local_date(NEW_YEAR_EVE, ZoneInfo(zone)) == day


def test_local_date_of_a_naive_value_reads_it_as_utc():
    assert local_date(datetime(2026, 12, 31, 18, 30), "Asia/Dhaka") == date(2027, 1, 1)


def test_local_today_and_to_local_follow_the_configured_zone(app, monkeypatch):
    assert app.config["TIMEZONE"] == "Asia/Dhaka"
    assert local_today(NEW_YEAR_EVE) == date(2027, 1, 1)
    assert to_local(NEW_YEAR_EVE).strftime("%Y-%m-%d %H:%M") == "2027-01-01 00:30"
    monkeypatch.setitem(app.config, "TIMEZONE", "America/New_York")
    assert local_today(NEW_YEAR_EVE) == date(2026, 12, 31)
    assert to_local(NEW_YEAR_EVE).strftime("%Y-%m-%d %H:%M") == "2026-12-31 13:30"


def test_the_day_changes_exactly_at_local_midnight(app):
    midnight = local_midnight_utc(date(2027, 1, 1), "Asia/Dhaka")
    assert midnight == datetime(2026, 12, 31, 18, 0, tzinfo=timezone.utc)
    assert local_today(midnight - timedelta(microseconds=1)) == date(2026, 12, 31)
    assert local_today(midnight) == date(2027, 1, 1)


def test_local_midnight_across_daylight_saving():
    # London: clocks go forward on 29 March 2026 at 01:00 UTC; midnight before that is still GMT.
    assert local_midnight_utc(date(2026, 3, 29), "Europe/London") == datetime(2026, 3, 29, 0, 0, tzinfo=timezone.utc)
    assert local_midnight_utc(date(2026, 3, 30), "Europe/London") == datetime(2026, 3, 29, 23, 0,
                                                                                tzinfo=timezone.utc)


@pytest.mark.parametrize("day, months, expected", [
    (date(2026, 1, 31), 1, date(2026, 2, 28)),
    (date(2028, 1, 31), 1, date(2028, 2, 29)),
    (date(2026, 3, 31), 1, date(2026, 4, 30)),
    (date(2024, 2, 29), 12, date(2025, 2, 28)),
    (date(2024, 2, 29), 48, date(2028, 2, 29)),
    (date(2026, 12, 15), 1, date(2027, 1, 15)),
    (date(2026, 1, 15), -1, date(2025, 12, 15)),
    (date(2026, 3, 31), -1, date(2026, 2, 28)),
    (date(2026, 1, 1), -12, date(2025, 1, 1)),
    (date(2026, 5, 17), 0, date(2026, 5, 17)),
])
def test_add_months_clamps_to_the_end_of_a_short_month(day, months, expected):
    assert add_months(day, months) == expected


@pytest.mark.parametrize("start, months, end", [
    (date(2025, 7, 1), 12, date(2026, 6, 30)),
    (date(2026, 1, 1), 12, date(2026, 12, 31)),     # year end
    (date(2024, 2, 29), 12, date(2025, 2, 28)),     # leap day: the whole of February
    (date(2028, 2, 29), 12, date(2029, 2, 28)),
    (date(2027, 3, 1), 12, date(2028, 2, 29)),      # ends on the leap day
    (date(2026, 1, 31), 1, date(2026, 2, 28)),      # 31 January plus a month
    (date(2028, 1, 31), 1, date(2028, 2, 29)),
    (date(2026, 1, 29), 1, date(2026, 2, 28)),
    (date(2026, 1, 28), 1, date(2026, 2, 27)),
    (date(2026, 8, 31), 6, date(2027, 2, 28)),
    (date(2026, 3, 15), 1, date(2026, 4, 14)),
    (date(2026, 12, 1), 1, date(2026, 12, 31)),
])
def test_period_end(start, months, end):
    assert period_end(start, months) == end


def test_consecutive_periods_tile_the_calendar():
    """The day after each period's end is the next start: no day lost or counted twice, for every
    start day of four years and the common period lengths."""
    for months in (1, 3, 6, 12, 24):
        start = date(2024, 1, 1)
        while start < date(2028, 1, 1):
            end = period_end(start, months)
            assert end >= start
            nxt = end + timedelta(days=1)
            # the next period starts on the same day of the month unless that day does not exist
            assert nxt.day in (start.day, 1), (start, months, end)
            start += timedelta(days=1)

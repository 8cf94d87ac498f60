"""The business clock the operations view measures exception ages in (``experience_apis.business_hours``),
and its settings (``OperationsSettings``, ``STRATUM_OPERATIONS__...``)."""

from __future__ import annotations

import datetime as dt

import pytest

from apis.config import OperationsSettings, load_settings
from experience_apis.business_hours import MAX_SPAN, business_seconds, sla_breached

UTC = dt.UTC
NINE_TO_FIVE = OperationsSettings()
H = 3600


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "hours"),
    [
        # Friday 17:30 (after hours) to Monday 10:00: only Monday 9-10 counts.
        ("2026-11-27T17:30", "2026-11-30T10:00", 1),
        # Within one working day.
        ("2026-11-30T10:00", "2026-11-30T12:30", 2.5),
        # Before opening to after closing: the whole working day.
        ("2026-11-30T06:00", "2026-11-30T20:00", 8),
        # Raised and read before opening, or both after closing, or both on a weekend: nothing.
        ("2026-11-30T06:00", "2026-11-30T08:59", 0),
        ("2026-11-30T17:00", "2026-11-30T23:00", 0),
        ("2026-11-28T09:00", "2026-11-29T17:00", 0),
        # Across days: Monday 16:00 to Wednesday 10:00 = 1 + 8 + 1.
        ("2026-11-30T16:00", "2026-12-02T10:00", 10),
        # A whole working week, weekend to weekend.
        ("2026-11-28T00:00", "2026-12-05T00:00", 40),
        # Read before it was raised (a clock seam in the past): no age.
        ("2026-11-30T12:00", "2026-11-30T10:00", 0),
    ],
)
def test_business_hours_count_only_working_time(start: str, end: str, hours: float) -> None:
    assert business_seconds(_utc(start), _utc(end), NINE_TO_FIVE) == hours * H


def test_working_hours_are_local_to_the_configured_time_zone() -> None:
    berlin = OperationsSettings(timezone="Europe/Berlin")
    # 08:00 UTC on a winter Monday is 09:00 in Berlin: it opens then, an hour before UTC 9-17 would.
    start, end = _utc("2026-11-30T08:00"), _utc("2026-11-30T10:00")
    assert business_seconds(start, end, berlin) == 2 * H
    assert business_seconds(start, end, NINE_TO_FIVE) == 1 * H
    # 16:30 UTC is 17:30 in Berlin, after closing; in New York it is 11:30, inside.
    new_york = OperationsSettings(timezone="America/New_York")
    late = _utc("2026-11-30T16:30"), _utc("2026-11-30T17:30")
    assert business_seconds(*late, berlin) == 0
    assert business_seconds(*late, new_york) == 1 * H


def test_a_day_with_a_daylight_saving_change_keeps_its_wall_clock_hours() -> None:
    # Berlin springs forward on Sunday 29 March 2026; with every day working, 00:00-24:00 that day is 23
    # hours of real time, and Monday 09:00-17:00 is still 8 hours (07:00-15:00 UTC in summer time).
    every_day = OperationsSettings(
        timezone="Europe/Berlin", working_days="mon,tue,wed,thu,fri,sat,sun", start_hour=0, end_hour=24
    )
    assert business_seconds(_utc("2026-03-28T23:00"), _utc("2026-03-29T22:00"), every_day) == 23 * H
    berlin = OperationsSettings(timezone="Europe/Berlin")
    assert business_seconds(_utc("2026-03-30T06:00"), _utc("2026-03-30T16:00"), berlin) == 8 * H


def test_the_working_days_are_configurable() -> None:
    sunday_to_thursday = OperationsSettings(working_days="sun,mon,tue,wed,thu")
    friday_to_sunday = _utc("2026-11-27T00:00"), _utc("2026-11-30T00:00")
    assert business_seconds(*friday_to_sunday, sunday_to_thursday) == 8 * H
    assert business_seconds(*friday_to_sunday, NINE_TO_FIVE) == 8 * H  # the Friday
    assert business_seconds(_utc("2026-11-29T00:00"), _utc("2026-11-30T00:00"), NINE_TO_FIVE) == 0


@pytest.mark.parametrize(("age", "breached"), [(4 * H - 1, False), (4 * H, False), (4 * H + 1, True)])
def test_an_exception_breaches_once_it_has_waited_longer_than_its_sla(age: int, breached: bool) -> None:
    assert sla_breached(age, 4.0) is breached


def test_sla_hours_default_per_workflow_and_can_be_set() -> None:
    assert [NINE_TO_FIVE.sla_hours(w) for w in ("project_activation", "billing_run")] == [4.0, 8.0]
    assert [NINE_TO_FIVE.sla_hours(w) for w in ("invoice_status_sync", "customer_sync")] == [4.0, 8.0]
    settings = load_settings(
        {
            "STRATUM_OPERATIONS__TIMEZONE": "Europe/London",
            "STRATUM_OPERATIONS__WORKING_DAYS": "mon,tue,wed,thu",
            "STRATUM_OPERATIONS__START_HOUR": "8",
            "STRATUM_OPERATIONS__SLA_BUSINESS_HOURS": '{"project_activation": 2}',
        }
    )
    operations = settings.operations
    assert (operations.timezone, operations.start_hour, operations.end_hour) == ("Europe/London", 8, 17)
    assert operations.weekdays == frozenset({1, 2, 3, 4})
    assert operations.sla_hours("project_activation") == 2.0
    assert operations.sla_hours("billing_run") == 8.0  # not named: its default


@pytest.mark.parametrize(
    "env",
    [
        {"STRATUM_OPERATIONS__TIMEZONE": "Mars/Olympus"},
        {"STRATUM_OPERATIONS__WORKING_DAYS": "monday"},
        {"STRATUM_OPERATIONS__START_HOUR": "18"},
        {"STRATUM_OPERATIONS__END_HOUR": "25"},
        {"STRATUM_OPERATIONS__SLA_BUSINESS_HOURS": '{"payroll": 2}'},
        {"STRATUM_OPERATIONS__SLA_BUSINESS_HOURS": '{"billing_run": 0}'},
    ],
)
def test_a_bad_business_clock_is_refused_at_start(env: dict[str, str]) -> None:
    with pytest.raises(SystemExit, match="operations"):
        load_settings(env)


def test_business_time_is_counted_over_ten_years_at_most() -> None:
    start = _utc("2026-11-30T00:00")
    ten_years = business_seconds(start, start + MAX_SPAN, NINE_TO_FIVE)
    assert ten_years > 2000 * 8 * H
    assert business_seconds(start, dt.datetime(8999, 12, 31, tzinfo=UTC), NINE_TO_FIVE) == ten_years

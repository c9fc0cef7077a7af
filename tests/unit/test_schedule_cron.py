"""Cron dialect, time zones and next-run rules (CONTRACT §9.3), with a controlled clock: every
test passes the "now" instant explicitly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from spooled_backend.schedules.cron import (
    CronError,
    next_fire,
    next_fire_text,
    normalize_timezone,
    parse_cron,
    zone_of,
)


def fires(expr: str, tz: str, start: datetime, n: int) -> list[datetime]:
    spec, zone = parse_cron(expr), zone_of(normalize_timezone(tz))
    out: list[datetime] = []
    t = start
    for _ in range(n):
        t = next_fire(spec, zone, t)
        out.append(t)
    return out


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(instants: list[datetime], tz: str) -> list[str]:
    zone = zone_of(tz)
    return [i.astimezone(zone).strftime("%m-%d %H:%M:%S%z") for i in instants]


# ---- daylight saving time ---------------------------------------------------------------

# (zone, a day before spring forward, a nonexistent local time, first instant after the gap)
SPRING = [
    ("America/New_York", utc(2026, 3, 7, 12), "30 2 * * *", "03-08 03:00:00-0400"),
    ("Europe/Berlin", utc(2026, 3, 28, 12), "30 2 * * *", "03-29 03:00:00+0200"),
    ("Australia/Sydney", utc(2026, 10, 3, 0), "30 2 * * *", "10-04 03:00:00+1100"),
]


@pytest.mark.parametrize(("tz", "start", "expr", "gap_fire"), SPRING)
def test_nonexistent_local_time_fires_once_at_the_end_of_the_gap(
    tz: str, start: datetime, expr: str, gap_fire: str
) -> None:
    got = local(fires(expr, tz, start, 3), tz)
    assert got[0] == gap_fire
    assert got[1].endswith("02:30:00" + got[1][-5:]) and got[1][:5] != got[0][:5]
    assert len({g[:5] for g in got}) == 3  # one fire per day, the gap day included


# (zone, a day before fall back, a repeated local time)
FALL = [
    ("America/New_York", utc(2026, 10, 31, 12), "30 1 * * *", ["11-01 01:30:00-0400"]),
    ("Europe/Berlin", utc(2026, 10, 24, 12), "30 2 * * *", ["10-25 02:30:00+0200"]),
    ("Australia/Sydney", utc(2026, 4, 4, 0), "30 2 * * *", ["04-05 02:30:00+1100"]),
]


@pytest.mark.parametrize(("tz", "start", "expr", "first"), FALL)
def test_repeated_local_time_fires_once(
    tz: str, start: datetime, expr: str, first: list[str]
) -> None:
    got = local(fires(expr, tz, start, 3), tz)
    assert got[:1] == first
    days = [g[:5] for g in got]
    assert len(set(days)) == 3, got  # not twice on the repeated day


@pytest.mark.parametrize(
    ("tz", "start"),
    [
        ("America/New_York", utc(2026, 3, 8, 3)),
        ("America/New_York", utc(2026, 11, 1, 2)),
        ("Europe/Berlin", utc(2026, 3, 28, 22)),
        ("Europe/Berlin", utc(2026, 10, 24, 22)),
        ("Australia/Sydney", utc(2026, 10, 3, 12)),
        ("Australia/Sydney", utc(2026, 4, 4, 12)),
    ],
)
def test_hourly_schedule_fires_every_real_hour_across_both_transitions(
    tz: str, start: datetime
) -> None:
    got = fires("0 * * * *", tz, start, 8)
    gaps = {b - a for a, b in zip(got, got[1:], strict=False)}
    assert gaps == {timedelta(hours=1)}, local(got, tz)


def test_repeated_hour_of_a_fixed_hour_schedule_is_skipped_even_when_starting_in_it() -> None:
    # 01:50 EDT, first pass of the repeated hour 01:00-02:00 on 2026-11-01 in New York
    got = local(fires("*/20 1 * * *", "America/New_York", utc(2026, 11, 1, 5, 50), 4), "America/New_York")
    assert got == [
        "11-02 01:00:00-0500",
        "11-02 01:20:00-0500",
        "11-02 01:40:00-0500",
        "11-03 01:00:00-0500",
    ]


def test_every_minute_during_the_gap_fires_once_at_the_first_instant_after_it() -> None:
    got = local(fires("*/15 2-3 * * *", "America/New_York", utc(2026, 3, 8, 6), 3), "America/New_York")
    assert got == ["03-08 03:00:00-0400", "03-08 03:15:00-0400", "03-08 03:30:00-0400"]


def test_thirty_minute_dst_shift() -> None:
    # Lord Howe Island moves 30 minutes: 02:00 → 02:30 on 2026-10-04
    got = local(fires("15 2 * * *", "Australia/Lord_Howe", utc(2026, 10, 3, 0), 2), "Australia/Lord_Howe")
    assert got == ["10-04 02:30:00+1100", "10-05 02:15:00+1100"]


# ---- dialect ------------------------------------------------------------------------------


def test_six_fields_are_seconds_first() -> None:
    # croniter's own 6-field convention is seconds *last*: "30 0 2 * * *" would then be
    # minute 30 of hour 0 on day 2. We mean second 30, minute 0, hour 2.
    got = fires("30 0 2 * * *", "UTC", utc(2026, 1, 1), 2)
    assert got == [utc(2026, 1, 1, 2, 0, 30), utc(2026, 1, 2, 2, 0, 30)]
    assert fires("*/20 * * * * *", "UTC", utc(2026, 1, 1), 3) == [
        utc(2026, 1, 1, 0, 0, 20), utc(2026, 1, 1, 0, 0, 40), utc(2026, 1, 1, 0, 1, 0)
    ]


def test_five_fields_fire_at_second_zero() -> None:
    assert fires("*/5 * * * *", "UTC", utc(2026, 1, 1, 0, 0, 1), 2) == [
        utc(2026, 1, 1, 0, 5), utc(2026, 1, 1, 0, 10)
    ]


def test_dom_dow_or_rule() -> None:
    # 1st of the month OR Monday (2026-03-30 is a Monday)
    got = fires("0 0 1 * 1", "UTC", utc(2026, 3, 28), 3)
    assert got == [utc(2026, 3, 30), utc(2026, 4, 1), utc(2026, 4, 6)]
    # only dom restricted: dow `*` does not widen it
    assert fires("0 0 15 * *", "UTC", utc(2026, 3, 1), 2) == [utc(2026, 3, 15), utc(2026, 4, 15)]


@pytest.mark.parametrize("sunday", ["0", "7", "SUN", "sun"])
def test_sunday_spellings(sunday: str) -> None:
    # 2026-03-01 is a Sunday
    assert fires(f"0 9 * * {sunday}", "UTC", utc(2026, 2, 27), 1) == [utc(2026, 3, 1, 9)]


def test_names_ranges_and_steps() -> None:
    weekdays = fires("0 9 * * MON-FRI", "UTC", utc(2026, 2, 27, 10), 3)  # Friday 10:00
    assert weekdays == [utc(2026, 3, 2, 9), utc(2026, 3, 3, 9), utc(2026, 3, 4, 9)]
    assert fires("0 0 1 JAN,jul *", "UTC", utc(2026, 2, 1), 2) == [utc(2026, 7, 1), utc(2027, 1, 1)]
    assert fires("10-30/10 * * * *", "UTC", utc(2026, 1, 1), 4) == [
        utc(2026, 1, 1, 0, 10), utc(2026, 1, 1, 0, 20), utc(2026, 1, 1, 0, 30), utc(2026, 1, 1, 1, 10)
    ]
    assert fires("45/5 * * * *", "UTC", utc(2026, 1, 1), 4) == [
        utc(2026, 1, 1, 0, 45), utc(2026, 1, 1, 0, 50), utc(2026, 1, 1, 0, 55), utc(2026, 1, 1, 1, 45)
    ]
    # */n in dom counts from 1
    assert fires("0 0 */10 * *", "UTC", utc(2026, 1, 1, 1), 3) == [
        utc(2026, 1, 11), utc(2026, 1, 21), utc(2026, 1, 31)
    ]


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("@hourly", utc(2026, 1, 1, 1)),
        ("@daily", utc(2026, 1, 2)),
        ("@midnight", utc(2026, 1, 2)),
        ("@weekly", utc(2026, 1, 4)),
        ("@monthly", utc(2026, 2, 1)),
        ("@yearly", utc(2027, 1, 1)),
        ("@ANNUALLY", utc(2027, 1, 1)),
    ],
)
def test_macros(macro: str, expected: datetime) -> None:
    assert fires(macro, "UTC", utc(2026, 1, 1, 0, 30), 1) == [expected]


def test_extra_whitespace_is_normalized() -> None:
    assert parse_cron("  0  9 * *\t1 ").expression == "0 9 * * 1"


BAD = [
    ("", "empty"),
    ("   ", "empty"),
    ("* * * *", "expected 5 fields"),
    ("* * * * * * *", "got 7"),
    ("*", "got 1"),
    ("60 * * * *", "minute field: value 60 is out of range 0-59"),
    ("* 24 * * *", "hour field: value 24 is out of range 0-23"),
    ("* * 0 * *", "day of month field: value 0 is out of range 1-31"),
    ("* * 32 * *", "day of month field: value 32"),
    ("* * * 13 *", "month field: value 13 is out of range 1-12"),
    ("* * * 0 *", "month field: value 0"),
    ("* * * * 8", "day of week field: value 8 is out of range 0-7"),
    ("60 * * * * *", "second field: value 60 is out of range 0-59"),
    ("-1 * * * *", "minute field"),
    ("5-1 * * * *", "reversed"),
    ("*/0 * * * *", "step 0 must be between 1 and 60"),
    ("*/61 * * * *", "step 61"),
    ("1,,2 * * * *", "empty list element"),
    ("1, * * * *", "empty list element"),
    ("* * ? * *", "'?' is not supported"),
    ("0 0 L * *", "'L' is not supported"),
    ("0 0 15W * *", "not a valid value"),
    ("0 0 * * 1#2", "'#' is not supported"),
    ("H * * * *", "'H' is not supported"),
    ("a * * * *", "names are not allowed"),
    ("* * * * FOO", "unknown name 'FOO'"),
    ("* * * FOO *", "unknown name 'FOO'"),
    ("* * MON * *", "names are not allowed"),
    ("1-2-3 * * * *", "not a valid value"),
    ("*/5/2 * * * *", "not a valid value"),
    ("1.5 * * * *", "not a valid value"),
    ("@reboot", "unknown macro '@reboot'"),
    ("@every 5m", "unknown macro"),
    ("٣ * * * *", "not a valid value"),
    ("0 0 " + "1," * 50 + "1 * *", "at most 100 characters"),
]


@pytest.mark.parametrize(("expr", "message"), BAD)
def test_bad_expressions_say_what_is_wrong(expr: str, message: str) -> None:
    with pytest.raises(CronError) as err:
        parse_cron(expr)
    assert message in str(err.value)


@pytest.mark.parametrize("expr", ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6,9,11 *"])
def test_expressions_that_never_match_a_date(expr: str) -> None:
    spec = parse_cron(expr)
    with pytest.raises(CronError, match="never matches a date"):
        next_fire(spec, UTC, utc(2026, 1, 1))


def test_non_string_expression() -> None:
    with pytest.raises(CronError, match="must be a string"):
        parse_cron(5)


# ---- time zones ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("UTC", "UTC"),
        ("Z", "UTC"),
        ("Europe/Kyiv", "Europe/Kyiv"),
        ("america/new_york", "America/New_York"),
        (" Asia/Kolkata ", "Asia/Kolkata"),
        ("Etc/GMT+5", "Etc/GMT+5"),
        ("+05:30", "+05:30"),
        ("-0800", "-08:00"),
        ("+02", "+02:00"),
        ("+14:00", "+14:00"),
        ("-12:00", "-12:00"),
    ],
)
def test_timezones_accepted(given: str, stored: str) -> None:
    assert normalize_timezone(given) == stored


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("Mars/Olympus", "unknown timezone 'Mars/Olympus'"),
        ("America", "unknown timezone"),
        ("localtime", "unknown timezone"),
        ("../../etc/passwd", "unknown timezone"),
        ("/usr/share/zoneinfo/UTC", "unknown timezone"),
        ("", "non-empty"),
        ("+15:00", "between -12:00 and +14:00"),
        ("-13:00", "between -12:00 and +14:00"),
        ("+05:60", "minutes must be 00-59"),
        ("+5:30", "unknown timezone"),
        ("x" * 300, "unknown timezone"),
    ],
)
def test_timezones_refused(given: str, message: str) -> None:
    with pytest.raises(CronError) as err:
        normalize_timezone(given)
    assert message in str(err.value)


def test_fixed_offset_zone() -> None:
    assert fires("0 9 * * *", "+05:30", utc(2026, 1, 1), 1) == [utc(2026, 1, 1, 3, 30)]
    assert fires("0 9 * * *", "-08:00", utc(2026, 1, 1), 1) == [utc(2026, 1, 1, 17)]


def test_next_fire_text_refuses_a_corrupt_row() -> None:
    with pytest.raises(CronError):
        next_fire_text("not a cron", "UTC", utc(2026, 1, 1))
    with pytest.raises(CronError):
        next_fire_text("* * * * *", "Nowhere/Land", utc(2026, 1, 1))


def test_six_field_time_in_the_gap_fires_at_the_first_instant_after_it() -> None:
    # croniter alone would fire at 03:00:30 (it moves the time forward in whole minutes)
    got = local(fires("30 15 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), 2), "Europe/Berlin")
    assert got == ["03-29 03:00:00+0200", "03-30 02:15:30+0200"]


def test_hourly_schedule_skips_the_local_times_a_gap_removes() -> None:
    # 02:15 does not exist on 2026-03-08 in New York; 01:15 EST → 03:15 EDT is one real hour
    got = fires("15 * * * *", "America/New_York", utc(2026, 3, 8, 6), 3)
    assert got == [utc(2026, 3, 8, 6, 15), utc(2026, 3, 8, 7, 15), utc(2026, 3, 8, 8, 15)]


def test_full_hour_range_counts_as_every_hour() -> None:
    for expr in ("0 0-23 * * *", "0 */1 * * *"):
        assert parse_cron(expr).hourly_or_finer
    assert not parse_cron("0 0-22 * * *").hourly_or_finer

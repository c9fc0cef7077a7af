"""Property tests (hypothesis) of next-run computation, against a brute-force oracle.

For random expressions of the accepted dialect, zones with and without DST and start instants
near the DST changes of 2026:

* the fires are strictly increasing, on whole seconds;
* each fire matches the expression in local wall time, or (set times of day: hour field not
  `*`) is the first instant after a DST gap that swallowed a matching local time;
* a schedule that does not fire every hour never fires in the second pass of a repeated hour;
* (5 fields) nothing is skipped: a minute-by-minute scan of the first 36 hours finds exactly
  the fires produced.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo

from croniter import croniter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spooled_backend.schedules.cron import CronError, CronSpec, next_fire, parse_cron, zone_of

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/Santiago",
    "Asia/Kolkata",
    "+05:45",
]
# Around the 2026 DST changes of the zones above (UTC)
ANCHORS = [
    datetime(2026, 3, 8, 6, tzinfo=UTC),
    datetime(2026, 11, 1, 5, tzinfo=UTC),
    datetime(2026, 3, 29, 0, tzinfo=UTC),
    datetime(2026, 10, 25, 0, tzinfo=UTC),
    datetime(2026, 10, 3, 15, tzinfo=UTC),
    datetime(2026, 4, 4, 15, tzinfo=UTC),
    datetime(2026, 9, 26, 13, tzinfo=UTC),
    datetime(2026, 4, 4, 13, tzinfo=UTC),
    datetime(2026, 9, 6, 3, tzinfo=UTC),
    datetime(2026, 7, 1, 0, tzinfo=UTC),
]


def _field(low: int, high: int, hot: list[int]) -> st.SearchStrategy[str]:
    value = st.one_of(st.sampled_from(hot), st.integers(low, high)) if hot else st.integers(low, high)
    single = value.map(str)
    ranged = st.tuples(value, value).map(lambda p: f"{min(p)}-{max(p)}")
    step = st.integers(1, high - low + 1)
    return st.one_of(
        st.just("*"),
        single,
        ranged,
        step.map(lambda s: f"*/{s}"),
        st.tuples(ranged, step).map(lambda p: f"{p[0]}/{p[1]}"),
        st.lists(single, min_size=2, max_size=4).map(",".join),
    )


MINUTE = _field(0, 59, [0, 15, 30, 45])
HOUR = _field(0, 23, [0, 1, 2, 3])
DOM = st.one_of(st.just("*"), st.just("*"), _field(1, 31, [1, 15, 28, 31]))
MONTH = st.one_of(st.just("*"), st.just("*"), _field(1, 12, [3, 4, 9, 10, 11]))
DOW = st.one_of(st.just("*"), st.just("*"), _field(0, 7, [0, 6, 7]))
SECOND = _field(0, 59, [0, 30])

FIVE = st.tuples(MINUTE, HOUR, DOM, MONTH, DOW).map(" ".join)
SIX = st.tuples(SECOND, MINUTE, HOUR, DOM, MONTH, DOW).map(" ".join)
STARTS = st.tuples(
    st.sampled_from(ANCHORS), st.integers(-36 * 3600, 36 * 3600)
).map(lambda p: p[0] + timedelta(seconds=p[1]))


def matches(spec: CronSpec, wall: datetime) -> bool:
    """Does the naive local wall time match? (croniter's own matcher)"""
    return bool(croniter.match(spec.croniter_expr, wall, second_at_beginning=spec.has_seconds))


def fast_matcher(spec: CronSpec) -> Callable[[datetime], bool]:
    """The same question by set membership over croniter's expansion (the minute scan asks it
    thousands of times); the OR rule applies when both day fields are restricted."""
    expanded, _ = croniter.expand(spec.croniter_expr, second_at_beginning=spec.has_seconds)

    def values(i: int, low: int, high: int) -> set[int]:
        field = expanded[i]
        return set(range(low, high + 1)) if field == ["*"] else {int(v) for v in field}

    minute, hour, dom, month, dow = (
        values(0, 0, 59), values(1, 0, 23), values(2, 1, 31), values(3, 1, 12), values(4, 0, 6)
    )
    second = values(5, 0, 59) if spec.has_seconds else {0}
    either = expanded[2] != ["*"] and expanded[4] != ["*"]

    def match(wall: datetime) -> bool:
        if wall.second not in second or wall.minute not in minute or wall.hour not in hour:
            return False
        if wall.month not in month:
            return False
        day, weekday = wall.day in dom, wall.isoweekday() % 7 in dow
        return (day or weekday) if either else (day and weekday)

    return match


def gap_before(instant: datetime, zone: tzinfo) -> tuple[datetime, datetime] | None:
    """When `instant` is the first instant after a DST gap: the gap's wall times [start, end)."""
    before = (instant - timedelta(seconds=1)).astimezone(zone).replace(tzinfo=None)
    here = instant.astimezone(zone).replace(tzinfo=None)
    if here - before > timedelta(seconds=1):
        return before + timedelta(seconds=1), here
    return None


def gap_matches(
    spec: CronSpec, gap: tuple[datetime, datetime], match: Callable[[datetime], bool] | None = None
) -> bool:
    match = match or (lambda wall: matches(spec, wall))
    wall = gap[0]
    step = timedelta(seconds=1 if spec.has_seconds else 60)
    if not spec.has_seconds:
        wall = wall.replace(second=0) + (timedelta(minutes=1) if wall.second else timedelta())
    while wall < gap[1]:
        if match(wall):
            return True
        wall += step
    return False


def run(expr: str, tz: str, start: datetime, n: int) -> tuple[CronSpec, tzinfo, list[datetime]]:
    spec, zone = parse_cron(expr), zone_of(tz)
    out: list[datetime] = []
    t = start
    for _ in range(n):
        try:
            t = next_fire(spec, zone, t)
        except CronError:  # never matches (e.g. Feb 30): nothing more to check
            break
        out.append(t)
    return spec, zone, out


def check_fires(spec: CronSpec, zone: tzinfo, start: datetime, got: list[datetime]) -> None:
    previous = start
    for fire in got:
        assert fire > previous, (previous, fire)
        assert fire.microsecond == 0
        wall = fire.astimezone(zone)
        gap = gap_before(fire, zone)
        assert matches(spec, wall.replace(tzinfo=None)) or (
            not spec.hourly_or_finer and gap is not None and gap_matches(spec, gap)
        ), f"{fire} ({wall}) does not match {spec.expression}"
        if not spec.hourly_or_finer:
            assert wall.fold == 0, f"{fire} fires in the repeated hour again ({wall})"
        previous = fire


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=FIVE | SIX, tz=st.sampled_from(ZONES), start=STARTS)
def test_fires_are_increasing_and_match_in_local_time(expr: str, tz: str, start: datetime) -> None:
    spec, zone, got = run(expr, tz, start, 25)
    check_fires(spec, zone, start, got)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=FIVE, tz=st.sampled_from(ZONES), start=STARTS)
def test_nothing_is_skipped_minute_by_minute(expr: str, tz: str, start: datetime) -> None:
    spec, zone = parse_cron(expr), zone_of(tz)
    match = fast_matcher(spec)
    start = start.replace(second=0)
    end = start + timedelta(hours=36)
    expected: list[datetime] = []
    t = start + timedelta(minutes=1)
    while t <= end:
        wall = t.astimezone(zone)
        gap = gap_before(t, zone)
        hit = match(wall.replace(tzinfo=None)) and (spec.hourly_or_finer or wall.fold == 0)
        swallowed = not spec.hourly_or_finer and gap is not None and gap_matches(spec, gap, match)
        if hit or swallowed:
            expected.append(t)
        t += timedelta(minutes=1)
    got: list[datetime] = []
    t = start
    while len(got) < 120:  # frequent expressions: compare the first 120 fires
        try:
            t = next_fire(spec, zone, t)
        except CronError:
            break
        if t > end:
            break
        got.append(t)
    if len(got) == 120:
        expected = [e for e in expected if e <= got[-1]]
    assert got == expected

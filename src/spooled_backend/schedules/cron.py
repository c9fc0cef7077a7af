"""Cron expressions and time zones: validation and next-run computation (CONTRACT §9.3).

The computation is croniter's (evaluated in the schedule's zone with `zoneinfo`); this module
only checks the accepted dialect up front, so every refusal is a precise 400, and adds one
tested rule croniter lacks (see `next_fire`).

Accepted dialect (README "Schedules"):

* 5 fields `min hour dom mon dow` (seconds = 0) or 6 fields `sec min hour dom mon dow`
  (seconds **first**; croniter's own 6-field convention is seconds last, so 6-field expressions
  are always handed to croniter with `second_at_beginning=True`).
* Per field: `*`, `n`, `a-b`, lists `a,b,c`, steps `*/n`, `a-b/n` and `a/n` (from `a` to the
  field maximum). Steps count from the range start (dom/month are 1-based).
* Ranges: sec/min 0-59, hour 0-23, dom 1-31, month 1-12, dow 0-7 (0 and 7 = Sunday).
* Names (case-insensitive): months `JAN`-`DEC`, weekdays `SUN`-`SAT`, also in ranges
  (`MON-FRI`).
* Macros: `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`.
* dom/dow: when both are restricted (neither is `*`), a time matches if **either** matches
  (Vixie cron's OR rule).
* Refused: 7 fields (years), `?`, `L`, `W`, `#`, `H`, `@reboot`, reversed ranges (`5-1`),
  zero or oversized steps, and expressions that never match a date (`0 0 30 2 *`).

Time zones: any IANA name of the tz database (matched case-insensitively, stored in its
canonical spelling), or a fixed offset `±HH:MM`, `±HHMM` or `±HH` between -12:00 and +14:00
(stored as `±HH:MM`); `Z` is UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter
from croniter.croniter import CroniterError

MIN_LENGTH, MAX_LENGTH = 9, 100

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
WEEKDAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}


@dataclass(frozen=True)
class Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None


SECOND = Field("second", 0, 59)
FIELDS_5 = (
    Field("minute", 0, 59),
    Field("hour", 0, 23),
    Field("day of month", 1, 31),
    Field("month", 1, 12, MONTHS),
    Field("day of week", 0, 7, WEEKDAYS),
)

_VALUE = r"[0-9]+|[A-Za-z]+"
_ITEM = re.compile(rf"^(?P<base>\*|(?P<a>{_VALUE})(?:-(?P<b>{_VALUE}))?)(?:/(?P<step>[0-9]+))?$")


class CronError(ValueError):
    """Why an expression or a zone is not accepted (the text after "Invalid cron expression: ")."""


@dataclass(frozen=True)
class CronSpec:
    """A validated expression: `croniter_expr` is what croniter evaluates (macros expanded)."""

    expression: str
    croniter_expr: str
    has_seconds: bool
    hourly_or_finer: bool  # the hour field matches every hour (see `next_fire`)

    def matches(self, wall: datetime) -> bool:
        """Does a naive local wall time match the expression?"""
        return bool(
            croniter.match(self.croniter_expr, wall, second_at_beginning=self.has_seconds)
        )


def _value(token: str, field: Field) -> int:
    if token.isdigit():
        number = int(token)
    elif field.names is not None and token.lower() in field.names:
        return field.names[token.lower()]
    elif token.isalpha():
        if field.names is None:
            raise CronError(f"{field.name} field: names are not allowed here ('{token}')")
        raise CronError(f"{field.name} field: unknown name '{token}'")
    else:
        raise CronError(f"{field.name} field: '{token}' is not a number")
    if not field.low <= number <= field.high:
        raise CronError(
            f"{field.name} field: value {number} is out of range {field.low}-{field.high}"
        )
    return number


def _check_field(text: str, field: Field) -> None:
    for item in text.split(","):
        if not item:
            raise CronError(f"{field.name} field: empty list element in '{text}'")
        for ch, what in (("?", "'?'"), ("#", "'#'")):
            if ch in item:
                raise CronError(f"{field.name} field: {what} is not supported")
        match = _ITEM.match(item)
        if match is None:
            raise CronError(f"{field.name} field: '{item}' is not a valid value, range or step")
        base, a, b, step = match["base"], match["a"], match["b"], match["step"]
        if a is not None and a.isalpha() and a.lower() in ("l", "w", "h", "lw"):
            raise CronError(f"{field.name} field: '{a}' is not supported")
        start = _value(a, field) if a is not None else field.low
        if b is not None:
            end = _value(b, field)
            if start > end:
                raise CronError(
                    f"{field.name} field: range {a}-{b} is reversed (start must not exceed end)"
                )
        if step is not None:
            span = field.high - field.low + 1
            if not 1 <= int(step) <= span:
                raise CronError(f"{field.name} field: step {step} must be between 1 and {span}")
        if base == "*" and b is not None:  # pragma: no cover - excluded by the regex
            raise CronError(f"{field.name} field: '{item}' is not valid")


def parse_cron(expression: object) -> CronSpec:
    """Validate `expression` against the accepted dialect (module docstring).

    Raises CronError with a message naming the field and the problem.
    """
    if not isinstance(expression, str):
        raise CronError("must be a string")
    text = " ".join(expression.split())
    if not text:
        raise CronError("expression is empty")
    if len(expression) > MAX_LENGTH:
        raise CronError(f"must be at most {MAX_LENGTH} characters")
    if text.startswith("@"):
        macro = text.lower()
        if macro not in MACROS:
            raise CronError(
                f"unknown macro '{text}'; supported: {', '.join(sorted(MACROS))}"
            )
        fields_text = MACROS[macro].split(" ")
    else:
        # Five fields are at least MIN_LENGTH (9) characters: the field count says more.
        fields_text = text.split(" ")
    count = len(fields_text)
    if count not in (5, 6):
        raise CronError(
            f"expected 5 fields (minute hour day-of-month month day-of-week) or 6 fields "
            f"(second first), got {count}"
        )
    fields = (SECOND, *FIELDS_5) if count == 6 else FIELDS_5
    for part, field in zip(fields_text, fields, strict=True):
        _check_field(part, field)
    croniter_expr = " ".join(fields_text)
    try:
        expanded, _ = croniter.expand(croniter_expr, second_at_beginning=count == 6)
    except CroniterError as exc:  # defence in depth: our check should have caught it
        raise CronError(str(exc)) from None
    # croniter writes an hour field covering all 24 hours as "*" (also "0-23", "*/1")
    return CronSpec(text, croniter_expr, count == 6, expanded[1] == ["*"])


# ---- time zones ---------------------------------------------------------------------------

_OFFSET = re.compile(r"^(?P<sign>[+-])(?P<h>[0-9]{2})(?::?(?P<m>[0-9]{2}))?$")
MAX_OFFSET = timedelta(hours=14)
MIN_OFFSET = -timedelta(hours=12)


@lru_cache(maxsize=1)
def _zone_names() -> dict[str, str]:
    """Lower-cased IANA name → canonical spelling (read once from the tz database)."""
    # `localtime` is the host's zone, not a tz database name: refused like any unknown name.
    return {name.lower(): name for name in available_timezones() if name != "localtime"}


def normalize_timezone(value: object) -> str:
    """The canonical stored form of a zone (see module docstring); raises CronError."""
    if not isinstance(value, str) or not value.strip():
        raise CronError("timezone must be a non-empty string")
    name = value.strip()
    if name in ("Z", "z"):
        return "UTC"
    match = _OFFSET.match(name)
    if match is not None:
        hours, minutes = int(match["h"]), int(match["m"] or 0)
        if minutes > 59:
            raise CronError(f"timezone offset '{name}': minutes must be 00-59")
        offset = timedelta(hours=hours, minutes=minutes)
        if match["sign"] == "-":
            offset = -offset
        if not MIN_OFFSET <= offset <= MAX_OFFSET:
            raise CronError(f"timezone offset '{name}' must be between -12:00 and +14:00")
        return f"{match['sign']}{hours:02d}:{minutes:02d}"
    canonical = _zone_names().get(name.lower())
    if canonical is None:
        raise CronError(
            f"unknown timezone '{name[:64]}': use an IANA name such as 'Europe/Berlin' "
            "or an offset such as '+05:30'"
        )
    return canonical


def zone_of(name: str) -> tzinfo:
    """tzinfo for a stored zone name (already normalized); raises CronError."""
    match = _OFFSET.match(name)
    if match is not None:
        offset = timedelta(hours=int(match["h"]), minutes=int(match["m"] or 0))
        return timezone(-offset if match["sign"] == "-" else offset)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(f"unknown timezone '{name[:64]}'") from None


# ---- next run -----------------------------------------------------------------------------

MAX_STEPS = 16  # croniter calls per next_fire: one, plus one per repeated hour skipped


def _second_pass(instant: datetime, zone: tzinfo) -> bool:
    """True when `instant` is the second occurrence of a repeated local time (fall back)."""
    return instant.astimezone(zone).fold == 1


def _end_of_second_pass(instant: datetime, zone: tzinfo) -> datetime:
    """For an instant in the second pass of a repeated local hour: the instant that pass ends
    (the first instant whose local time is later than every repeated one)."""
    local = instant.astimezone(zone)
    after = local.utcoffset()
    before = local.replace(fold=0).utcoffset()
    assert after is not None and before is not None
    shift = before - after  # e.g. 1 hour
    # The clocks went back at the one transition in (instant - shift, instant]: find it to the
    # second (transitions are on whole seconds).
    low, high = int((instant - shift).timestamp()), int(instant.timestamp())
    while high - low > 1:
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid, UTC).astimezone(zone).utcoffset() == after:
            high = mid
        else:
            low = mid
    return datetime.fromtimestamp(high, UTC) + shift


def _transition_before(instant: datetime, zone: tzinfo) -> datetime:
    """The instant the clocks last changed at or before `instant` (within the 3 hours before
    it), to the second: for an instant just after a DST gap, the first instant after it."""
    offset = instant.astimezone(zone).utcoffset()
    low, high = int(instant.timestamp()) - 3 * 3600, int(instant.timestamp())
    while high - low > 1:
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid, UTC).astimezone(zone).utcoffset() == offset:
            high = mid
        else:
            low = mid
    return datetime.fromtimestamp(high, UTC)


def next_fire(spec: CronSpec, zone: tzinfo, after: datetime) -> datetime:
    """The first fire strictly after `after` (aware), in UTC.

    croniter evaluates the expression in `zone`; its results are kept except for these DST
    rules, which it does not (all) follow by itself:

    * Schedules at set times of day (the hour field is not `*`):
      - a local time that does not exist (spring forward) fires once, at the first instant
        after the gap (croniter moves it forward in whole minutes, so `30 15 2 * * *` would
        fire at 03:00:30: here it fires at 03:00:00);
      - a local time that happens twice (fall back) fires once, at its first occurrence
        (croniter fires both: a candidate in the second pass is dropped and the search
        resumes after that pass).
    * Schedules whose hour field is `*` (hourly or finer) fire every real hour: at each
      matching local time that exists, both passes of a repeated hour included, and none for
      the local times a gap removes (croniter's own behaviour).

    Raises CronError when the expression never matches a date.
    """
    cursor = after
    try:
        for _ in range(MAX_STEPS):
            it = croniter(
                spec.croniter_expr,
                cursor.astimezone(zone),
                ret_type=datetime,
                second_at_beginning=spec.has_seconds,
            )
            candidate: datetime = it.get_next()
            if spec.hourly_or_finer:
                return candidate.astimezone(UTC)
            if _second_pass(candidate, zone):
                cursor = _end_of_second_pass(candidate, zone) - timedelta(seconds=1)
                continue
            if not spec.matches(candidate.astimezone(zone).replace(tzinfo=None)):
                # moved forward out of a DST gap: fire at the first instant after the gap
                gap_end = _transition_before(candidate, zone)
                if gap_end <= after:  # that gap's fire is already behind us
                    cursor = candidate
                    continue
                candidate = gap_end
            return candidate.astimezone(UTC)
    except CroniterError as exc:
        raise CronError("the expression never matches a date") from exc
    raise CronError("no fire time found")  # pragma: no cover - needs 16 DST changes in a row


def next_fire_text(expression: str, timezone_name: str, after: datetime) -> datetime:
    """`next_fire` from stored text (the firing loop); raises CronError for a bad row."""
    return next_fire(parse_cron(expression), zone_of(timezone_name), after)

"""Device timestamps to nanoseconds since the epoch, with exact arithmetic.

A numeric timestamp is an int, a `Decimal` or a decimal string, scaled to
nanoseconds with integer or `Decimal` arithmetic and rounded half to even,
so that 1700000000123456789 ns stays exact and 1.663830962276e+12 ms becomes
1663830962276000000. A binary float is converted through its shortest
decimal text, never multiplied as a float.

The magnitude check: a timestamp is plausible when it falls between
1973-03-03T09:46:40Z (10**17 ns) and 2262-04-11T23:47:16Z (the end of
InfluxDB's signed 64-bit nanosecond range). These bounds are less than a
factor of 1000 apart, so at most one unit makes a number plausible: a
millisecond value declared as seconds is reported as `timestamp_unit_mismatch`
naming milliseconds, and `auto` picks that one unit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from functools import partial
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from labdock.acquire.decoders import DecodeContext, DecodeError, DecoderOptions
from labdock.acquire.decoders._values import INT64_MAX, INT64_MIN, parse_decimal_text

TimeUnit = Literal["s", "ms", "us", "ns"]
UNIT_NS: dict[str, int] = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
UNIT_NAMES = {
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
}
MIN_PLAUSIBLE_NS = 10**17
MAX_PLAUSIBLE_NS = INT64_MAX
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?"
)
_NAMED_FORMATS = ("s", "ms", "us", "ns", "auto", "rfc3339")
NAIVE_AS_UTC = "naive_time_as_utc"


class TimestampOptions(DecoderOptions):
    """Location and format of the device time in a payload."""

    path: str = Field(
        description="Dotted path of the timestamp in the payload: `ts`, `meta.time`.",
        min_length=1,
    )
    format: str = Field(
        "s",
        description=(
            "`s`, `ms`, `us` or `ns` for a number (or numeric string) of that unit "
            "since the Unix epoch; `auto` to pick the unit from the magnitude; "
            "`rfc3339` for text like 2024-03-05T14:22:10.5Z; or a strftime pattern "
            "such as `%d.%m.%Y %H:%M:%S`."
        ),
    )
    timezone: str = Field(
        "UTC",
        description=(
            "IANA time zone of a text timestamp that carries no UTC offset "
            "(an rfc3339 value such as 2026-12-04T16:00:00, or a pattern without "
            "%z). Unless it is set, such a time is read as UTC and each message "
            "with one is counted as naive_time_as_utc; set it to the device's "
            "zone when the device sends local time."
        ),
        examples=["Europe/Berlin"],
    )
    required: bool = Field(
        True,
        description=(
            "A message without the timestamp is a dead letter "
            "(`timestamp_missing`); false stamps it with the arrival time."
        ),
    )
    check_magnitude: bool = Field(
        True,
        description=(
            "Reject a numeric timestamp that is implausible in its declared unit "
            "(before 1973-03-03 or after 2262-04-11), naming the unit it fits."
        ),
    )

    @field_validator("format")
    @classmethod
    def _check_format(cls, value: str) -> str:
        if value not in _NAMED_FORMATS and "%" not in value:
            raise ValueError(
                f"unknown timestamp format {value!r}; use one of "
                f"{', '.join(_NAMED_FORMATS)} or a strftime pattern with % codes"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        load_timezone(value)
        return value


def load_timezone(name: str) -> tzinfo:
    """Return the IANA time zone `name`; raise ValueError when it is unknown."""
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin"
        ) from None


def format_ns(ns: int) -> str:
    """Return `ns` as an RFC 3339 UTC time, or as a number when out of range."""
    try:
        moment = _EPOCH + timedelta(microseconds=ns // 1000)
    except OverflowError:
        return f"{ns} ns"
    return moment.isoformat().replace("+00:00", "Z")


def scale_ns(value: Decimal | int, unit: str) -> int | None:
    """Return `value` in `unit` as integer ns, or None when far outside int64."""
    if isinstance(value, int):
        return value * UNIT_NS[unit]
    if not value.is_finite() or value.adjusted() > 30:
        return None
    with localcontext(prec=80):
        scaled = (value * UNIT_NS[unit]).to_integral_value(rounding=ROUND_HALF_EVEN)
    return int(scaled)


def plausible(ns: int | None) -> bool:
    """Tell whether `ns` lies between 1973-03-03 and 2262-04-11."""
    return ns is not None and MIN_PLAUSIBLE_NS <= ns <= MAX_PLAUSIBLE_NS


def fitting_unit(number: Decimal | int) -> tuple[TimeUnit, int] | None:
    """Return the unit in which `number` is a plausible time, with its ns.

    At most one unit fits (see the module docstring); None when none does.
    """
    unit: TimeUnit
    for unit in ("s", "ms", "us", "ns"):
        ns = scale_ns(number, unit)
        if ns is not None and plausible(ns):
            return unit, ns
    return None


def _as_number(value: Any, where: str) -> Decimal | int:
    if isinstance(value, bool):
        raise DecodeError(
            "invalid_timestamp",
            f"{where}: the boolean {value!r} is not a timestamp; send a number",
        )
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        # The shortest text that reads back as this float: what the device sent,
        # up to the 15 to 17 digits a float holds.
        return Decimal(repr(value))
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        parsed = parse_decimal_text(value)
        if isinstance(parsed, Decimal):
            return parsed
    raise DecodeError(
        "invalid_timestamp",
        f"{where}: {value!r} is not a number of seconds, milliseconds, microseconds "
        "or nanoseconds; fix the device or the timestamp format",
    )


def numeric_to_ns(
    value: Any, unit: TimeUnit | Literal["auto"], where: str, *, check: bool = True
) -> int:
    """Convert a numeric timestamp in `unit` to ns since the epoch.

    Raises `invalid_timestamp` for a value that is not a number,
    `timestamp_unit_mismatch` when the magnitude fits another unit, and
    `timestamp_out_of_range` when it fits none (or leaves the int64 range).
    """
    number = _as_number(value, where)
    if isinstance(number, Decimal) and not number.is_finite():
        raise DecodeError(
            "invalid_timestamp", f"{where}: {number} is not a finite timestamp"
        )
    if unit == "auto":
        fitting = fitting_unit(number)
        if fitting is None:
            raise _out_of_range(number, where)
        return fitting[1]
    ns = scale_ns(number, unit)
    if check and not plausible(ns):
        fitting = fitting_unit(number)
        if fitting is None:
            raise _out_of_range(number, where)
        candidate, candidate_ns = fitting
        raise DecodeError(
            "timestamp_unit_mismatch",
            f"{where}: {number} is implausible in {UNIT_NAMES[unit]}; "
            f"its magnitude fits {UNIT_NAMES[candidate]} "
            f"({format_ns(candidate_ns)}): set the timestamp format to "
            f"{candidate}",
        )
    if ns is None or not INT64_MIN <= ns <= INT64_MAX:
        raise _out_of_range(number, where)
    return ns


def _out_of_range(number: Decimal | int, where: str) -> DecodeError:
    return DecodeError(
        "timestamp_out_of_range",
        f"{where}: {number} is not a plausible time in any unit (s, ms, us or ns "
        "since 1970 for a date between 1973-03-03 and 2262-04-11); check the "
        "device clock",
    )


def _datetime_ns(moment: datetime) -> int:
    try:
        delta = moment - _EPOCH
    except OverflowError:
        raise DecodeError(
            "timestamp_out_of_range",
            f"{moment.isoformat()} is outside the range of timestamps",
        ) from None
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def count_naive_as_utc(context: DecodeContext) -> None:
    """Count a time without UTC offset read as UTC by default, once per message."""
    if NAIVE_AS_UTC not in context.dropped:
        context.count_dropped(NAIVE_AS_UTC)


def rfc3339_to_ns(
    value: Any,
    default_zone: tzinfo,
    where: str,
    *,
    on_naive: Callable[[], None] | None = None,
) -> int:
    """Convert an RFC 3339 time to ns, keeping up to nine fraction digits exactly.

    A time without a UTC offset is read in `default_zone`, and `on_naive` is
    called for it. A leap second (:60) counts as the first instant of the
    next minute.
    """
    if not isinstance(value, str):
        raise DecodeError(
            "invalid_timestamp",
            f"{where}: {value!r} is not an RFC 3339 time string such as "
            "2024-03-05T14:22:10Z",
        )
    match = _RFC3339.fullmatch(value.strip())
    if match is None:
        raise DecodeError(
            "invalid_timestamp",
            f"{where}: {value[:60]!r} is not an RFC 3339 time such as "
            "2024-03-05T14:22:10.5Z",
        )
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction, zulu, sign, offset_hours, offset_minutes = match.group(7, 8, 9, 10, 11)
    leap = second == 60
    if zulu:
        zone: tzinfo = UTC
    elif sign:
        offset = timedelta(hours=int(offset_hours), minutes=int(offset_minutes))
        try:
            zone = timezone(-offset if sign == "-" else offset)
        except ValueError:
            raise DecodeError(
                "invalid_timestamp", f"{where}: the UTC offset in {value!r} is invalid"
            ) from None
    else:
        zone = default_zone
        if on_naive is not None:
            on_naive()
    try:
        moment = datetime(
            year, month, day, hour, minute, 59 if leap else second, tzinfo=zone
        )
    except ValueError as error:
        raise DecodeError(
            "invalid_timestamp", f"{where}: {value!r} is not a valid time: {error}"
        ) from None
    ns = _datetime_ns(moment) + (10**9 if leap else 0)
    if fraction:
        ns += scale_ns(Decimal("0." + fraction), "s") or 0
    return _check_range(ns, value, where)


def strftime_to_ns(
    value: Any,
    pattern: str,
    default_zone: tzinfo,
    where: str,
    *,
    on_naive: Callable[[], None] | None = None,
) -> int:
    """Convert a time written with the strftime `pattern` to ns since the epoch.

    A time without a UTC offset is read in `default_zone`, and `on_naive` is
    called for it.
    """
    if not isinstance(value, str):
        raise DecodeError(
            "invalid_timestamp",
            f"{where}: {value!r} is not a time string in the format {pattern!r}",
        )
    try:
        moment = datetime.strptime(value.strip(), pattern)
    except ValueError as error:
        raise DecodeError(
            "invalid_timestamp",
            f"{where}: {value[:60]!r} does not match the format {pattern!r}: {error}",
        ) from None
    if moment.tzinfo is None:
        # NOTE: a local time that a daylight saving change repeats is read as
        # the earlier of the two instants (fold=0).
        moment = moment.replace(tzinfo=default_zone)
        if on_naive is not None:
            on_naive()
    return _check_range(_datetime_ns(moment), value, where)


def _check_range(ns: int, value: str, where: str) -> int:
    if not INT64_MIN <= ns <= INT64_MAX:
        raise DecodeError(
            "timestamp_out_of_range",
            f"{where}: {value!r} is outside the range of nanosecond timestamps "
            "(1677-09-21 to 2262-04-11)",
        )
    return ns


class TimestampReader:
    """Reads one configured timestamp from decoded values."""

    def __init__(self, options: TimestampOptions) -> None:
        self.options = options
        self.zone = load_timezone(options.timezone)
        self.zone_is_default = "timezone" not in options.model_fields_set

    def to_ns(
        self, value: Any, where: str, context: DecodeContext | None = None
    ) -> int:
        """Convert `value` (an int, float, `Decimal` or string) to ns.

        A text time without UTC offset, read as UTC because the timezone
        option is not set, is counted as `naive_time_as_utc` on `context`.
        """
        fmt = self.options.format
        on_naive = None
        if context is not None and self.zone_is_default:
            on_naive = partial(count_naive_as_utc, context)
        if fmt == "rfc3339":
            return rfc3339_to_ns(value, self.zone, where, on_naive=on_naive)
        if "%" in fmt:
            return strftime_to_ns(value, fmt, self.zone, where, on_naive=on_naive)
        unit: Any = fmt
        return numeric_to_ns(value, unit, where, check=self.options.check_magnitude)

"""The point model and its InfluxDB line-protocol encoding.

Escaping follows the influxdata/line-protocol Go package, the reference of
the InfluxDB line-protocol test corpus. A measurement escapes commas and
spaces. Tag keys, tag values and field keys escape commas, equals signs and
spaces. A string field value escapes double quotes and backslashes.
Elsewhere a backslash before any other character is a literal backslash, so
it is written as it is.

Some values have no line-protocol form, and `encode_point` raises
EncodeError for them instead of writing a line that InfluxDB would reject or
read back as something else:

- An empty measurement, tag key or field key. An empty tag *value* only
  leaves its tag out, because line protocol cannot carry one (`k=` is a
  syntax error).
- A measurement starting with `#`, which would turn the line into a comment.
- A control character (U+0000 to U+001F or U+007F, which includes newline
  and tab) in a measurement, tag key, tag value or field key, because no
  escape exists for it there.
- A measurement, tag key, tag value or field key ending in a backslash,
  because that backslash would escape the separator written after it.
- A backslash right before a comma, space, equals sign or double quote in a
  measurement or field key (`\\,`, say): InfluxDB 1.x reads the written pair
  as an escape sequence, so the name would not read back as written (checked
  against InfluxDB 1.6). In a tag the same text reads back unchanged, so it
  is allowed there.
- Text that is not valid UTF-8 (a `str` with unpaired surrogates).
- An `int` field outside the signed 64-bit range, a `UInt` field outside
  the unsigned 64-bit range, or a time outside the signed 64-bit range of
  nanoseconds (years 1677 to 2262).

A string field value may contain any character, control characters
included. A newline in it is written as it is, because `\\n` in a string
reads back as a backslash and an `n`. So one encoded line can span several
text lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


class UInt(int):
    """An unsigned integer field value, encoded with the `u` suffix."""


FieldValue = float | int | bool | str


class EncodeError(ValueError):
    """A point that cannot be written as line protocol."""


@dataclass(slots=True)
class Point:
    """One InfluxDB point: a series (measurement and tags), fields and a time.

    `time_ns` is nanoseconds since the Unix epoch. Integer fields are Python
    `int` (the `i` suffix), unsigned ones `UInt`; `bool` is checked before
    `int` because it is a subclass of it.
    """

    measurement: str
    tags: dict[str, str] = field(default_factory=dict)
    fields: dict[str, FieldValue] = field(default_factory=dict)
    time_ns: int | None = None


INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1

_CONTROL_CHARACTERS = frozenset(chr(code) for code in (*range(0x20), 0x7F))

# Escaped names by raw name. Series names repeat from point to point, so the
# validation and escaping of a name mostly runs once. Each cache is cleared
# when it reaches _CACHE_SIZE entries, which bounds its memory.
_CACHE_SIZE = 4096
_escaped_measurements: dict[str, str] = {}
_escaped_keys: dict[str, str] = {}
_escaped_field_keys: dict[str, str] = {}


def _check_name(text: str, label: str) -> None:
    """Raise EncodeError if `text` has no line-protocol form as a name or tag value."""
    if not isinstance(text, str):
        raise EncodeError(f"{label} {text!r} is not a string")
    if not text:
        raise EncodeError(f"{label} is empty")
    if not _CONTROL_CHARACTERS.isdisjoint(text):
        bad = next(char for char in text if char in _CONTROL_CHARACTERS)
        raise EncodeError(
            f"{label} {text!r} contains the control character U+{ord(bad):04X}, "
            "which line protocol cannot represent there"
        )
    if text[-1] == "\\":
        raise EncodeError(
            f"{label} {text!r} ends in a backslash, which would escape the "
            "separator after it"
        )
    _check_utf8(text, label)


def _check_utf8(text: str, label: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise EncodeError(
            f"{label} {text!r} is not valid UTF-8: {error.reason} "
            f"at index {error.start}"
        ) from None


def _check_backslashes(text: str, label: str, escaped: str) -> None:
    """Raise EncodeError if a backslash in `text` precedes a character in `escaped`."""
    index = text.find("\\")
    while index != -1:
        following = text[index + 1 : index + 2]
        if following and following in escaped:
            raise EncodeError(
                f"{label} {text!r} has a backslash before {following!r}, which "
                "InfluxDB 1.x reads as an escape sequence, so the text would not "
                "read back as written; remove or replace the backslash"
            )
        index = text.find("\\", index + 1)


def _escape_measurement(measurement: str) -> str:
    _check_name(measurement, "measurement")
    if "\\" in measurement:
        _check_backslashes(measurement, "measurement", ', "')
    if measurement[0] == "#":
        raise EncodeError(
            f"measurement {measurement!r} starts with '#', which makes the line "
            "a comment"
        )
    escaped = measurement
    if "," in escaped:
        escaped = escaped.replace(",", "\\,")
    if " " in escaped:
        escaped = escaped.replace(" ", "\\ ")
    if len(_escaped_measurements) >= _CACHE_SIZE:
        _escaped_measurements.clear()
    _escaped_measurements[measurement] = escaped
    return escaped


def _escape_key(text: str, label: str, *, tag: bool = True) -> str:
    """Escape a tag key, tag value or field key, which share one escape set.

    In a tag, InfluxDB 1.x reads a backslash as literal unless a special
    character follows, so `\\,` reads back as a backslash and a comma. Its
    field-key scanner takes `\\\\` as a pair instead and also unescapes `\\"`,
    so there a backslash before a comma, equals sign, space or double quote
    is an error.
    """
    _check_name(text, label)
    if not tag and "\\" in text:
        _check_backslashes(text, label, ',= "')
    escaped = text
    if "," in escaped:
        escaped = escaped.replace(",", "\\,")
    if "=" in escaped:
        escaped = escaped.replace("=", "\\=")
    if " " in escaped:
        escaped = escaped.replace(" ", "\\ ")
    if len(_escaped_keys) >= _CACHE_SIZE:
        _escaped_keys.clear()
    _escaped_keys[text] = escaped
    return escaped


def _escape_field_key(key: str) -> str:
    escaped = _escape_key(key, "field key", tag=False)
    if len(_escaped_field_keys) >= _CACHE_SIZE:
        _escaped_field_keys.clear()
    _escaped_field_keys[key] = escaped
    return escaped


def format_float(value: float) -> str:
    """Format a finite float with the fewest digits that read back exactly.

    The layout is that of Go's strconv.FormatFloat(value, 'g', -1, 64), which
    the reference line-protocol encoder uses: an exponent below 1e-4 and from
    1e6 up (6.632243e+06), plain digits in between, and no `.0` on whole
    numbers (22). Python's repr gives the same digits but writes plain digits
    up to 1e16, so those values are rewritten here.
    """
    text = repr(value)
    if "e" in text:
        return text
    if text.endswith(".0"):
        text = text[:-2]
    if -1e6 < value < 1e6:
        return text
    sign = "-" if text[0] == "-" else ""
    whole, _, fraction = text.lstrip("-").partition(".")
    digits = (whole + fraction).rstrip("0")
    mantissa = digits[0] + "." + digits[1:] if len(digits) > 1 else digits
    return f"{sign}{mantissa}e+{len(whole) - 1:02d}"


def _format_string(value: str) -> str:
    _check_utf8(value, "string field value")
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if '"' in value:
        value = value.replace('"', '\\"')
    return '"' + value + '"'


def _format_int(value: int) -> str:
    if not INT64_MIN <= value <= INT64_MAX:
        raise EncodeError(
            f"integer {value} is outside the signed 64-bit range; store it as a "
            "float or as UInt if it is unsigned"
        )
    return f"{int(value)}i"


def _format_uint(value: int) -> str:
    if not 0 <= value <= UINT64_MAX:
        raise EncodeError(f"unsigned integer {int(value)} is outside 0 to 2**64-1")
    return f"{int(value)}u"


def _format_field(value: FieldValue) -> str:
    """Format a field value. The caller skips non-finite floats beforehand."""
    kind = type(value)
    if kind is float:
        return format_float(value)  # type: ignore[arg-type]
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return _format_int(value)  # type: ignore[arg-type]
    if kind is str:
        return _format_string(value)  # type: ignore[arg-type]
    # Subclasses (UInt, IntEnum members, str and float subclasses) take the
    # slower path, in the order that keeps bool apart from int.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, UInt):
        return _format_uint(value)
    if isinstance(value, int):
        return _format_int(value)
    if isinstance(value, float):
        return format_float(float(value))
    if isinstance(value, str):
        return _format_string(str(value))
    raise EncodeError(f"unsupported field type {type(value).__name__}")


def encode_series(measurement: str, tags: dict[str, str]) -> str:
    """Encode the measurement and tags of a line: its part before the fields.

    Tags are written sorted by key, and a tag with an empty value is left
    out. Raises EncodeError when a name has no line-protocol form.
    """
    escaped = _escaped_measurements.get(measurement) or _escape_measurement(measurement)
    if not tags:
        return escaped
    parts = [escaped]
    for key in sorted(tags):
        value = tags[key]
        if not value:
            continue
        parts.append(",")
        parts.append(_escaped_keys.get(key) or _escape_key(key, "tag key"))
        parts.append("=")
        parts.append(
            _escaped_keys.get(value) or _escape_key(value, f"value of tag {key!r}")
        )
    return "".join(parts)


def field_key(key: str) -> str:
    """Return the escaped form of the field key `key`, or raise EncodeError."""
    return _escaped_field_keys.get(key) or _escape_field_key(key)


def encode_point(point: Point) -> str:
    """Encode one point as a line of line protocol, without a trailing newline.

    Tags and fields are written sorted by key. Fields whose float value is
    NaN or infinite are left out, and a tag with an empty value is left out.
    Raises EncodeError when no field is left or when a value has no
    line-protocol form (see the module documentation).
    """
    parts = [encode_series(point.measurement, point.tags)]
    separator = " "
    fields = point.fields
    for key in sorted(fields):
        field_value = fields[key]
        if isinstance(field_value, float) and not math.isfinite(field_value):
            continue
        parts.append(separator)
        parts.append(_escaped_field_keys.get(key) or _escape_field_key(key))
        parts.append("=")
        try:
            parts.append(_format_field(field_value))
        except EncodeError as error:
            raise EncodeError(f"field {key!r}: {error}") from None
        separator = ","
    if separator == " ":
        raise EncodeError("no field with a finite value")
    time_ns = point.time_ns
    if time_ns is not None:
        if isinstance(time_ns, bool) or not isinstance(time_ns, int):
            raise EncodeError(f"time {time_ns!r} is not an integer of nanoseconds")
        if not INT64_MIN <= time_ns <= INT64_MAX:
            raise EncodeError(
                f"time {time_ns} ns is outside the signed 64-bit range "
                "(years 1677 to 2262); check the timestamp unit"
            )
        parts.append(f" {int(time_ns)}")
    return "".join(parts)

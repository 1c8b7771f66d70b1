"""Parse and validate InfluxDB line protocol.

The accepted syntax is that of the influxdata/line-protocol Go decoder
(`lineprotocol` package), the reference for the InfluxDB line-protocol test
corpus:

- Lines end with LF or CR LF. Blank lines and comment lines (a `#` after
  optional spaces, then no control character) are skipped, and spaces may
  lead a line.
- A measurement escapes `,` and space with a backslash. Tag keys, tag values
  and field keys escape `,`, `=` and space. A backslash before any other
  character is a literal backslash.
- Control characters (U+0000 to U+001F and U+007F) end a measurement, tag
  key or field key, so they are invalid there.
- Spaces separate the series, the fields and the timestamp, and more than
  one may be used.
- Field values are floats (`1`, `-1.5e3`, `.5`), signed 64-bit integers
  (`1i`), unsigned 64-bit integers (`1u`), booleans and double-quoted
  strings. Booleans are `t`, `T`, `true`, `True`, `TRUE` and the same forms
  of false. Strings escape `"` and `\\` and may contain newlines.
- The optional timestamp is a signed integer in the given precision and must
  fit in a signed 64-bit number of nanoseconds.

Beyond that decoder, a repeated tag key or field key is an error, and so is
a control character in a tag value, because `encode_point` cannot write
either back (see `labdock.acquire.points`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Literal, NoReturn

from labdock.acquire.points import (
    INT64_MAX,
    INT64_MIN,
    UINT64_MAX,
    FieldValue,
    Point,
    UInt,
)

Precision = Literal["ns", "us", "ms", "s", "m", "h"]

NS_PER_UNIT: Mapping[str, int] = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


class LineProtocolError(ValueError):
    """Invalid line protocol, with the 1-based line and column of the problem.

    The column counts characters (code points), not bytes.
    """

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line = line
        self.column = column
        self.message = message


# A backslash before one of the escaped characters belongs to the token
# together with that character. Any other backslash is a literal character,
# and the character after it is read on its own. The possessive `+` keeps the
# regex engine from splitting an escape pair when it backtracks.
_MEASUREMENT = re.compile(r"(?:[^\\,\x00-\x20\x7f]|\\[, ]|\\)++")
_KEY = re.compile(r"(?:[^\\,=\x00-\x20\x7f]|\\[,= ]|\\)++")
_TAG_VALUE = _KEY
# The Go decoder takes these control characters in a tag value. They are
# rejected here because encode_point cannot write them back. CR and LF are
# left out because they end the line.
_TAG_VALUE_FORBIDDEN = frozenset(
    chr(code) for code in (*range(0x20), 0x7F) if chr(code) not in "\r\n"
)
_STRING = re.compile(r'"((?:[^"\\]|\\[\\"]|\\)*+)"')
_VALUE = re.compile(r"[^, \r\n]+")
_TIME = re.compile(r"[-0-9]*")
_COMMENT = re.compile(r"#[^\x00-\x1f\x7f]*")

_MEASUREMENT_ESCAPE = re.compile(r"\\([, ])")
_KEY_ESCAPE = re.compile(r"\\([,= ])")
_STRING_ESCAPE = re.compile(r'\\([\\"])')

_INTEGER = re.compile(r"-?[0-9]+")
_UNSIGNED = re.compile(r"[0-9]+")
_FLOAT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

_BOOLEANS = {
    "t": True,
    "T": True,
    "true": True,
    "True": True,
    "TRUE": True,
    "f": False,
    "F": False,
    "false": False,
    "False": False,
    "FALSE": False,
}

# More digits than this (after leading zeros) cannot fit 64 bits. Checking
# the length first also keeps int() away from Python's limit on the number
# of digits it converts.
_MAX_INTEGER_DIGITS = 20


def _fail(text: str, pos: int, message: str) -> NoReturn:
    line = text.count("\n", 0, pos) + 1
    column = pos - text.rfind("\n", 0, pos)
    raise LineProtocolError(line, column, message)


def _describe(text: str, pos: int) -> str:
    """Name the character at `pos` for an error message."""
    if pos >= len(text):
        return "the end of the input"
    return f"{text[pos]!r}"


def _at_line_end(text: str, pos: int) -> bool:
    if pos >= len(text):
        return True
    char = text[pos]
    if char == "\n":
        return True
    return char == "\r" and (pos + 1 == len(text) or text[pos + 1] == "\n")


def _skip_spaces(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] == " ":
        pos += 1
    return pos


def _run_end(pattern: re.Pattern[str], text: str, pos: int) -> int:
    """Return the end of the run of `pattern` at `pos`, which may be empty."""
    match = pattern.match(text, pos)
    return pos if match is None else match.end()


def _skip_line_end(text: str, pos: int) -> int:
    if pos < len(text):
        pos += 2 if text.startswith("\r\n", pos) else 1
    return pos


def _parse_integer(digits: str, low: int, high: int) -> int | None:
    """Return the value of a checked digit string, or None if out of range."""
    significant = digits.lstrip("-").lstrip("0")
    if len(significant) > _MAX_INTEGER_DIGITS:
        return None
    value = int(digits)
    return value if low <= value <= high else None


def parse_line_protocol(text: str, precision: Precision = "ns") -> list[Point]:
    """Parse line protocol into points, one per line, in order.

    Timestamps are read in `precision` units and returned as nanoseconds. A
    line without a timestamp gives a point whose `time_ns` is None. Raises
    LineProtocolError for the first invalid line, and ValueError for an
    unknown precision.
    """
    try:
        multiplier = NS_PER_UNIT[precision]
    except KeyError:
        raise ValueError(
            f"unknown precision {precision!r}; use one of {', '.join(NS_PER_UNIT)}"
        ) from None
    points: list[Point] = []
    pos = 0
    end = len(text)
    while pos < end:
        char = text[pos]
        if char == " ":
            pos = _skip_spaces(text, pos)
        elif char == "\n" or (char == "\r" and _at_line_end(text, pos)):
            pos += 1
        elif char == "#":
            comment_end = _run_end(_COMMENT, text, pos)
            if not _at_line_end(text, comment_end):
                _fail(
                    text,
                    comment_end,
                    f"invalid character {_describe(text, comment_end)} in a comment",
                )
            pos = _skip_line_end(text, comment_end)
        else:
            point, pos = _parse_entry(text, pos, multiplier)
            points.append(point)
    return points


def _parse_entry(text: str, pos: int, multiplier: int) -> tuple[Point, int]:
    """Parse the line at `pos` and return its point and the next line's start."""
    end = len(text)
    match = _MEASUREMENT.match(text, pos)
    if match is None:
        _fail(
            text,
            pos,
            f"invalid character {_describe(text, pos)} at the start of the measurement",
        )
    measurement = match.group()
    if "\\" in measurement:
        measurement = _MEASUREMENT_ESCAPE.sub(r"\1", measurement)
    pos = match.end()

    tags: dict[str, str] = {}
    if pos < end and text[pos] == ",":
        pos = _parse_tags(text, pos + 1, tags)
    if pos >= end or text[pos] != " ":
        if pos >= end or _at_line_end(text, pos):
            _fail(
                text,
                pos,
                "missing fields: the line ends after the measurement and tags",
            )
        _fail(
            text,
            pos,
            f"invalid character {_describe(text, pos)} after the measurement and tags; "
            "expected ',' or a space",
        )
    pos = _skip_spaces(text, pos)

    fields: dict[str, FieldValue] = {}
    pos = _parse_fields(text, pos, fields)

    time_ns: int | None = None
    if pos < end:
        pos = _skip_spaces(text, pos)
        if not _at_line_end(text, pos):
            time_ns, pos = _parse_time(text, pos, multiplier)
            pos = _skip_spaces(text, pos)
            if not _at_line_end(text, pos):
                _fail(
                    text,
                    pos,
                    f"unexpected {_describe(text, pos)} after the timestamp; "
                    "expected the end of the line",
                )
        pos = _skip_line_end(text, pos)
    return Point(measurement, tags, fields, time_ns), pos


def _parse_key(text: str, pos: int, kind: str) -> tuple[str, int]:
    """Parse a tag or field key and its `=`; return the key and the position after."""
    match = _KEY.match(text, pos)
    if match is None:
        _fail(text, pos, f"expected a {kind} key, found {_describe(text, pos)}")
    key = match.group()
    if "\\" in key:
        key = _KEY_ESCAPE.sub(r"\1", key)
    pos = match.end()
    if pos >= len(text) or text[pos] != "=":
        _fail(
            text,
            pos,
            f"expected '=' after {kind} key {key!r}, found {_describe(text, pos)}",
        )
    return key, pos + 1


def _parse_tags(text: str, pos: int, tags: dict[str, str]) -> int:
    """Parse comma-separated `key=value` tags and return the position after them."""
    end = len(text)
    while True:
        key_pos = pos
        key, pos = _parse_key(text, pos, "tag")
        match = _TAG_VALUE.match(text, pos)
        if match is None:
            _fail(
                text,
                pos,
                f"expected the value of tag {key!r}, found {_describe(text, pos)}",
            )
        value = match.group()
        if "\\" in value:
            value = _KEY_ESCAPE.sub(r"\1", value)
        after = match.end()
        if after < end and text[after] in _TAG_VALUE_FORBIDDEN:
            _fail(
                text,
                after,
                f"value of tag {key!r} contains the control character "
                f"U+{ord(text[after]):04X}, which a tag value cannot contain",
            )
        if key in tags:
            _fail(text, key_pos, f"duplicate tag key {key!r}")
        tags[key] = value
        pos = after
        if pos >= end or text[pos] != ",":
            return pos
        pos += 1


def _parse_fields(text: str, pos: int, fields: dict[str, FieldValue]) -> int:
    """Parse comma-separated `key=value` fields and return the position after them."""
    end = len(text)
    while True:
        key_pos = pos
        key, pos = _parse_key(text, pos, "field")
        if key in fields:
            _fail(text, key_pos, f"duplicate field key {key!r}")
        fields[key], pos = _parse_value(text, pos, key)
        if pos >= end:
            return pos
        char = text[pos]
        if char == ",":
            pos += 1
        elif char in " \r\n":
            return pos
        else:
            _fail(
                text,
                pos,
                f"unexpected {char!r} after the value of field {key!r}; "
                "expected ',', a space or the end of the line",
            )


def _parse_value(text: str, pos: int, key: str) -> tuple[FieldValue, int]:
    """Parse the field value at `pos` and return it and the position after it."""
    first = text[pos] if pos < len(text) else ""
    if first == '"':
        match = _STRING.match(text, pos)
        if match is None:
            _fail(text, pos, f"string value of field {key!r} has no closing quote")
        value = match.group(1)
        if "\\" in value:
            value = _STRING_ESCAPE.sub(r"\1", value)
        return value, match.end()

    match = _VALUE.match(text, pos)
    if match is None:
        _fail(text, pos, f"missing value of field {key!r}")
    raw = match.group()
    if first in "tTfF":
        boolean = _BOOLEANS.get(raw)
        if boolean is None:
            _fail(text, pos, f"invalid boolean {raw!r} in field {key!r}")
        return boolean, match.end()

    if first not in "-0123456789.":
        _fail(
            text,
            pos,
            f"invalid value {raw!r} of field {key!r}: expected a number, a boolean "
            "or a double-quoted string",
        )
    suffix = raw[-1]

    if suffix == "i":
        digits = raw[:-1]
        if not _INTEGER.fullmatch(digits):
            _fail(text, pos, f"invalid integer {raw!r} in field {key!r}")
        integer = _parse_integer(digits, INT64_MIN, INT64_MAX)
        if integer is None:
            _fail(
                text,
                pos,
                f"integer {raw!r} of field {key!r} is outside the signed 64-bit range",
            )
        return integer, match.end()

    if suffix == "u":
        digits = raw[:-1]
        if not _UNSIGNED.fullmatch(digits):
            _fail(text, pos, f"invalid unsigned integer {raw!r} in field {key!r}")
        unsigned = _parse_integer(digits, 0, UINT64_MAX)
        if unsigned is None:
            _fail(
                text,
                pos,
                f"unsigned integer {raw!r} of field {key!r} is outside 0 to 2**64-1",
            )
        return UInt(unsigned), match.end()

    if not _FLOAT.fullmatch(raw):
        _fail(text, pos, f"invalid number {raw!r} in field {key!r}")
    number = float(raw)
    if math.isinf(number):
        _fail(
            text,
            pos,
            f"float {raw!r} of field {key!r} is outside the 64-bit float range",
        )
    return number, match.end()


def _parse_time(text: str, pos: int, multiplier: int) -> tuple[int, int]:
    """Parse the timestamp at `pos` and return its nanoseconds and the next position."""
    after = _run_end(_TIME, text, pos)
    raw = text[pos:after]
    if not raw or (after < len(text) and text[after] not in " \r\n"):
        stop = after
        while stop < len(text) and text[stop] not in " \r\n":
            stop += 1
        _fail(text, pos, f"invalid timestamp {text[pos:stop]!r}; expected an integer")
    if not _INTEGER.fullmatch(raw):
        _fail(text, pos, f"invalid timestamp {raw!r}; expected an integer")
    value = _parse_integer(raw, INT64_MIN, INT64_MAX)
    if value is None or not INT64_MIN <= value * multiplier <= INT64_MAX:
        _fail(
            text,
            pos,
            f"timestamp {raw!r} is outside the signed 64-bit range of nanoseconds",
        )
    return value * multiplier, after


def split_lines(text: str) -> list[str]:
    """Split encoded line protocol into its lines.

    A string field value may hold a raw newline, so a plain split on "\\n"
    would cut such a line in two. Quotes only delimit strings in the field
    section, after the first unescaped space; in the measurement and tags
    they are ordinary characters.
    """
    if "\n" not in text:
        return [text]
    if '"' not in text:
        return text.split("\n")
    lines: list[str] = []
    start = 0
    index = 0
    length = len(text)
    in_fields = False
    in_string = False
    while index < length:
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if in_string:
            if char == '"':
                in_string = False
        elif char == "\n":
            lines.append(text[start:index])
            start = index + 1
            in_fields = False
        elif char == " " and not in_fields:
            in_fields = True
        elif char == '"' and in_fields:
            in_string = True
        index += 1
    lines.append(text[start:])
    return lines

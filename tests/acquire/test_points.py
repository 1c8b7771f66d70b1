"""Tests of the line-protocol encoder in labdock.acquire.points.

The conformance cases of the InfluxDB line-protocol corpus are in
test_lineprotocol.py, together with the encode-then-parse round trip.
"""

from __future__ import annotations

import enum
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labdock.acquire.lineprotocol import parse_line_protocol
from labdock.acquire.points import (
    INT64_MAX,
    INT64_MIN,
    UINT64_MAX,
    EncodeError,
    FieldValue,
    Point,
    UInt,
    encode_point,
    format_float,
)


def encode_tag(value: str) -> str:
    """Return how `value` is written as the value of tag `k`."""
    line = encode_point(Point("m", {"k": value}, {"f": 1.0}))
    return line.removeprefix("m,k=").removesuffix(" f=1")


def encode_field(value: FieldValue) -> str:
    """Return how `value` is written as the value of field `f`."""
    return encode_point(Point("m", {}, {"f": value})).removeprefix("m f=")


# Escaping


def test_tag_value_from_topic_level_escapes() -> None:
    assert encode_tag("Line 1,A=B") == "Line\\ 1\\,A\\=B"


def test_string_field_escapes_quotes_and_backslash() -> None:
    assert encode_field('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("two words", "two\\ words"),
        ("a,b", "a\\,b"),
        ("a=b", "a\\=b"),
        ('"quoted"', '"quoted"'),
        ("back\\slash", "back\\slash"),
        ("back\\ space", "back\\\\ space"),
        ("back\\,comma", "back\\\\,comma"),
        ("ünïcødé", "ünïcødé"),
        ("#hash", "#hash"),
    ],
)
def test_tag_value_escaping(value: str, expected: str) -> None:
    assert encode_tag(value) == expected


def test_tag_key_escaping() -> None:
    line = encode_point(Point("m", {"a b,c=d": "v"}, {"f": 1.0}))
    assert line == "m,a\\ b\\,c\\=d=v f=1"


def test_field_key_escaping() -> None:
    line = encode_point(Point("m", {}, {'a b,c=d"e': 1.0}))
    assert line == 'm a\\ b\\,c\\=d"e=1'


def test_measurement_escapes_comma_and_space_only() -> None:
    line = encode_point(Point('cpu load,total=all"', {}, {"f": 1.0}))
    assert line == 'cpu\\ load\\,total=all" f=1'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", '""'),
        ("plain", '"plain"'),
        ("a,b=c d", '"a,b=c d"'),
        ("ends in \\", '"ends in \\\\"'),
        ('\\"', '"\\\\\\""'),
        ("two\nlines", '"two\nlines"'),
        ("tab\tand\x00nul", '"tab\tand\x00nul"'),
    ],
)
def test_string_field_escaping(value: str, expected: str) -> None:
    assert encode_field(value) == expected


# Field values


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (22.0, "22"),
        (22.5, "22.5"),
        (-0.0, "-0"),
        (0.1, "0.1"),
        (1e-4, "0.0001"),
        (1.5e-5, "1.5e-05"),
        (123456.0, "123456"),
        (999999.5, "999999.5"),
        (1e6, "1e+06"),
        (6632243.0, "6.632243e+06"),
        (-1234567.5, "-1.2345675e+06"),
        (1e15 + 0.5, "1.0000000000000005e+15"),
        (1e16, "1e+16"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (5e-324, "5e-324"),
    ],
)
def test_float_format(value: float, expected: str) -> None:
    assert format_float(value) == expected


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_format_round_trips(value: float) -> None:
    text = format_float(value)
    assert float(text) == value
    assert math.copysign(1.0, float(text)) == math.copysign(1.0, value)


def significant_digits(number: str) -> str:
    mantissa = number.split("e")[0]
    return mantissa.replace("-", "").replace(".", "").strip("0")


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_format_has_repr_digits(value: float) -> None:
    # repr writes the fewest digits that read back as the same float.
    assert significant_digits(format_float(value)) == significant_digits(repr(value))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0i"),
        (-5, "-5i"),
        (INT64_MAX, "9223372036854775807i"),
        (INT64_MIN, "-9223372036854775808i"),
        (UInt(0), "0u"),
        (UInt(UINT64_MAX), "18446744073709551615u"),
        (True, "true"),
        (False, "false"),
    ],
)
def test_integer_and_boolean_format(value: FieldValue, expected: str) -> None:
    assert encode_field(value) == expected


@pytest.mark.parametrize("value", [INT64_MAX + 1, INT64_MIN - 1, 10**30])
def test_int_outside_64_bits_rejected(value: int) -> None:
    with pytest.raises(EncodeError, match="signed 64-bit range"):
        encode_field(value)


@pytest.mark.parametrize("value", [UInt(-1), UInt(UINT64_MAX + 1)])
def test_uint_outside_64_bits_rejected(value: UInt) -> None:
    with pytest.raises(EncodeError, match="outside 0 to 2\\*\\*64-1"):
        encode_field(value)


def test_int_enum_written_as_integer() -> None:
    class Mode(enum.IntEnum):
        AUTO = 3

    assert encode_field(Mode.AUTO) == "3i"


def test_float_subclass_written_as_float() -> None:
    class Reading(float):
        pass

    assert encode_field(Reading(2.5)) == "2.5"


def test_unsupported_field_type_rejected() -> None:
    with pytest.raises(EncodeError, match="unsupported field type bytes"):
        encode_field(b"raw")  # type: ignore[arg-type]


# Non-finite floats and empty values


def test_nonfinite_fields_skipped() -> None:
    point = Point("m", {}, {"a": math.nan, "b": 1.5, "c": math.inf, "d": -math.inf})
    assert encode_point(point) == "m b=1.5"


def test_nonfinite_float_subclass_skipped() -> None:
    class Reading(float):
        pass

    point = Point("m", {}, {"a": Reading("nan"), "b": 1.0})
    assert encode_point(point) == "m b=1"


def test_point_without_finite_field_rejected() -> None:
    with pytest.raises(EncodeError, match="no field with a finite value"):
        encode_point(Point("m", {"k": "v"}, {"a": math.nan}))


def test_point_without_fields_rejected() -> None:
    with pytest.raises(EncodeError, match="no field"):
        encode_point(Point("m", {"k": "v"}, {}))


def test_empty_tag_value_omitted() -> None:
    line = encode_point(Point("m", {"a": "", "b": "x", "c": ""}, {"f": 1.0}))
    assert line == "m,b=x f=1"


def test_empty_tag_key_rejected() -> None:
    with pytest.raises(EncodeError, match="tag key is empty"):
        encode_point(Point("m", {"": "v"}, {"f": 1.0}))


def test_empty_field_key_rejected() -> None:
    with pytest.raises(EncodeError, match="field key is empty"):
        encode_point(Point("m", {}, {"": 1.0}))


def test_empty_measurement_rejected() -> None:
    with pytest.raises(EncodeError, match="measurement is empty"):
        encode_point(Point("", {}, {"f": 1.0}))


# Values without a line-protocol form. Each one raises EncodeError, so the
# pipeline dead-letters the message instead of writing a corrupted line.


@pytest.mark.parametrize(
    ("point", "name"),
    [
        (Point("m", {"k": "a\\"}, {"f": 1.0}), "value of tag 'k'"),
        (Point("m", {"k\\": "v"}, {"f": 1.0}), "tag key"),
        (Point("m", {}, {"f\\": 1.0}), "field key"),
        (Point("m\\", {}, {"f": 1.0}), "measurement"),
    ],
)
def test_trailing_backslash_rejected(point: Point, name: str) -> None:
    # Nothing escapes a backslash in these places, so a trailing one would
    # escape the separator after it: `k=a\ f=1` reads as the tag value "a f=1".
    with pytest.raises(EncodeError, match="ends in a backslash") as caught:
        encode_point(point)
    assert str(caught.value).startswith(name)


@pytest.mark.parametrize(
    "point",
    [
        Point("m", {"k": "two\nlines"}, {"f": 1.0}),
        Point("m", {"k": "cr\r"}, {"f": 1.0}),
        Point("m", {"k": "tab\there"}, {"f": 1.0}),
        Point("m", {"new\nline": "v"}, {"f": 1.0}),
        Point("m", {}, {"new\nline": 1.0}),
        Point("new\nline", {}, {"f": 1.0}),
        Point("del\x7f", {}, {"f": 1.0}),
        Point("nul\x00", {}, {"f": 1.0}),
    ],
)
def test_control_character_in_name_rejected(point: Point) -> None:
    # A newline would end the line early, and line protocol has no escape for
    # control characters outside string fields.
    with pytest.raises(EncodeError, match="control character U\\+00"):
        encode_point(point)


def test_newline_in_tag_names_tag_and_character() -> None:
    with pytest.raises(EncodeError) as caught:
        encode_point(Point("m", {"room": "lab\n2"}, {"f": 1.0}))
    assert "tag 'room'" in str(caught.value)
    assert "U+000A" in str(caught.value)


def test_non_string_tag_value_rejected() -> None:
    with pytest.raises(EncodeError, match="value of tag 'k' 5 is not a string"):
        encode_point(Point("m", {"k": 5}, {"f": 1.0}))  # type: ignore[dict-item]


def test_comment_measurement_rejected() -> None:
    with pytest.raises(EncodeError, match="starts with '#'"):
        encode_point(Point("#m", {}, {"f": 1.0}))


@pytest.mark.parametrize(
    "point",
    [
        Point("bad\udc80", {}, {"f": 1.0}),
        Point("m", {"k": "\ud800"}, {"f": 1.0}),
        Point("m", {"\ud800": "v"}, {"f": 1.0}),
        Point("m", {}, {"\ud800": 1.0}),
        Point("m", {}, {"f": "text \udfff"}),
    ],
)
def test_unpaired_surrogate_rejected(point: Point) -> None:
    with pytest.raises(EncodeError, match="not valid UTF-8"):
        encode_point(point)


# Timestamps


@pytest.mark.parametrize(
    "time_ns", [0, -1, INT64_MIN, INT64_MAX, 1_700_000_000_123_456_789]
)
def test_time_written_in_nanoseconds(time_ns: int) -> None:
    assert encode_point(Point("m", {}, {"f": 1.0}, time_ns)) == f"m f=1 {time_ns}"


def test_time_none_omitted() -> None:
    assert encode_point(Point("m", {}, {"f": 1.0}, None)) == "m f=1"


@pytest.mark.parametrize(
    "time_ns", [INT64_MAX + 1, INT64_MIN - 1, 1_700_000_000 * 10**12]
)
def test_time_outside_64_bits_rejected(time_ns: int) -> None:
    with pytest.raises(EncodeError, match="outside the signed 64-bit range"):
        encode_point(Point("m", {}, {"f": 1.0}, time_ns))


@pytest.mark.parametrize("time_ns", [1.5, True, "1"])
def test_time_not_integer_rejected(time_ns: object) -> None:
    with pytest.raises(EncodeError, match="not an integer"):
        encode_point(Point("m", {}, {"f": 1.0}, time_ns))  # type: ignore[arg-type]


# Ordering and the escape cache


def test_tags_and_fields_sorted() -> None:
    point = Point("m", {"b": "2", "a": "1", "B": "0"}, {"y": 1.0, "x": 2}, 5)
    assert encode_point(point) == "m,B=0,a=1,b=2 x=2i,y=1 5"


def test_repeated_encoding_identical() -> None:
    point = Point("cpu load", {"host": "a b"}, {"v,1": 1.0})
    assert encode_point(point) == encode_point(point)


def test_rejected_name_stays_rejected() -> None:
    bad = Point("m", {"k": "a\\"}, {"f": 1.0})
    for _ in range(2):
        with pytest.raises(EncodeError):
            encode_point(bad)


# Properties

_any_text = st.text(st.characters(codec="utf-8") | st.sampled_from('\\ ,="#\n\r\t'))
_any_value: st.SearchStrategy[FieldValue] = st.one_of(
    st.floats(),
    st.integers(),
    st.integers().map(UInt),
    st.booleans(),
    _any_text,
)


@settings(max_examples=300, deadline=None)
@given(
    measurement=_any_text,
    tags=st.dictionaries(_any_text, _any_text, max_size=4),
    fields=st.dictionaries(_any_text, _any_value, max_size=4),
    time_ns=st.none() | st.integers(),
)
def test_encode_raises_only_encode_error(
    measurement: str,
    tags: dict[str, str],
    fields: dict[str, FieldValue],
    time_ns: int | None,
) -> None:
    try:
        line = encode_point(Point(measurement, tags, fields, time_ns))
    except EncodeError:
        return
    assert line


@pytest.mark.parametrize(
    ("measurement", "field_key"),
    [
        ("m", "a\\,b"),
        ("m", "a\\=b"),
        ("m", "a\\ b"),
        ("m", 'a\\"b'),
        ("a\\ b", "f"),
        ("a\\,b", "f"),
        ('a\\"b', "f"),
    ],
)
def test_backslash_before_separator_rejected(measurement: str, field_key: str) -> None:
    with pytest.raises(EncodeError) as caught:
        encode_point(Point(measurement, {}, {field_key: 1.0}, 1))
    assert "backslash before" in str(caught.value)


def test_backslash_before_separator_in_tag_kept() -> None:
    line = encode_point(Point("cpu", {"regions": "\\,,=east"}, {"value": 1.0}, 0))
    assert line == "cpu,regions=\\\\,\\,\\=east value=1 0"
    assert parse_line_protocol(line)[0].tags == {"regions": "\\,,=east"}

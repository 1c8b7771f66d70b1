"""The value decoder: one bare number, boolean word or text per message."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from labdock.acquire.decoders import DecodeContext, DecodeError, create_decoder
from labdock.acquire.points import UInt


def decode_value(payload: bytes, **options: Any) -> Any:
    context = DecodeContext("lab/r1/d1/state", "state", {"device": "d1"}, 1)
    points = create_decoder("value", options).decode(payload, context)
    assert len(points) == 1
    assert points[0].tags == {"device": "d1"}
    (value,) = points[0].fields.values()
    return value


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"21.5", 21.5),
        (b" 22\n", 22.0),
        (b"-1e3", -1000.0),
        (b"1", 1.0),
        (b"ON", True),
        (b"off", False),
        (b"Open", True),
        (b"CLOSED", False),
        (b"true", True),
        (b"idle", "idle"),
        (b'"ON"', True),
        (b'"heating"', "heating"),
    ],
)
def test_auto_type(payload: bytes, expected: Any) -> None:
    value = decode_value(payload)
    assert value == expected
    assert type(value) is type(expected)


def test_auto_nan_is_nonfinite_float() -> None:
    value = decode_value(b"nan")
    assert isinstance(value, float)
    assert value != value


def test_field_name_option() -> None:
    context = DecodeContext("a/b", "m", {}, 1)
    points = create_decoder("value", {"field": "level"}).decode(b"3", context)
    assert points[0].fields == {"level": 3.0}


@pytest.mark.parametrize(
    ("payload", "value_type", "expected"),
    [
        (b"21", "float", 21.0),
        (b"21", "int", 21),
        (b"21.0", "int", 21),
        (b"18446744073709551615", "uint", UInt(2**64 - 1)),
        (b"1", "bool", True),
        (b"0", "bool", False),
        (b"yes", "bool", True),
        (b"21.5", "string", "21.5"),
        (b"ON", "string", "ON"),
    ],
)
def test_declared_type(payload: bytes, value_type: str, expected: Any) -> None:
    value = decode_value(payload, type=value_type)
    assert value == expected
    assert type(value) is type(expected)


def test_custom_boolean_words() -> None:
    options = {"type": "bool", "true_values": ["Detected"], "false_values": ["clear"]}
    assert decode_value(b"detected", **options) is True
    assert decode_value(b"CLEAR", **options) is False
    with pytest.raises(DecodeError) as caught:
        decode_value(b"on", **options)
    assert caught.value.reason == "invalid_bool"


def test_words_in_both_lists_rejected() -> None:
    with pytest.raises(ValidationError):
        create_decoder("value", {"true_values": ["on"], "false_values": ["ON"]})


@pytest.mark.parametrize(
    ("payload", "value_type", "expected_reason"),
    [
        (b"", "auto", "empty_payload"),
        (b"\xff", "auto", "invalid_utf8"),
        (b"abc", "float", "invalid_number"),
        (b"21.5", "int", "fractional_int"),
        (b"99999999999999999999", "int", "int_out_of_range"),
        (b"-1", "uint", "int_out_of_range"),
        (b"maybe", "bool", "invalid_bool"),
        (b"1_000", "float", "invalid_number"),
    ],
)
def test_rejection(payload: bytes, value_type: str, expected_reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_value(payload, type=value_type)
    assert caught.value.reason == expected_reason
    assert caught.value.detail


def test_rounded_integer_counted() -> None:
    for value_type in ("auto", "float"):
        context = DecodeContext("lab/r1/d1/count", "count", {}, 1)
        decoder = create_decoder("value", {"type": value_type})
        (point,) = decoder.decode(b"9007199254740993", context)
        assert point.fields == {"value": 9007199254740992.0}
        assert context.dropped == {"integer_rounded": 1}


def test_large_integer_exact_as_int() -> None:
    context = DecodeContext("lab/r1/d1/count", "count", {}, 1)
    decoder = create_decoder("value", {"type": "int"})
    (point,) = decoder.decode(b"9007199254740993", context)
    assert point.fields == {"value": 9007199254740993}
    assert context.dropped == {}


def test_exact_or_fractional_number_not_counted() -> None:
    for payload in (b"9007199254740992", b"21.5", b"9007199254740993.0", b"1e300"):
        context = DecodeContext("lab/r1/d1/count", "count", {}, 1)
        create_decoder("value").decode(payload, context)
        assert context.dropped == {}, payload


def test_time_field_name_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        create_decoder("value", {"field": "time"})
    assert "the field name 'time' is reserved" in str(caught.value)

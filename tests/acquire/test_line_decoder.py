"""Tests of the `line` decoder, which reads InfluxDB line protocol payloads."""

from __future__ import annotations

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labdock.acquire.config import AcquireConfig
from labdock.acquire.decoders import (
    DecodeContext,
    DecodeError,
    Decoder,
    create_decoder,
    registry,
)
from labdock.acquire.pipeline import Pipeline
from labdock.acquire.points import FieldValue, UInt


def make_context() -> DecodeContext:
    return DecodeContext(
        topic="lab/r1/d1",
        measurement="from_topic",
        tags={"room": "r1", "device": "d1"},
        received_ns=1_700_000_000_000_000_000,
    )


PointParts = tuple[str, dict[str, str], dict[str, FieldValue], int | None]


def decode(payload: bytes, decoder: Decoder | None = None) -> list[PointParts]:
    """Decode `payload` and return each point as (measurement, tags, fields, time)."""
    decoder = decoder or create_decoder("line")
    points = decoder.decode(payload, make_context())
    return [(p.measurement, p.tags, p.fields, p.time_ns) for p in points]


def decode_error(payload: bytes, decoder: Decoder | None = None) -> DecodeError:
    decoder = decoder or create_decoder("line")
    with pytest.raises(DecodeError) as caught:
        decoder.decode(payload, make_context())
    return caught.value


# Registration and options


def test_line_decoder_registered() -> None:
    spec = registry()["line"]
    assert "line protocol" in spec.summary


def test_precision_defaults_to_nanoseconds() -> None:
    assert decode(b"m f=1 1700000000123456789") == [
        ("m", {"room": "r1", "device": "d1"}, {"f": 1.0}, 1_700_000_000_123_456_789)
    ]


@pytest.mark.parametrize(
    ("precision", "timestamp"),
    [
        ("ns", b"1700000000000000000"),
        ("us", b"1700000000000000"),
        ("ms", b"1700000000000"),
        ("s", b"1700000000"),
    ],
)
def test_precision_option_scales_time(precision: str, timestamp: bytes) -> None:
    decoder = create_decoder("line", {"precision": precision})
    ((_, _, _, time),) = decode(b"m f=1 " + timestamp, decoder)
    assert time == 1_700_000_000_000_000_000


@pytest.mark.parametrize(
    "options", [{"precision": "m"}, {"precision": "sec"}, {"unit": "s"}]
)
def test_invalid_options_rejected(options: dict[str, str]) -> None:
    with pytest.raises(pydantic.ValidationError):
        create_decoder("line", options)


# Decoding


def test_line_measurement_kept() -> None:
    ((measurement, _, _, _),) = decode(b"weather t=21.5")
    assert measurement == "weather"


def test_topic_tags_added() -> None:
    ((_, tags, _, _),) = decode(b"m,unit=C t=21.5")
    assert tags == {"unit": "C", "room": "r1", "device": "d1"}


def test_topic_tag_wins_over_line_tag() -> None:
    context = make_context()
    (point,) = create_decoder("line").decode(b"m,room=lab2 t=21.5", context)
    assert point.tags == {"room": "r1", "device": "d1"}
    assert context.dropped == {"tag_overridden": 1}


def test_equal_line_tag_not_counted() -> None:
    context = make_context()
    payload = b"m,room=r1,device=d1 t=21.5\nm,device=d9 t=1"
    points = create_decoder("line").decode(payload, context)
    assert [point.tags for point in points] == [{"room": "r1", "device": "d1"}] * 2
    assert context.dropped == {"tag_overridden": 1}


def test_topic_tag_wins_through_pipeline() -> None:
    mapping = {"topic": "lab/{device}", "measurement": "lp", "format": "line"}
    config = AcquireConfig.model_validate({"mappings": [mapping]})
    outcome = Pipeline(config).process(
        "lab/d1", b"temp,device=d2 value=21.5", 1_700_000_000_000_000_000
    )
    assert outcome.lines == ["temp,device=d1 value=21.5 1700000000000000000"]
    assert outcome.dropped == {"tag_overridden": 1}


def test_line_without_time_has_no_time() -> None:
    ((_, _, _, time),) = decode(b"m t=21.5")
    assert time is None


def test_several_lines_give_several_points() -> None:
    payload = (
        b'a,k=1 f=1i 1700000000000000001\r\n# comment\n\nb s="x y",u=2u '
        b"1700000000000000002\nc b=true\n"
    )
    assert decode(payload) == [
        ("a", {"k": "1", "room": "r1", "device": "d1"}, {"f": 1}, 1700000000000000001),
        (
            "b",
            {"room": "r1", "device": "d1"},
            {"s": "x y", "u": UInt(2)},
            1700000000000000002,
        ),
        ("c", {"room": "r1", "device": "d1"}, {"b": True}, None),
    ]


def test_points_do_not_share_tags() -> None:
    points = create_decoder("line").decode(b"a f=1\nb f=2", make_context())
    points[0].tags["extra"] = "x"
    assert "extra" not in points[1].tags


def test_escaped_values_unescaped() -> None:
    payload = b'm,line=Line\\ 1\\,A\\=B s="say \\"hi\\" \\\\ bye"'
    ((_, tags, fields, _),) = decode(payload)
    assert tags["line"] == "Line 1,A=B"
    assert fields == {"s": 'say "hi" \\ bye'}


def test_byte_order_mark_ignored() -> None:
    ((measurement, _, _, _),) = decode(b"\xef\xbb\xbfm f=1")
    assert measurement == "m"


@pytest.mark.parametrize("payload", [b"", b"\n\n", b"# nothing to store\n"])
def test_payload_without_lines_gives_no_points(payload: bytes) -> None:
    assert decode(payload) == []


# Errors


def test_syntax_error_names_line_and_column() -> None:
    error = decode_error(b"m f=1\nm f=oops")
    assert error.reason == "line_protocol_error"
    assert error.detail.startswith("line 2, column 5: ")
    assert "'oops'" in error.detail


def test_time_outside_range_rejected() -> None:
    decoder = create_decoder("line", {"precision": "s", "check_magnitude": False})
    error = decode_error(b"m f=1 9300000000000", decoder)
    assert error.reason == "timestamp_out_of_range"
    assert "outside the signed 64-bit range" in error.detail


def test_time_beyond_64_bits_rejected() -> None:
    error = decode_error(b"m f=1 9300000000000000000")
    assert error.reason == "line_protocol_error"
    assert "outside the signed 64-bit range" in error.detail


@pytest.mark.parametrize(
    ("payload", "precision", "fits"),
    [
        (b"cpu v=1 1796400000", "ns", "seconds"),
        (b"cpu v=1 1796400000000", "ns", "milliseconds"),
        (b"cpu v=1 1796400000000000", "ns", "microseconds"),
        (b"cpu v=1 1796400000000", "s", "milliseconds"),
        (b"cpu v=1 1796400000000000000", "ms", "nanoseconds"),
    ],
)
def test_timestamp_in_wrong_unit_rejected(
    payload: bytes, precision: str, fits: str
) -> None:
    error = decode_error(payload, create_decoder("line", {"precision": precision}))
    assert error.reason == "timestamp_unit_mismatch"
    assert f"its magnitude fits {fits}" in error.detail
    assert "set the precision option to" in error.detail


def test_wrong_unit_names_fitting_unit() -> None:
    error = decode_error(b"cpu v=1 1700000000000000000\ncpu v=1 1796400000")
    assert error.detail.startswith("the timestamp 1796400000 of point 2 ('cpu')")
    assert "(2026-12-04T16:00:00Z): set the precision option to s" in error.detail


def test_implausible_timestamp_in_any_unit() -> None:
    for payload in (b"m v=1 5", b"m v=1 -1700000000"):
        error = decode_error(payload)
        assert error.reason == "timestamp_out_of_range"
        assert "check_magnitude: false" in error.detail


def test_magnitude_check_can_be_disabled() -> None:
    decoder = create_decoder("line", {"check_magnitude": False})
    ((_, _, _, time),) = decode(b"cpu v=1 1796400000", decoder)
    assert time == 1_796_400_000


@pytest.mark.parametrize(
    ("payload", "kind"),
    [(b"m time=1,v=2", "field"), (b"m,time=noon v=2", "tag")],
)
def test_time_key_rejected(payload: bytes, kind: str) -> None:
    error = decode_error(payload)
    assert error.reason == "reserved_key"
    assert f"has a {kind} key 'time'" in error.detail
    assert "rename the key on the device" in error.detail


def test_invalid_utf8_rejected() -> None:
    error = decode_error(b"m f=1\nm,k=caf\xe9 f=1")
    assert error.reason == "invalid_utf8"
    assert "byte 13 (line 2)" in error.detail


# Through the pipeline


def test_pipeline_encodes_line_with_topic_tags() -> None:
    mapping = {"topic": "lab/{room}/{device}", "measurement": "lp", "format": "line"}
    config = AcquireConfig.model_validate({"mappings": [mapping]})
    outcome = Pipeline(config).process(
        "lab/Line 1,A=B/d1",
        b"temp,unit=C value=21.5 1700000000000000000",
        1_700_000_000_000_000_001,
    )
    assert outcome.reason is None
    assert outcome.lines == [
        "temp,device=d1,room=Line\\ 1\\,A\\=B,unit=C value=21.5 1700000000000000000"
    ]


# Properties

_line_protocol_bytes = st.binary() | st.text(
    st.sampled_from(list('mk f=1,\\ "#\n\r\t\x00.-eiutTfé0123456789'))
).map(str.encode)


@settings(max_examples=400, deadline=None)
@given(_line_protocol_bytes)
def test_decode_raises_only_decode_error(payload: bytes) -> None:
    decoder = create_decoder("line")
    try:
        decoder.decode(payload, make_context())
    except DecodeError as error:
        assert error.reason in {
            "invalid_utf8",
            "line_protocol_error",
            "reserved_key",
            "timestamp_unit_mismatch",
            "timestamp_out_of_range",
        }
        assert error.detail

"""The json decoder: typing, naming, timestamps, records and bad input.

The pipeline cases use the mapping `plant/{device}/env` with measurement
`env`, so that a test shows the exact line a payload is written as.
"""

from __future__ import annotations

from typing import Any

import pytest

from labdock.acquire.config import AcquireConfig
from labdock.acquire.decoders import DecodeContext, DecodeError, create_decoder
from labdock.acquire.pipeline import Outcome, Pipeline
from labdock.acquire.points import Point, UInt

ARRIVAL = 1_764_000_000_000_000_000


def process(payload: bytes, **options: Any) -> Outcome:
    mapping = {"topic": "plant/{device}/env", "measurement": "env", "options": options}
    pipeline = Pipeline(AcquireConfig.model_validate({"mappings": [mapping]}))
    return pipeline.process("plant/dev04/env", payload, ARRIVAL)


def decode(payload: bytes, **options: Any) -> tuple[list[Point], DecodeContext]:
    context = DecodeContext("plant/dev04/env", "env", {"device": "dev04"}, ARRIVAL)
    return create_decoder("json", options).decode(payload, context), context


def fields(payload: bytes, **options: Any) -> dict[str, Any]:
    points, _ = decode(payload, **options)
    assert len(points) == 1
    return points[0].fields


def reason(payload: bytes, **options: Any) -> str:
    with pytest.raises(DecodeError) as caught:
        decode(payload, **options)
    assert caught.value.detail
    return caught.value.reason


# The cases from the reported failures of other tools.


def test_quoted_numbers_with_declared_types() -> None:
    outcome = process(
        b'{"temperature":19.4,"battery":"100.00","rssi":-71}',
        types={"battery": "float", "rssi": "float"},
    )
    assert outcome.lines == [
        f"env,device=dev04 battery=100,rssi=-71,temperature=19.4 {ARRIVAL}"
    ]


def test_quoted_number_undeclared_stays_string() -> None:
    outcome = process(b'{"temperature":19.4,"battery":"100.00","rssi":-71}')
    assert outcome.lines == [
        f'env,device=dev04 battery="100.00",rssi=-71,temperature=19.4 {ARRIVAL}'
    ]
    assert outcome.dropped == {}


def test_millisecond_timestamp_scaled_exactly() -> None:
    outcome = process(
        b'{"t":21.5,"ts":1700000000123}', timestamp={"path": "ts", "format": "ms"}
    )
    assert outcome.lines == ["env,device=dev04 t=21.5 1700000000123000000"]


def test_millisecond_timestamp_declared_seconds_is_deadletter() -> None:
    outcome = process(
        b'{"t":21.5,"ts":1700000000123}', timestamp={"path": "ts", "format": "s"}
    )
    assert outcome.lines == []
    assert outcome.reason == "timestamp_unit_mismatch"
    assert outcome.detail is not None
    assert "milliseconds" in outcome.detail
    assert "format to ms" in outcome.detail


def test_nanosecond_timestamp_stays_exact() -> None:
    outcome = process(
        b'{"ts":1700000000123456789,"t":1.5}', timestamp={"path": "ts", "format": "ns"}
    )
    assert outcome.lines == ["env,device=dev04 t=1.5 1700000000123456789"]


def test_integer_number_is_float_by_default() -> None:
    outcome = process(b'{"t":22}')
    assert outcome.lines == [f"env,device=dev04 t=22 {ARRIVAL}"]
    assert fields(b'{"t":22}') == {"t": 22.0}
    assert isinstance(fields(b'{"t":22}')["t"], float)


def test_nan_literal_dropped_by_pipeline() -> None:
    outcome = process(b'{"t":NaN,"h":40.1}')
    assert outcome.lines == [f"env,device=dev04 h=40.1 {ARRIVAL}"]
    assert outcome.dropped == {"nonfinite": 1}


def test_all_infinite_message_is_deadletter() -> None:
    outcome = process(b'{"t":Infinity,"u":-Infinity}')
    assert outcome.reason == "no_finite_fields"


# Undeclared values.


def test_number_type_auto_keeps_exact_integers() -> None:
    result = fields(
        b'{"a":22,"b":-9223372036854775808,"c":18446744073709551615,"d":2.5}',
        number_type="auto",
    )
    assert result == {"a": 22, "b": -(2**63), "c": 2**64 - 1, "d": 2.5}
    assert type(result["a"]) is int
    assert isinstance(result["c"], UInt)


def test_number_type_auto_rejects_integer_beyond_64_bits() -> None:
    assert (
        reason(b'{"a":18446744073709551616}', number_type="auto") == "int_out_of_range"
    )
    assert (
        reason(b'{"a":-9223372036854775809}', number_type="auto") == "int_out_of_range"
    )


def test_number_type_auto_keeps_large_float_literal() -> None:
    assert fields(b'{"a":1e19,"b":-1e300}', number_type="auto") == {
        "a": 1e19,
        "b": -1e300,
    }


def test_booleans_stay_booleans() -> None:
    assert fields(b'{"on":true,"off":false}') == {"on": True, "off": False}


def test_strings_ignore_counts_them() -> None:
    points, context = decode(b'{"t":1.5,"status":"ok","mode":"auto"}', strings="ignore")
    assert points[0].fields == {"t": 1.5}
    assert context.dropped == {"ignored_string": 2}


def test_null_values_skipped_and_counted() -> None:
    points, context = decode(b'{"t":1.5,"h":null}')
    assert points[0].fields == {"t": 1.5}
    assert context.dropped == {"null": 1}


def test_nested_objects_joined_with_separator() -> None:
    payload = b'{"sensor":{"temp":21.5,"inner":{"x":1}}}'
    assert fields(payload) == {"sensor_temp": 21.5, "sensor_inner_x": 1.0}
    assert fields(payload, separator=".") == {
        "sensor.temp": 21.5,
        "sensor.inner.x": 1.0,
    }


def test_arrays_indexed_or_ignored() -> None:
    assert fields(b'{"v":[1,2,{"a":3}]}') == {"v_0": 1.0, "v_1": 2.0, "v_2_a": 3.0}
    points, context = decode(b'{"t":1,"v":[1,2]}', arrays="ignore")
    assert points[0].fields == {"t": 1.0}
    assert context.dropped == {"ignored_array": 1}


def test_colliding_names_are_deadletter() -> None:
    assert reason(b'{"a_b":1,"a":{"b":2}}') == "duplicate_field"


def test_empty_object_is_deadletter() -> None:
    assert reason(b"{}") == "no_fields"
    assert reason(b'{"a":null}') == "no_fields"


# Options.


def test_fields_option_keeps_listed_paths() -> None:
    payload = b'{"t":1,"h":2,"sensor":{"a":3,"b":4}}'
    assert fields(payload, fields=["t", "sensor.a"]) == {"t": 1.0, "sensor_a": 3.0}
    assert fields(payload, fields=["sensor"]) == {"sensor_a": 3.0, "sensor_b": 4.0}


def test_exclude_option_removes_paths() -> None:
    assert fields(b'{"t":1,"sensor":{"a":3,"b":4}}', exclude=["sensor.b"]) == {
        "t": 1.0,
        "sensor_a": 3.0,
    }


def test_tags_option_moves_values_to_tags() -> None:
    points, _ = decode(
        b'{"t":1,"meta":{"site":"north","id":12},"ok":true}',
        tags=["meta.site", "meta.id", "ok"],
    )
    assert points[0].tags == {
        "device": "dev04",
        "meta_site": "north",
        "meta_id": "12",
        "ok": "true",
    }
    assert points[0].fields == {"t": 1.0}


def test_tag_from_object_is_deadletter() -> None:
    assert reason(b'{"t":1,"meta":{"a":1}}', tags=["meta"]) == "tag_not_scalar"


def test_missing_tag_is_left_out() -> None:
    points, _ = decode(b'{"t":1}', tags=["site"])
    assert points[0].tags == {"device": "dev04"}


def test_rename_applies_to_fields_tags_and_objects() -> None:
    points, _ = decode(
        b'{"temp":1,"sensor":{"a":2},"loc":"x"}',
        rename={"temp": "temperature", "sensor": "s", "loc": "location"},
        tags=["loc"],
    )
    assert points[0].fields == {"temperature": 1.0, "s_a": 2.0}
    assert points[0].tags == {"device": "dev04", "location": "x"}


def test_measurement_from_payload_key() -> None:
    points, _ = decode(b'{"kind":"air","t":1}', measurement="kind")
    assert points[0].measurement == "air"
    assert points[0].fields == {"t": 1.0}
    points, _ = decode(b'{"t":1}', measurement="kind")
    assert points[0].measurement == "env"
    assert reason(b'{"kind":5,"t":1}', measurement="kind") == "invalid_measurement"


def test_key_with_dot_matched_whole() -> None:
    points, _ = decode(b'{"a.b":1,"c":2}', tags=["a.b"])
    assert points[0].tags["a.b"] == "1"


def test_declared_type_on_object_covers_members() -> None:
    assert fields(b'{"s":{"a":"1","b":2}}', types={"s": "int"}) == {"s_a": 1, "s_b": 2}


# The coercion table of declared types.


@pytest.mark.parametrize(
    ("value", "declared", "expected"),
    [
        (b"21", "float", 21.0),
        (b"21.5", "float", 21.5),
        (b'"100.00"', "float", 100.0),
        (b'"-1e3"', "float", -1000.0),
        (b"21", "int", 21),
        (b"21.0", "int", 21),
        (b'"42"', "int", 42),
        (b'"42.0"', "int", 42),
        (b'"1e3"', "int", 1000),
        (b"9223372036854775807", "int", 2**63 - 1),
        (b"18446744073709551615", "uint", 2**64 - 1),
        (b"0", "uint", 0),
        (b"true", "bool", True),
        (b"0", "bool", False),
        (b"1.0", "bool", True),
        (b'"1"', "bool", True),
        (b'"0"', "bool", False),
        (b'"TRUE"', "bool", True),
        (b'"false"', "bool", False),
        (b'"on"', "bool", True),
        (b'"No"', "bool", False),
        (b"21.5", "string", "21.5"),
        (b"22", "string", "22"),
        (b"true", "string", "true"),
        (b'"x"', "string", "x"),
    ],
)
def test_declared_type_coercion(value: bytes, declared: str, expected: Any) -> None:
    result = fields(b'{"v":' + value + b"}", types={"v": declared})["v"]
    assert result == expected
    assert type(result) is type(expected) or (
        declared == "uint" and isinstance(result, UInt)
    )


@pytest.mark.parametrize(
    ("value", "declared", "expected_reason"),
    [
        (b"21.5", "int", "fractional_int"),
        (b'"21.5"', "int", "fractional_int"),
        (b"9223372036854775808", "int", "int_out_of_range"),
        (b"-9223372036854775809", "int", "int_out_of_range"),
        (b"1e30", "int", "int_out_of_range"),
        (b'"1e999999"', "int", "int_out_of_range"),
        (b"-1", "uint", "int_out_of_range"),
        (b"18446744073709551616", "uint", "int_out_of_range"),
        (b"true", "float", "type_mismatch"),
        (b"true", "int", "type_mismatch"),
        (b'"abc"', "float", "invalid_number"),
        (b'"1_000"', "float", "invalid_number"),
        (b'""', "int", "invalid_number"),
        (b'"maybe"', "bool", "invalid_bool"),
        (b"2", "bool", "invalid_bool"),
        (b'"1e999"', "float", "float_out_of_range"),
    ],
)
def test_declared_type_rejection(
    value: bytes, declared: str, expected_reason: str
) -> None:
    assert reason(b'{"v":' + value + b"}", types={"v": declared}) == expected_reason


def test_declared_numeric_nan_stays_nonfinite() -> None:
    result = fields(b'{"v":NaN,"w":"nan","t":1}', types={"v": "int", "w": "float"})
    assert result["v"] != result["v"]
    assert result["w"] != result["w"]


# Timestamps.


@pytest.mark.parametrize(
    ("value", "fmt", "expected"),
    [
        (b"1700000000", "s", 1_700_000_000_000_000_000),
        (b"1700000000.123456789", "s", 1_700_000_000_123_456_789),
        (b"1700000000.5", "s", 1_700_000_000_500_000_000),
        (b"1.663830962276e+12", "ms", 1_663_830_962_276_000_000),
        (b"1700000000123.5", "ms", 1_700_000_000_123_500_000),
        (b"1700000000123456", "us", 1_700_000_000_123_456_000),
        (b'"1700000000123"', "ms", 1_700_000_000_123_000_000),
        (b"1700000000123", "auto", 1_700_000_000_123_000_000),
        (b"1700000000", "auto", 1_700_000_000_000_000_000),
        (b"1700000000123456789", "auto", 1_700_000_000_123_456_789),
        (b'"2023-11-14T22:13:20.123456789Z"', "rfc3339", 1_700_000_000_123_456_789),
        (b'"2023-11-14T23:13:20+01:00"', "rfc3339", 1_700_000_000_000_000_000),
        (b'"2023-11-14 22:13:20z"', "rfc3339", 1_700_000_000_000_000_000),
        (b'"14.11.2023 22:13:20"', "%d.%m.%Y %H:%M:%S", 1_700_000_000_000_000_000),
    ],
)
def test_timestamp_formats(value: bytes, fmt: str, expected: int) -> None:
    points, _ = decode(
        b'{"t":1,"ts":' + value + b"}", timestamp={"path": "ts", "format": fmt}
    )
    assert points[0].time_ns == expected
    assert "ts" not in points[0].fields


def test_timestamp_half_nanosecond_rounds_to_even() -> None:
    payload = b'{"t":1,"ts":1700000000000000.0005}'
    points, _ = decode(payload, timestamp={"path": "ts", "format": "us"})
    assert points[0].time_ns == 1_700_000_000_000_000_000
    payload = b'{"t":1,"ts":1700000000000000.0015}'
    points, _ = decode(payload, timestamp={"path": "ts", "format": "us"})
    assert points[0].time_ns == 1_700_000_000_000_000_002


def test_timestamp_local_time_zone() -> None:
    options = {"path": "ts", "format": "rfc3339", "timezone": "Europe/Berlin"}
    points, _ = decode(b'{"t":1,"ts":"2023-11-14T23:13:20"}', timestamp=options)
    assert points[0].time_ns == 1_700_000_000_000_000_000
    options = {"path": "ts", "format": "%Y-%m-%d %H:%M", "timezone": "America/New_York"}
    points, _ = decode(b'{"t":1,"ts":"2023-07-01 08:00"}', timestamp=options)
    assert points[0].time_ns == 1_688_212_800_000_000_000


def test_timestamp_nested_path() -> None:
    points, _ = decode(
        b'{"t":1,"meta":{"time":1700000000}}', timestamp={"path": "meta.time"}
    )
    assert points[0].time_ns == 1_700_000_000_000_000_000
    assert points[0].fields == {"t": 1.0}


@pytest.mark.parametrize(
    ("value", "fmt", "expected_reason"),
    [
        (b"1700000000123", "s", "timestamp_unit_mismatch"),
        (b"1700000000", "ms", "timestamp_unit_mismatch"),
        (b"1700000000123456789", "ms", "timestamp_unit_mismatch"),
        (b"12345", "s", "timestamp_out_of_range"),
        (b"-1", "s", "timestamp_out_of_range"),
        (b"1e400", "s", "timestamp_out_of_range"),
        (b"99999999999999999999999", "ns", "timestamp_out_of_range"),
        (b"12345", "auto", "timestamp_out_of_range"),
        (b"true", "s", "invalid_timestamp"),
        (b'"soon"', "s", "invalid_timestamp"),
        (b"NaN", "s", "invalid_timestamp"),
        (b'"2023-02-30T00:00:00Z"', "rfc3339", "invalid_timestamp"),
        (b'"yesterday"', "rfc3339", "invalid_timestamp"),
        (b"1700000000", "rfc3339", "invalid_timestamp"),
        (b'"2023/11/14"', "%d.%m.%Y", "invalid_timestamp"),
    ],
)
def test_timestamp_rejection(value: bytes, fmt: str, expected_reason: str) -> None:
    payload = b'{"t":1,"ts":' + value + b"}"
    assert reason(payload, timestamp={"path": "ts", "format": fmt}) == expected_reason


def test_timestamp_magnitude_check_can_be_disabled() -> None:
    options = {"path": "ts", "format": "s", "check_magnitude": False}
    points, _ = decode(b'{"t":1,"ts":12345}', timestamp=options)
    assert points[0].time_ns == 12_345_000_000_000


def test_timestamp_missing_is_deadletter_unless_optional() -> None:
    assert reason(b'{"t":1}', timestamp={"path": "ts"}) == "timestamp_missing"
    points, _ = decode(b'{"t":1}', timestamp={"path": "ts", "required": False})
    assert points[0].time_ns is None


def test_timestamp_options_validated() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        create_decoder("json", {"timestamp": {"path": "ts", "format": "minutes"}})
    with pytest.raises(ValidationError):
        create_decoder("json", {"timestamp": {"path": "ts", "timezone": "Mars/Base"}})
    with pytest.raises(ValidationError):
        create_decoder("json", {"types": {"a": "decimal"}})
    with pytest.raises(ValidationError):
        create_decoder("json", {"unknown": 1})


# Records.


def test_records_array_becomes_points() -> None:
    payload = (
        b'{"gateway":"x","ts":1700000000,"readings":['
        b'{"t":1.5},{"t":2.5,"ts":1700000001.25}]}'
    )
    points, _ = decode(
        payload, records="readings", tags=["gateway"], timestamp={"path": "ts"}
    )
    assert [p.fields for p in points] == [{"t": 1.5}, {"t": 2.5}]
    assert [p.time_ns for p in points] == [
        1_700_000_000_000_000_000,
        1_700_000_001_250_000_000,
    ]
    assert all(p.tags == {"device": "dev04", "gateway": "x"} for p in points)


def test_records_at_top_level() -> None:
    points, _ = decode(b'[{"t":1},{"t":2}]', records="")
    assert [p.fields for p in points] == [{"t": 1.0}, {"t": 2.0}]


def test_records_errors() -> None:
    assert reason(b'{"t":1}', records="readings") == "records_missing"
    assert reason(b'{"readings":{"t":1}}', records="readings") == "records_not_array"
    assert reason(b'{"readings":[1]}', records="readings") == "record_not_object"
    assert reason(b'{"readings":[]}', records="readings") == "no_fields"


def test_records_empty_record_counted() -> None:
    points, context = decode(b'{"readings":[{"t":1},{}]}', records="readings")
    assert len(points) == 1
    assert context.dropped == {"empty_record": 1}


# Bad input.


@pytest.mark.parametrize(
    ("payload", "expected_reason"),
    [
        (b"", "empty_payload"),
        (b"  \n", "empty_payload"),
        (b'{"t":"\xff"}', "invalid_utf8"),
        (b"\xc3\x28", "invalid_utf8"),
        (b'{"t":1', "json_decode_error"),
        (b"online", "json_decode_error"),
        (b'{"t":1}}', "json_decode_error"),
        (b"[" * 5000 + b"]" * 5000, "json_decode_error"),
        (b'{"t":"\\ud800",x}', "json_decode_error"),
        (b'{"t":"\\ud800","u":NaN}', "json_invalid_string"),
        (b"[1,2]", "json_not_object"),
        (b"21.5", "json_not_object"),
        (b'"text"', "json_not_object"),
        (b"null", "json_not_object"),
    ],
)
def test_bad_payload_reasons(payload: bytes, expected_reason: str) -> None:
    assert reason(payload) == expected_reason


def test_byte_order_mark_accepted() -> None:
    assert fields(b'\xef\xbb\xbf{"t":1}') == {"t": 1.0}


def test_huge_integer_against_float_is_deadletter() -> None:
    payload = b'{"t":' + b"9" * 400 + b',"u":NaN}'
    assert reason(payload) == "float_out_of_range"


# Integers beyond 2**53, which a float field rounds.

BIG_ODD = 2**53 + 1  # the smallest positive integer a float can't hold


def test_rounded_integer_counted_by_default() -> None:
    payload = f'{{"a":{BIG_ODD},"b":{2**53 + 2},"c":22,"d":-{BIG_ODD}}}'.encode()
    points, context = decode(payload)
    assert points[0].fields["a"] == float(2**53)
    assert context.dropped == {"integer_rounded": 2}


def test_rounded_integer_reaches_metric() -> None:
    outcome = process(f'{{"a":{BIG_ODD}}}'.encode())
    assert outcome.lines == [f"env,device=dev04 a=9.007199254740992e+15 {ARRIVAL}"]
    assert outcome.dropped == {"integer_rounded": 1}


def test_rounded_integer_beyond_64_bits_counted() -> None:
    points, context = decode(b'{"a":123456789012345678901234567890}')
    assert points[0].fields["a"] == 1.2345678901234568e29
    assert context.dropped == {"integer_rounded": 1}


def test_large_integer_exact_with_auto_or_int() -> None:
    payload = f'{{"a":{BIG_ODD}}}'.encode()
    for options in ({"number_type": "auto"}, {"types": {"a": "int"}}):
        points, context = decode(payload, **options)
        assert points[0].fields == {"a": BIG_ODD}
        assert context.dropped == {}


def test_large_float_literal_not_counted() -> None:
    _, context = decode(b'{"a":9007199254740993.0,"b":1e300}')
    assert context.dropped == {}


def test_topic_tag_wins_over_payload_tag() -> None:
    points, context = decode(
        b'{"t":1,"device":"dev99","site":"north"}', tags=["device", "site"]
    )
    assert points[0].tags == {"device": "dev04", "site": "north"}
    assert context.dropped == {"tag_overridden": 1}


def test_equal_payload_tag_not_counted() -> None:
    points, context = decode(b'{"t":1,"device":"dev04"}', tags=["device"])
    assert points[0].tags == {"device": "dev04"}
    assert context.dropped == {}


# Text times without a UTC offset.


def test_naive_time_read_as_utc_and_counted() -> None:
    for fmt, text in (
        ("rfc3339", "2026-12-04T16:00:00"),
        ("%d.%m.%Y %H:%M", "04.12.2026 16:00"),
    ):
        payload = f'{{"t":1,"ts":"{text}"}}'.encode()
        points, context = decode(payload, timestamp={"path": "ts", "format": fmt})
        assert points[0].time_ns == 1_796_400_000_000_000_000, fmt
        assert context.dropped == {"naive_time_as_utc": 1}, fmt


def test_naive_time_counted_once_per_message() -> None:
    payload = (
        b'{"readings":[{"t":1,"ts":"2026-12-04T16:00:00"},'
        b'{"t":2,"ts":"2026-12-04T16:00:01"}]}'
    )
    timestamp = {"path": "ts", "format": "rfc3339"}
    points, context = decode(payload, records="readings", timestamp=timestamp)
    assert len(points) == 2
    assert context.dropped == {"naive_time_as_utc": 1}


def test_naive_time_with_zone_not_counted() -> None:
    for zone, expected in (("UTC", 1_796_400_000), ("Europe/Berlin", 1_796_396_400)):
        timestamp = {"path": "ts", "format": "rfc3339", "timezone": zone}
        points, context = decode(
            b'{"t":1,"ts":"2026-12-04T16:00:00"}', timestamp=timestamp
        )
        assert points[0].time_ns == expected * 10**9, zone
        assert context.dropped == {}, zone


def test_time_with_offset_not_counted() -> None:
    for text in ("2026-12-04T16:00:00Z", "2026-12-04T17:00:00+01:00"):
        payload = f'{{"t":1,"ts":"{text}"}}'.encode()
        points, context = decode(payload, timestamp={"path": "ts", "format": "rfc3339"})
        assert points[0].time_ns == 1_796_400_000_000_000_000, text
        assert context.dropped == {}, text


# The key `time`, which InfluxDB can't store.


def test_time_field_rejected_with_rename_fix() -> None:
    for payload in (b'{"time":1,"t":2}', b'{"meta":{"x":1},"time":"noon"}'):
        with pytest.raises(DecodeError) as caught:
            decode(payload)
        assert caught.value.reason == "reserved_key"
        assert "becomes the field key 'time'" in caught.value.detail
        assert "rename option (time: new_name)" in caught.value.detail


def test_time_tag_rejected() -> None:
    with pytest.raises(DecodeError) as caught:
        decode(
            b'{"t":1,"meta":{"time":"noon"}}',
            tags=["meta.time"],
            rename={"meta.time": "time"},
        )
    assert caught.value.reason == "reserved_key"
    assert "becomes the tag key 'time'" in caught.value.detail


def test_renamed_time_field_accepted() -> None:
    assert fields(b'{"time":1,"t":2}', rename={"time": "uptime"}) == {
        "uptime": 1.0,
        "t": 2.0,
    }


def test_nested_time_key_allowed() -> None:
    assert fields(b'{"gps":{"time":1}}') == {"gps_time": 1.0}

"""Property tests: no input makes a registered decoder raise anything but DecodeError.

Each decoder gets arbitrary bytes, and arbitrary JSON in the layouts it
expects, on topics of the shapes it handles. The json decoder also gets
arbitrary options, and the sparkplug_b decoder sequences of arbitrary
protobuf messages. Whatever a decoder returns must be points with valid field types.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labdock.acquire.decoders import (
    DecodeContext,
    DecodeError,
    create_decoder,
    registry,
)
from labdock.acquire.decoders._sparkplug_schema import Payload
from labdock.acquire.points import Point

EXAMPLES = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TOPICS = {
    "json": ["plant/dev01/env"],
    "value": ["lab/r1/d1/state"],
    "line": ["lab/lp"],
    "senml": ["lab/senml"],
    "tasmota": [
        "tele/plug/SENSOR",
        "tele/plug/STATE",
        "stat/plug/STATUS10",
        "stat/plug/RESULT",
        "stat/plug/POWER1",
        "tele/plug/LWT",
        "cmnd/plug/POWER",
    ],
    "zigbee2mqtt": [
        "zigbee2mqtt/th1",
        "zigbee2mqtt/a/b/availability",
        "zigbee2mqtt/lamp/state",
        "zigbee2mqtt/bridge/state",
        "other/x",
    ],
    "shelly": ["s1/events/rpc", "s1/status/switch:0", "s1/online", "s1/rpc"],
    "esphome": [
        "n/sensor/t/state",
        "n/binary_sensor/d/state",
        "n/text_sensor/x/state",
        "n/light/l/state",
        "n/climate/c/mode/state",
        "n/other/o/state",
        "n/status",
    ],
    "ttn": ["v3/app@ttn/devices/d/up"],
    "homeassistant": ["homeassistant/sensor/t/state", "ha/light/l/brightness", "x"],
    "sparkplug_b": [
        "spBv1.0/g/NBIRTH/e",
        "spBv1.0/g/NDATA/e",
        "spBv1.0/g/DBIRTH/e/d",
        "spBv1.0/g/DDATA/e/d",
        "spBv1.0/g/NDEATH/e",
        "spBv1.0/STATE/h",
        "bad/topic",
    ],
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        ["ON", "OFF", "2024-03-05T14:22:10", "1700000000123", "nan", "1e999"]
    ),
)
keys = st.one_of(
    st.text(max_size=8),
    st.sampled_from(
        [
            "Time",
            "t",
            "ts",
            "v",
            "n",
            "bn",
            "bt",
            "vd",
            "vs",
            "vb",
            "s",
            "u",
            "params",
            "method",
            "uplink_message",
            "decoded_payload",
            "rx_metadata",
            "switch:0",
            "last_seen",
            "state",
            "Id",
            "TempUnit",
            "StatusSNS",
            "readings",
            "f_cnt",
        ]
    ),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=20,
)


def encode(document: Any) -> bytes:
    return json.dumps(document, allow_nan=True).encode("utf-8", "surrogatepass")


def check(
    name: str, topic: str, payload: bytes, options: dict[str, Any] | None = None
) -> None:
    decoder = create_decoder(name, options)
    context = DecodeContext(topic, "m", {"site": "lab"}, 1_764_000_000_000_000_000)
    try:
        points = decoder.decode(payload, context)
    except DecodeError as error:
        assert error.reason
        assert error.reason == error.reason.strip()
        return
    check_points(points)


def check_points(points: list[Point]) -> None:
    assert isinstance(points, list)
    for point in points:
        assert isinstance(point, Point)
        assert all(
            isinstance(k, str) and isinstance(v, str) for k, v in point.tags.items()
        )
        for key, value in point.fields.items():
            assert isinstance(key, str)
            assert isinstance(value, bool | int | float | str)
            if isinstance(value, int) and not isinstance(value, bool):
                assert -(2**63) <= value < 2**64
        assert point.time_ns is None or isinstance(point.time_ns, int)


def test_every_decoder_has_topics() -> None:
    assert set(registry()) <= set(TOPICS)


@EXAMPLES
@given(
    name=st.sampled_from(sorted(TOPICS)),
    data=st.data(),
    payload=st.binary(max_size=200),
)
def test_arbitrary_bytes(name: str, data: st.DataObject, payload: bytes) -> None:
    if name not in registry():
        return
    check(name, data.draw(st.sampled_from(TOPICS[name])), payload)


@EXAMPLES
@given(name=st.sampled_from(sorted(TOPICS)), data=st.data(), document=documents)
def test_arbitrary_json(name: str, data: st.DataObject, document: Any) -> None:
    if name not in registry():
        return
    check(name, data.draw(st.sampled_from(TOPICS[name])), encode(document))


@EXAMPLES
@given(
    name=st.sampled_from(["tasmota", "shelly", "ttn", "zigbee2mqtt"]),
    data=st.data(),
    inner=st.dictionaries(keys, documents, max_size=4),
)
def test_preset_layouts(name: str, data: st.DataObject, inner: dict[str, Any]) -> None:
    layouts = {
        "tasmota": {"Time": "2024-03-05T14:22:10", "AM2301": inner},
        "shelly": {
            "src": "s1",
            "method": "NotifyStatus",
            "params": {"ts": 1709644930.5, "switch:0": inner},
        },
        "ttn": {
            "received_at": "2024-03-05T13:22:10Z",
            "uplink_message": {"decoded_payload": inner, "f_cnt": 1},
        },
        "zigbee2mqtt": {"last_seen": 1709644930123, **inner},
    }
    check(name, TOPICS[name][0], encode(layouts[name]))


@EXAMPLES
@given(document=documents)
def test_senml_records(document: Any) -> None:
    records = document if isinstance(document, list) else [document]
    check("senml", "lab/senml", encode(records))


json_options = st.fixed_dictionaries(
    {},
    optional={
        "number_type": st.sampled_from(["float", "auto"]),
        "strings": st.sampled_from(["keep", "ignore"]),
        "arrays": st.sampled_from(["index", "ignore"]),
        "separator": st.sampled_from(["_", ".", "__"]),
        "types": st.dictionaries(
            keys,
            st.sampled_from(["float", "int", "uint", "bool", "string"]),
            max_size=3,
        ),
        "tags": st.lists(keys, max_size=2),
        "fields": st.lists(keys, max_size=2),
        "exclude": st.lists(keys, max_size=2),
        "rename": st.dictionaries(keys, st.text(min_size=1, max_size=4), max_size=2),
        "records": st.sampled_from(["", "readings"]),
        "measurement": keys,
        "timestamp": st.fixed_dictionaries(
            {"path": st.sampled_from(["ts", "t", "Time"])},
            optional={
                "format": st.sampled_from(
                    ["s", "ms", "us", "ns", "auto", "rfc3339", "%Y-%m-%d"]
                ),
                "required": st.booleans(),
                "check_magnitude": st.booleans(),
            },
        ),
    },
)


@EXAMPLES
@given(options=json_options, document=documents)
def test_json_with_arbitrary_options(options: dict[str, Any], document: Any) -> None:
    check("json", "plant/dev01/env", encode(document), options)


@EXAMPLES
@given(
    value_type=st.sampled_from(["auto", "float", "int", "uint", "bool", "string"]),
    payload=st.one_of(st.binary(max_size=30), st.text(max_size=30).map(str.encode)),
)
def test_value_types(value_type: str, payload: bytes) -> None:
    check("value", "lab/x", payload, {"type": value_type})


metric_specs = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["a", "b", "bdSeq", "T/x", ""]),
        "alias": st.integers(min_value=0, max_value=4),
        "timestamp": st.one_of(
            st.integers(min_value=0, max_value=2**64 - 1), st.just(1_709_644_930_000)
        ),
        "datatype": st.integers(min_value=0, max_value=40),
        "is_null": st.booleans(),
        "is_transient": st.booleans(),
        "int_value": st.integers(min_value=0, max_value=2**32 - 1),
        "long_value": st.integers(min_value=0, max_value=2**64 - 1),
        "float_value": st.floats(width=32),
        "double_value": st.floats(),
        "boolean_value": st.booleans(),
        "string_value": st.text(max_size=5),
        "bytes_value": st.binary(max_size=12),
    },
)
sparkplug_messages = st.builds(
    lambda metrics, seq, timestamp: (metrics, seq, timestamp),
    st.lists(metric_specs, max_size=4),
    st.one_of(st.none(), st.integers(min_value=0, max_value=300)),
    st.one_of(
        st.none(),
        st.integers(min_value=0, max_value=2**64 - 1),
        st.just(1_709_644_930_000),
    ),
)


def sparkplug_payload(
    metrics: list[dict[str, Any]], seq: int | None, timestamp: int | None
) -> bytes:
    message = Payload()
    if seq is not None:
        message.seq = seq
    if timestamp is not None:
        message.timestamp = timestamp
    for spec in metrics:
        metric = message.metrics.add()
        for key, value in spec.items():
            setattr(metric, key, value)
    return bytes(message.SerializeToString())


@EXAMPLES
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(TOPICS["sparkplug_b"]), sparkplug_messages),
        min_size=1,
        max_size=6,
    ),
    require_birth=st.booleans(),
)
def test_sparkplug_message_sequences(
    steps: list[tuple[str, tuple[list[dict[str, Any]], int | None, int | None]]],
    require_birth: bool,
) -> None:
    decoder = create_decoder(
        "sparkplug_b", {"require_birth": require_birth, "online_field": "up"}
    )
    for topic, (metrics, seq, timestamp) in steps:
        context = DecodeContext(topic, "m", {}, 1_764_000_000_000_000_000)
        try:
            points = decoder.decode(sparkplug_payload(metrics, seq, timestamp), context)
        except DecodeError as error:
            assert error.reason
            continue
        check_points(points)
        for point in points:
            for value in point.fields.values():
                if isinstance(value, float) and math.isfinite(value):
                    assert abs(value) < 2e308

"""The sparkplug_b decoder: birth tables, datatypes, sequence numbers, bad input.

Rebirth requests are checked here as the decoder records them. The tests in
test_service_end_to_end.py check that the service publishes them.

Payloads are built with the decoder's own protobuf schema. The array byte
vectors are the integer examples of the Sparkplug B specification.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from pydantic import ValidationError

from labdock.acquire.decoders import DecodeContext, DecodeError, Decoder, create_decoder
from labdock.acquire.decoders import sparkplug as sparkplug_module
from labdock.acquire.decoders._sparkplug_schema import Payload
from labdock.acquire.decoders.sparkplug import (
    RebirthRequest,
    SparkplugDecoder,
    shortest_float32,
)
from labdock.acquire.points import Point, UInt

ARRIVAL = 1_764_000_000_000_000_000
BIRTH_MS = 1_709_644_930_000
GROUP, NODE = "Lab Group", "edge-1"

INT8, INT16, INT32, INT64 = 1, 2, 3, 4
UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING, DATETIME = 9, 10, 11, 12, 13
DATASET, BYTES, TEMPLATE = 16, 17, 19


def payload(
    metrics: list[dict[str, Any]],
    *,
    seq: int | None = 0,
    timestamp: int | None = BIRTH_MS,
) -> bytes:
    message = Payload()
    if timestamp is not None:
        message.timestamp = timestamp
    if seq is not None:
        message.seq = seq
    for spec in metrics:
        spec = dict(spec)
        members = spec.pop("template", None)
        metric = message.metrics.add(**spec)
        if members is not None:
            metric.template_value.SetInParent()
            for member in members:
                metric.template_value.metrics.add(**member)
    return bytes(message.SerializeToString())


def topic(kind: str, device: str | None = None, node: str = NODE) -> str:
    parts = ["spBv1.0", GROUP, kind, node] + ([device] if device else [])
    return "/".join(parts)


class Session:
    """One decoder instance, fed messages in order as the pipeline would."""

    def __init__(self, **options: Any) -> None:
        self.decoder: Decoder = create_decoder("sparkplug_b", options)
        self.dropped: dict[str, int] = {}
        self.rebirths: list[RebirthRequest] = []

    def send(
        self,
        kind: str,
        data: bytes,
        device: str | None = None,
        *,
        arrival: int = ARRIVAL,
        node: str = NODE,
    ) -> list[Point]:
        context = DecodeContext(
            topic(kind, device, node), "plc", {"site": "lab"}, arrival
        )
        try:
            points = self.decoder.decode(data, context)
        finally:
            if context.rebirth_request is not None:
                self.rebirths.append(context.rebirth_request)
        for reason, count in context.dropped.items():
            self.dropped[reason] = self.dropped.get(reason, 0) + count
        return points

    def reject(
        self,
        kind: str,
        data: bytes,
        device: str | None = None,
        *,
        arrival: int = ARRIVAL,
        node: str = NODE,
    ) -> str:
        with pytest.raises(DecodeError) as caught:
            self.send(kind, data, device, arrival=arrival, node=node)
        assert caught.value.detail
        return caught.value.reason


NODE_BIRTH = payload(
    [
        {"name": "bdSeq", "datatype": INT64, "long_value": 3},
        {"name": "Node Control/Rebirth", "datatype": BOOLEAN, "boolean_value": False},
        {
            "name": "Inputs/Temperature",
            "alias": 1,
            "datatype": FLOAT,
            "float_value": 21.3,
        },
        {"name": "Inputs/Count", "alias": 2, "datatype": INT32, "int_value": 7},
        {
            "name": "Properties/Model",
            "alias": 3,
            "datatype": STRING,
            "string_value": "X-1",
        },
    ]
)


def born(**options: Any) -> Session:
    session = Session(**options)
    session.send("NBIRTH", NODE_BIRTH)
    return session


def test_node_birth_writes_values_and_tags() -> None:
    session = Session()
    (point,) = session.send("NBIRTH", NODE_BIRTH)
    assert point.measurement == "plc"
    assert point.tags == {"site": "lab", "group": GROUP, "edge_node": NODE}
    assert point.fields == {
        "Inputs/Temperature": 21.3,
        "Inputs/Count": 7,
        "Properties/Model": "X-1",
    }
    assert point.time_ns == BIRTH_MS * 1_000_000


def test_node_data_resolved_through_aliases() -> None:
    session = born()
    data = payload(
        [
            {"alias": 1, "float_value": 22.5, "timestamp": BIRTH_MS + 1000},
            {"alias": 2, "int_value": 0xFFFFFFFE, "timestamp": BIRTH_MS + 1000},
        ],
        seq=1,
    )
    (point,) = session.send("NDATA", data)
    assert point.fields == {"Inputs/Temperature": 22.5, "Inputs/Count": -2}
    assert point.time_ns == (BIRTH_MS + 1000) * 1_000_000


def test_device_birth_and_data() -> None:
    session = born()
    device_birth = payload(
        [{"name": "Flow", "alias": 10, "datatype": DOUBLE, "double_value": 1.25}], seq=1
    )
    (point,) = session.send("DBIRTH", device_birth, "pump-7")
    assert point.tags["device"] == "pump-7"
    (point,) = session.send(
        "DDATA", payload([{"alias": 10, "double_value": 2.5}], seq=2), "pump-7"
    )
    assert point.fields == {"Flow": 2.5}
    assert point.tags == {
        "site": "lab",
        "group": GROUP,
        "edge_node": NODE,
        "device": "pump-7",
    }


def test_data_before_birth_is_deadletter() -> None:
    session = Session()
    assert session.reject("NDATA", payload([{"alias": 1, "float_value": 1.0}])) == (
        "sparkplug_no_birth"
    )
    session = born()
    data = payload([{"alias": 10, "double_value": 2.5}], seq=1)
    assert session.reject("DDATA", data, "pump-7") == "sparkplug_no_birth"


def test_unknown_alias_is_deadletter() -> None:
    session = born()
    assert session.reject("NDATA", payload([{"alias": 99, "int_value": 1}], seq=1)) == (
        "sparkplug_unknown_alias"
    )


def test_data_without_birth_when_not_required() -> None:
    session = Session(require_birth=False)
    (point,) = session.send(
        "DDATA",
        payload([{"name": "Flow", "datatype": DOUBLE, "double_value": 2.0}]),
        "p",
    )
    assert point.fields == {"Flow": 2.0}
    data = payload([{"alias": 5, "double_value": 2.0}])
    assert session.reject("DDATA", data, "p") == "sparkplug_unknown_alias"


def test_rebirth_replaces_aliases() -> None:
    session = born()
    rebirth = payload(
        [
            {"name": "bdSeq", "datatype": INT64, "long_value": 4},
            {
                "name": "Outputs/Valve",
                "alias": 1,
                "datatype": BOOLEAN,
                "boolean_value": True,
            },
        ]
    )
    session.send("NBIRTH", rebirth)
    (point,) = session.send(
        "NDATA", payload([{"alias": 1, "boolean_value": False}], seq=1)
    )
    assert point.fields == {"Outputs/Valve": False}
    assert session.reject("NDATA", payload([{"alias": 2, "int_value": 1}], seq=2)) == (
        "sparkplug_unknown_alias"
    )


def test_node_death_clears_state() -> None:
    session = born()
    death = payload([{"name": "bdSeq", "datatype": INT64, "long_value": 3}], seq=None)
    assert session.send("NDEATH", death) == []
    assert session.dropped == {"sparkplug_death": 1}
    data = payload([{"alias": 1, "float_value": 1.0}], seq=1)
    assert session.reject("NDATA", data) == "sparkplug_no_birth"


def test_stale_node_death_ignored() -> None:
    session = born()
    stale = payload([{"name": "bdSeq", "datatype": INT64, "long_value": 2}], seq=None)
    assert session.send("NDEATH", stale) == []
    assert session.dropped == {"sparkplug_stale_death": 1}
    (point,) = session.send("NDATA", payload([{"alias": 1, "float_value": 1.5}], seq=1))
    assert point.fields == {"Inputs/Temperature": 1.5}


def test_online_field_on_birth_and_death() -> None:
    session = Session(online_field="online")
    (point,) = session.send("NBIRTH", NODE_BIRTH)
    assert point.fields["online"] is True
    death = payload([{"name": "bdSeq", "datatype": INT64, "long_value": 3}], seq=None)
    (point,) = session.send("NDEATH", death)
    assert point.fields == {"online": False}
    assert point.time_ns == BIRTH_MS * 1_000_000


def test_device_death() -> None:
    session = born()
    session.send(
        "DBIRTH",
        payload(
            [{"name": "F", "alias": 9, "datatype": DOUBLE, "double_value": 1}], seq=1
        ),
        "p",
    )
    assert session.send("DDEATH", payload([], seq=2), "p") == []
    assert session.dropped == {"sparkplug_death": 1}
    assert session.reject(
        "DDATA", payload([{"alias": 9, "double_value": 1}], seq=3), "p"
    ) == ("sparkplug_no_birth")


# Sequence numbers.


def test_seq_gap_counted_and_message_kept() -> None:
    session = born()
    session.send("NDATA", payload([{"alias": 2, "int_value": 1}], seq=1))
    (point,) = session.send("NDATA", payload([{"alias": 2, "int_value": 2}], seq=4))
    assert point.fields == {"Inputs/Count": 2}
    assert session.dropped == {"sparkplug_seq_gap": 2}


def test_seq_wraps_at_256() -> None:
    session = Session()
    session.send(
        "NBIRTH",
        payload(
            [{"name": "c", "alias": 1, "datatype": INT32, "int_value": 0}], seq=254
        ),
    )
    for seq in (255, 0, 1):
        session.send("NDATA", payload([{"alias": 1, "int_value": seq}], seq=seq))
    assert session.dropped == {}


def test_seq_repeat_counted() -> None:
    session = born()
    data = payload([{"alias": 2, "int_value": 1}], seq=1)
    session.send("NDATA", data)
    session.send("NDATA", data)
    assert session.dropped == {"sparkplug_seq_repeat": 1}


# Datatypes.


@pytest.mark.parametrize(
    ("datatype", "value", "expected"),
    [
        (INT8, {"int_value": 0xFFFFFFFB}, -5),
        (INT8, {"int_value": 0xFB}, -5),
        (INT8, {"int_value": 127}, 127),
        (INT16, {"int_value": 0xFFFF8AD0}, -30000),
        (INT16, {"int_value": 0x8AD0}, -30000),
        (INT32, {"int_value": 0xFFFFFFFF}, -1),
        (INT32, {"int_value": 315338746}, 315338746),
        (INT64, {"long_value": 2**64 - 1}, -1),
        (INT64, {"long_value": 2**63 - 1}, 2**63 - 1),
        (UINT8, {"int_value": 255}, 255),
        (UINT32, {"int_value": 2**32 - 1}, 2**32 - 1),
        (UINT64, {"long_value": 2**64 - 1}, UInt(2**64 - 1)),
        (FLOAT, {"float_value": 21.3}, 21.3),
        (FLOAT, {"float_value": -0.1}, -0.1),
        (DOUBLE, {"double_value": 0.1}, 0.1),
        (BOOLEAN, {"boolean_value": True}, True),
        (STRING, {"string_value": "ünïcode"}, "ünïcode"),
        (DATETIME, {"long_value": 1672531200000}, 1672531200000),
        (BYTES, {"bytes_value": b"\x00\x01\xff"}, "AAH/"),
    ],
)
def test_scalar_datatypes(datatype: int, value: dict[str, Any], expected: Any) -> None:
    session = Session()
    (point,) = session.send(
        "NBIRTH", payload([{"name": "m", "datatype": datatype, **value}])
    )
    assert point.fields == {"m": expected}
    assert type(point.fields["m"]) is type(expected)


@pytest.mark.parametrize(
    ("datatype", "value"),
    [
        (INT8, {"int_value": 0x1FF}),
        (INT16, {"int_value": 0x12345}),
        (UINT8, {"int_value": 256}),
        (UINT16, {"int_value": 65536}),
        (INT32, {"double_value": 1.0}),
        (FLOAT, {"int_value": 1}),
        (STRING, {"bytes_value": b"x"}),
    ],
)
def test_value_not_fitting_datatype(datatype: int, value: dict[str, Any]) -> None:
    session = Session()
    data = payload([{"name": "m", "datatype": datatype, **value}])
    assert session.reject("NBIRTH", data) == "sparkplug_invalid_value"


@pytest.mark.parametrize(
    ("datatype", "data", "expected"),
    [
        (24, bytes.fromhex("FFFFFFFFFAAFCB12"), [-1, 315338746]),
        (23, bytes.fromhex("D08A3075"), [-30000, 30000]),
        (22, bytes.fromhex("E97B"), [-23, 123]),
        (
            29,
            bytes.fromhex("3400000000000000D99E02D1B27637E4"),
            [52, 16444743074749521625],
        ),
        (30, struct.pack("<2f", 1.23, 89.341), [1.23, 89.341]),
        (31, struct.pack("<2d", 12.354213, 1022.9123213), [12.354213, 1022.9123213]),
        (
            32,
            bytes.fromhex("0C00000034D0"),
            [
                False,
                False,
                True,
                True,
                False,
                True,
                False,
                False,
                True,
                True,
                False,
                True,
            ],
        ),
        (33, bytes.fromhex("414243006865 6c6c6f00".replace(" ", "")), ["ABC", "hello"]),
        (34, struct.pack("<q", 1672531200000), [1672531200000]),
    ],
)
def test_array_datatypes(datatype: int, data: bytes, expected: list[Any]) -> None:
    session = Session()
    (point,) = session.send(
        "NBIRTH", payload([{"name": "a", "datatype": datatype, "bytes_value": data}])
    )
    assert point.fields == {f"a_{i}": value for i, value in enumerate(expected)}


@pytest.mark.parametrize(
    ("datatype", "data"),
    [
        (24, b"\x01\x02\x03"),
        (32, b"\x0c\x00"),
        (32, b"\x0c\x00\x00\x00\x34"),
        (33, b"ABC"),
        (33, b"\xff\x00"),
    ],
)
def test_malformed_arrays(datatype: int, data: bytes) -> None:
    session = Session()
    data = payload([{"name": "a", "datatype": datatype, "bytes_value": data}])
    assert session.reject("NBIRTH", data) == "sparkplug_invalid_value"


def test_template_instance_flattened() -> None:
    session = Session()
    members = [
        {"name": "Speed", "datatype": FLOAT, "float_value": 1450.5},
        {"name": "Running", "datatype": BOOLEAN, "boolean_value": True},
    ]
    definition = [{"name": "Speed", "datatype": FLOAT}]
    data = payload(
        [
            {"name": "_types_/Motor", "datatype": TEMPLATE, "template": definition},
            {"name": "Motor 1", "datatype": TEMPLATE, "template": members},
        ]
    )
    # Only instances carry values; a definition writes nothing.
    message = Payload.FromString(data)
    message.metrics[0].template_value.is_definition = True
    (point,) = session.send("NBIRTH", bytes(message.SerializeToString()))
    assert point.fields == {"Motor 1/Speed": 1450.5, "Motor 1/Running": True}


def test_metric_timestamps_split_points() -> None:
    session = born()
    data = payload(
        [
            {
                "alias": 1,
                "float_value": 20.0,
                "timestamp": BIRTH_MS + 1000,
                "is_historical": True,
            },
            {"alias": 1, "float_value": 21.0, "timestamp": BIRTH_MS + 2000},
            {"alias": 2, "int_value": 5},
        ],
        seq=1,
        timestamp=BIRTH_MS + 3000,
    )
    points = session.send("NDATA", data)
    assert [(p.time_ns, p.fields) for p in points] == [
        ((BIRTH_MS + 1000) * 1_000_000, {"Inputs/Temperature": 20.0}),
        ((BIRTH_MS + 2000) * 1_000_000, {"Inputs/Temperature": 21.0}),
        ((BIRTH_MS + 3000) * 1_000_000, {"Inputs/Count": 5}),
    ]


def test_skipped_metrics_counted() -> None:
    session = born()
    data = payload(
        [
            {"alias": 1, "is_null": True},
            {"alias": 2, "int_value": 1, "is_transient": True},
            {"alias": 3},
            {
                "name": "Table",
                "datatype": DATASET,
                "dataset_value": {"num_of_columns": 1},
            },
        ],
        seq=1,
    )
    assert session.send("NDATA", data) == []
    assert session.dropped == {
        "null": 1,
        "sparkplug_transient": 1,
        "sparkplug_no_value": 1,
        "sparkplug_unsupported_type": 1,
        "no_fields": 1,
    }


def test_exclude_patterns() -> None:
    session = Session(exclude=["Properties/*"])
    (point,) = session.send("NBIRTH", NODE_BIRTH)
    assert set(point.fields) == {
        "bdSeq",
        "Node Control/Rebirth",
        "Inputs/Temperature",
        "Inputs/Count",
    }


def test_shortest_float32() -> None:
    assert shortest_float32(struct.unpack("<f", struct.pack("<f", 21.3))[0]) == 21.3
    assert shortest_float32(3.4028234663852886e38) == 3.4028235e38
    assert shortest_float32(float("inf")) == float("inf")


# Topics and bad payloads.


def test_commands_and_state_ignored() -> None:
    session = Session()
    assert session.send("NCMD", b"\x00") == []
    context = DecodeContext("spBv1.0/STATE/host-1", "plc", {}, ARRIVAL)
    assert session.decoder.decode(b'{"online":true}', context) == []
    assert session.dropped == {"sparkplug_command": 1}
    assert context.dropped == {"sparkplug_state": 1}


@pytest.mark.parametrize(
    "bad_topic",
    [
        "spBv1.0/g/NDATA",
        "spAv1.0/g/NDATA/e",
        "spBv1.0/g/DDATA/e",
        "spBv1.0/g/NDATA/e/d",
        "spBv1.0/g/XDATA/e",
        "spBv1.0/g/NDATA/e/d/x",
    ],
)
def test_invalid_topics(bad_topic: str) -> None:
    decoder = create_decoder("sparkplug_b")
    with pytest.raises(DecodeError) as caught:
        decoder.decode(NODE_BIRTH, DecodeContext(bad_topic, "plc", {}, ARRIVAL))
    assert caught.value.reason == "sparkplug_topic"


@pytest.mark.parametrize("data", [b"\xff\xff", b"\x12\x05\x0a", b"\x0a\x80"])
def test_invalid_protobuf(data: bytes) -> None:
    assert Session().reject("NBIRTH", data) == "sparkplug_protobuf"


def test_invalid_utf8_metric_name() -> None:
    data = b"\x12\x05\x0a\x03\xff\xfe\xfd"
    assert Session().reject("NBIRTH", data) == "sparkplug_invalid_value"


def test_implausible_timestamp() -> None:
    data = payload(
        [{"name": "m", "datatype": INT32, "int_value": 1}], timestamp=1_709_644_930
    )
    assert Session().reject("NBIRTH", data) == "timestamp_unit_mismatch"


# Rebirth requests.

SECOND = 1_000_000_000
NCMD_TOPIC = f"spBv1.0/{GROUP}/NCMD/{NODE}"
NODE_DATA = payload([{"alias": 1, "float_value": 1.0}], seq=1)
DEVICE_DATA = payload([{"alias": 10, "double_value": 2.5}], seq=1)


def test_rebirth_not_requested_by_default() -> None:
    session = Session()
    assert session.reject("NDATA", NODE_DATA) == "sparkplug_no_birth"
    assert session.rebirths == []


@pytest.mark.parametrize(
    ("kind", "device"),
    [("NDATA", None), ("DDATA", "pump-7"), ("DBIRTH", "pump-7"), ("DDEATH", "p")],
)
def test_rebirth_requested_before_node_birth(kind: str, device: str | None) -> None:
    session = Session(rebirth_request=True)
    assert session.reject(kind, DEVICE_DATA, device) == "sparkplug_no_birth"
    assert session.rebirths == [RebirthRequest(GROUP, NODE, "no_birth")]
    assert session.rebirths[0].topic == NCMD_TOPIC


def test_rebirth_requested_before_device_birth() -> None:
    session = born(rebirth_request=True)
    assert session.rebirths == []
    assert session.reject("DDATA", DEVICE_DATA, "pump-7") == "sparkplug_no_birth"
    assert session.rebirths == [RebirthRequest(GROUP, NODE, "no_birth")]


def test_rebirth_requested_when_birth_not_required() -> None:
    session = Session(rebirth_request=True, require_birth=False)
    data = payload([{"name": "Flow", "datatype": DOUBLE, "double_value": 2.0}])
    (point,) = session.send("NDATA", data)
    assert point.fields == {"Flow": 2.0}
    assert session.rebirths == [RebirthRequest(GROUP, NODE, "no_birth")]


def test_rebirth_requested_for_unknown_alias() -> None:
    session = born(rebirth_request=True)
    data = payload([{"alias": 99, "int_value": 1}], seq=1)
    assert session.reject("NDATA", data) == "sparkplug_unknown_alias"
    assert session.rebirths == [RebirthRequest(GROUP, NODE, "unknown_alias")]


def test_rebirth_requested_on_seq_gap() -> None:
    session = born(rebirth_request=True)
    session.send("NDATA", payload([{"alias": 2, "int_value": 1}], seq=1))
    assert session.rebirths == []
    (point,) = session.send("NDATA", payload([{"alias": 2, "int_value": 2}], seq=4))
    assert point.fields == {"Inputs/Count": 2}
    assert session.dropped == {"sparkplug_seq_gap": 2}
    assert session.rebirths == [RebirthRequest(GROUP, NODE, "seq_gap")]


def test_seq_repeat_requests_no_rebirth() -> None:
    session = born(rebirth_request=True)
    data = payload([{"alias": 2, "int_value": 1}], seq=1)
    session.send("NDATA", data)
    session.send("NDATA", data)
    assert session.dropped == {"sparkplug_seq_repeat": 1}
    assert session.rebirths == []


def test_no_rebirth_for_births_and_commands() -> None:
    session = Session(rebirth_request=True)
    death = payload([{"name": "bdSeq", "datatype": INT64, "long_value": 3}], seq=None)
    session.send("NDEATH", death)
    session.send("NCMD", b"")
    session.send("NBIRTH", NODE_BIRTH)
    device_birth = payload(
        [{"name": "Flow", "alias": 10, "datatype": DOUBLE, "double_value": 1.0}],
        seq=1,
    )
    session.send("DBIRTH", device_birth, "pump-7")
    session.send(
        "DDATA", payload([{"alias": 10, "double_value": 2.0}], seq=2), "pump-7"
    )
    assert session.rebirths == []


def test_rebirth_payload_is_ncmd() -> None:
    request = RebirthRequest(GROUP, NODE, "no_birth")
    message = Payload.FromString(request.payload(1_764_000_000_123))
    assert message.timestamp == 1_764_000_000_123
    assert not message.HasField("seq")
    (metric,) = message.metrics
    assert metric.name == "Node Control/Rebirth"
    assert metric.datatype == BOOLEAN
    assert metric.WhichOneof("value") == "boolean_value"
    assert metric.boolean_value is True
    assert metric.timestamp == 1_764_000_000_123


def test_rebirth_payload_read_by_decoder() -> None:
    # The decoder skips commands, so read the NCMD as if it were NDATA.
    request = RebirthRequest(GROUP, NODE, "no_birth")
    session = Session(require_birth=False, exclude=[])
    (point,) = session.send("NDATA", request.payload(BIRTH_MS))
    assert point.fields == {"Node Control/Rebirth": True}
    assert point.time_ns == BIRTH_MS * 1_000_000


def test_rebirth_rate_limited_per_edge_node() -> None:
    session = Session(rebirth_request=True, rebirth_interval=10)
    session.reject("NDATA", NODE_DATA)
    session.reject("DDATA", DEVICE_DATA, "pump-7", arrival=ARRIVAL + 9 * SECOND)
    assert len(session.rebirths) == 1
    session.reject("NDATA", NODE_DATA, node="edge-2", arrival=ARRIVAL + SECOND)
    assert session.rebirths[-1] == RebirthRequest(GROUP, "edge-2", "no_birth")
    session.reject("NDATA", NODE_DATA, arrival=ARRIVAL + 10 * SECOND)
    assert len(session.rebirths) == 3
    assert session.rebirths[-1] == RebirthRequest(GROUP, NODE, "no_birth")


def test_rebirth_interval_fractional() -> None:
    session = Session(rebirth_request=True, rebirth_interval=0.5)
    session.reject("NDATA", NODE_DATA)
    session.reject("NDATA", NODE_DATA, arrival=ARRIVAL + SECOND // 2 - 1)
    assert len(session.rebirths) == 1
    session.reject("NDATA", NODE_DATA, arrival=ARRIVAL + SECOND // 2)
    assert len(session.rebirths) == 2


def test_rebirth_limit_ignores_clock_set_back() -> None:
    session = Session(rebirth_request=True)
    session.reject("NDATA", NODE_DATA)
    session.reject("NDATA", NODE_DATA, arrival=ARRIVAL - 3600 * SECOND)
    assert len(session.rebirths) == 2


def test_rebirth_held_back_not_sent_later() -> None:
    session = Session(rebirth_request=True)
    session.reject("NDATA", NODE_DATA)
    session.reject("NDATA", NODE_DATA, arrival=ARRIVAL + SECOND)
    session.send("NBIRTH", NODE_BIRTH, arrival=ARRIVAL + 20 * SECOND)
    session.send(
        "NDATA",
        payload([{"alias": 2, "int_value": 1}], seq=1),
        arrival=ARRIVAL + 21 * SECOND,
    )
    assert len(session.rebirths) == 1


def test_rebirth_memory_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sparkplug_module, "_REBIRTH_MEMORY_MAX", 3)
    session = Session(rebirth_request=True)
    for index in range(5):
        session.reject("NDATA", NODE_DATA, node=f"edge-{index}")
    decoder = getattr(session.decoder, "decoder", None)
    assert isinstance(decoder, SparkplugDecoder)
    assert list(decoder.rebirths_requested) == [
        (GROUP, "edge-2"),
        (GROUP, "edge-3"),
        (GROUP, "edge-4"),
    ]
    # edge-0 was forgotten, so its next message requests a rebirth again.
    session.reject("NDATA", NODE_DATA, node="edge-0", arrival=ARRIVAL + SECOND)
    assert len(session.rebirths) == 6


@pytest.mark.parametrize("interval", [0, -1, "soon"])
def test_rebirth_interval_invalid(interval: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        create_decoder("sparkplug_b", {"rebirth_interval": interval})
    assert caught.value.errors()[0]["loc"] == ("rebirth_interval",)

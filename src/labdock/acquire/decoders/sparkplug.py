"""The `sparkplug_b` decoder: Sparkplug B protobuf payloads with birth state.

Topics are spBv1.0/<group>/<type>/<edge node>[/<device>]. NBIRTH and DBIRTH
register each metric's name, alias and datatype for the edge node or the
device; NDATA and DDATA resolve their aliases through those tables. The
tables live in the decoder instance, so one decoder (one mapping) must see
every message of an edge node, births included, in order.
"""

from __future__ import annotations

import base64
import fnmatch
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import Field

from labdock.acquire.decoders import (
    DecodeContext,
    DecodeError,
    DecoderOptions,
    register,
)
from labdock.acquire.decoders._timestamps import numeric_to_ns
from labdock.acquire.points import FieldValue, Point, UInt

log = structlog.get_logger(__name__)

NAMESPACE = "spBv1.0"
_NODE_TYPES = frozenset({"NBIRTH", "NDEATH", "NDATA", "NCMD"})
_DEVICE_TYPES = frozenset({"DBIRTH", "DDEATH", "DDATA", "DCMD"})

# Sparkplug B datatype numbers.
INT8, INT16, INT32, INT64 = 1, 2, 3, 4
UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING, DATETIME, TEXT = 9, 10, 11, 12, 13, 14
UUID, DATASET, BYTES, FILE, TEMPLATE = 15, 16, 17, 18, 19
INT8_ARRAY, BOOLEAN_ARRAY, STRING_ARRAY, DATETIME_ARRAY = 22, 32, 33, 34

# The node control metric that requests a new NBIRTH and every DBIRTH from an
# edge node.
REBIRTH_METRIC = "Node Control/Rebirth"
# Edge nodes whose last rebirth request time is remembered. Beyond this count
# the oldest entry is forgotten, which can let one extra request through.
_REBIRTH_MEMORY_MAX = 10_000

_SIGNED_BITS = {INT8: 8, INT16: 16, INT32: 32}
_UNSIGNED_BITS = {UINT8: 8, UINT16: 16, UINT32: 32}
# Fixed-size arrays, packed little-endian as the specification's text states.
_ARRAY_FORMATS = {
    22: "b",
    23: "h",
    24: "i",
    25: "q",
    26: "B",
    27: "H",
    28: "I",
    29: "Q",
    30: "f",
    31: "d",
    DATETIME_ARRAY: "q",
}


class SparkplugOptions(DecoderOptions):
    """Options of the `sparkplug_b` decoder.

    Each metric becomes a field named after the metric (`Inputs/Temperature`);
    metrics that share a timestamp (the metric's, else the payload's, in
    milliseconds) share a point. The tags `group`, `edge_node` and, for
    device messages, `device` come from the topic. Types follow the
    metric's datatype. Int8 to Int64 and UInt8 to UInt32 are integers, and
    the signed ones are sign-extended from protobuf's unsigned fields.
    UInt64 is an unsigned integer. Float (written as its shortest decimal)
    and Double are floats, Boolean is a boolean, and String, Text and UUID
    are strings. DateTime is an integer of milliseconds and Bytes is base64
    text. An array becomes one field per element (`name_0`, `name_1`), and
    a template instance one field per member (`Motor/Speed`). DataSet and
    File values, null metrics and transient metrics are left out and counted.

    Dead letters: NDATA, DDATA or DBIRTH before the birth that defines them
    (`sparkplug_no_birth`), an alias that no birth defined
    (`sparkplug_unknown_alias`), an invalid topic (`sparkplug_topic`) or
    payload (`sparkplug_protobuf`), and a value that doesn't fit its
    datatype (`sparkplug_invalid_value`). Until the edge node publishes a
    new NBIRTH, its data messages are dead letters.

    Rebirth requests: with `rebirth_request: true` the service sends the edge
    node a rebirth request, which makes it publish its births again. The
    request is an NCMD to `spBv1.0/<group>/NCMD/<edge node>` with one metric,
    `Node Control/Rebirth`, of datatype Boolean (11) and value true. It is
    published at QoS 0 and not retained, as the Sparkplug 3.0.0
    specification requires of an NCMD. The broker must let the service's
    user publish to that topic. There are three reasons for a request.
    `no_birth`: a message arrives from an edge node without an NBIRTH or
    from a device without a DBIRTH. `unknown_alias`: a data message uses an
    alias that no birth defined. `seq_gap`: a seq skips numbers. Each edge
    node gets at most one request per `rebirth_interval`, measured in
    arrival time. A request that this limit blocks is dropped, and the
    first message that needs one after the interval sends it.

    Sequence numbers: each message of an edge node after its NBIRTH must
    carry the previous seq plus one (modulo 256). A gap is counted by the
    number of missing messages as `sparkplug_seq_gap` and logged, and the
    message is still written. The decoder doesn't wait for late messages to
    fill a gap. So with `rebirth_request: true` a gap requests a rebirth at
    once, although the specification advises a host application to wait
    for a reorder timeout first. NCMD, DCMD and STATE messages are ignored and
    counted; an NDEATH whose bdSeq doesn't match the current NBIRTH is stale
    and ignored (counted as `sparkplug_stale_death`).
    """

    exclude: list[str] = Field(
        default_factory=lambda: ["bdSeq", "Node Control/*", "Device Control/*"],
        description="Metric names to leave out, as shell patterns (* and ?).",
    )
    require_birth: bool = Field(
        True,
        description=(
            "Data before a birth is a dead letter; false decodes its metrics "
            "that carry a name and datatype."
        ),
    )
    online_field: str | None = Field(
        None,
        description=(
            "Boolean field written true on a birth and false on a death; "
            "None ignores deaths (counted)."
        ),
        examples=["online"],
    )
    group_tag: str = Field("group", min_length=1, description="Tag of the group id.")
    edge_node_tag: str = Field(
        "edge_node", min_length=1, description="Tag of the edge node id."
    )
    device_tag: str = Field("device", min_length=1, description="Tag of the device id.")
    rebirth_request: bool = Field(
        False,
        description=(
            "Publish a rebirth request (NCMD Node Control/Rebirth) to an edge "
            "node whose messages arrive without a birth, with an unknown alias "
            "or with a seq gap."
        ),
    )
    rebirth_interval: float = Field(
        10.0,
        gt=0,
        description="Minimum seconds between two rebirth requests to one edge node.",
    )


@dataclass(frozen=True, slots=True)
class RebirthRequest:
    """A request that one edge node publish its NBIRTH and every DBIRTH again.

    `reason` is `no_birth`, `unknown_alias` or `seq_gap`. The service
    publishes `payload()` to `topic` at QoS 0, not retained.
    """

    group: str
    edge_node: str
    reason: str

    @property
    def topic(self) -> str:
        return f"{NAMESPACE}/{self.group}/NCMD/{self.edge_node}"

    def payload(self, timestamp_ms: int) -> bytes:
        """Encode the NCMD payload, stamped with the send time in milliseconds."""
        message = _payload_class()()
        message.timestamp = timestamp_ms
        metric = message.metrics.add()
        metric.name = REBIRTH_METRIC
        metric.timestamp = timestamp_ms
        metric.datatype = BOOLEAN
        metric.boolean_value = True
        return bytes(message.SerializeToString())


@dataclass(slots=True)
class _MetricInfo:
    name: str
    datatype: int


@dataclass(slots=True)
class _Tables:
    aliases: dict[int, _MetricInfo] = field(default_factory=dict)
    datatypes: dict[str, int] = field(default_factory=dict)

    def learn(self, name: str, alias: int | None, datatype: int) -> None:
        self.datatypes[name] = datatype
        if alias is not None:
            self.aliases[alias] = _MetricInfo(name, datatype)


@dataclass(slots=True)
class _Node:
    bd_seq: int | None
    seq: int | None
    tables: _Tables = field(default_factory=_Tables)
    devices: dict[str, _Tables] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Topic:
    group: str
    kind: str
    edge_node: str
    device: str | None


@register("sparkplug_b", SparkplugOptions, "Sparkplug B protobuf payloads (spBv1.0)")
class SparkplugDecoder:
    """Decodes Sparkplug B messages, keeping the birth tables of each edge node."""

    def __init__(self, options: SparkplugOptions) -> None:
        self.options = options
        self.nodes: dict[tuple[str, str], _Node] = {}
        # (group, edge node) -> arrival time in ns of the last rebirth
        # request, oldest first.
        self.rebirths_requested: dict[tuple[str, str], int] = {}
        self._rebirth_interval_ns = round(options.rebirth_interval * 1_000_000_000)

    def decode(self, payload: bytes, context: DecodeContext) -> list[Point]:
        topic = _parse_topic(context.topic)
        if topic is None:
            context.count_dropped("sparkplug_state")
            return []
        if topic.kind in ("NCMD", "DCMD"):
            context.count_dropped("sparkplug_command")
            return []

        message = _parse_payload(payload)
        key = (topic.group, topic.edge_node)
        tags = self._tags(topic, context)
        if topic.kind == "NDEATH":
            return self._node_death(key, message, context, tags)
        if topic.kind == "NBIRTH":
            born = _Node(bd_seq=_bd_seq(message), seq=_seq(message))
            self.nodes[key] = born
            return self._points(message, born.tables, tags, context, birth=True)

        node = self.nodes.get(key)
        if node is not None:
            self._check_seq(node, topic, message, context)
        else:
            self._request_rebirth(topic, "no_birth", context)
            if self.options.require_birth:
                raise _no_birth(topic, f"edge node {topic.edge_node!r}")

        if topic.kind == "NDATA":
            tables = node.tables if node else _Tables()
            return self._data_points(topic, message, tables, tags, context)

        device = topic.device or ""
        if topic.kind == "DBIRTH":
            tables = _Tables()
            if node is not None:
                node.devices[device] = tables
            return self._points(message, tables, tags, context, birth=True)

        device_tables = node.devices.get(device) if node else None
        if topic.kind == "DDEATH":
            if node is not None:
                node.devices.pop(device, None)
            return self._death(message, tags, context)
        if device_tables is None:
            self._request_rebirth(topic, "no_birth", context)
            if self.options.require_birth:
                raise _no_birth(topic, f"device {device!r}")
            device_tables = _Tables()
        return self._data_points(topic, message, device_tables, tags, context)

    def _data_points(
        self,
        topic: _Topic,
        message: Any,
        tables: _Tables,
        tags: dict[str, str],
        context: DecodeContext,
    ) -> list[Point]:
        try:
            return self._points(message, tables, tags, context, birth=False)
        except DecodeError as error:
            if error.reason == "sparkplug_unknown_alias":
                self._request_rebirth(topic, "unknown_alias", context)
            raise

    def _request_rebirth(
        self, topic: _Topic, reason: str, context: DecodeContext
    ) -> None:
        """Record a rebirth request on `context`, unless one is too recent."""
        if not self.options.rebirth_request or context.rebirth_request is not None:
            return
        key = (topic.group, topic.edge_node)
        now = context.received_ns
        last = self.rebirths_requested.get(key)
        # An arrival time before the last request (the clock was set back)
        # doesn't block the request.
        if last is not None and 0 <= now - last < self._rebirth_interval_ns:
            return
        self.rebirths_requested.pop(key, None)
        self.rebirths_requested[key] = now
        if len(self.rebirths_requested) > _REBIRTH_MEMORY_MAX:
            del self.rebirths_requested[next(iter(self.rebirths_requested))]
        context.rebirth_request = RebirthRequest(topic.group, topic.edge_node, reason)

    def _tags(self, topic: _Topic, context: DecodeContext) -> dict[str, str]:
        tags = dict(context.tags)
        tags[self.options.group_tag] = topic.group
        tags[self.options.edge_node_tag] = topic.edge_node
        if topic.device is not None:
            tags[self.options.device_tag] = topic.device
        return tags

    def _node_death(
        self,
        key: tuple[str, str],
        message: Any,
        context: DecodeContext,
        tags: dict[str, str],
    ) -> list[Point]:
        node = self.nodes.get(key)
        bd_seq = _bd_seq(message)
        if (
            node is not None
            and node.bd_seq is not None
            and bd_seq is not None
            and bd_seq != node.bd_seq
        ):
            # The will message of an earlier session, delivered late.
            context.count_dropped("sparkplug_stale_death")
            return []
        self.nodes.pop(key, None)
        return self._death(message, tags, context)

    def _death(
        self, message: Any, tags: dict[str, str], context: DecodeContext
    ) -> list[Point]:
        if self.options.online_field is None:
            context.count_dropped("sparkplug_death")
            return []
        fields: dict[str, FieldValue] = {self.options.online_field: False}
        return [Point(context.measurement, tags, fields, _payload_time(message))]

    def _check_seq(
        self, node: _Node, topic: _Topic, message: Any, context: DecodeContext
    ) -> None:
        seq = _seq(message)
        if seq is None:
            return
        if node.seq is not None:
            expected = (node.seq + 1) % 256
            if seq == node.seq:
                context.count_dropped("sparkplug_seq_repeat")
            elif seq != expected:
                missing = (seq - expected) % 256
                context.count_dropped("sparkplug_seq_gap", missing)
                log.warning(
                    "sparkplug.seq_gap",
                    group=topic.group,
                    edge_node=topic.edge_node,
                    message_type=topic.kind,
                    expected=expected,
                    received=seq,
                    missing=missing,
                )
                # NOTE: there is no reorder timeout, so a message that the
                # broker delivers late also counts as a gap and requests a rebirth.
                self._request_rebirth(topic, "seq_gap", context)
        node.seq = seq

    def _points(
        self,
        message: Any,
        tables: _Tables,
        tags: dict[str, str],
        context: DecodeContext,
        *,
        birth: bool,
    ) -> list[Point]:
        payload_time = _payload_time(message)
        by_time: dict[int | None, dict[str, FieldValue]] = {}
        for index, metric in enumerate(message.metrics):
            info = self._resolve(metric, index, tables, birth)
            if birth:
                tables.learn(info.name, _optional(metric, "alias"), info.datatype)
            if self._excluded(info.name):
                continue
            if _optional(metric, "is_transient"):
                context.count_dropped("sparkplug_transient")
                continue
            values = _metric_values(metric, info, context)
            if not values:
                continue
            metric_time = _optional(metric, "timestamp")
            time_ns = payload_time if metric_time is None else _ms_to_ns(metric_time)
            fields = by_time.setdefault(time_ns, {})
            for name, value in values.items():
                if name in fields:
                    raise DecodeError(
                        "duplicate_field",
                        f"metric {name!r} appears twice with one timestamp",
                    )
                fields[name] = value
        if birth and self.options.online_field is not None:
            by_time.setdefault(payload_time, {})[self.options.online_field] = True
        points = [
            Point(context.measurement, dict(tags), fields, time_ns)
            for time_ns, fields in by_time.items()
            if fields
        ]
        if not points:
            context.count_dropped("no_fields")
        return points

    def _resolve(
        self, metric: Any, index: int, tables: _Tables, birth: bool
    ) -> _MetricInfo:
        name = _text(_optional(metric, "name"), f"metric {index} name")
        alias = _optional(metric, "alias")
        datatype = _optional(metric, "datatype")
        if name is None and alias is not None:
            known = tables.aliases.get(alias)
            if known is None:
                raise DecodeError(
                    "sparkplug_unknown_alias",
                    f"metric {index} has alias {alias}, which no birth of this "
                    "edge node or device defined; the edge node must publish a "
                    "new birth",
                )
            return _MetricInfo(known.name, datatype or known.datatype)
        if name is None:
            raise DecodeError(
                "sparkplug_invalid_value",
                f"metric {index} has neither a name nor an alias",
            )
        if datatype is None:
            datatype = tables.datatypes.get(name)
        if datatype is None:
            raise DecodeError(
                "sparkplug_invalid_value" if birth else "sparkplug_unknown_alias",
                f"metric {name!r} has no datatype and no birth defined one",
            )
        return _MetricInfo(name, datatype)

    def _excluded(self, name: str) -> bool:
        return any(
            fnmatch.fnmatchcase(name, pattern) for pattern in self.options.exclude
        )


def _parse_topic(topic: str) -> _Topic | None:
    levels = topic.split("/")
    if len(levels) >= 2 and levels[0] == NAMESPACE and levels[1] == "STATE":
        return None
    if len(levels) not in (4, 5) or levels[0] != NAMESPACE:
        raise DecodeError(
            "sparkplug_topic",
            f"topic {topic!r} is not {NAMESPACE}/<group>/<type>/<edge node>[/<device>]",
        )
    kind = levels[2]
    expected = _NODE_TYPES if len(levels) == 4 else _DEVICE_TYPES
    if kind not in expected:
        raise DecodeError(
            "sparkplug_topic",
            f"topic {topic!r}: {kind!r} is not one of {', '.join(sorted(expected))} "
            f"(a topic with {len(levels)} levels)",
        )
    device = levels[4] if len(levels) == 5 else None
    return _Topic(levels[1], kind, levels[3], device)


def _payload_class() -> Any:
    """Return the Payload message class, importing protobuf on first use:
    a service without a Sparkplug mapping never loads it."""
    from labdock.acquire.decoders._sparkplug_schema import Payload

    return Payload


def _parse_payload(payload: bytes) -> Any:
    from google.protobuf.message import DecodeError as ProtobufDecodeError

    try:
        return _payload_class().FromString(payload)
    except (ProtobufDecodeError, ValueError, RecursionError) as error:
        raise DecodeError(
            "sparkplug_protobuf",
            f"the payload is not a Sparkplug B protobuf message: {error}",
        ) from None


def _optional(message: Any, name: str) -> Any:
    return getattr(message, name) if message.HasField(name) else None


def _text(value: Any, what: str) -> str | None:
    # With proto2, upb hands over a string that isn't valid UTF-8 as bytes.
    if value is None or isinstance(value, str):
        return value
    raise DecodeError(
        "sparkplug_invalid_value", f"{what} is not valid UTF-8: {bytes(value)[:40]!r}"
    )


def _seq(message: Any) -> int | None:
    seq = _optional(message, "seq")
    return None if seq is None else int(seq)


def _bd_seq(message: Any) -> int | None:
    for metric in message.metrics:
        if _optional(metric, "name") == "bdSeq":
            kind = metric.WhichOneof("value")
            if kind in ("long_value", "int_value"):
                return int(getattr(metric, kind))
    return None


def _ms_to_ns(ms: int) -> int:
    return numeric_to_ns(ms, "ms", "Sparkplug timestamp")


def _payload_time(message: Any) -> int | None:
    timestamp = _optional(message, "timestamp")
    return None if timestamp is None else _ms_to_ns(timestamp)


def _no_birth(topic: _Topic, what: str) -> DecodeError:
    return DecodeError(
        "sparkplug_no_birth",
        f"{topic.kind} from {what} of group {topic.group!r} arrived before its "
        "birth, so its aliases and datatypes are unknown; the edge node must "
        "publish a new NBIRTH (a rebirth)",
    )


def _metric_values(
    metric: Any, info: _MetricInfo, context: DecodeContext
) -> dict[str, FieldValue]:
    if _optional(metric, "is_null"):
        context.count_dropped("null")
        return {}
    kind = metric.WhichOneof("value")
    if kind is None:
        context.count_dropped("sparkplug_no_value")
        return {}
    datatype = info.datatype
    if datatype == TEMPLATE:
        return _template_values(metric, info, context)
    if datatype in (DATASET, FILE) or not (INT8 <= datatype <= DATETIME_ARRAY):
        context.count_dropped("sparkplug_unsupported_type")
        return {}
    if INT8_ARRAY <= datatype <= DATETIME_ARRAY:
        data = _value_of(metric, kind, "bytes_value", info)
        return _array_values(info, data)
    return {info.name: _scalar(metric, kind, info)}


def _value_of(metric: Any, kind: str, expected: str, info: _MetricInfo) -> Any:
    if kind != expected:
        raise DecodeError(
            "sparkplug_invalid_value",
            f"metric {info.name!r} of datatype {info.datatype} carries {kind}, "
            f"not {expected}",
        )
    return getattr(metric, kind)


def _scalar(metric: Any, kind: str, info: _MetricInfo) -> FieldValue:
    datatype = info.datatype
    if datatype in _SIGNED_BITS:
        raw = _value_of(metric, kind, "int_value", info)
        return _sign_extend(raw, _SIGNED_BITS[datatype], info)
    if datatype in _UNSIGNED_BITS:
        raw = _value_of(metric, kind, "int_value", info)
        if raw >= 1 << _UNSIGNED_BITS[datatype]:
            raise _out_of_range(info, raw)
        return int(raw)

    if datatype == INT64:
        raw = _value_of(metric, kind, "long_value", info)
        return raw - (1 << 64) if raw >= 1 << 63 else int(raw)
    if datatype == UINT64:
        return UInt(_value_of(metric, kind, "long_value", info))
    if datatype == DATETIME:
        return int(_value_of(metric, kind, "long_value", info))

    if datatype == FLOAT:
        return shortest_float32(_value_of(metric, kind, "float_value", info))
    if datatype == DOUBLE:
        return float(_value_of(metric, kind, "double_value", info))
    if datatype == BOOLEAN:
        return bool(_value_of(metric, kind, "boolean_value", info))

    if datatype in (STRING, TEXT, UUID):
        value = _value_of(metric, kind, "string_value", info)
        text = _text(value, f"metric {info.name!r}")
        return text if text is not None else ""
    if datatype == BYTES:
        return base64.b64encode(_value_of(metric, kind, "bytes_value", info)).decode()
    raise DecodeError(
        "sparkplug_invalid_value",
        f"metric {info.name!r} has the unsupported datatype {datatype}",
    )


def _sign_extend(raw: int, bits: int, info: _MetricInfo) -> int:
    """Read a signed value stored in a uint32, sign-extended to 32 bits or not."""
    low = raw & ((1 << bits) - 1)
    signed = low - (1 << bits) if low >> (bits - 1) else low
    if raw not in (low, signed & 0xFFFFFFFF):
        raise _out_of_range(info, raw)
    return signed


def _out_of_range(info: _MetricInfo, raw: int) -> DecodeError:
    return DecodeError(
        "sparkplug_invalid_value",
        f"metric {info.name!r}: {raw} doesn't fit datatype {info.datatype}",
    )


def shortest_float32(value: float) -> float:
    """Return the shortest decimal that reads back as the same 32-bit float.

    A Sparkplug Float arrives as a float32 widened to a double (21.3 becomes
    21.299999237060547); its shortest decimal is what the device meant.
    """
    if not math.isfinite(value):
        return value
    packed = struct.pack("<f", value)
    for digits in range(6, 10):
        candidate = float(f"{value:.{digits}g}")
        try:
            if struct.pack("<f", candidate) == packed:
                return candidate
        except OverflowError:
            continue
    return value


def _array_values(info: _MetricInfo, data: bytes) -> dict[str, FieldValue]:
    datatype = info.datatype
    elements: list[FieldValue]
    if datatype == BOOLEAN_ARRAY:
        elements = list(_boolean_array(info, data))
    elif datatype == STRING_ARRAY:
        elements = list(_string_array(info, data))
    else:
        code = _ARRAY_FORMATS.get(datatype)
        if code is None:
            raise DecodeError(
                "sparkplug_invalid_value",
                f"metric {info.name!r} has the unsupported datatype {datatype}",
            )
        size = struct.calcsize(code)
        if len(data) % size:
            raise DecodeError(
                "sparkplug_invalid_value",
                f"metric {info.name!r}: {len(data)} bytes is not a whole number "
                f"of {size}-byte elements",
            )
        numbers = struct.unpack(f"<{len(data) // size}{code}", data)
        converters: dict[str, Callable[[Any], FieldValue]] = {
            "f": shortest_float32,
            "d": float,
            "Q": UInt,
        }
        convert = converters.get(code, int)
        elements = [convert(number) for number in numbers]
    return {f"{info.name}_{index}": value for index, value in enumerate(elements)}


def _boolean_array(info: _MetricInfo, data: bytes) -> list[bool]:
    # A little-endian uint32 count, then the values packed eight to a byte,
    # the first value in the most significant bit (the specification's example).
    if len(data) < 4:
        raise DecodeError(
            "sparkplug_invalid_value",
            f"metric {info.name!r}: a BooleanArray needs a 4-byte count",
        )
    (count,) = struct.unpack("<I", data[:4])
    bits = data[4:]
    if len(bits) != (count + 7) // 8:
        raise DecodeError(
            "sparkplug_invalid_value",
            f"metric {info.name!r}: a BooleanArray of {count} values needs "
            f"{(count + 7) // 8} bytes after the count, not {len(bits)}",
        )
    return [bool(bits[i // 8] >> (7 - i % 8) & 1) for i in range(count)]


def _string_array(info: _MetricInfo, data: bytes) -> list[str]:
    if data and not data.endswith(b"\0"):
        raise DecodeError(
            "sparkplug_invalid_value",
            f"metric {info.name!r}: a StringArray must end with a NUL byte",
        )
    try:
        return [part.decode("utf-8") for part in data[:-1].split(b"\0")] if data else []
    except UnicodeDecodeError:
        raise DecodeError(
            "sparkplug_invalid_value",
            f"metric {info.name!r}: a StringArray element is not valid UTF-8",
        ) from None


def _template_values(
    metric: Any, info: _MetricInfo, context: DecodeContext
) -> dict[str, FieldValue]:
    template = metric.template_value
    if metric.WhichOneof("value") != "template_value":
        raise DecodeError(
            "sparkplug_invalid_value",
            f"metric {info.name!r} is a Template but carries no template value",
        )
    if _optional(template, "is_definition"):
        return {}
    values: dict[str, FieldValue] = {}
    for index, member in enumerate(template.metrics):
        member_name = _text(
            _optional(member, "name"), f"member {index} of {info.name!r}"
        )
        datatype = _optional(member, "datatype")
        if member_name is None or datatype is None:
            raise DecodeError(
                "sparkplug_invalid_value",
                f"member {index} of template {info.name!r} needs a name and a datatype",
            )
        member_info = _MetricInfo(f"{info.name}/{member_name}", datatype)
        values.update(_metric_values(member, member_info, context))
    return values

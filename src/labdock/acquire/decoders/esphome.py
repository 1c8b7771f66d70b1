"""The `esphome` preset: entity states published by ESPHome nodes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from labdock.acquire.decoders import (
    DecodeContext,
    DecodeError,
    DecoderOptions,
    register,
)
from labdock.acquire.decoders._fields import FieldRules, collect_fields
from labdock.acquire.decoders._text import decode_utf8, load_json, require_payload
from labdock.acquire.decoders._values import to_bool, to_float
from labdock.acquire.decoders.value import ValueParser
from labdock.acquire.points import FieldValue, Point

# Components whose state is a number; "nan" means no reading.
_NUMERIC = frozenset({"sensor", "number"})
# Components whose plain state is ON or OFF.
_BINARY = frozenset({"binary_sensor", "switch", "fan", "light"})
# Components whose state is text, kept as a string whatever it looks like.
_TEXT = frozenset(
    {"text_sensor", "select", "text", "lock", "cover", "valve", "event", "update"}
)
_ON_OFF = (frozenset({"on"}), frozenset({"off"}))
# Components that publish some attributes on topics of their own, as
# <prefix>/climate/<object id>/<attribute>/state.
_ATTRIBUTE_TOPICS = frozenset({"climate", "fan", "cover", "valve"})


class EsphomeOptions(DecoderOptions):
    """Options of the `esphome` preset.

    ESPHome publishes each entity's state on
    <prefix>/<component>/<object id>/state, where the prefix is the node name
    unless topic_prefix changes it. Each message becomes one field named
    after the object id, with the tags `node_tag` (the prefix) and
    `component_tag`. Sensor and number states are floats, and `nan`, which a
    sensor sends when it has no reading, is dropped and counted by the
    pipeline. The ON/OFF states of binary_sensor, switch, fan and light are
    booleans. Text_sensor, select, lock, cover and other text states are
    strings. A JSON state
    (lights and fans with the JSON schema) is flattened under the object id
    (`desk_brightness`). Climate, fan, cover and valve entities publish some
    attributes on topics of their own
    (<prefix>/climate/<object id>/<attribute>/state), each of which becomes
    the field <object id>_<attribute>, typed as the value decoder's auto.

    <prefix>/status (online/offline) is ignored and counted as
    `availability`, or written as a boolean field; command topics, debug
    logs and anything else are ignored and counted as `ignored_topic`.
    """

    node_tag: str = Field("node", min_length=1, description="Tag of the node (prefix).")
    component_tag: str = Field(
        "component", min_length=1, description="Tag of the component type."
    )
    availability: Literal["ignore", "field"] = Field(
        "ignore",
        description="The status topic: ignore it (counted) or write a boolean field.",
    )
    availability_field: str = Field(
        "online", min_length=1, description="Field of a status message."
    )


@register("esphome", EsphomeOptions, "ESPHome entity states (<node>/<component>/...)")
class EsphomeDecoder:
    """Decodes ESPHome state topics into one point each."""

    def __init__(self, options: EsphomeOptions) -> None:
        self.options = options
        self.rules = FieldRules(on_off_bool=True)
        self.parser = ValueParser("auto", ["on"], ["off"])

    def decode(self, payload: bytes, context: DecodeContext) -> list[Point]:
        levels = context.topic.split("/")
        if levels[-1] == "status" and len(levels) >= 2:
            return self._status(payload, context, "/".join(levels[:-1]))
        if levels[-1] != "state" or len(levels) < 4:
            context.count_dropped("ignored_topic")
            return []
        if len(levels) >= 5 and levels[-4] in _ATTRIBUTE_TOPICS:
            node = "/".join(levels[:-4])
            component, name = levels[-4], f"{levels[-3]}_{levels[-2]}"
            value_kind = "attribute"
        else:
            node = "/".join(levels[:-3])
            component, name = levels[-3], levels[-2]
            value_kind = component
        tags = dict(context.tags)
        tags[self.options.node_tag] = node
        tags[self.options.component_tag] = component
        require_payload(payload)
        fields = self._fields(payload, context, value_kind, name)
        if not fields:
            context.count_dropped("no_fields")
            return []
        return [Point(context.measurement, tags, fields)]

    def _fields(
        self, payload: bytes, context: DecodeContext, value_kind: str, name: str
    ) -> dict[str, FieldValue]:
        if payload.lstrip()[:1] == b"{":
            document = load_json(payload)
            if not isinstance(document, dict):
                raise DecodeError("json_not_object", "the JSON state is not an object")
            return collect_fields(document, self.rules, context, prefix=(name,))
        text = decode_utf8(payload).strip()
        where = f"field {name!r}"
        value: FieldValue
        if value_kind in _NUMERIC:
            value = to_float(text, where, context)
        elif value_kind in _BINARY:
            value = to_bool(text, where, *_ON_OFF)
        elif value_kind in _TEXT:
            value = text
        else:
            value = self.parser.parse(text, where, context)
        return {name: value}

    def _status(self, payload: bytes, context: DecodeContext, node: str) -> list[Point]:
        if self.options.availability == "ignore":
            context.count_dropped("availability")
            return []
        require_payload(payload)
        text = decode_utf8(payload).strip()
        field = self.options.availability_field
        online = to_bool(
            text, f"field {field!r}", frozenset({"online"}), frozenset({"offline"})
        )
        tags = dict(context.tags)
        tags[self.options.node_tag] = node
        fields: dict[str, FieldValue] = {field: online}
        return [Point(context.measurement, tags, fields)]

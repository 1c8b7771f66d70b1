"""The `zigbee2mqtt` preset: device states published by Zigbee2MQTT."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from functools import partial
from typing import Any, Literal

from pydantic import Field

from labdock.acquire.decoders import (
    DecodeContext,
    DecodeError,
    DecoderOptions,
    register,
)
from labdock.acquire.decoders._fields import (
    EXCLUDE_FIX,
    FieldRules,
    StringPolicy,
    collect_fields,
)
from labdock.acquire.decoders._text import (
    decode_utf8,
    load_json,
    load_json_exact,
    require_payload,
)
from labdock.acquire.decoders._timestamps import (
    count_naive_as_utc,
    numeric_to_ns,
    rfc3339_to_ns,
)
from labdock.acquire.decoders._values import (
    FieldType,
    parse_decimal_text,
    to_bool,
    to_float,
)
from labdock.acquire.decoders.value import unquote
from labdock.acquire.points import FieldValue, Point

_COMMAND_SUFFIXES = ("/set", "/get")


class Zigbee2mqttOptions(DecoderOptions):
    """Options of the `zigbee2mqtt` preset.

    A message on <base_topic>/<friendly name> is a JSON object of the
    device's state: numbers become float fields, ON/OFF strings boolean
    fields, nested objects are joined with `_` (`color_x`), other strings
    are kept (or ignored and counted, with `strings: ignore`). The friendly
    name, which may contain slashes, becomes the `device_tag` tag. With
    Zigbee2MQTT's attribute output, a plain value on
    <base_topic>/<friendly name>/<attribute> becomes the field <attribute>.

    `last_seen` (when Zigbee2MQTT's advanced.last_seen is on, as ISO 8601 or
    epoch milliseconds) is the point time by default. Messages on
    <base_topic>/bridge/..., and the /set and /get commands, are ignored and
    counted as `ignored_topic`; <name>/availability messages are ignored and
    counted as `availability`, or written as a boolean field.
    """

    base_topic: str = Field(
        "zigbee2mqtt",
        min_length=1,
        description="Zigbee2MQTT's base topic (mqtt.base_topic).",
    )
    device_tag: str | None = Field(
        "device",
        description=(
            "Tag that takes the friendly name from "
            "the topic; None leaves the tags as mapped."
        ),
    )
    availability: Literal["ignore", "field"] = Field(
        "ignore",
        description=(
            "Availability messages: ignore them (counted) or write a boolean field."
        ),
    )
    availability_field: str = Field(
        "available", min_length=1, description="Field of an availability message."
    )
    last_seen: Literal["time", "field", "ignore"] = Field(
        "time",
        description=(
            "The last_seen value: the point time, a field as sent, or left out."
        ),
    )
    strings: StringPolicy = Field(
        "keep",
        description=(
            "Strings other than ON/OFF: keep as string fields, or ignore (counted)."
        ),
    )
    types: dict[str, FieldType] = Field(
        default_factory=dict,
        description="Declared field types by path, as in the json decoder.",
        examples=[{"linkquality": "int"}],
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="Paths of values to leave out, such as update or color.",
        examples=[["update"]],
    )


@register(
    "zigbee2mqtt",
    Zigbee2mqttOptions,
    "Zigbee2MQTT device states (<base>/<friendly name>)",
)
class Zigbee2mqttDecoder:
    """Decodes Zigbee2MQTT device messages."""

    def __init__(self, options: Zigbee2mqttOptions) -> None:
        self.options = options
        exclude = list(options.exclude)
        if options.last_seen != "field":
            exclude.append("last_seen")
        self.rules = FieldRules(
            strings=options.strings,
            types=options.types,
            exclude=tuple(exclude),
            on_off_bool=True,
            reserved_key_fix=EXCLUDE_FIX,
        )

    def topic_problem(self, filter_levels: Sequence[str]) -> str | None:
        """Return why a mapping whose MQTT topic filter has `filter_levels`
        can't match a topic below base_topic, or None."""
        base = self.options.base_topic.rstrip("/").split("/")
        for level, (part, expected) in enumerate(
            zip(filter_levels, base, strict=False)
        ):
            if part == "#":
                return None
            if part not in ("+", expected):
                return (
                    f"level {level + 1} ({part!r}) can't match Zigbee2MQTT's base "
                    f"topic {self.options.base_topic!r}, so no friendly name or bridge "
                    "topic would be recognised; set options.base_topic to the "
                    "mqtt.base_topic of Zigbee2MQTT's configuration"
                )
        # decode() reads the friendly name and the bridge topics below the base
        # topic, so a filter that ends at or above it matches neither.
        if len(filter_levels) <= len(base):
            return (
                f"the topic has {len(filter_levels)} level(s), so it can't match a "
                f"topic below Zigbee2MQTT's base topic {self.options.base_topic!r}; "
                "add a level such as /{device} or /#"
            )
        return None

    def decode(self, payload: bytes, context: DecodeContext) -> list[Point]:
        prefix = self.options.base_topic.rstrip("/") + "/"
        name = (
            context.topic[len(prefix) :] if context.topic.startswith(prefix) else None
        )

        if name is not None and (
            name == "bridge"
            or name.startswith("bridge/")
            or name.endswith(_COMMAND_SUFFIXES)
        ):
            context.count_dropped("ignored_topic")
            return []
        if name is not None and name.endswith("/availability"):
            return self._availability(
                payload, context, name.removesuffix("/availability")
            )

        require_payload(payload)
        if payload.lstrip()[:1] != b"{":
            return self._attribute(payload, context, name)
        document = load_json(payload)
        if not isinstance(document, dict):
            raise DecodeError(
                "json_not_object", "the device state is not a JSON object"
            )

        time_ns = None
        if self.options.last_seen == "time" and document.get("last_seen") is not None:
            time_ns = _last_seen_ns(document["last_seen"], context)
        fields = collect_fields(
            document, self.rules, context, exact=lambda: load_json_exact(payload)
        )
        if not fields:
            context.count_dropped("no_fields")
            return []
        return [Point(context.measurement, self._tags(context, name), fields, time_ns)]

    def _tags(self, context: DecodeContext, name: str | None) -> dict[str, str]:
        tags = dict(context.tags)
        if name and self.options.device_tag:
            tags[self.options.device_tag] = name
        return tags

    def _availability(
        self, payload: bytes, context: DecodeContext, name: str
    ) -> list[Point]:
        if self.options.availability == "ignore":
            context.count_dropped("availability")
            return []
        require_payload(payload)
        state: Any = decode_utf8(payload).strip()
        if state.startswith("{"):
            document = load_json(payload)
            state = document.get("state") if isinstance(document, dict) else None
        where = f"field {self.options.availability_field!r}"
        available = to_bool(state, where, frozenset({"online"}), frozenset({"offline"}))
        field: dict[str, FieldValue] = {self.options.availability_field: available}
        return [Point(context.measurement, self._tags(context, name), field)]

    def _attribute(
        self, payload: bytes, context: DecodeContext, name: str | None
    ) -> list[Point]:
        if name is None or "/" not in name:
            raise DecodeError(
                "json_decode_error",
                "the device state is not a JSON object, and the topic names no "
                "attribute (<base>/<friendly name>/<attribute>)",
            )
        device, attribute = name.rsplit("/", 1)
        text = unquote(decode_utf8(payload).strip())
        value: Any = text
        if parse_decimal_text(text) is not None and attribute not in self.options.types:
            value = to_float(text, f"field {attribute!r}", context)
        fields = collect_fields({attribute: value}, self.rules, context)
        if not fields:
            return []
        return [Point(context.measurement, self._tags(context, device), fields)]


def _last_seen_ns(value: Any, context: DecodeContext) -> int:
    if isinstance(value, str):
        # Zigbee2MQTT's ISO_8601 and ISO_8601_local formats both carry an
        # offset, so a time without one is read as UTC and counted.
        on_naive = partial(count_naive_as_utc, context)
        return rfc3339_to_ns(value, UTC, "last_seen", on_naive=on_naive)
    return numeric_to_ns(value, "ms", "last_seen")

"""The `homeassistant` preset: entity states from Home Assistant's MQTT statestream."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from labdock.acquire.decoders import (
    DecodeContext,
    DecodeError,
    DecoderOptions,
    register,
)
from labdock.acquire.decoders._fields import FieldRules, collect_fields
from labdock.acquire.decoders._text import decode_utf8, load_json, require_payload
from labdock.acquire.decoders._values import parse_decimal_text, to_float
from labdock.acquire.decoders.value import unquote
from labdock.acquire.points import FieldValue, Point

# States that Home Assistant's own InfluxDB integration also writes as 1 and 0.
_STATE_ONE = frozenset({"on", "open", "home", "locked", "true", "detected"})
_STATE_ZERO = frozenset({"off", "closed", "not_home", "unlocked", "false", "clear"})
_NO_STATE = frozenset({"unavailable", "unknown", "none", ""})


class HomeAssistantOptions(DecoderOptions):
    """Options of the `homeassistant` preset.

    Home Assistant's MQTT statestream publishes an entity's state on
    <base>/<domain>/<object id>/state as plain text, and its attributes on
    <base>/<domain>/<object id>/<attribute> as JSON. A state becomes one
    point tagged `domain` and `entity_id` (<domain>.<object id>): a number,
    or a binary state (on/off, open/closed, home/not_home, locked/unlocked),
    becomes the float field `value` (binary states as 1 and 0), and any
    other text the string field `state`, so that one field never changes
    its type. A state that is a JSON object is flattened into fields.

    The states unavailable and unknown carry no reading: they are ignored
    and counted as `state_unavailable`. Attributes are ignored and counted
    as `ignored_attribute`, or written as fields named after the attribute
    with `attributes: fields`.
    """

    attributes: Literal["ignore", "fields"] = Field(
        "ignore",
        description="Attribute topics: ignore them (counted) or write them as fields.",
    )
    domain_tag: str = Field("domain", min_length=1, description="Tag of the domain.")
    entity_tag: str = Field(
        "entity_id",
        min_length=1,
        description="Tag of the entity id (domain.object_id).",
    )


@register(
    "homeassistant",
    HomeAssistantOptions,
    "Home Assistant statestream states (<base>/<domain>/<object id>/state)",
)
class HomeAssistantDecoder:
    """Decodes Home Assistant statestream messages."""

    def __init__(self, options: HomeAssistantOptions) -> None:
        self.options = options
        self.rules = FieldRules()

    def decode(self, payload: bytes, context: DecodeContext) -> list[Point]:
        levels = context.topic.split("/")
        if len(levels) < 3:
            raise DecodeError(
                "unsupported_topic",
                f"topic {context.topic!r} is not <base>/<domain>/<object id>/state",
            )
        if len(levels) >= 4:
            domain, object_id, suffix = levels[-3], levels[-2], levels[-1]
        else:
            domain, object_id, suffix = levels[-2], levels[-1], "state"
        tags = dict(context.tags)
        tags[self.options.domain_tag] = domain
        tags[self.options.entity_tag] = f"{domain}.{object_id}"
        if suffix == "state":
            fields = self._state(payload, context)
        elif self.options.attributes == "fields":
            fields = self._attribute(payload, context, suffix)
        else:
            context.count_dropped("ignored_attribute")
            return []
        if not fields:
            return []
        return [Point(context.measurement, tags, fields)]

    def _state(self, payload: bytes, context: DecodeContext) -> dict[str, FieldValue]:
        text = decode_utf8(payload).strip()
        if text.startswith("{"):
            document = load_json(payload)
            if not isinstance(document, dict):
                raise DecodeError("json_not_object", "the JSON state is not an object")
            fields = collect_fields(document, self.rules, context)
            if not fields:
                context.count_dropped("no_fields")
            return fields
        text = unquote(text)
        word = text.lower()
        if word in _NO_STATE:
            context.count_dropped("state_unavailable")
            return {}
        if parse_decimal_text(text) is not None:
            return {"value": to_float(text, "field 'value'", context)}
        if word in _STATE_ONE:
            return {"value": 1.0}
        if word in _STATE_ZERO:
            return {"value": 0.0}
        return {"state": text}

    def _attribute(
        self, payload: bytes, context: DecodeContext, attribute: str
    ) -> dict[str, FieldValue]:
        require_payload(payload)
        value: Any = load_json(payload)
        return collect_fields({attribute: value}, self.rules, context)

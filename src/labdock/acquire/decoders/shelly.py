"""The `shelly` preset: status notifications of Shelly Gen2 and later devices."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from labdock.acquire.decoders import (
    DecodeContext,
    DecodeError,
    DecoderOptions,
    register,
)
from labdock.acquire.decoders._fields import FieldRules, StringPolicy, collect_fields
from labdock.acquire.decoders._text import (
    decode_utf8,
    load_json,
    load_json_exact,
    require_payload,
)
from labdock.acquire.decoders._timestamps import numeric_to_ns
from labdock.acquire.decoders._values import to_bool
from labdock.acquire.points import FieldValue, Point

_STATUS_METHODS = ("NotifyStatus", "NotifyFullStatus")


class ShellyOptions(DecoderOptions):
    """Options of the `shelly` preset.

    Gen2+ devices (Plus, Pro, Gen3) publish JSON-RPC notifications on
    <prefix>/events/rpc. NotifyStatus and NotifyFullStatus carry, in
    `params`, one object per component (`"switch:0": {"apower": 12.5}`,
    `"temperature:0": {"tC": 21.5}`). Each component becomes one point
    tagged with its type (`switch`) and its id (`0`), whose values are
    flattened with `_` (`aenergy_total`, `temperature_tC`): numbers as
    float fields, booleans as boolean fields, strings kept or ignored.
    `params.ts` (seconds since the epoch, with a fraction) is the point
    time. The frame's `src` (the device id) becomes the `device_tag` tag.

    A component's status on <prefix>/status/<component> (with "generic
    status update" on) becomes one point in the same way, at the arrival
    time; <prefix>/online (true/false) becomes the boolean field `online`.
    Other notifications (NotifyEvent), RPC traffic and components with
    nothing to write are ignored and counted.
    """

    components: list[str] | None = Field(
        None,
        description="Component types to write (switch, temperature, ...); None: all.",
        examples=[["switch", "temperature", "humidity"]],
    )
    device_tag: str | None = Field(
        "device",
        description="Tag of the device id from the frame's src; None: no tag.",
    )
    component_tag: str = Field(
        "component", min_length=1, description="Tag of the component type."
    )
    id_tag: str = Field(
        "component_id", min_length=1, description="Tag of the component id."
    )
    strings: StringPolicy = Field(
        "keep",
        description="Strings: keep as string fields, or ignore them (counted).",
    )


@register("shelly", ShellyOptions, "Shelly Gen2+ status notifications (events/rpc)")
class ShellyDecoder:
    """Decodes Shelly Gen2+ notifications, one point per component."""

    def __init__(self, options: ShellyOptions) -> None:
        self.options = options
        self.rules = FieldRules(strings=options.strings)

    def decode(self, payload: bytes, context: DecodeContext) -> list[Point]:
        levels = context.topic.split("/")
        if levels[-2:] == ["events", "rpc"]:
            return self._notification(payload, context)
        if len(levels) >= 3 and levels[-2] == "status":
            document = _object(load_json(payload), "the component status")
            points = self._component(levels[-1], document, context, None, None)
            return self._or_ignored(points, context)
        if levels[-1] == "online":
            require_payload(payload)
            online = to_bool(decode_utf8(payload), "field 'online'")
            fields: dict[str, FieldValue] = {"online": online}
            return [Point(context.measurement, dict(context.tags), fields)]
        context.count_dropped("ignored_topic")
        return []

    def _notification(self, payload: bytes, context: DecodeContext) -> list[Point]:
        frame = _object(load_json(payload), "the events/rpc frame")
        method = frame.get("method")
        if method not in _STATUS_METHODS:
            context.count_dropped("ignored_notification")
            return []
        params = _object(frame.get("params"), "the params of " + str(method))
        time_ns = None
        if params.get("ts") is not None:
            time_ns = self._time_ns(payload, params["ts"])
        device = frame.get("src")
        points: list[Point] = []
        for key, status in params.items():
            if key == "ts":
                continue
            if not isinstance(status, dict):
                context.count_dropped("ignored_value")
                continue
            device_id = device if isinstance(device, str) else None
            points.extend(self._component(key, status, context, time_ns, device_id))
        return self._or_ignored(points, context)

    @staticmethod
    def _time_ns(payload: bytes, ts: Any) -> int:
        if isinstance(ts, float):
            # The frame is read again with exact numbers, so that the fraction
            # of a second is converted from its decimal digits.
            exact = load_json_exact(payload)
            ts = exact["params"]["ts"]
        return numeric_to_ns(ts, "s", "params.ts")

    def _component(
        self,
        key: str,
        status: dict[str, Any],
        context: DecodeContext,
        time_ns: int | None,
        device: str | None,
    ) -> list[Point]:
        kind, _, component_id = key.partition(":")
        if self.options.components is not None and kind not in self.options.components:
            return []
        tags = dict(context.tags)
        tags[self.options.component_tag] = kind
        if component_id:
            tags[self.options.id_tag] = component_id
        if device and self.options.device_tag:
            tags[self.options.device_tag] = device
        fields = collect_fields(status, self.rules, context, skip=("id",))
        if not fields:
            return []
        return [Point(context.measurement, tags, fields, time_ns)]

    @staticmethod
    def _or_ignored(points: list[Point], context: DecodeContext) -> list[Point]:
        if not points:
            context.count_dropped("no_fields")
        return points


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DecodeError(
            "json_not_object", f"{what} is not a JSON object: {str(value)[:60]!r}"
        )
    return value

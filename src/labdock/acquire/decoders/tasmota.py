"""The `tasmota` preset: telemetry of devices running Tasmota firmware."""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from pydantic import Field, field_validator

from labdock.acquire.decoders import (
    DecodeContext,
    DecodeError,
    DecoderOptions,
    register,
)
from labdock.acquire.decoders._fields import FieldRules, StringPolicy, collect_fields
from labdock.acquire.decoders._text import decode_utf8, load_json, require_payload
from labdock.acquire.decoders._timestamps import (
    MIN_PLAUSIBLE_NS,
    count_naive_as_utc,
    load_timezone,
    rfc3339_to_ns,
)
from labdock.acquire.decoders._values import to_bool
from labdock.acquire.points import FieldValue, Point

_POWER = re.compile(r"POWER\d*")
_STATE_WRAPPERS = {"STATUS11": "StatusSTS"}
_SENSOR_WRAPPERS = {"STATUS8": "StatusSNS", "STATUS10": "StatusSNS"}


class TasmotaOptions(DecoderOptions):
    """Options of the `tasmota` preset.

    The last topic level selects the message type: `SENSOR` (tele/<device>/SENSOR)
    gives one point per sensor object, tagged with the object's key
    (`AM2301`, `DS18B20-1`, `ENERGY`) and with its `Id` when it has one;
    top-level readings such as `Switch1` go to one point without that tag,
    and unit keys (`TempUnit`, `PressureUnit`) become tags of every point.
    `STATE` (tele/<device>/STATE) and `RESULT` give one point with the
    payload flattened (`Wifi_RSSI`); `STATUS10` and `STATUS11` are read as
    SENSOR and STATE; `POWER`, `POWER1`... (ON/OFF) give a boolean field named
    after the level; `LWT` (Online/Offline) gives the boolean field `online`.
    Numbers are float fields and ON/OFF strings boolean fields. Other topics
    (commands under cmnd/, INFO, other STATUS replies) are ignored and counted
    as `ignored_topic`.

    The `Time` field is the device time. Tasmota writes it in the device's
    local time (its Timezone setting) without a UTC offset, unless
    SetOption52 adds one, so set `timezone` to the device's zone. Until it
    is set, a Time without offset is read as UTC and each such message is
    counted as `naive_time_as_utc`. A time before 1973, which a device sends
    before it has synchronized its clock, is replaced by the arrival time and
    counted as `unsynchronized_clock`.
    """

    timezone: str = Field(
        "UTC",
        description=(
            "IANA time zone of the device's Time field. Tasmota's Time is the "
            "device's local time without UTC offset (unless SetOption52 is on), "
            "so set this to the device's zone (its Timezone setting); the "
            "default UTC is right only for devices that run on UTC, and each "
            "message read with it is counted as naive_time_as_utc."
        ),
        examples=["Europe/Berlin"],
    )
    device_time: bool = Field(
        True,
        description=(
            "Use the Time field as the point time; false uses the arrival time."
        ),
    )
    sensor_tag: str = Field(
        "sensor",
        min_length=1,
        description="Tag naming the sensor object of a SENSOR message.",
    )
    id_tag: str = Field(
        "sensor_id",
        min_length=1,
        description="Tag of a sensor's Id (DS18B20 addresses).",
    )
    strings: StringPolicy = Field(
        "keep",
        description=(
            "Strings other than ON/OFF: keep as string fields, or ignore (counted)."
        ),
    )

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        load_timezone(value)
        return value


@register(
    "tasmota", TasmotaOptions, "Tasmota tele/stat messages (SENSOR, STATE, POWER, LWT)"
)
class TasmotaDecoder:
    """Decodes Tasmota telemetry by the last level of its topic."""

    def __init__(self, options: TasmotaOptions) -> None:
        self.options = options
        self.zone = load_timezone(options.timezone)
        self.zone_is_default = "timezone" not in options.model_fields_set
        self.rules = FieldRules(strings=options.strings, on_off_bool=True)

    def decode(self, payload: bytes, context: DecodeContext) -> list[Point]:
        levels = context.topic.split("/")
        kind = levels[-1]
        if "cmnd" in levels[:-1]:
            context.count_dropped("ignored_topic")
            return []
        if kind == "SENSOR":
            return self._sensor(_object(payload), context)
        if kind in _SENSOR_WRAPPERS:
            return self._sensor(_unwrap(payload, _SENSOR_WRAPPERS[kind]), context)
        if kind in ("STATE", "RESULT"):
            return self._state(_object(payload), context)
        if kind in _STATE_WRAPPERS:
            return self._state(_unwrap(payload, _STATE_WRAPPERS[kind]), context)
        if kind == "LWT":
            return [self._plain(payload, context, "online", ("online",), ("offline",))]
        if _POWER.fullmatch(kind):
            return [self._plain(payload, context, kind, ("on",), ("off",))]
        context.count_dropped("ignored_topic")
        return []

    def _time_ns(self, document: dict[str, Any], context: DecodeContext) -> int | None:
        value = document.pop("Time", None)
        if value is None or not self.options.device_time:
            return None
        naive: list[bool] = []
        time_ns = rfc3339_to_ns(
            value, self.zone, "Time", on_naive=partial(naive.append, True)
        )
        if time_ns < MIN_PLAUSIBLE_NS:
            context.count_dropped("unsynchronized_clock")
            return None
        if naive and self.zone_is_default:
            count_naive_as_utc(context)
        return time_ns

    def _sensor(self, document: dict[str, Any], context: DecodeContext) -> list[Point]:
        time_ns = self._time_ns(document, context)
        tags = dict(context.tags)
        for key in [
            k for k, v in document.items() if k.endswith("Unit") and isinstance(v, str)
        ]:
            tags[key] = document.pop(key)
        points = []
        loose: dict[str, Any] = {}
        for key, value in document.items():
            if not isinstance(value, dict):
                loose[key] = value
                continue
            sensor_tags = dict(tags)
            sensor_tags[self.options.sensor_tag] = key
            sensor_id = value.get("Id")
            if isinstance(sensor_id, str | int) and not isinstance(sensor_id, bool):
                sensor_tags[self.options.id_tag] = str(sensor_id)
            fields = collect_fields(value, self.rules, context, skip=("Id",))
            if fields:
                points.append(Point(context.measurement, sensor_tags, fields, time_ns))
        fields = collect_fields(loose, self.rules, context)
        if fields:
            points.append(Point(context.measurement, tags, fields, time_ns))
        if not points:
            raise DecodeError("no_fields", "the SENSOR message contains no reading")
        return points

    def _state(self, document: dict[str, Any], context: DecodeContext) -> list[Point]:
        time_ns = self._time_ns(document, context)
        fields = collect_fields(document, self.rules, context)
        if not fields:
            context.count_dropped("no_fields")
            return []
        return [Point(context.measurement, dict(context.tags), fields, time_ns)]

    @staticmethod
    def _plain(
        payload: bytes,
        context: DecodeContext,
        field: str,
        true_words: tuple[str, ...],
        false_words: tuple[str, ...],
    ) -> Point:
        require_payload(payload)
        text = decode_utf8(payload).strip()
        value: FieldValue = to_bool(
            text, f"field {field!r}", frozenset(true_words), frozenset(false_words)
        )
        return Point(context.measurement, dict(context.tags), {field: value})


def _object(payload: bytes) -> dict[str, Any]:
    document = load_json(payload)
    if not isinstance(document, dict):
        raise DecodeError(
            "json_not_object",
            f"a Tasmota message is a JSON object, not {type(document).__name__}",
        )
    return document


def _unwrap(payload: bytes, key: str) -> dict[str, Any]:
    document = _object(payload).get(key)
    if not isinstance(document, dict):
        raise DecodeError("json_not_object", f"the status reply has no {key!r} object")
    return document

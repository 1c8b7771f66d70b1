"""The `ttn` preset: uplink messages of The Things Stack (v3) over MQTT."""

from __future__ import annotations

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
from labdock.acquire.decoders._text import load_json, load_json_exact
from labdock.acquire.decoders._timestamps import count_naive_as_utc, rfc3339_to_ns
from labdock.acquire.decoders._values import FieldType, to_float, to_int
from labdock.acquire.points import FieldValue, Point


class TtnOptions(DecoderOptions):
    """Options of the `ttn` preset.

    An uplink message (v3/<application>@<tenant>/devices/<device>/up) becomes
    one point. The fields are the values of `uplink_message.decoded_payload`
    (the output of the application's payload formatter), flattened with `_`
    and typed as by the json decoder: numbers as float unless `types`
    declares otherwise. With `radio`, the point also gets the integer fields
    `f_cnt`, `f_port`, `gateways` (how many gateways received it),
    `spreading_factor` and `frequency` (Hz). It also gets the float fields
    `rssi` and `snr` of the gateway with the highest RSSI. Each of these
    names starts with `radio_prefix`. `end_device_ids.device_id` and the
    application id become tags, and `received_at` (RFC 3339 with up to
    nanoseconds) the time. Other messages (joins, downlink events, location
    and service messages) are ignored and counted as `ignored_message`.
    """

    device_tag: str | None = Field(
        "device", description="Tag of end_device_ids.device_id; None: no tag."
    )
    application_tag: str | None = Field(
        "application", description="Tag of the application id; None: no tag."
    )
    radio: bool = Field(
        True,
        description=(
            "Write the radio metadata: rssi, snr, gateways, f_cnt, f_port, "
            "spreading_factor and frequency."
        ),
    )
    radio_prefix: str = Field(
        "",
        description=(
            "Prefix of the radio metadata field names, for payloads that use "
            "the same names."
        ),
    )
    time: Literal["received_at", "arrival"] = Field(
        "received_at",
        description="Point time: the network's received_at, or the MQTT arrival time.",
    )
    types: dict[str, FieldType] = Field(
        default_factory=dict,
        description="Declared types of decoded_payload values by path.",
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="Paths of decoded_payload values to leave out.",
    )
    strings: StringPolicy = Field(
        "keep",
        description="decoded_payload strings: keep as fields or ignore (counted).",
    )


@register("ttn", TtnOptions, "The Things Stack v3 uplinks (decoded_payload, RSSI, SNR)")
class TtnDecoder:
    """Decodes The Things Stack uplink messages into one point each."""

    def __init__(self, options: TtnOptions) -> None:
        self.options = options
        self.rules = FieldRules(
            strings=options.strings,
            types=options.types,
            exclude=tuple(options.exclude),
            reserved_key_fix=EXCLUDE_FIX,
        )

    def decode(self, payload: bytes, context: DecodeContext) -> list[Point]:
        message = _object(load_json(payload), "the message")
        uplink = message.get("uplink_message")
        if uplink is None:
            context.count_dropped("ignored_message")
            return []
        uplink = _object(uplink, "uplink_message")
        decoded = uplink.get("decoded_payload") or {}
        fields = collect_fields(
            _object(decoded, "uplink_message.decoded_payload"),
            self.rules,
            context,
            exact=lambda: load_json_exact(payload)["uplink_message"]["decoded_payload"],
        )
        if self.options.radio:
            self._add_radio(uplink, fields)
        if not fields:
            raise DecodeError(
                "no_fields",
                "the uplink has no decoded_payload and radio metadata is off; add "
                "a payload formatter to the application or set radio: true",
            )
        time_ns = None
        if self.options.time == "received_at" and message.get("received_at"):
            time_ns = rfc3339_to_ns(
                message["received_at"],
                UTC,
                "received_at",
                on_naive=partial(count_naive_as_utc, context),
            )
        return [
            Point(context.measurement, self._tags(message, context), fields, time_ns)
        ]

    def _tags(self, message: dict[str, Any], context: DecodeContext) -> dict[str, str]:
        tags = dict(context.tags)
        ids = message.get("end_device_ids")
        if not isinstance(ids, dict):
            return tags
        device = ids.get("device_id")
        if self.options.device_tag and isinstance(device, str):
            tags[self.options.device_tag] = device
        application_ids = ids.get("application_ids")
        application = (
            application_ids.get("application_id")
            if isinstance(application_ids, dict)
            else None
        )
        if self.options.application_tag and isinstance(application, str):
            tags[self.options.application_tag] = application
        return tags

    def _add_radio(self, uplink: dict[str, Any], fields: dict[str, FieldValue]) -> None:
        radio: dict[str, FieldValue] = {}
        # The Things Stack leaves out zero values, so a missing f_cnt is 0.
        radio["f_cnt"] = to_int(uplink.get("f_cnt", 0), "uplink_message.f_cnt")
        if "f_port" in uplink:
            radio["f_port"] = to_int(uplink["f_port"], "uplink_message.f_port")
        gateways = uplink.get("rx_metadata") or []
        if not isinstance(gateways, list):
            raise DecodeError(
                "type_mismatch", "uplink_message.rx_metadata is not an array"
            )
        radio["gateways"] = len(gateways)

        best = _best_gateway(gateways)
        if best is not None:
            rssi = best.get("rssi", best.get("channel_rssi"))
            if rssi is not None:
                radio["rssi"] = to_float(rssi, "rx_metadata.rssi")
            if best.get("snr") is not None:
                radio["snr"] = to_float(best["snr"], "rx_metadata.snr")

        settings = uplink.get("settings")
        if isinstance(settings, dict):
            data_rate = settings.get("data_rate")
            lora = data_rate.get("lora") if isinstance(data_rate, dict) else None
            if isinstance(lora, dict) and "spreading_factor" in lora:
                radio["spreading_factor"] = to_int(
                    lora["spreading_factor"], "settings.data_rate.lora.spreading_factor"
                )
            if "frequency" in settings:
                radio["frequency"] = to_int(settings["frequency"], "settings.frequency")

        for name, value in radio.items():
            key = self.options.radio_prefix + name
            if key in fields:
                raise DecodeError(
                    "duplicate_field",
                    f"decoded_payload has a value {key!r}, which is also a radio "
                    "metadata field; set radio_prefix (for example lora_)",
                )
            fields[key] = value


def _best_gateway(gateways: list[Any]) -> dict[str, Any] | None:
    best: dict[str, Any] | None = None
    best_rssi = float("-inf")
    for gateway in gateways:
        if not isinstance(gateway, dict):
            continue
        rssi = gateway.get("rssi", gateway.get("channel_rssi"))
        number = (
            rssi
            if isinstance(rssi, int | float) and not isinstance(rssi, bool)
            else None
        )
        if best is None or (number is not None and number > best_rssi):
            best = gateway
            best_rssi = number if number is not None else best_rssi
    return best


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DecodeError("json_not_object", f"{what} is not a JSON object")
    return value

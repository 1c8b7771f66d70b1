"""Guardrails for the decoder registry, which the reference docs are built from."""

from __future__ import annotations

from pydantic import BaseModel

from labdock.acquire.decoders import DecodeContext, create_decoder, registry
from labdock.acquire.decoders._timestamps import TimestampOptions

EXPECTED = {
    "json",
    "value",
    "senml",
    "tasmota",
    "zigbee2mqtt",
    "shelly",
    "esphome",
    "ttn",
    "homeassistant",
    "sparkplug_b",
}


def undocumented(model: type[BaseModel]) -> list[str]:
    return [name for name, info in model.model_fields.items() if not info.description]


def test_payload_formats_registered() -> None:
    assert set(registry()) >= EXPECTED


def test_every_option_has_description() -> None:
    for name, spec in registry().items():
        assert spec.summary, name
        assert undocumented(spec.options_model) == [], name
    assert undocumented(TimestampOptions) == []


def test_every_decoder_builds_with_defaults() -> None:
    for name in registry():
        decoder = create_decoder(name)
        assert callable(decoder.decode), name


def test_context_counts_dropped_values() -> None:
    context = DecodeContext("a/b", "m")
    context.count_dropped("null")
    context.count_dropped("null", 2)
    assert context.dropped == {"null": 3}

"""Guardrails for the decoder registry, which the reference docs are built from."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from labdock.acquire.config import AcquireConfig
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


def option_errors(name: str, options: dict[str, Any]) -> list[tuple[Any, str]]:
    with pytest.raises(ValidationError) as caught:
        create_decoder(name, options)
    return [(error["loc"], error["msg"]) for error in caught.value.errors()]


def test_unknown_option_lists_valid_ones() -> None:
    ((loc, message),) = option_errors("line", {"bogus": 1})
    assert loc == ("bogus",)
    assert message == (
        "unknown option 'bogus'; valid options are precision, check_magnitude"
    )


def test_unknown_nested_option_lists_valid_ones() -> None:
    ((loc, message),) = option_errors(
        "json", {"timestamp": {"path": "t", "formt": "s"}}
    )
    assert loc == ("timestamp", "formt")
    assert message.startswith("unknown option 'formt'; valid options are path, format")


def test_other_option_errors_unchanged() -> None:
    options = {"number_type": "x", "bogus": 1, "rename": {"a": ""}}
    errors = dict(option_errors("json", options))
    assert errors[("number_type",)] == "Input should be 'float' or 'auto'"
    assert errors[("rename",)] == "Value error, rename gives an empty name to a"
    assert errors[("bogus",)].startswith("unknown option 'bogus'; valid options")


def test_every_decoder_names_valid_options() -> None:
    for name, spec in registry().items():
        ((_, message),) = option_errors(name, {"bogus": 1})
        for option in spec.options_model.model_fields:
            assert option in message, (name, option)


def test_unknown_option_in_configuration() -> None:
    mapping = {"topic": "lab/{measurement}", "format": "line", "options": {"bogus": 1}}
    with pytest.raises(ValidationError) as caught:
        AcquireConfig.model_validate({"mappings": [mapping]})
    assert (
        "options.bogus: unknown option 'bogus'; valid options are precision, "
        "check_magnitude" in str(caught.value)
    )

"""JSON objects: keys become fields, nested keys are flattened with a dot.

NOTE: a first cut for wiring the pipeline; the mapping options (types,
renames, tags, arrays, timestamps) are still to come.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from labdock.acquire.decoders import DecodeContext, DecodeError, DecoderOptions, register
from labdock.acquire.points import FieldValue, Point


class JsonOptions(DecoderOptions):
    pass


@register("json", JsonOptions, "JSON object; keys become fields")
class JsonDecoder:
    def __init__(self, options: JsonOptions) -> None:
        self.options = options

    def decode(self, payload: bytes, context: DecodeContext) -> list[Point]:
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError as error:
            raise DecodeError("json_decode_error", str(error)) from None
        if not isinstance(document, dict):
            raise DecodeError("json_not_object", f"expected an object, got {type(document).__name__}")
        fields: dict[str, FieldValue] = {}
        _flatten("", document, fields)
        return [Point(context.measurement, dict(context.tags), fields)]


def _flatten(prefix: str, value: Any, out: dict[str, FieldValue]) -> None:
    if isinstance(value, dict):
        for key, child in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), child, out)
    elif isinstance(value, bool | str):
        out[prefix] = value
    elif isinstance(value, int | float):
        number = float(value)
        if math.isfinite(number):
            out[prefix] = number

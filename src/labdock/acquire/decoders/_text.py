"""Payload text and JSON parsing shared by the decoders.

Every function here raises only `DecodeError`, with the reasons
`empty_payload`, `invalid_utf8`, `json_decode_error` and `json_invalid_string`.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson

from labdock.acquire.decoders import DecodeError

_BOM = "\ufeff"


def decode_utf8(payload: bytes) -> str:
    """Return `payload` as text, or raise `invalid_utf8` naming the bad byte."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = payload[error.start : error.start + 4].hex(" ")
        raise DecodeError(
            "invalid_utf8",
            f"the payload is not valid UTF-8: byte {error.start} ({bad}) "
            f"{error.reason}; send UTF-8 text",
        ) from None


def require_payload(payload: bytes) -> None:
    """Raise `empty_payload` when `payload` contains nothing but white space."""
    if not payload.strip():
        raise DecodeError(
            "empty_payload",
            "the payload is empty; the device or a retained message sent no reading",
        )


def load_json(payload: bytes) -> Any:
    """Parse a JSON payload with orjson, or with the stdlib for what orjson rejects.

    The stdlib parser reads the literals `NaN`, `Infinity` and `-Infinity`
    (as non-finite floats, which the pipeline drops and counts), integers
    beyond 64 bits (as exact ints) and a leading byte order mark.
    """
    require_payload(payload)
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        orjson_error = error
    text = decode_utf8(payload).removeprefix(_BOM)
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        raise DecodeError(
            "json_decode_error",
            f"the payload is not valid JSON: {orjson_error}",
        ) from None
    except RecursionError:
        raise DecodeError(
            "json_decode_error",
            "the payload nests JSON arrays or objects too deeply to parse",
        ) from None
    _check_strings(document)
    return document


def load_json_exact(payload: bytes) -> Any:
    """Parse a JSON payload keeping every number with a fraction or exponent exact.

    Such numbers come back as `Decimal` holding the literal's digits; integers
    come back as `int`. Decoders use this where a value must not pass through
    a binary float, such as a timestamp with a fraction of a second.
    """
    require_payload(payload)
    text = decode_utf8(payload).removeprefix(_BOM)
    try:
        document = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as error:
        raise DecodeError(
            "json_decode_error", f"the payload is not valid JSON: {error}"
        ) from None
    except RecursionError:
        raise DecodeError(
            "json_decode_error",
            "the payload nests JSON arrays or objects too deeply to parse",
        ) from None
    _check_strings(document)
    return document


def _check_strings(document: Any) -> None:
    # The stdlib parser accepts escapes of lone UTF-16 surrogates ("\ud800"),
    # which no UTF-8 line can carry, so they are rejected here.
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, child in value.items():
                _check_string(key)
                stack.append(child)
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            _check_string(value)


def _check_string(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise DecodeError(
            "json_invalid_string",
            f"the JSON string {text[:40]!r} holds a lone surrogate escape at "
            f"character {error.start}; escape characters outside the BMP as a "
            "surrogate pair",
        ) from None

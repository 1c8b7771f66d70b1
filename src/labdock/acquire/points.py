"""The point model and its InfluxDB line-protocol encoding."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


class UInt(int):
    """An unsigned integer field value, encoded with the `u` suffix."""


FieldValue = float | int | bool | str


class EncodeError(ValueError):
    """A point that cannot be written as line protocol."""


@dataclass(slots=True)
class Point:
    """One InfluxDB point: a series (measurement and tags), fields and a time.

    `time_ns` is nanoseconds since the Unix epoch. Integer fields are Python
    `int` (the `i` suffix), unsigned ones `UInt`; `bool` is checked before
    `int` because it is a subclass of it.
    """

    measurement: str
    tags: dict[str, str] = field(default_factory=dict)
    fields: dict[str, FieldValue] = field(default_factory=dict)
    time_ns: int | None = None


_MEASUREMENT_ESCAPES = str.maketrans({",": "\\,", " ": "\\ ", "\n": "\\n"})
_KEY_ESCAPES = str.maketrans({",": "\\,", " ": "\\ ", "=": "\\=", "\n": "\\n"})
_STRING_ESCAPES = str.maketrans({'"': '\\"', "\\": "\\\\"})


def _format_field(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, UInt):
        return f"{int(value)}u"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EncodeError(f"non-finite float {value!r}")
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, str):
        return '"' + value.translate(_STRING_ESCAPES) + '"'
    raise EncodeError(f"unsupported field type {type(value).__name__}")


def encode_point(point: Point) -> str:
    """Encode one point as a line of line protocol, without a trailing newline.

    Fields whose float value is NaN or infinite are left out; a point left
    with no field raises EncodeError, since InfluxDB rejects such a line.
    """
    if not point.measurement:
        raise EncodeError("empty measurement")
    parts = [point.measurement.translate(_MEASUREMENT_ESCAPES)]
    for key in sorted(point.tags):
        value = point.tags[key]
        if value == "" or key == "":
            continue
        parts.append(
            "," + key.translate(_KEY_ESCAPES) + "=" + value.translate(_KEY_ESCAPES)
        )
    field_parts = []
    for key in sorted(point.fields):
        value = point.fields[key]
        if isinstance(value, float) and not math.isfinite(value):
            continue
        if key == "":
            raise EncodeError("empty field key")
        field_parts.append(key.translate(_KEY_ESCAPES) + "=" + _format_field(value))
    if not field_parts:
        raise EncodeError("no field with a finite value")
    line = "".join(parts) + " " + ",".join(field_parts)
    if point.time_ns is not None:
        line += f" {point.time_ns}"
    return line

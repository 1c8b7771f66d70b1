"""The `senml` decoder: SenML packs in JSON (RFC 8428)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

from pydantic import Field

from labdock.acquire.decoders import (
    DecodeContext,
    DecodeError,
    DecoderOptions,
    register,
)
from labdock.acquire.decoders._text import load_json_exact
from labdock.acquire.decoders._timestamps import numeric_to_ns, scale_ns
from labdock.acquire.decoders._values import INT64_MAX, INT64_MIN, float_from_int
from labdock.acquire.points import FieldValue, Point

SUPPORTED_VERSION = 10
# RFC 8428 section 4.5.3: a resolved time below 2**28 s is relative to "now".
RELATIVE_LIMIT = 2**28
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-:./_]*")
_REGULAR_LABELS = frozenset({"n", "u", "v", "vs", "vb", "vd", "s", "t", "ut"})
_STRING_LABELS = ("bn", "bu", "n", "u", "vs", "vd")
_NUMBER_LABELS = ("bt", "bv", "bs", "v", "s", "t", "ut")
_VALUE_LABELS = ("v", "vs", "vb", "vd")


class SenmlOptions(DecoderOptions):
    """Options of the `senml` decoder.

    The payload is a SenML pack in JSON: an array of records. Base name, base
    time, base unit, base value and base sum are carried forward and applied
    as RFC 8428 resolves records. Each record with a value or sum becomes one
    point with the measurement of the topic mapping and the tags `name` (the
    resolved name) and `unit`. Its field depends on the kind of value:
    `value` (float, `v` plus the base value), `string_value` (`vs`),
    `boolean_value` (`vb`) or `data_value` (`vd`, kept as its base64url
    text). A sum (`s` plus the base sum) is the field `sum`. A resolved time
    of 2**28 s or more is absolute, and a smaller one, including none at all,
    is that many seconds from the arrival time. Times are converted to
    nanoseconds exactly, rounded half to even. A record with only base
    fields sets them and writes nothing.

    Dead letters: a pack that is not an array of objects (`senml_not_array`),
    a field of the wrong JSON type (`senml_invalid_field`), an invalid
    resolved name (`senml_invalid_name`), a record with no value and no sum
    (`senml_no_value`) or with two values (`senml_multiple_values`), a
    version above 10 or an unknown label ending in `_`, which RFC 8428 makes
    mandatory to understand (`senml_unsupported`).
    """

    name_tag: str = Field(
        "name", min_length=1, description="Tag of the resolved record name."
    )
    unit_tag: str = Field("unit", min_length=1, description="Tag of the resolved unit.")


@dataclass(slots=True)
class _Base:
    name: str = ""
    time: Decimal | int = 0
    unit: str | None = None
    value: Decimal | int | None = None
    sum: Decimal | int | None = None


@register("senml", SenmlOptions, "SenML (RFC 8428) packs in JSON; one point per record")
class SenmlDecoder:
    """Decodes a SenML JSON pack into one point per record."""

    def __init__(self, options: SenmlOptions) -> None:
        self.options = options

    def decode(self, payload: bytes, context: DecodeContext) -> list[Point]:
        pack = load_json_exact(payload)
        if not isinstance(pack, list):
            raise DecodeError(
                "senml_not_array",
                "a SenML pack is a JSON array of records, not a "
                f"{type(pack).__name__}; send [{{...}}, ...]",
            )
        base = _Base()
        points: list[Point] = []
        for index, record in enumerate(pack):
            where = f"record {index}"
            if not isinstance(record, dict):
                raise DecodeError("senml_not_array", f"{where} is not a JSON object")
            _check_labels(record, where)
            _update_base(base, record, where)
            if not any(label in _REGULAR_LABELS for label in record):
                continue
            points.append(self._point(record, base, context, where))
        if not points:
            raise DecodeError(
                "senml_no_value", "the pack contains no record with a value or sum"
            )
        return points

    def _point(
        self, record: dict[str, Any], base: _Base, context: DecodeContext, where: str
    ) -> Point:
        name = base.name + record.get("n", "")
        if not _NAME.fullmatch(name):
            raise DecodeError(
                "senml_invalid_name",
                f"{where}: the resolved name {name!r} must start with a letter or "
                "digit and hold only letters, digits and - : . / _",
            )
        tags = dict(context.tags)
        tags[self.options.name_tag] = name
        unit = record.get("u", base.unit)
        if unit:
            tags[self.options.unit_tag] = unit
        fields = _fields(record, base, context, where)
        return Point(
            context.measurement, tags, fields, _time_ns(record, base, context, where)
        )


def _check_labels(record: dict[str, Any], where: str) -> None:
    for label in record:
        if label.endswith("_"):
            raise DecodeError(
                "senml_unsupported",
                f"{where}: the label {label!r} must be understood (it ends in _) "
                "and this decoder does not know it",
            )
    for label in _STRING_LABELS:
        if label in record and not isinstance(record[label], str):
            raise _invalid(record, label, "a string", where)
    for label in _NUMBER_LABELS:
        value = record.get(label)
        if label in record and (
            isinstance(value, bool) or not isinstance(value, int | float | Decimal)
        ):
            raise _invalid(record, label, "a number", where)
    if "vb" in record and not isinstance(record["vb"], bool):
        raise _invalid(record, "vb", "true or false", where)
    if "bver" in record:
        version = record["bver"]
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise _invalid(record, "bver", "a positive integer", where)
        if version > SUPPORTED_VERSION:
            raise DecodeError(
                "senml_unsupported",
                f"{where}: SenML version {version} is newer than the supported "
                f"version {SUPPORTED_VERSION}",
            )


def _invalid(
    record: dict[str, Any], label: str, expected: str, where: str
) -> DecodeError:
    return DecodeError(
        "senml_invalid_field",
        f"{where}: {label!r} is {record[label]!r} but must be {expected}",
    )


def _update_base(base: _Base, record: dict[str, Any], where: str) -> None:
    if "bn" in record:
        base.name = record["bn"]
    if "bt" in record:
        base.time = _finite(record["bt"], "bt", where)
    if "bu" in record:
        base.unit = record["bu"]
    if "bv" in record:
        base.value = _finite(record["bv"], "bv", where)
    if "bs" in record:
        base.sum = _finite(record["bs"], "bs", where)


def _finite(value: Any, label: str, where: str) -> Decimal | int:
    if isinstance(value, float):
        raise DecodeError(
            "senml_invalid_field", f"{where}: {label!r} is {value}, not a finite number"
        )
    assert isinstance(value, int | Decimal)
    return value


def _add(left: Decimal | int | None, right: Any) -> Any:
    if left is None:
        return right
    if isinstance(right, float):  # NaN or an infinity, dropped by the pipeline
        return right
    with localcontext(prec=60):
        return left + right


def _fields(
    record: dict[str, Any], base: _Base, context: DecodeContext, where: str
) -> dict[str, FieldValue]:
    present = [label for label in _VALUE_LABELS if label in record]
    if len(present) > 1:
        raise DecodeError(
            "senml_multiple_values",
            f"{where} has {', '.join(present)}; a record carries one value",
        )
    fields: dict[str, FieldValue] = {}
    if present == ["v"] or (not present and base.value is not None):
        fields["value"] = _to_float(
            _add(base.value, record.get("v", 0)), context, where
        )
    elif present == ["vs"]:
        fields["string_value"] = record["vs"]
    elif present == ["vb"]:
        fields["boolean_value"] = record["vb"]
    elif present == ["vd"]:
        _check_base64url(record["vd"], where)
        fields["data_value"] = record["vd"]
    if "s" in record or base.sum is not None:
        fields["sum"] = _to_float(_add(base.sum, record.get("s", 0)), context, where)
    if not fields:
        raise DecodeError(
            "senml_no_value",
            f"{where} has no value (v, vs, vb, vd) and no sum (s)",
        )
    return fields


def _to_float(
    value: Decimal | int | float, context: DecodeContext, where: str
) -> float:
    if isinstance(value, float):  # NaN or an infinity, dropped by the pipeline
        return value
    if isinstance(value, int):
        # Counts an integer beyond 2**53 that the float rounds.
        return float_from_int(value, where, context)
    try:
        number = float(value)
    except OverflowError:
        number = float("inf")
    if abs(number) == float("inf"):
        raise DecodeError(
            "float_out_of_range", f"{where}: the value {value} is beyond a 64-bit float"
        )
    return number


def _check_base64url(text: str, where: str) -> None:
    try:
        base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError(
            "senml_invalid_field",
            f"{where}: 'vd' is {text[:40]!r}, not base64url data",
        ) from None


def _time_ns(
    record: dict[str, Any], base: _Base, context: DecodeContext, where: str
) -> int:
    offset = _finite(record.get("t", 0), "t", where)
    with localcontext(prec=60):
        resolved = base.time + offset
    if resolved >= RELATIVE_LIMIT:
        return numeric_to_ns(resolved, "s", f"{where}: time")
    relative_ns = scale_ns(resolved, "s")
    time_ns = None if relative_ns is None else context.received_ns + relative_ns
    if time_ns is None or not INT64_MIN <= time_ns <= INT64_MAX:
        raise DecodeError(
            "timestamp_out_of_range",
            f"{where}: the relative time {resolved} s leaves the range of timestamps",
        )
    return time_ns

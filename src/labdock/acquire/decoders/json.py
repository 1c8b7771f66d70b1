"""The `json` decoder: JSON objects whose values become fields."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from pydantic import Field, field_validator

from labdock.acquire.decoders import (
    RESERVED_KEY,
    DecodeContext,
    DecodeError,
    DecoderOptions,
    register,
)
from labdock.acquire.decoders._fields import (
    RENAME_FIX,
    ArrayPolicy,
    FieldRules,
    JsonPath,
    StringPolicy,
    check_reserved_key,
    collect_fields,
    lookup,
    remove,
    resolve,
    tag_text,
)
from labdock.acquire.decoders._text import load_json, load_json_exact
from labdock.acquire.decoders._timestamps import TimestampOptions, TimestampReader
from labdock.acquire.decoders._values import FieldType, NumberType
from labdock.acquire.points import (
    INT64_MAX,
    INT64_MIN,
    EncodeError,
    Point,
    field_key,
    format_float,
)


class JsonOptions(DecoderOptions):
    """Options of the `json` decoder.

    Every key of the object becomes a field. Nested objects are flattened by
    joining their keys with `separator` (`{"a": {"b": 1}}` gives `a_b`), and
    arrays by index (`key_0`, `key_1`). Options name values by their dotted
    path in the payload (`a.b`, `values.0`), never by the field name.

    Types of undeclared values: a number is a float field (`number_type:
    float`), so that 22 and 22.5 never become an integer and a float field of
    one name; with `number_type: auto` an integer stays an exact integer. A
    float holds integers exactly only up to 2**53 in magnitude, so a larger
    integer in a float field is rounded and counted as `integer_rounded` in
    the dropped values; `number_type: auto` or a declared `int` keeps it exact.
    true/false are boolean fields, strings are string fields (`strings:
    keep`) or left out and counted as `ignored_string` (`strings: ignore`).
    JSON null is left out and counted as `null`. NaN and Infinity literals are
    read, and the pipeline drops and counts them.

    Declared `types` convert as follows: float takes numbers and numeric
    strings ("100.00"); int and uint take integers, floats without a fraction
    and integer strings, and reject a fraction or a value out of the 64-bit
    range; bool takes true/false, 0/1 and the strings true/false, 1/0,
    on/off, yes/no in any case; string takes any value as its JSON text.
    Any other combination is a dead letter naming the value.
    """

    fields: list[str] | None = Field(
        None,
        description=(
            "Paths of the values to keep as fields (with everything below them); "
            "None keeps all."
        ),
        examples=[["temperature", "sensor.humidity"]],
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="Paths of values to leave out (with everything below them).",
    )
    tags: list[str] = Field(
        default_factory=list,
        description=(
            "Paths of values that become tags instead of fields. A tag of the "
            "same name from the topic template or the mapping wins, because the "
            "broker's access rules protect topics, not payloads; a payload "
            "value that differs is counted as tag_overridden."
        ),
        examples=[["sensor_id"]],
    )
    rename: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "New names by path, for fields and tags; a renamed object renames "
            "the fields below it (`{sensor: s}` turns `sensor.t` into `s_t`)."
        ),
        examples=[{"temp": "temperature"}],
    )
    types: dict[str, FieldType] = Field(
        default_factory=dict,
        description=(
            "Declared field types by path: float, int, uint, bool or string. A "
            "type declared on an object or array applies to every value below it."
        ),
        examples=[{"battery": "float", "count": "int"}],
    )
    number_type: NumberType = Field(
        "float",
        description=(
            "Type of an undeclared number: float, or auto to keep integers as "
            "exact integers (signed 64-bit, unsigned above that). A float rounds "
            "integers beyond 2**53 (such as 64-bit counters and ids), counted as "
            "integer_rounded; use auto or declare them int to keep them exact."
        ),
    )
    strings: StringPolicy = Field(
        "keep",
        description=(
            "Undeclared strings: keep them as string fields, or ignore them "
            "(counted as ignored_string in the dropped values)."
        ),
    )
    separator: str = Field(
        "_",
        min_length=1,
        description="Joins the keys of nested objects in a field name.",
    )
    arrays: ArrayPolicy = Field(
        "index",
        description=(
            "Arrays of values: index them as fields key_0, key_1, ..., or ignore "
            "them (counted as ignored_array)."
        ),
    )
    records: str | None = Field(
        None,
        description=(
            "Path of an array of reading objects, each of which becomes one point; "
            "'' when the payload itself is that array. The other values of the "
            "payload are added to each record, and the record's own keys win."
        ),
        examples=["readings"],
    )
    timestamp: TimestampOptions | None = Field(
        None,
        description="The device time of each point; None stamps the arrival time.",
    )
    measurement: str | None = Field(
        None,
        description=(
            "Path of a string value that names the measurement; when it is "
            "missing the measurement from the topic mapping is used."
        ),
    )

    @field_validator("rename")
    @classmethod
    def _check_rename(cls, value: dict[str, str]) -> dict[str, str]:
        empty = [path for path, name in value.items() if not name]
        if empty:
            raise ValueError(f"rename gives an empty name to {', '.join(empty)}")
        return value


@register(
    "json", JsonOptions, "JSON objects; keys become fields, nested keys are joined"
)
class JsonDecoder:
    """Decodes a JSON object, or an array of records, into points."""

    def __init__(self, options: JsonOptions) -> None:
        self.options = options
        self.rules = FieldRules(
            separator=options.separator,
            number_type=options.number_type,
            strings=options.strings,
            arrays=options.arrays,
            types=options.types,
            rename=options.rename,
            include=None if options.fields is None else tuple(options.fields),
            exclude=tuple(options.exclude),
            reserved_key_fix=RENAME_FIX,
        )
        self.timestamp = (
            None if options.timestamp is None else TimestampReader(options.timestamp)
        )
        # Field sets by key order; see `flat_fields`.
        self._plans: dict[tuple[str, ...], tuple[tuple[str, str], ...] | None] = {}
        self._integer_suffix = "i" if options.number_type == "auto" else None
        # Float texts by value: readings repeat, and formatting a float is
        # the costliest step of the fast path.
        self._floats: dict[float, str] = {}
        self.flat_fields: Callable[[bytes], str | None] | None = (
            self._flat_fields if _plain(options) else None
        )

    def _flat_fields(self, payload: bytes) -> str | None:
        """Return the line-protocol field set of a flat JSON object, or None.

        This is the common case made fast: an object of numbers, booleans
        and plain strings with no option that renames, filters, types or
        times them. It gives the same fields as `decode` followed by the
        encoder. Anything else returns None, and the message takes the full
        path, which also names what is wrong with a bad payload.
        """
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        if type(document) is not dict or not document:
            return None
        keys = tuple(document)
        try:
            plan = self._plans[keys]
        except KeyError:
            plan = self._plan(keys)
        if plan is None:
            return None
        parts = []
        floats = self._floats
        integer_suffix = self._integer_suffix
        for key, head in plan:
            value = document[key]
            kind = type(value)
            if kind is float:
                text = floats.get(value)
                if text is None:
                    if not -_EXACT_FLOAT_LIMIT < value < _EXACT_FLOAT_LIMIT:
                        return None
                    text = format_float(value)
                    if value:  # 0.0 and -0.0 are equal keys with two texts
                        if len(floats) >= _FLOAT_CACHE_SIZE:
                            floats.clear()
                        floats[value] = text
                parts.append(head + text)
            elif kind is int:
                if integer_suffix is not None:
                    if not INT64_MIN <= value <= INT64_MAX:
                        return None
                    parts.append(f"{head}{value}i")
                elif -1_000_000 < value < 1_000_000:
                    parts.append(f"{head}{value}")
                elif -_EXACT_INT_LIMIT <= value <= _EXACT_INT_LIMIT:
                    parts.append(head + _large_int_as_float(value))
                else:
                    return None
            elif kind is bool:
                parts.append(head + ("true" if value else "false"))
            elif kind is str:
                if '"' in value or "\\" in value or not value.isascii():
                    return None
                parts.append(f'{head}"{value}"')
            else:
                return None
        return ",".join(parts)

    def _plan(self, keys: tuple[str, ...]) -> tuple[tuple[str, str], ...] | None:
        """Return (key, escaped key and '=') in field order, or None when a
        key needs the full path (an empty, reserved or unencodable name)."""
        plan: tuple[tuple[str, str], ...] | None
        try:
            plan = tuple(
                (key, field_key(key) + "=")
                for key in sorted(keys)
                if key != RESERVED_KEY
            )
        except EncodeError:
            plan = None
        if plan is not None and len(plan) != len(keys):
            plan = None
        if len(self._plans) >= _PLAN_CACHE_SIZE:
            self._plans.clear()
        self._plans[keys] = plan
        return plan

    def decode(self, payload: bytes, context: DecodeContext) -> list[Point]:
        document = load_json(payload)
        exact_cache: list[Any] = []

        def exact_document() -> Any:
            if not exact_cache:
                exact_cache.append(load_json_exact(payload))
            return exact_cache[0]

        if self.options.records is None:
            if not isinstance(document, dict):
                raise _not_object(document)
            point = self._point(document, context, exact_document)
            if not point.fields:
                raise _no_fields(context)
            return [point]
        return self._records(document, context, exact_document)

    def _records(
        self, document: Any, context: DecodeContext, exact_document: Callable[[], Any]
    ) -> list[Point]:
        records_path = self.options.records or ""
        records, record_path = self._find_records(document, records_path)
        points = []
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                raise DecodeError(
                    "record_not_object",
                    f"record {index} of {records_path or 'the payload'!r} is a "
                    f"{_json_kind(record)}, not an object of readings",
                )
            merged = _merge_record(document, record_path, record)

            def exact_record(index: int = index) -> Any:
                exact = exact_document()
                return _merge_record(
                    exact, record_path, lookup(exact, (*record_path, index))
                )

            point = self._point(merged, context, exact_record)
            if point.fields:
                points.append(point)
            else:
                context.count_dropped("empty_record")
        if not points:
            raise _no_fields(context)
        return points

    @staticmethod
    def _find_records(document: Any, records_path: str) -> tuple[list[Any], JsonPath]:
        path: JsonPath = ()
        if records_path == "":
            found, records = True, document
        else:
            if not isinstance(document, dict):
                raise _not_object(document)
            found, records, path = resolve(document, records_path)
        if not found:
            raise DecodeError(
                "records_missing",
                f"the payload has no {records_path!r} array of records; fix the "
                "records path",
            )
        if not isinstance(records, list):
            raise DecodeError(
                "records_not_array",
                f"{records_path or 'the payload'!r} is a {_json_kind(records)}, "
                "not an array of records",
            )
        return records, path

    def _point(
        self,
        document: dict[str, Any],
        context: DecodeContext,
        exact_document: Callable[[], Any],
    ) -> Point:
        options = self.options
        skip: list[str] = []
        measurement = context.measurement
        if options.measurement is not None:
            skip.append(options.measurement)
            measurement = _measurement(document, options.measurement) or measurement
        tags = dict(context.tags)
        for tag_path in options.tags:
            skip.append(tag_path)
            found, value, path = resolve(document, tag_path)
            text = tag_text(value, f"tag {tag_path!r}") if found else None
            if text is None:
                continue
            name = self.rules.name(path)
            check_reserved_key(name, "tag", tag_path, RENAME_FIX)
            topic_value = context.tags.get(name)
            if topic_value is None:
                tags[name] = text
            elif topic_value != text:
                context.count_dropped("tag_overridden")
        time_ns = None
        if options.timestamp is not None and self.timestamp is not None:
            skip.append(options.timestamp.path)
            time_ns = self._time_ns(document, context, exact_document)
        fields = collect_fields(
            document, self.rules, context, skip=skip, exact=exact_document
        )
        return Point(measurement, tags, fields, time_ns)

    def _time_ns(
        self,
        document: dict[str, Any],
        context: DecodeContext,
        exact_document: Callable[[], Any],
    ) -> int | None:
        assert self.options.timestamp is not None and self.timestamp is not None
        path_text = self.options.timestamp.path
        found, value, path = resolve(document, path_text)
        if not found or value is None:
            if self.options.timestamp.required:
                raise DecodeError(
                    "timestamp_missing",
                    f"the payload has no timestamp at {path_text!r}; fix the path, "
                    "or set timestamp.required to false to use the arrival time",
                )
            return None
        if isinstance(value, float):
            value = lookup(exact_document(), path)
        return self.timestamp.to_ns(value, f"timestamp {path_text!r}", context)


# Payload shapes whose field plan is kept; the cache starts over when full.
_PLAN_CACHE_SIZE = 1024
_FLOAT_CACHE_SIZE = 16_384
# A float at or beyond 2**63 may be an integer literal too large for 64 bits,
# which the full path distinguishes; an integer beyond 2**53 loses digits as a
# float, which the full path counts.
_EXACT_FLOAT_LIMIT = 2.0**63
_EXACT_INT_LIMIT = 2**53


def _large_int_as_float(value: int) -> str:
    """Return `format_float(float(value))` for 1e6 <= |value| <= 2**53, faster.

    Such an integer is exact as a float, and its shortest decimal form is
    its own digits, so the exponent form comes from the digits directly.
    """
    digits = str(value)
    sign = ""
    if digits[0] == "-":
        sign, digits = "-", digits[1:]
    significant = digits.rstrip("0")
    mantissa = (
        significant[0] + "." + significant[1:] if len(significant) > 1 else significant
    )
    return f"{sign}{mantissa}e+{len(digits) - 1:02d}"


def _plain(options: JsonOptions) -> bool:
    """Tell whether `options` keep every value of a flat object under its key."""
    return (
        options.fields is None
        and not options.exclude
        and not options.tags
        and not options.rename
        and not options.types
        and options.strings == "keep"
        and options.records is None
        and options.timestamp is None
        and options.measurement is None
    )


def _merge_record(
    document: Any, record_path: JsonPath, record: dict[str, Any]
) -> dict[str, Any]:
    if not record_path or not isinstance(document, dict):
        return dict(record)
    merged = remove(document, record_path)
    merged.update(record)
    return merged


def _measurement(document: dict[str, Any], path: str) -> str | None:
    found, value, _ = resolve(document, path)
    if not found or value is None:
        return None
    if not isinstance(value, str) or not value:
        raise DecodeError(
            "invalid_measurement",
            f"the measurement at {path!r} is {value!r}, not a non-empty string",
        )
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _not_object(document: Any) -> DecodeError:
    return DecodeError(
        "json_not_object",
        f"the payload is a JSON {_json_kind(document)}, not an object of readings; "
        "use the value decoder for bare values",
    )


def _no_fields(context: DecodeContext) -> DecodeError:
    left_out = ", ".join(
        f"{count} {reason}" for reason, count in context.dropped.items()
    )
    return DecodeError(
        "no_fields",
        "the payload holds no field value"
        + (f" (left out: {left_out})" if left_out else "")
        + "; check the fields, exclude and strings options",
    )

"""Nested JSON values to flat fields: paths, names, types and counted drops.

A path names a value in a JSON document by its keys (and array indexes)
joined with dots, as in `sensor.temp` or `values.0`. Options refer to values
by path; the field name joins the same keys with the configured separator
(`sensor_temp` with the default `_`), unless a rename gives another. A key
that itself contains a dot is matched whole when it exists.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from labdock.acquire.decoders import RESERVED_KEY, DecodeContext, DecodeError
from labdock.acquire.decoders._values import (
    FieldType,
    NumberType,
    coerce,
    to_string,
    undeclared_number,
)
from labdock.acquire.points import FieldValue

JsonPath = tuple[str | int, ...]
StringPolicy = Literal["keep", "ignore"]
ArrayPolicy = Literal["index", "ignore"]

RENAME_FIX = "give it another name with the rename option ({path}: new_name)"
EXCLUDE_FIX = "leave it out with the exclude option or rename the key on the device"
DEVICE_FIX = "rename the key on the device"

# Above this magnitude orjson returns a float for an integer literal that
# doesn't fit 64 bits, so the exact document shows which one the device sent.
_FLOAT_FROM_BIG_INT = 2.0**63


def dotted(path: JsonPath) -> str:
    """Return the dotted text of a path."""
    return ".".join(str(part) for part in path)


def resolve(node: Any, path: str) -> tuple[bool, Any, JsonPath]:
    """Find the value at the dotted `path`: (found, value, the keys taken)."""
    return _resolve(node, path.split(".") if path else [])


def _resolve(node: Any, segments: list[str]) -> tuple[bool, Any, JsonPath]:
    if not segments:
        return True, node, ()
    if isinstance(node, dict):
        # Longest key first, so that a key containing dots is matched whole.
        for end in range(len(segments), 0, -1):
            key = ".".join(segments[:end])
            if key in node:
                found, value, rest = _resolve(node[key], segments[end:])
                if found:
                    return True, value, (key, *rest)
        return False, None, ()
    if isinstance(node, list) and segments[0].isdigit():
        index = int(segments[0])
        if index < len(node):
            found, value, rest = _resolve(node[index], segments[1:])
            if found:
                return True, value, (index, *rest)
    return False, None, ()


def lookup(node: Any, path: JsonPath) -> Any:
    """Return the value at a path of keys and indexes that is known to exist."""
    for part in path:
        node = node[part]
    return node


def remove(document: dict[str, Any], path: JsonPath) -> dict[str, Any]:
    """Return a copy of `document` without the value at `path` (keys only)."""
    if not path:
        return {}
    copy = dict(document)
    head = path[0]
    if len(path) == 1:
        copy.pop(str(head), None)
    elif isinstance(copy.get(str(head)), dict):
        copy[str(head)] = remove(copy[str(head)], path[1:])
    return copy


def matches(key: str, paths: Collection[str]) -> bool:
    """Tell whether the dotted `key` is one of `paths` or lies below one."""
    return any(key == path or key.startswith(path + ".") for path in paths)


def _ancestors(path: JsonPath) -> list[tuple[int, str]]:
    """Return (length, dotted text) of `path` and its ancestors, longest first."""
    return [(length, dotted(path[:length])) for length in range(len(path), 0, -1)]


def check_reserved_key(name: str, kind: str, path: str, fix: str) -> None:
    """Raise `reserved_key` when the field or tag `name` is InfluxDB's `time`.

    `fix` is the remedy that the message names, with `{path}` replaced by
    `path`.
    """
    if name == RESERVED_KEY:
        raise DecodeError(
            "reserved_key",
            f"the value at {path!r} becomes the {kind} key {RESERVED_KEY!r}, which "
            f"InfluxDB can't store; {fix.replace('{path}', path)}",
        )


def tag_text(value: Any, where: str) -> str | None:
    """Return the tag value for a decoded value, None for JSON null."""
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise DecodeError(
            "tag_not_scalar",
            f"{where}: a tag needs a string, number or boolean, not a JSON "
            f"{'object' if isinstance(value, dict) else 'array'}; point the tag at "
            "a value inside it",
        )
    if isinstance(value, Decimal):
        return str(value)
    return to_string(value)


@dataclass(frozen=True, slots=True)
class FieldRules:
    """Naming, typing and filtering rules that `collect_fields` applies."""

    separator: str = "_"
    number_type: NumberType = "float"
    strings: StringPolicy = "keep"
    arrays: ArrayPolicy = "index"
    types: Mapping[str, FieldType] = field(default_factory=dict)
    rename: Mapping[str, str] = field(default_factory=dict)
    include: Collection[str] | None = None
    exclude: Collection[str] = ()
    on_off_bool: bool = False
    # How to fix a value named `time`, for the `reserved_key` error.
    reserved_key_fix: str = DEVICE_FIX

    def name(self, path: JsonPath) -> str:
        """Return the field or tag name of the value at `path`."""
        if self.rename:
            for length, text in _ancestors(path):
                renamed = self.rename.get(text)
                if renamed is not None:
                    rest = [str(part) for part in path[length:]]
                    return self.separator.join([renamed, *rest])
        if len(path) == 1:
            return str(path[0])
        return self.separator.join(str(part) for part in path)

    def declared_type(self, path: JsonPath) -> FieldType | None:
        """Return the type declared for `path` or its nearest ancestor."""
        if self.types:
            if len(path) == 1:
                return self.types.get(str(path[0]))
            for _, text in _ancestors(path):
                declared = self.types.get(text)
                if declared is not None:
                    return declared
        return None


class _PathSet:
    """Dotted paths, matched with one set lookup and one C-level prefix test."""

    __slots__ = ("exact", "prefixes")

    def __init__(self, paths: Collection[str]) -> None:
        self.exact = frozenset(paths)
        self.prefixes = tuple(path + "." for path in self.exact)

    def __bool__(self) -> bool:
        return bool(self.exact)

    def covers(self, key: str) -> bool:
        return key in self.exact or key.startswith(self.prefixes)


def collect_fields(
    document: Mapping[str, Any],
    rules: FieldRules,
    context: DecodeContext,
    *,
    skip: Collection[str] = (),
    prefix: JsonPath = (),
    exact: Callable[[], Any] | None = None,
    into: dict[str, FieldValue] | None = None,
) -> dict[str, FieldValue]:
    """Flatten `document` into fields named by `rules`.

    `skip` contains dotted paths that are used elsewhere (tags, the timestamp);
    `prefix` is prepended to every path; `exact` returns `document` parsed
    with exact numbers (see `load_json_exact`), needed only to tell an integer
    beyond 64 bits from a float of the same magnitude. Nulls, ignored
    strings and ignored arrays are counted on `context`. Two values that end
    up with one name are a DecodeError, never a silent overwrite.
    """
    fields: dict[str, FieldValue] = {} if into is None else into
    sources: dict[str, str] = {}
    skipped = _PathSet([*skip, *rules.exclude])
    included = None if rules.include is None else _PathSet(rules.include)
    # The dotted key of each value is built along with its path, since it
    # is needed for every value on this hot path.
    base = dotted(prefix)
    stack: list[tuple[JsonPath, str, Any]] = [
        ((*prefix, key), f"{base}.{key}" if base else str(key), value)
        for key, value in reversed(list(document.items()))
    ]
    while stack:
        path, key, value = stack.pop()
        if skipped and skipped.covers(key):
            continue
        if isinstance(value, dict):
            stack.extend(
                ((*path, k), f"{key}.{k}", v) for k, v in reversed(value.items())
            )
            continue
        if isinstance(value, list):
            if rules.arrays == "ignore":
                context.count_dropped("ignored_array")
                continue
            stack.extend(
                ((*path, i), f"{key}.{i}", v)
                for i, v in reversed(list(enumerate(value)))
            )
            continue
        if included is not None and not included.covers(key):
            continue
        if value is None:
            context.count_dropped("null")
            continue
        typed = _field_value(path, len(prefix), key, value, rules, context, exact)
        if typed is None:
            continue
        name = rules.name(path)
        if not name:
            raise DecodeError(
                "invalid_field_name",
                f"the value at {key!r} has an empty key; give it a name with "
                "the rename option",
            )
        check_reserved_key(name, "field", key, rules.reserved_key_fix)
        if name in fields:
            earlier = sources.get(name, name)
            raise DecodeError(
                "duplicate_field",
                f"the values at {earlier!r} and {key!r} both become field {name!r}; "
                "rename one of them or choose another separator",
            )
        fields[name] = typed
        sources[name] = key
    return fields


def _field_value(
    path: JsonPath,
    prefix_length: int,
    key: str,
    value: Any,
    rules: FieldRules,
    context: DecodeContext,
    exact: Callable[[], Any] | None,
) -> FieldValue | None:
    where = f"field {key!r}"
    if isinstance(value, float) and abs(value) >= _FLOAT_FROM_BIG_INT and exact:
        # orjson may have read an integer literal beyond 64 bits as this
        # float; the literal decides between a range error and a float.
        value = lookup(exact(), path[prefix_length:])
    declared = rules.declared_type(path)
    if declared is not None:
        return coerce(value, declared, where, context)
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if rules.on_off_bool and value in ("ON", "OFF"):
            return value == "ON"
        if rules.strings == "keep":
            return value
        context.count_dropped("ignored_string")
        return None
    if isinstance(value, int | float | Decimal):
        return undeclared_number(value, rules.number_type, where, context)
    raise DecodeError(
        "type_mismatch", f"{where}: unsupported value {type(value).__name__}"
    )

"""Payload decoders, registered by name.

A decoder turns one MQTT payload into points. The pipeline has already
matched the topic against its mapping, so a decoder receives the measurement
and tags taken from the topic in a `DecodeContext` and adds its own fields,
tags and device time. A decoder raises only `DecodeError`, which
the pipeline turns into a dead letter with its reason (any other exception
becomes a `decoder_error` dead letter, so a decoder bug never stops the service).

Each decoder module registers itself with `register`, naming a pydantic model
for its options, so that the configuration schema, its validation and the
reference docs come from one place.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from labdock.acquire.points import Point

if TYPE_CHECKING:
    from labdock.acquire.decoders.sparkplug import RebirthRequest

# The key of the time column in InfluxQL, which InfluxDB 1.6 (tried with
# its /write endpoint) rejects as a tag key and silently drops as a field key.
RESERVED_KEY = "time"


class DecodeError(Exception):
    """A payload that can't be turned into points.

    `reason` is a short stable code (such as `json_decode_error` or
    `invalid_utf8`) used as a metric label and dead-letter reason; `detail`
    states what was wrong with which value, for a person.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class DecodeContext:
    """The facts the pipeline has about a message before its payload is read.

    `measurement` and `tags` come from the topic template and the mapping;
    `received_ns` is the arrival time in nanoseconds since the epoch. A
    decoder leaves `Point.time_ns` as None to mean "the arrival time".

    `dropped` counts, by reason, values and messages that the decoder left
    out on purpose (an undeclared string under `strings: ignore`, a JSON
    null, a command topic), so that nothing vanishes uncounted. The pipeline
    adds these counts to its outcome. A decoder that returns no point and
    counts a reason has ignored the message on purpose.

    `rebirth_request` is set by the `sparkplug_b` decoder when the edge node
    should publish its births again. The pipeline queues it, and the service
    publishes it even when the message becomes a dead letter.
    """

    topic: str
    measurement: str
    tags: Mapping[str, str] = field(default_factory=dict)
    received_ns: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    rebirth_request: RebirthRequest | None = None

    def count_dropped(self, reason: str, count: int = 1) -> None:
        """Add `count` to the values or messages left out for `reason`."""
        self.dropped[reason] = self.dropped.get(reason, 0) + count


class Decoder(Protocol):
    def decode(self, payload: bytes, context: DecodeContext) -> list[Point]:
        """Decode one payload; raise DecodeError when it can't be stored."""
        ...


class DecoderOptions(BaseModel):
    """Base of every decoder's options: unknown keys are an error.

    `create_decoder` rewrites that error to list the valid option names.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


OptionsT = TypeVar("OptionsT", bound=DecoderOptions)


@dataclass(frozen=True, slots=True)
class DecoderSpec:
    """A registered decoder: its options model and how to build it."""

    name: str
    options_model: type[DecoderOptions]
    factory: Callable[[Any], Decoder]
    summary: str


_REGISTRY: dict[str, DecoderSpec] = {}


def register(
    name: str, options_model: type[OptionsT], summary: str
) -> Callable[[Callable[[OptionsT], Decoder]], Callable[[OptionsT], Decoder]]:
    """Register a decoder factory (usually the class) under `name`."""

    def wrap(factory: Callable[[OptionsT], Decoder]) -> Callable[[OptionsT], Decoder]:
        if name in _REGISTRY:
            raise ValueError(f"decoder {name!r} is registered twice")
        _REGISTRY[name] = DecoderSpec(name, options_model, factory, summary)
        return factory

    return wrap


_builtins_loaded = False


def _load_builtin_decoders() -> None:
    global _builtins_loaded
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    # A flag, not an empty registry, shows whether they are loaded: importing
    # one decoder module directly registers that decoder alone.
    _builtins_loaded = True


def registry() -> Mapping[str, DecoderSpec]:
    """Return every registered decoder by name, loading the built-in ones."""
    if not _builtins_loaded:
        _load_builtin_decoders()
    return _REGISTRY


def create_decoder(name: str, options: Mapping[str, Any] | None = None) -> Decoder:
    """Build the decoder `name` with `options`.

    Raises KeyError for an unknown name and pydantic.ValidationError for
    invalid options. The error for an unknown option names the valid ones.
    The decoder returned raises `reserved_key` for a point with a field or
    tag key `time`.
    """
    spec = registry()[name]
    try:
        validated = spec.options_model.model_validate(dict(options or {}))
    except ValidationError as error:
        raise _with_valid_option_names(error, spec.options_model) from None
    return _ReservedKeyCheck(spec.factory(validated))


def topic_problem(decoder: Decoder, filter_levels: Sequence[str]) -> str | None:
    """Return why `decoder` can't work on a mapping whose MQTT topic filter
    has the levels `filter_levels` (placeholders turned into + and #), or None.

    A decoder that reads meaning from the topic, such as the zigbee2mqtt
    preset, defines `topic_problem` itself. The others accept any topic.
    """
    inner = decoder.decoder if isinstance(decoder, _ReservedKeyCheck) else decoder
    check: Callable[[Sequence[str]], str | None] | None = getattr(
        inner, "topic_problem", None
    )
    return None if check is None else check(filter_levels)


class _ReservedKeyCheck:
    """Rejects points with a field or tag key `time`, whatever decoder made them.

    The json and line decoders reject the key earlier with a fix specific to
    them. This catches the rest, such as an ESPHome entity or a topic level
    named time.
    """

    __slots__ = ("decoder", "flat_fields")

    def __init__(self, decoder: Decoder) -> None:
        self.decoder = decoder
        # The wrapped decoder's fast path, if any. It rejects a `time` key itself.
        self.flat_fields = getattr(decoder, "flat_fields", None)

    def decode(self, payload: bytes, context: DecodeContext) -> list[Point]:
        points = self.decoder.decode(payload, context)
        for point in points:
            if RESERVED_KEY in point.fields or RESERVED_KEY in point.tags:
                kind = "field" if RESERVED_KEY in point.fields else "tag"
                raise DecodeError(
                    "reserved_key",
                    f"a point of measurement {point.measurement!r} has the {kind} "
                    "key 'time', which InfluxDB can't store; rename it on the "
                    "device, with the decoder's rename option, or in the topic "
                    "template",
                )
        return points


def _with_valid_option_names(
    error: ValidationError, model: type[DecoderOptions]
) -> ValidationError:
    """Return `error` with each unknown-option error listing the valid names.

    Every error keeps its location and type. Its message is passed through a
    `{message}` template, so that braces in it are not read as placeholders.
    """
    details: list[InitErrorDetails] = []
    for item in error.errors():
        message = item["msg"]
        owner = _options_model_at(model, item["loc"][:-1])
        if item["type"] == "extra_forbidden" and owner is not None:
            message = (
                f"unknown option {item['loc'][-1]!r}; valid options are "
                + ", ".join(owner.model_fields)
            )
        details.append(
            {
                "type": PydanticCustomError(
                    item["type"], "{message}", {"message": message}
                ),
                "loc": item["loc"],
                "input": item["input"],
            }
        )
    return ValidationError.from_exception_data(error.title, details)


def _options_model_at(
    model: type[DecoderOptions], loc: tuple[int | str, ...]
) -> type[DecoderOptions] | None:
    """Return the options model at `loc` inside `model`, such as `timestamp`."""
    current = model
    for part in loc:
        if isinstance(part, int):  # an index into a list of option objects
            continue
        field_info = current.model_fields.get(part)
        found = None if field_info is None else _options_model_in(field_info.annotation)
        if found is None:
            return None
        current = found
    return current


def _options_model_in(annotation: Any) -> type[DecoderOptions] | None:
    if isinstance(annotation, type) and issubclass(annotation, DecoderOptions):
        return annotation
    for argument in get_args(annotation):
        found = _options_model_in(argument)
        if found is not None:
            return found
    return None

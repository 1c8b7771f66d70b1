"""The `value` decoder: a bare number, boolean or text as one field."""

from __future__ import annotations

from typing import Literal

import orjson
from pydantic import Field, field_validator, model_validator

from labdock.acquire.decoders import (
    RESERVED_KEY,
    DecodeContext,
    DecoderOptions,
    register,
)
from labdock.acquire.decoders._text import decode_utf8, require_payload
from labdock.acquire.decoders._values import (
    parse_decimal_text,
    to_bool,
    to_float,
    to_int,
)
from labdock.acquire.points import FieldValue, Point

ValueType = Literal["auto", "float", "int", "uint", "bool", "string"]

DEFAULT_TRUE = ["on", "true", "1", "yes", "open", "high"]
DEFAULT_FALSE = ["off", "false", "0", "no", "closed", "low"]


class ValueOptions(DecoderOptions):
    """Options of the `value` decoder.

    The payload is UTF-8 text, trimmed of white space; a JSON string
    (`"ON"`, with the quotes) is unquoted first. With `type: auto` a decimal
    number (or nan, inf) becomes a float field, a word from `true_values` or
    `false_values` a boolean field, and any other text a string field. Other
    types convert as the json decoder's declared types do, except that bool
    uses `true_values` and `false_values`.

    A float represents integers exactly only up to 2**53 in magnitude, so a larger
    integer read as a float field (`type: auto` or `float`) is rounded and
    counted as `integer_rounded` in the dropped values; `type: int` (or
    `uint`) keeps it exact.
    """

    field: str = Field("value", min_length=1, description="Name of the field.")
    type: ValueType = Field(
        "auto",
        description=(
            "Field type: auto (number, then boolean word, then string), float, "
            "int, uint, bool or string. auto and float make every number a "
            "float, which rounds integers beyond 2**53 (counted as "
            "integer_rounded); int or uint keeps them exact."
        ),
    )
    true_values: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TRUE),
        description="Words read as true, in any case.",
    )
    false_values: list[str] = Field(
        default_factory=lambda: list(DEFAULT_FALSE),
        description="Words read as false, in any case.",
    )

    @field_validator("field")
    @classmethod
    def _check_field(cls, value: str) -> str:
        if value == RESERVED_KEY:
            raise ValueError(
                f"the field name {RESERVED_KEY!r} is reserved by InfluxDB for the "
                "time column; choose another, such as value"
            )
        return value

    @model_validator(mode="after")
    def _check_words(self) -> ValueOptions:
        both = {w.lower() for w in self.true_values} & {
            w.lower() for w in self.false_values
        }
        if both:
            raise ValueError(
                f"{', '.join(sorted(both))} is in both true_values and false_values"
            )
        return self


def unquote(text: str) -> str:
    """Return the content of a JSON string literal, or `text` unchanged."""
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
        if isinstance(value, str):
            return value
    return text


class ValueParser:
    """Turns one bare value (text) into a typed field value."""

    def __init__(
        self,
        value_type: ValueType = "auto",
        true_values: list[str] | None = None,
        false_values: list[str] | None = None,
    ) -> None:
        self.type = value_type
        if true_values is None:
            true_values = DEFAULT_TRUE
        if false_values is None:
            false_values = DEFAULT_FALSE
        self.true_words = frozenset(word.lower() for word in true_values)
        self.false_words = frozenset(word.lower() for word in false_values)

    def parse(
        self, text: str, where: str, context: DecodeContext | None = None
    ) -> FieldValue:
        """Convert `text` to the configured type, or raise DecodeError.

        `context` counts an integer that a float field rounds.
        """
        if self.type == "float":
            return to_float(text, where, context)
        if self.type in ("int", "uint"):
            return to_int(text, where, unsigned=self.type == "uint")
        if self.type == "bool":
            return to_bool(text, where, self.true_words, self.false_words)
        if self.type == "string":
            return text
        if parse_decimal_text(text) is not None:
            return to_float(text, where, context)
        word = text.lower()
        if word in self.true_words:
            return True
        if word in self.false_words:
            return False
        return text


@register("value", ValueOptions, "A bare number, boolean word or text as one field")
class ValueDecoder:
    """Decodes a payload that is one plain value."""

    def __init__(self, options: ValueOptions) -> None:
        self.options = options
        self.parser = ValueParser(
            options.type, options.true_values, options.false_values
        )

    def decode(self, payload: bytes, context: DecodeContext) -> list[Point]:
        require_payload(payload)
        text = unquote(decode_utf8(payload).strip())
        value = self.parser.parse(text, f"field {self.options.field!r}", context)
        return [
            Point(context.measurement, dict(context.tags), {self.options.field: value})
        ]

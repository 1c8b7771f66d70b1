"""Field types and the conversion of decoded values to them.

Coercion of a declared type (the `types` option of the JSON decoder and its
presets), by the kind of value received:

- float: a number as a float; a decimal string ("100.00", "-1e3") as its
  number; true/false is a DecodeError.
- int: an integer, or a float or decimal string without a fraction; a
  fraction is a DecodeError, never a truncation; true/false is a DecodeError.
- uint: as int, from 0 to 2**64-1, written with the `u` suffix.
- bool: true/false; the numbers 0 and 1; the strings true/false, 1/0,
  on/off and yes/no in any case.
- string: any scalar as its JSON text ("21.5", "true").

An int outside the signed 64-bit range (unsigned for uint) is a DecodeError,
never a wrapped or rounded value. A float holds every integer up to 2**53 in
magnitude exactly; an integer beyond that which becomes a float field is
rounded to the nearest float, and counted as `integer_rounded` on the decode
context when one is given. An int field (or `number_type: auto`) keeps it
exact. NaN and infinities (the JSON literals, or
the strings "nan", "inf", "infinity") stay non-finite floats for every numeric
type, so the pipeline drops and counts them.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any, Literal

from labdock.acquire.decoders import DecodeContext, DecodeError
from labdock.acquire.points import FieldValue, UInt

FieldType = Literal["float", "int", "uint", "bool", "string"]
NumberType = Literal["float", "auto"]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
# Every integer of at most this magnitude is exact in a 64-bit float.
FLOAT_EXACT_INT_MAX = 2**53

_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NON_FINITE = {
    "nan": math.nan,
    "+nan": math.nan,
    "-nan": math.nan,
    "inf": math.inf,
    "+inf": math.inf,
    "infinity": math.inf,
    "+infinity": math.inf,
    "-inf": -math.inf,
    "-infinity": -math.inf,
}
TRUE_WORDS = frozenset({"true", "1", "on", "yes"})
FALSE_WORDS = frozenset({"false", "0", "off", "no"})


def describe(value: Any) -> str:
    """Return a short description of a decoded value for an error detail."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    kind = {bool: "boolean", int: "number", float: "number", str: "string"}.get(
        type(value), type(value).__name__
    )
    return f"{kind} {text}"


def parse_decimal_text(text: str) -> Decimal | float | None:
    """Parse a decimal number written as text.

    Return a finite `Decimal`, a non-finite float for the NaN and infinity
    words, or None when `text` is not a number. Python's own `float()` is not
    used because it also takes underscores ("1_000").
    """
    stripped = text.strip()
    word = _NON_FINITE.get(stripped.lower())
    if word is not None:
        return word
    if not _DECIMAL.fullmatch(stripped):
        return None
    return Decimal(stripped)


def float_from_int(
    value: int, where: str, context: DecodeContext | None = None
) -> float:
    """Convert an int to float, raising `float_out_of_range` when it overflows.

    An integer that the float doesn't hold exactly (beyond 2**53 in magnitude)
    is counted as `integer_rounded` on `context`.
    """
    try:
        number = float(value)
    except OverflowError:
        raise DecodeError(
            "float_out_of_range",
            f"{where}: the integer {str(value)[:30]}... is too large for a float",
        ) from None
    if context is not None and abs(value) > FLOAT_EXACT_INT_MAX and number != value:
        context.count_dropped("integer_rounded")
    return number


def _is_integer_literal(value: Decimal) -> bool:
    # Decimal keeps the exponent as written: "12" has exponent 0, while "12.0"
    # and "1.2e1" have others and are float literals, rounded like any float.
    return value.as_tuple().exponent == 0


def _decimal_to_float(
    value: Decimal, where: str, context: DecodeContext | None = None
) -> float:
    if context is not None and _is_integer_literal(value):
        return float_from_int(int(value), where, context)
    number = float(value)
    if math.isinf(number):
        raise DecodeError(
            "float_out_of_range",
            f"{where}: {value} is beyond the range of a 64-bit float",
        )
    return number


def _check_int_range(value: int, unsigned: bool, where: str) -> int:
    low, high = (0, UINT64_MAX) if unsigned else (INT64_MIN, INT64_MAX)
    if not low <= value <= high:
        kind = "unsigned 64-bit" if unsigned else "signed 64-bit"
        raise DecodeError(
            "int_out_of_range",
            f"{where}: {value} is outside the {kind} range {low}..{high}; "
            "declare the field as float",
        )
    return UInt(value) if unsigned else value


def _decimal_to_int(value: Decimal, unsigned: bool, where: str) -> int:
    if value.is_zero():
        return UInt(0) if unsigned else 0
    # Check the exponent first, so that "1e999999" never builds a huge int.
    if value.adjusted() > 20:
        return _check_int_range((1 if value > 0 else -1) * 10**21, unsigned, where)
    if value != value.to_integral_value():
        raise DecodeError(
            "fractional_int",
            f"{where}: {value} has a fraction but the field is declared "
            f"{'uint' if unsigned else 'int'}; declare it as float",
        )
    return _check_int_range(int(value), unsigned, where)


def to_float(value: Any, where: str, context: DecodeContext | None = None) -> float:
    """Convert a decoded value to a float field (see the module docstring).

    With `context`, an integer (or integer text such as "9007199254740993")
    that the float rounds is counted as `integer_rounded`.
    """
    if isinstance(value, bool):
        raise _mismatch(value, "float", where)
    if isinstance(value, int):
        return float_from_int(value, where, context)
    if isinstance(value, float):
        return value
    if isinstance(value, Decimal):
        return _decimal_to_float(value, where, context)
    if isinstance(value, str):
        parsed = parse_decimal_text(value)
        if parsed is None:
            raise DecodeError(
                "invalid_number",
                f"{where}: the string {value[:40]!r} is not a number but the "
                "field is declared float; fix the device or declare it string",
            )
        if isinstance(parsed, float):
            return parsed
        return _decimal_to_float(parsed, where, context)
    raise _mismatch(value, "float", where)


def to_int(value: Any, where: str, *, unsigned: bool = False) -> int | float:
    """Convert a decoded value to an int (or `UInt`) field.

    A non-finite float stays a float, so that the pipeline drops and counts it.
    """
    name = "uint" if unsigned else "int"
    if isinstance(value, bool):
        raise _mismatch(value, name, where)
    if isinstance(value, int):
        return _check_int_range(value, unsigned, where)
    if isinstance(value, float):
        if not math.isfinite(value):
            return value
        if not value.is_integer():
            raise DecodeError(
                "fractional_int",
                f"{where}: {value!r} has a fraction but the field is declared "
                f"{name}; declare it as float",
            )
        return _check_int_range(int(value), unsigned, where)
    if isinstance(value, Decimal):
        return _decimal_to_int(value, unsigned, where)
    if isinstance(value, str):
        parsed = parse_decimal_text(value)
        if parsed is None:
            raise DecodeError(
                "invalid_number",
                f"{where}: the string {value[:40]!r} is not a number but the "
                f"field is declared {name}; fix the device or declare it string",
            )
        if isinstance(parsed, float):
            return parsed
        return _decimal_to_int(parsed, unsigned, where)
    raise _mismatch(value, name, where)


def to_bool(
    value: Any,
    where: str,
    true_words: frozenset[str] = TRUE_WORDS,
    false_words: frozenset[str] = FALSE_WORDS,
) -> bool:
    """Convert a decoded value to a boolean field (see the module docstring)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in true_words:
            return True
        if word in false_words:
            return False
        raise DecodeError(
            "invalid_bool",
            f"{where}: the string {value[:40]!r} is not a boolean; use one of "
            f"{', '.join(sorted(true_words | false_words))}",
        )
    raise DecodeError(
        "invalid_bool",
        f"{where}: {describe(value)} is not a boolean; send true/false or 1/0",
    )


def to_string(value: Any) -> str:
    """Return the text of a scalar value, as JSON would write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        return repr(value)
    return str(value)


def coerce(
    value: Any,
    field_type: FieldType,
    where: str,
    context: DecodeContext | None = None,
) -> FieldValue:
    """Convert a decoded scalar to `field_type`, or raise DecodeError.

    `context` counts the integers that a float field rounds.
    """
    if field_type == "float":
        return to_float(value, where, context)
    if field_type == "int":
        return to_int(value, where)
    if field_type == "uint":
        return to_int(value, where, unsigned=True)
    if field_type == "bool":
        return to_bool(value, where)
    return to_string(value)


def undeclared_number(
    value: int | float | Decimal,
    number_type: NumberType,
    where: str,
    context: DecodeContext | None = None,
) -> float | int:
    """Type a number that no declaration covers.

    With `float` every number becomes a float, so that 22 and 22.5 land in one
    float field, and `context` counts each integer rounded on the way (beyond
    2**53) as `integer_rounded`. With `auto` an integer stays an exact int:
    signed 64-bit, or `UInt` between 2**63 and 2**64-1.
    """
    if isinstance(value, Decimal):
        value = _decimal_to_float(value, where)
    if isinstance(value, float):
        return value
    if number_type == "float":
        return float_from_int(value, where, context)
    if INT64_MIN <= value <= INT64_MAX:
        return value
    if 0 <= value <= UINT64_MAX:
        return UInt(value)
    raise DecodeError(
        "int_out_of_range",
        f"{where}: the integer {str(value)[:30]} is outside the 64-bit range; "
        "declare the field as float",
    )


def _mismatch(value: Any, field_type: str, where: str) -> DecodeError:
    return DecodeError(
        "type_mismatch",
        f"{where}: {describe(value)} cannot be a {field_type} field; fix the "
        "declared type or the device",
    )

"""InfluxDB line protocol: each line of the payload becomes one point.

The measurement, tags, fields and timestamp come from the line. The tags of
the topic template and the mapping are added to every point and win over a
tag of the same key in the line. The broker's access rules protect topics,
not payloads, so a device must not write under another device's tag. A line
without a timestamp gets the arrival time.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from labdock.acquire.decoders import (
    RESERVED_KEY,
    DecodeContext,
    DecodeError,
    DecoderOptions,
    register,
)
from labdock.acquire.decoders._timestamps import (
    UNIT_NAMES,
    UNIT_NS,
    fitting_unit,
    format_ns,
    plausible,
)
from labdock.acquire.lineprotocol import LineProtocolError, parse_line_protocol
from labdock.acquire.points import INT64_MAX, INT64_MIN, Point


class LineOptions(DecoderOptions):
    """Options of the `line` decoder.

    A tag in the line whose key the topic template or the mapping also sets
    is overwritten with the topic's value and counted as `tag_overridden` in
    the dropped values. A field or tag key `time`, which InfluxDB can't
    store, is a dead letter (`reserved_key`). A timestamp that is implausible in
    `precision` (before 1973-03-03 or after 2262-04-11) is a dead letter
    naming the unit it fits (`timestamp_unit_mismatch`), or
    `timestamp_out_of_range` when it fits none, unless `check_magnitude` is
    false.
    """

    precision: Literal["ns", "us", "ms", "s"] = Field(
        "ns",
        description=(
            "Unit of the timestamps in the payload: ns, us, ms or s since the "
            "Unix epoch."
        ),
    )
    check_magnitude: bool = Field(
        True,
        description=(
            "Reject a timestamp that is implausible in `precision` (before "
            "1973-03-03 or after 2262-04-11), naming the unit it fits; false "
            "writes it as it is."
        ),
    )


@register("line", LineOptions, "InfluxDB line protocol; one point per line")
class LineDecoder:
    def __init__(self, options: LineOptions) -> None:
        self.options = options

    def decode(self, payload: bytes, context: DecodeContext) -> list[Point]:
        """Parse the payload as line protocol and add the topic's tags.

        Raises DecodeError `invalid_utf8` for a payload that is not UTF-8,
        `line_protocol_error`, with the line and column, for invalid syntax,
        `reserved_key` for a key named `time`, and `timestamp_unit_mismatch`
        or `timestamp_out_of_range` for an implausible timestamp.
        """
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as error:
            line = payload.count(b"\n", 0, error.start) + 1
            raise DecodeError(
                "invalid_utf8",
                f"byte {error.start} (line {line}) of the payload is not valid "
                f"UTF-8: {error.reason}",
            ) from None
        # A byte order mark would otherwise become part of the first
        # measurement name.
        text = text.removeprefix("\ufeff")
        # Parsed as nanoseconds, so that each timestamp arrives as the integer
        # in the line and is scaled and checked here.
        try:
            points = parse_line_protocol(text, "ns")
        except LineProtocolError as error:
            raise DecodeError("line_protocol_error", str(error)) from None
        for number, point in enumerate(points, start=1):
            _check_reserved_keys(point, number)
            if point.time_ns is not None:
                point.time_ns = self._scale_time(point.time_ns, point, number)
            _apply_topic_tags(point, context)
        return points

    def _scale_time(self, raw: int, point: Point, number: int) -> int:
        precision = self.options.precision
        time_ns = raw * UNIT_NS[precision]
        where = f"the timestamp {raw} of point {number} ({point.measurement!r})"
        if self.options.check_magnitude and not plausible(time_ns):
            fitting = fitting_unit(raw)
            if fitting is None:
                raise DecodeError(
                    "timestamp_out_of_range",
                    f"{where} is not a plausible time in any unit (s, ms, us or "
                    "ns since 1970 for a date between 1973-03-03 and "
                    "2262-04-11); check the device clock, or set "
                    "check_magnitude: false to write it",
                )
            unit, fitting_ns = fitting
            raise DecodeError(
                "timestamp_unit_mismatch",
                f"{where} is implausible in {UNIT_NAMES[precision]} "
                f"({format_ns(time_ns)}); its magnitude fits {UNIT_NAMES[unit]} "
                f"({format_ns(fitting_ns)}): set the precision option to {unit}",
            )
        if not INT64_MIN <= time_ns <= INT64_MAX:
            raise DecodeError(
                "timestamp_out_of_range",
                f"{where} in {UNIT_NAMES[precision]} is outside the signed 64-bit "
                "range of nanoseconds (1677-09-21 to 2262-04-11); fix the "
                "precision option or the device clock",
            )
        return time_ns


def _check_reserved_keys(point: Point, number: int) -> None:
    if RESERVED_KEY in point.fields or RESERVED_KEY in point.tags:
        kind = "field" if RESERVED_KEY in point.fields else "tag"
        raise DecodeError(
            "reserved_key",
            f"point {number} ({point.measurement!r}) has a {kind} key "
            f"{RESERVED_KEY!r}, which InfluxDB can't store; rename the key on the "
            "device, because the line decoder has no rename option",
        )


def _apply_topic_tags(point: Point, context: DecodeContext) -> None:
    for key, value in context.tags.items():
        previous = point.tags.get(key)
        if previous is not None and previous != value:
            context.count_dropped("tag_overridden")
        point.tags[key] = value

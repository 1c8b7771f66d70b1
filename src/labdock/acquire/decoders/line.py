"""InfluxDB line protocol: each line of the payload becomes one point.

The measurement, tags, fields and timestamp come from the line. The tags of
the topic template and the mapping are added to every point, except where
the line sets the same tag key itself. A line without a timestamp gets the
arrival time.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from labdock.acquire.decoders import (
    DecodeContext,
    DecodeError,
    DecoderOptions,
    register,
)
from labdock.acquire.lineprotocol import LineProtocolError, parse_line_protocol
from labdock.acquire.points import Point


class LineOptions(DecoderOptions):
    precision: Literal["ns", "us", "ms", "s"] = Field(
        "ns",
        description=(
            "Unit of the timestamps in the payload: ns, us, ms or s since the "
            "Unix epoch."
        ),
    )


@register("line", LineOptions, "InfluxDB line protocol; one point per line")
class LineDecoder:
    def __init__(self, options: LineOptions) -> None:
        self.options = options

    def decode(self, payload: bytes, context: DecodeContext) -> list[Point]:
        """Parse the payload as line protocol and add the topic's tags.

        Raises DecodeError `invalid_utf8` for a payload that is not UTF-8 and
        `line_protocol_error`, with the line and column, for invalid syntax.
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
        try:
            points = parse_line_protocol(text, self.options.precision)
        except LineProtocolError as error:
            raise DecodeError("line_protocol_error", str(error)) from None
        if context.tags:
            for point in points:
                for key, value in context.tags.items():
                    point.tags.setdefault(key, value)
        return points

"""From one MQTT message to line-protocol lines or a dead-letter reason.

This is the pure part of the service: no I/O, so that `labdock decode`, the
service and the tests share it. The arrival time passed in becomes the time
of every point without a device time, which fixes the point's time before it
is spooled, so that a replayed line overwrites itself in the database.

Rebirth requests that a decoder records are queued in the pipeline, not in
the outcome, so that a message of another decoder costs only one check.
The caller takes them with `take_rebirth_requests`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from labdock.acquire.config import AcquireConfig, MappingConfig
from labdock.acquire.decoders import (
    RESERVED_KEY,
    DecodeContext,
    DecodeError,
    Decoder,
    create_decoder,
)
from labdock.acquire.points import (
    INT64_MAX,
    EncodeError,
    Point,
    UInt,
    encode_point,
    encode_series,
)
from labdock.acquire.topics import TopicTemplate

if TYPE_CHECKING:
    from labdock.acquire.decoders.sparkplug import RebirthRequest

NS_PER_SECOND = 1_000_000_000
# Topics whose match is remembered; the cache starts over when full, which
# bounds its memory when devices put ids or times in their topics.
_MATCH_CACHE_SIZE = 10_000


@dataclass(slots=True)
class Outcome:
    """The result of one message: lines to spool, or why it is a dead letter.

    `dropped` counts values left out of the lines by reason (for example
    `nonfinite` for NaN and infinities), so that nothing vanishes uncounted.
    No lines and no reason means the decoder skipped the message on purpose.
    """

    lines: list[str] = field(default_factory=list)
    reason: str | None = None
    detail: str | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    restamped: int = 0

    @property
    def is_deadletter(self) -> bool:
        return self.reason is not None


@dataclass(slots=True)
class _Route:
    template: TopicTemplate
    measurement: str | None
    tags: dict[str, str]
    decoder: Decoder
    format: str


class Pipeline:
    """Route, decode, check and encode messages following one configuration."""

    def __init__(self, config: AcquireConfig) -> None:
        self.config = config
        self.routes = [self._make_route(mapping) for mapping in config.mappings]
        # Topic -> (route, placeholder values): devices repeat their topics,
        # so each topic is matched against the templates once.
        self._matches: dict[str, tuple[_Route, dict[str, str]] | None] = {}
        # Topic -> (encoded series, the decoder's flat_fields) for topics
        # whose route has a fast path; see `fast_line`.
        self._series: dict[str, tuple[str, Callable[[bytes], str | None]] | None] = {}
        self._uint_support = bool(config.database.uint_support)
        window = config.timestamps
        self._max_past_ns = (
            None if window.max_past is None else int(window.max_past * NS_PER_SECOND)
        )
        self._max_future_ns = (
            None
            if window.max_future is None
            else int(window.max_future * NS_PER_SECOND)
        )
        self.rebirth_requests: list[RebirthRequest] = []

    def _match(self, topic: str) -> tuple[_Route, dict[str, str]] | None:
        found = None
        for route in self.routes:
            values = route.template.match(topic)
            if values is not None:
                found = (route, values)
                break
        if len(self._matches) >= _MATCH_CACHE_SIZE:
            self._matches.clear()
        self._matches[topic] = found
        return found

    @staticmethod
    def _make_route(mapping: MappingConfig) -> _Route:
        return _Route(
            template=mapping.template,
            measurement=mapping.measurement,
            tags=dict(mapping.tags),
            decoder=create_decoder(mapping.format, mapping.options),
            format=mapping.format,
        )

    def fast_line(self, topic: str, payload: bytes, received_ns: int) -> str | None:
        """Return the line of a message that the fast path can take, or None.

        The fast path covers a route whose decoder turns the payload into
        one field set stamped with the arrival time (the `json` decoder on
        a flat object, with no option that changes its values). The line is
        the one `process` would give; None means "call `process`".
        """
        try:
            series = self._series[topic]
        except KeyError:
            series = self._fast_series(topic)
        if series is None:
            return None
        series_text, flat_fields = series
        fields = flat_fields(payload)
        if fields is None:
            return None
        return f"{series_text} {fields} {received_ns}"

    def _fast_series(
        self, topic: str
    ) -> tuple[str, Callable[[bytes], str | None]] | None:
        series = None
        found = self._matches[topic] if topic in self._matches else self._match(topic)
        if found is not None:
            route, values = found
            flat_fields = getattr(route.decoder, "flat_fields", None)
            measurement, tags = _series_of(route, values)
            tag = self.config.timestamps.time_source_tag
            if tag:
                tags[tag] = "arrival"
            # A series without a line-protocol form takes the full path,
            # which dead-letters the message with the reason.
            if flat_fields is not None and RESERVED_KEY not in tags:
                with contextlib.suppress(EncodeError):
                    series = (encode_series(measurement, tags), flat_fields)
        if len(self._series) >= _MATCH_CACHE_SIZE:
            self._series.clear()
        self._series[topic] = series
        return series

    def process(self, topic: str, payload: bytes, received_ns: int) -> Outcome:
        """Turn one message into lines, or into a dead-letter reason."""
        found = self._matches[topic] if topic in self._matches else self._match(topic)
        if found is not None:
            route, values = found
            return self._process_route(route, values, topic, payload, received_ns)
        return Outcome(
            reason="no_mapping",
            detail=f"topic {topic!r} matches no mapping's template",
        )

    def _process_route(
        self,
        route: _Route,
        values: dict[str, str],
        topic: str,
        payload: bytes,
        received_ns: int,
    ) -> Outcome:
        measurement, tags = _series_of(route, values)
        context = DecodeContext(topic, measurement, tags, received_ns)
        try:
            points = route.decoder.decode(payload, context)
        except DecodeError as error:
            if context.rebirth_request is not None:
                self.rebirth_requests.append(context.rebirth_request)
            return Outcome(reason=error.reason, detail=error.detail)
        except Exception as error:  # a decoder bug must not stop the service
            return Outcome(
                reason="decoder_error",
                detail=f"decoder {route.format!r} raised {type(error).__name__}: {error}",
            )
        if context.rebirth_request is not None:
            self.rebirth_requests.append(context.rebirth_request)
        if not points and context.dropped:
            # The decoder skipped the message on purpose (an availability
            # topic, a command) and counted why: nothing to store, no error.
            return Outcome(dropped=dict(context.dropped))
        outcome = self._encode(points, received_ns)
        for reason, count in context.dropped.items():
            outcome.dropped[reason] = outcome.dropped.get(reason, 0) + count
        return outcome

    def take_rebirth_requests(self) -> list[RebirthRequest]:
        """Return the rebirth requests queued since the last call, and forget them."""
        requests = self.rebirth_requests
        self.rebirth_requests = []
        return requests

    def _encode(self, points: list[Point], received_ns: int) -> Outcome:
        outcome = Outcome()
        if not points:
            return Outcome(reason="no_points", detail="the payload holds no reading")
        window = self.config.timestamps
        for point in points:
            nonfinite = [
                key
                for key, value in point.fields.items()
                if isinstance(value, float) and not math.isfinite(value)
            ]
            for key in nonfinite:
                del point.fields[key]
            if nonfinite:
                outcome.dropped["nonfinite"] = outcome.dropped.get(
                    "nonfinite", 0
                ) + len(nonfinite)
            if not point.fields:
                continue
            if not self._uint_support:
                problem = _signed_integers(point)
                if problem is not None:
                    return Outcome(reason="uint_out_of_range", detail=problem)
            source = "arrival"
            if point.time_ns is None:
                point.time_ns = received_ns
            else:
                problem = self._check_time(point.time_ns, received_ns)
                if problem is not None:
                    if window.action == "deadletter":
                        return Outcome(reason="timestamp_out_of_window", detail=problem)
                    point.time_ns = received_ns
                    outcome.restamped += 1
                else:
                    source = "device"
            if window.time_source_tag:
                point.tags[window.time_source_tag] = source
            try:
                outcome.lines.append(encode_point(point))
            except EncodeError as error:
                return Outcome(reason="encode_error", detail=str(error))
        if not outcome.lines:
            return Outcome(
                reason="no_finite_fields",
                detail="every field value is NaN, infinite or missing",
                dropped=outcome.dropped,
            )
        return outcome

    def _check_time(self, time_ns: int, received_ns: int) -> str | None:
        if self._max_past_ns is not None and time_ns < received_ns - self._max_past_ns:
            return (
                f"device time {time_ns} ns is more than {self.config.timestamps.max_past} s "
                "before the arrival time; raise timestamps.max_past or fix the device clock"
            )
        if (
            self._max_future_ns is not None
            and time_ns > received_ns + self._max_future_ns
        ):
            return (
                f"device time {time_ns} ns is more than {self.config.timestamps.max_future} s "
                "after the arrival time; check the device clock and the timestamp unit"
            )
        return None


def _series_of(route: _Route, values: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Return the measurement and tags of a message from its route and the
    values of its topic's placeholders."""
    placeholders = dict(values)
    measurement = placeholders.pop("measurement", None) or route.measurement or ""
    return measurement, {**route.tags, **placeholders}


def _signed_integers(point: Point) -> str | None:
    """Turn UInt fields into signed ones; return a problem if one doesn't fit."""
    for key, value in point.fields.items():
        if isinstance(value, UInt):
            if value > INT64_MAX:
                return (
                    f"field {key!r} = {int(value)} is above 2**63-1, and this database "
                    "takes no unsigned integers; set database.uint_support: true if "
                    "it does (InfluxDB 2.x and 3.x)"
                )
            point.fields[key] = int(value)
    return None

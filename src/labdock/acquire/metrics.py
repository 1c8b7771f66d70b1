"""Prometheus metrics of the acquisition service.

Counters are incremented once per commit or batch with the batch's count,
not once per message, to keep the hot path lean.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

# The _created series double the output and no dashboard of ours reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

PREFIX = "labdock_acquire"


class Metrics:
    """The service's metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.received = Counter(
            f"{PREFIX}_messages_received",
            "MQTT messages received from the broker.",
            registry=registry,
        )
        self.decoded = Counter(
            f"{PREFIX}_messages_decoded",
            "Messages decoded into points and spooled.",
            registry=registry,
        )
        self.deadlettered = Counter(
            f"{PREFIX}_deadletters",
            "Messages or lines stored as dead letters, by stage and reason.",
            ["stage", "reason"],
            registry=registry,
        )
        self.dropped_values = Counter(
            f"{PREFIX}_values_dropped",
            "Values and messages left out on purpose, by reason (nonfinite: NaN "
            "or infinity; retained: a skipped retained message; and the reasons "
            "that decoders count).",
            ["reason"],
            registry=registry,
        )
        self.duplicates = Counter(
            f"{PREFIX}_redeliveries_skipped",
            "Redelivered messages already in the spool, acknowledged without a copy.",
            registry=registry,
        )
        self.restamped = Counter(
            f"{PREFIX}_points_restamped",
            "Points whose device time was outside the accepted window and was "
            "replaced by the arrival time.",
            registry=registry,
        )
        self.points_written = Counter(
            f"{PREFIX}_points_written",
            "Lines the database confirmed.",
            registry=registry,
        )
        self.write_latency = Histogram(
            f"{PREFIX}_write_duration_seconds",
            "Duration of one write request to the database.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.retries = Counter(
            f"{PREFIX}_write_retries",
            "Write attempts that will be retried, by cause.",
            ["cause"],
            registry=registry,
        )
        self.spool_messages = Gauge(
            f"{PREFIX}_spool_messages",
            "Messages in the spool waiting to be written.",
            registry=registry,
        )
        self.spool_bytes = Gauge(
            f"{PREFIX}_spool_bytes",
            "Bytes of line protocol in the spool.",
            registry=registry,
        )
        self.spool_limit_bytes = Gauge(
            f"{PREFIX}_spool_limit_bytes",
            "Byte limit of the spool.",
            registry=registry,
        )
        self.spool_oldest_age = Gauge(
            f"{PREFIX}_spool_oldest_age_seconds",
            "Age of the oldest spooled message.",
            registry=registry,
        )
        self.spool_full = Gauge(
            f"{PREFIX}_spool_full",
            "1 while the spool is at its byte limit and messages are not acknowledged.",
            registry=registry,
        )
        self.broker_connected = Gauge(
            f"{PREFIX}_broker_connected",
            "1 while connected to the MQTT broker.",
            registry=registry,
        )
        self.database_ready = Gauge(
            f"{PREFIX}_database_ready",
            "1 while the database accepts writes.",
            registry=registry,
        )
        self.connections = Counter(
            f"{PREFIX}_broker_connections",
            "Successful connections to the broker, reconnects included.",
            registry=registry,
        )
        self.rebirth_requests = Counter(
            f"{PREFIX}_sparkplug_rebirth_requests",
            "Sparkplug rebirth requests (NCMD Node Control/Rebirth) to edge nodes, "
            "by the reason (no_birth, unknown_alias, seq_gap) and the result "
            "(published, or failed when the client couldn't queue the message).",
            ["reason", "result"],
            registry=registry,
        )

    def bind_spool(
        self,
        messages: Callable[[], float],
        size: Callable[[], float],
        oldest_age: Callable[[], float],
        limit: int,
    ) -> None:
        """Read the spool gauges from the spool at each scrape."""
        self.spool_messages.set_function(messages)
        self.spool_bytes.set_function(size)
        self.spool_oldest_age.set_function(oldest_age)
        self.spool_limit_bytes.set(limit)

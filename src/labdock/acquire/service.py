"""Wiring of the acquisition service: threads, shutdown, health and metrics.

Data flows one way: broker -> ingest thread (decode, spool commit,
acknowledge) -> spool -> writer thread -> database. Only the acknowledgement
goes back to the broker, and only after the spool commit.
"""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from labdock.acquire.config import AcquireConfig
from labdock.acquire.metrics import Metrics
from labdock.acquire.mqtt import BrokerConnection, Message
from labdock.acquire.pipeline import Outcome, Pipeline
from labdock.acquire.spool import DeadLetter, Spool, SpoolError
from labdock.acquire.writer import Writer

log = structlog.get_logger("labdock.acquire.service")

# Redeliveries remembered for this long: messages spooled on a connection
# that dropped before their acknowledgement went out.
_REDELIVERY_MEMORY_NS = 15 * 60 * 1_000_000_000
_REDELIVERY_MEMORY_MAX = 200_000


def _digest(message: Message) -> bytes:
    return hashlib.blake2b(
        message.topic.encode() + b"\0" + message.payload, digest_size=12
    ).digest()


def _entry(
    now_ns: int, topic: str, lines: list[str], messages: int
) -> tuple[int, str, str, int, int]:
    """Return the spool entry of the lines that `messages` messages on `topic` gave."""
    return (now_ns, topic, "\n".join(lines), messages, len(lines))


# Seconds of shutdown_timeout kept for what follows the writer's stop: the
# HTTP server (one 0.1 s poll), the spool and the interpreter's exit. With
# 0.3 s, a service whose database had stopped responding exited 0.1 s late.
_CLOSE_MARGIN = 0.5


class ServiceError(Exception):
    """The service can't start, for a reason the message names with its fix."""


class Ingest:
    """The ingest thread: decode queued messages, commit them to the spool in
    groups, then acknowledge them."""

    def __init__(
        self,
        config: AcquireConfig,
        connection: BrokerConnection,
        spool: Spool,
        metrics: Metrics,
    ) -> None:
        self.config = config
        self.connection = connection
        self.spool = spool
        self.metrics = metrics
        self.pipeline = Pipeline(config)
        self.spool_error: str | None = None
        self.spool_full = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest", daemon=True)
        # Messages committed but not acknowledged because their connection
        # dropped: digest -> (count, committed_ns).
        # NOTE: this lives in memory, so a message committed just before a
        # crash and redelivered after it is spooled a second time.
        self._unacknowledged: dict[bytes, tuple[int, int]] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Commit and acknowledge what is queued, then stop."""
        self._stop.set()
        self.connection.arrived.set()
        self._thread.join(30)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        settings = self.config.spool
        queue = self.connection.queue
        held: list[Message] = []
        while True:
            stopping = self._stop.is_set()
            if not held and not queue:
                if stopping:
                    return
                self.connection.arrived.wait(settings.commit_interval)
                self.connection.arrived.clear()
                continue
            if self.spool.is_full:
                self._report_full(True)
                if stopping:
                    return
                self._stop.wait(0.2)
                continue
            self._report_full(False)
            while queue and len(held) < settings.commit_max_messages:
                held.append(queue.popleft())
            if self._commit(held):
                held = []
            elif stopping:
                return
            else:
                self._stop.wait(1.0)

    def _report_full(self, full: bool) -> None:
        if full == self.spool_full:
            return
        self.spool_full = full
        self.metrics.spool_full.set(1 if full else 0)
        if full:
            log.error(
                "spool.full",
                bytes=self.spool.bytes,
                limit=self.spool.max_bytes,
                action="not acknowledging: the broker holds new messages until the "
                "database catches up",
                fix="check the database, or raise spool.max_bytes",
            )
        else:
            log.info(
                "spool.accepting", bytes=self.spool.bytes, limit=self.spool.max_bytes
            )

    def _commit(self, messages: Sequence[Message]) -> bool:
        """Decode, spool and acknowledge `messages`; return False if the spool failed."""
        # A commit stores one spool entry per topic instead of one per message.
        topic_lines: dict[str, list[str]] = {}
        topic_messages: Counter[str] = Counter()
        entries: list[tuple[int, str, str, int, int]] = []
        group_lines = self.config.batch.max_lines
        decoded = 0
        deadletters: list[DeadLetter] = []
        redelivered: list[Message] = []
        reasons: Counter[str] = Counter()
        dropped: Counter[str] = Counter()
        now_ns = time.time_ns()

        skip_retained = self.config.broker.retained == "skip"
        restamped = 0
        fast_line = self.pipeline.fast_line
        for message in messages:
            # Unpacked at once: cheaper than five attribute reads per message.
            topic, payload, _, _, duplicate, retained, received_ns, _ = message
            if duplicate and self._take_unacknowledged(message):
                redelivered.append(message)
                continue
            if retained and skip_retained:
                dropped["retained"] += 1
                continue
            line = fast_line(topic, payload, received_ns)
            if line is None:
                outcome = self.pipeline.process(topic, payload, received_ns)
                lines = self._outcome_lines(message, outcome, deadletters, reasons)
                dropped.update(outcome.dropped)
                restamped += outcome.restamped
                if not lines:
                    continue
            decoded += 1
            topic_messages[topic] += 1
            group = topic_lines.get(topic)
            if group is None:
                group = topic_lines[topic] = []
            if line is not None:
                group.append(line)
            else:
                group.extend(lines)
            if len(group) >= group_lines:
                del topic_lines[topic]
                entries.append(_entry(now_ns, topic, group, topic_messages.pop(topic)))
        entries.extend(
            _entry(now_ns, topic, group, topic_messages[topic])
            for topic, group in topic_lines.items()
        )
        if self.pipeline.rebirth_requests:
            self._publish_rebirth_requests()

        try:
            self.spool.append(entries, deadletters)
        except SpoolError as error:
            self.spool_error = str(error)
            log.error("spool.write_failed", error=str(error), held=len(messages))
            return False
        if self.spool_error is not None:
            log.info("spool.write_recovered", held=len(messages))
        self.spool_error = None

        self.metrics.received.inc(len(messages))
        self.metrics.decoded.inc(decoded)
        self.metrics.duplicates.inc(len(redelivered))
        self.metrics.restamped.inc(restamped)
        for reason, count in reasons.items():
            self.metrics.deadlettered.labels("decode", reason).inc(count)
        for reason, count in dropped.items():
            self.metrics.dropped_values.labels(reason).inc(count)
        for deadletter in deadletters:
            log.warning(
                "message.deadlettered",
                topic=deadletter.topic,
                reason=deadletter.reason,
                detail=deadletter.detail,
            )

        for message in self.connection.acknowledge_many(messages):
            self._remember_unacknowledged(message, now_ns)
        return True

    def _publish_rebirth_requests(self) -> None:
        """Publish the queued rebirth requests, logging a failure instead of raising it.

        They go out before the spool commit because they don't depend on it,
        so a failing spool doesn't delay them.
        """
        for request in self.pipeline.take_rebirth_requests():
            topic = request.topic
            error = self.connection.publish(
                topic, request.payload(time.time_ns() // 1_000_000)
            )
            result = "published" if error is None else "failed"
            self.metrics.rebirth_requests.labels(request.reason, result).inc()
            fields = {
                "group": request.group,
                "edge_node": request.edge_node,
                "reason": request.reason,
                "topic": topic,
            }
            if error is None:
                log.info("sparkplug.rebirth_requested", **fields)
            else:
                log.warning("sparkplug.rebirth_request_failed", error=error, **fields)

    @staticmethod
    def _outcome_lines(
        message: Message,
        outcome: Outcome,
        deadletters: list[DeadLetter],
        reasons: Counter[str],
    ) -> list[str]:
        """Return the lines of a full-path outcome, or record its dead letter."""
        if outcome.reason is None:
            return outcome.lines
        reasons[outcome.reason] += 1
        deadletters.append(
            DeadLetter(
                message.received_ns,
                message.topic,
                message.payload,
                "decode",
                outcome.reason,
                outcome.detail or "",
            )
        )
        return []

    def _remember_unacknowledged(self, message: Message, now_ns: int) -> None:
        if len(self._unacknowledged) >= _REDELIVERY_MEMORY_MAX:
            self._forget_old(now_ns)
        digest = _digest(message)
        count, _ = self._unacknowledged.get(digest, (0, now_ns))
        self._unacknowledged[digest] = (count + 1, now_ns)

    def _take_unacknowledged(self, message: Message) -> bool:
        """Return True if a copy of this redelivered message is already spooled."""
        if not self._unacknowledged:
            return False
        digest = _digest(message)
        found = self._unacknowledged.get(digest)
        if found is None:
            return False
        count, committed = found
        if count <= 1:
            del self._unacknowledged[digest]
        else:
            self._unacknowledged[digest] = (count - 1, committed)
        return True

    def _forget_old(self, now_ns: int) -> None:
        cutoff = now_ns - _REDELIVERY_MEMORY_NS
        for digest in [d for d, (_, t) in self._unacknowledged.items() if t < cutoff]:
            del self._unacknowledged[digest]
        while len(self._unacknowledged) >= _REDELIVERY_MEMORY_MAX:
            self._unacknowledged.pop(next(iter(self._unacknowledged)))


class _Ipv6HttpServer(ThreadingHTTPServer):
    """The HTTP server for an IPv6 listen address such as [::1]:9108."""

    address_family = socket.AF_INET6


class Service:
    """The acquisition service: `run()` blocks until SIGTERM or SIGINT."""

    def __init__(self, config: AcquireConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.spool = Spool(config.spool.directory, config.spool.max_bytes)
        self.metrics.bind_spool(
            lambda: self.spool.messages,
            lambda: self.spool.bytes,
            self.spool.oldest_age,
            config.spool.max_bytes,
        )
        self.connection = BrokerConnection(
            config.broker,
            config.subscription_filters(),
            on_state=self._on_broker_state,
            state_file=config.spool.directory / "subscriptions.json",
            max_queued=2
            * max(config.broker.max_inflight, config.spool.commit_max_messages),
        )
        self.ingest = Ingest(config, self.connection, self.spool, self.metrics)
        self.writer = Writer(config, self.spool, self.metrics)
        self.stopping = threading.Event()
        self.http: ThreadingHTTPServer | None = None

    def _on_broker_state(self, connected: bool) -> None:
        self.metrics.broker_connected.set(1 if connected else 0)
        if connected:
            self.metrics.connections.inc()

    def start(self) -> None:
        log.info(
            "service.starting",
            broker=self.config.broker.url,
            filters=self.config.subscription_filters(),
            database=self.config.database.url,
            api=self.config.database.api,
            spool=str(self.config.spool.directory),
            spooled=self.spool.messages,
        )
        if self.spool.messages:
            log.info(
                "spool.replay", messages=self.spool.messages, bytes=self.spool.bytes
            )
        # The HTTP port is bound first: a replica that can't serve its health
        # checks must fail before it joins a shared subscription and takes
        # a share of the messages.
        if self.config.http.listen:
            self._start_http()
        self.writer.start()
        self.ingest.start()
        self.connection.start()

    def run(self) -> int:
        """Run until SIGTERM or SIGINT; return the process exit code."""

        def request_stop(signum: int, _frame: FrameType | None) -> None:
            log.info("service.stop_requested", signal=signal.Signals(signum).name)
            self.stopping.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        try:
            self.start()
        except ServiceError as error:
            log.error("service.start_failed", error=str(error))
            self.spool.close()
            return 2
        while not self.stopping.wait(1.0):
            if not (self.ingest.alive and self.writer.alive):
                log.error(
                    "service.thread_died",
                    ingest=self.ingest.alive,
                    writer=self.writer.alive,
                )
                self.shutdown()
                return 1
        # Lines left in the spool are written on the next start, so a stop
        # with a database that is down still succeeds.
        self.shutdown()
        return 0

    def shutdown(self) -> bool:
        """Stop within `shutdown_timeout`; return True when the spool was emptied.

        What is left in the spool is written on the next start, so a False
        return loses nothing.
        """
        started = time.monotonic()
        timeout = self.config.shutdown_timeout
        self.ingest.stop()
        self.connection.stop()
        # Keep time for the HTTP server, the spool and the exit.
        remaining = max(0.5, timeout - (time.monotonic() - started) - _CLOSE_MARGIN)
        flushed = self.writer.stop(remaining)
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()
        spooled = self.spool.messages
        if not self.writer.alive:
            if spooled == 0:
                self.spool.checkpoint()
            self.spool.close()
        log.info(
            "service.stopped",
            flushed=flushed,
            left_in_spool=spooled,
            seconds=round(time.monotonic() - started, 2),
        )
        return flushed

    # Health.

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Return whether the service is ready and the state of each check."""
        checks = {
            "broker": self.connection.connected.is_set(),
            "spool_writable": self.ingest.spool_error is None,
            "spool_below_limit": not self.spool.is_full,
            "database": self.writer.ready.is_set() and not self.writer.stalled,
        }
        detail: dict[str, Any] = {"checks": checks}
        if not checks["broker"]:
            detail["broker_error"] = self.connection.last_error
        if self.ingest.spool_error:
            detail["spool_error"] = self.ingest.spool_error
        if not checks["database"]:
            detail["database_error"] = (
                self.writer.unready_reason
                or "a write request has been waiting for an answer for over 5 s"
            )
        detail["spool"] = {
            "messages": self.spool.messages,
            "bytes": self.spool.bytes,
            "limit_bytes": self.spool.max_bytes,
        }
        return all(checks.values()), detail

    def _start_http(self) -> None:
        host, _, port = self.config.http.listen.rpartition(":")
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                if self.path == "/healthz":
                    alive = service.ingest.alive and service.writer.alive
                    self._reply(200 if alive else 503, {"alive": alive})
                elif self.path == "/readyz":
                    ready, detail = service.readiness()
                    self._reply(200 if ready else 503, {"ready": ready, **detail})
                elif self.path == "/metrics":
                    body = generate_latest(service.metrics.registry)
                    self._send(200, body, CONTENT_TYPE_LATEST)
                else:
                    self._reply(404, {"error": f"no such path {self.path}"})

            def _reply(self, status: int, document: dict[str, Any]) -> None:
                self._send(status, json.dumps(document).encode(), "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # health probes would flood the log

        host = host.strip("[]") or "0.0.0.0"
        server_class = _Ipv6HttpServer if ":" in host else ThreadingHTTPServer
        try:
            self.http = server_class((host, int(port)), Handler)
        except OSError as error:
            raise ServiceError(
                f"cannot listen on {self.config.http.listen}: {error.strerror}; "
                "choose a free address with http.listen (or --listen)"
            ) from error
        self.http.daemon_threads = True
        # serve_forever notices shutdown() once per poll interval, and that
        # wait counts against shutdown_timeout.
        threading.Thread(
            target=self.http.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="http",
            daemon=True,
        ).start()
        log.info("http.listening", address=self.config.http.listen)

"""Batched writes from the spool to the database, with every outcome classified.

- 2xx with an empty or JSON body: the lines leave the spool. InfluxDB
  returns 204 for a write; a 2xx with another body (an HTML page from a
  proxy or a wrong URL) is held like a configuration error.
- 429, 5xx, a timeout or a refused connection: retried with capped,
  jittered exponential backoff that honours Retry-After.
- 401, 403: data kept, service unready, retried.
- 404 and other 4xx that name no line: data kept, service unready, retried,
  since they mean a configuration error such as a missing database.
- 413: the batch is split in halves until it fits; a single line too large
  is a dead letter, unless it is under 64 KiB: a limit that small is a
  misconfigured proxy, so the data is held.
- A body saying the database, bucket or retention policy is not found:
  held, whatever the status (InfluxDB 1.x answers 500 for a missing
  retention policy).
- 400, 422, or any status whose body reports that a line can't be stored:
  the batch is split to find the offending lines, which become dead
  letters, and the rest is written.

Splitting rewrites lines the server may already have stored; a line keeps
its time, so it overwrites itself instead of duplicating.
"""

from __future__ import annotations

import gzip
import logging
import random
import re
import sqlite3
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol
from urllib.parse import urlencode

import structlog
import urllib3

from labdock.acquire.config import AcquireConfig, DatabaseConfig, read_secret
from labdock.acquire.lineprotocol import split_lines
from labdock.acquire.metrics import Metrics
from labdock.acquire.spool import DeadLetter, Spool, SpooledEntry, SpoolError

log = structlog.get_logger("labdock.acquire.writer")
# urllib3 logs each retry of a stale pooled connection; the writer logs outcomes.
logging.getLogger("urllib3").setLevel(logging.ERROR)

# Bodies that mean a line can never be stored, whatever the status code:
# InfluxDB 2.x has returned 500 for a field type conflict.
PERMANENT_BODY = re.compile(
    r"field type conflict|points? beyond retention policy|unable to parse|"
    r"partial write|invalid field format|max-values-per-tag|"
    r"bad timestamp|invalid number|missing field|missing tag",
    re.IGNORECASE,
)


# Bodies that mean the write target is missing: a configuration error.
MISSING_TARGET_BODY = re.compile(
    r"(database|bucket|retention policy|organization|namespace)[^\n]{0,80}not found",
    re.IGNORECASE,
)

# A write request waiting longer than this makes the service unready: the
# database is up but not responding (overloaded, or a stopped process).
STALLED_SECONDS = 5.0

# A single line smaller than this rejected with 413 means the server or a
# proxy in front of it has an unusably small body limit.
SMALL_LINE_BYTES = 64 * 1024


class Verdict(Enum):
    OK = "ok"
    RETRY = "retry"  # transient: back off and write the same batch again
    UNAUTHORIZED = "unauthorized"  # hold the data, report unready, retry
    HOLD = "hold"  # a configuration error: hold, report unready, retry
    TOO_LARGE = "too_large"  # split the batch
    REJECTED = "rejected"  # some line can't be stored: split to find it


@dataclass(frozen=True, slots=True)
class Response:
    """The outcome of one write request. `status` is None when no reply came."""

    status: int | None
    body: str = ""
    retry_after: float | None = None
    error: str | None = None


def classify(response: Response) -> Verdict:
    """Classify one write outcome by status and body."""
    status = response.status
    if status is None:
        return Verdict.RETRY
    if 200 <= status < 300:
        body = response.body.strip()
        return Verdict.OK if not body or body.startswith("{") else Verdict.HOLD
    if MISSING_TARGET_BODY.search(response.body):
        return Verdict.HOLD
    if status in (401, 403):
        return Verdict.UNAUTHORIZED
    if status == 413:
        return Verdict.TOO_LARGE
    if status in (400, 422) or PERMANENT_BODY.search(response.body):
        return Verdict.REJECTED
    if status == 429 or status >= 500:
        return Verdict.RETRY
    return Verdict.HOLD


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class Sink(Protocol):
    def write(self, body: bytes) -> Response: ...

    def probe(self) -> Response: ...

    def close(self) -> None: ...


class HttpSink:
    """Line protocol over HTTP to InfluxDB's v1, v2 or v3 write API."""

    def __init__(self, config: DatabaseConfig) -> None:
        self.config = config
        base = config.url.rstrip("/")
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if config.gzip:
            headers["Content-Encoding"] = "gzip"
        token = read_secret(config.token_file, "database.token_file")
        if config.api == "v1":
            query = {"db": config.database or "", "precision": "ns"}
            if config.retention_policy:
                query["rp"] = config.retention_policy
            path = "/write"
            if config.username:
                password = read_secret(config.password_file, "database.password_file")
                headers.update(
                    urllib3.make_headers(
                        basic_auth=f"{config.username}:{password or ''}"
                    )
                )
            elif token:
                headers["Authorization"] = f"Token {token}"
            self.probe_path = "/ping"
        elif config.api == "v2":
            query = {
                "org": config.org or "",
                "bucket": config.bucket or "",
                "precision": "ns",
            }
            path = "/api/v2/write"
            if token:
                headers["Authorization"] = f"Token {token}"
            self.probe_path = "/ping"
        else:
            query = {"db": config.database or "", "precision": "nanosecond"}
            path = "/api/v3/write_lp"
            if token:
                headers["Authorization"] = f"Bearer {token}"
            self.probe_path = "/health"
        self.url = f"{base}{path}?{urlencode(query)}"
        self.base = base
        self.headers = headers
        context = None
        if config.ca_file:
            context = ssl.create_default_context(cafile=str(config.ca_file))
        self.pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=2,
            ssl_context=context,
            timeout=urllib3.Timeout(
                connect=min(5.0, config.timeout), read=config.timeout
            ),
            # One immediate retry covers a pooled connection that the server
            # closed while idle; a write is idempotent, since every line
            # carries its time.
            retries=urllib3.Retry(
                total=1,
                connect=1,
                read=1,
                status=0,
                other=0,
                allowed_methods=None,
                redirect=False,
                raise_on_status=False,
            ),
        )

    def write(self, body: bytes) -> Response:
        if self.config.gzip:
            body = gzip.compress(body, compresslevel=1)
        return self._request("POST", self.url, body, self.headers)

    def probe(self) -> Response:
        """Check the target with an empty write, which stores nothing but gets
        404 for a missing database and 401 for a bad token (InfluxDB 1.x and
        2.x; VictoriaMetrics returns 204). v3 is checked with /health."""
        if self.config.api == "v3":
            return self._request("GET", self.base + self.probe_path, None, {})
        return self.write(b"")

    def _request(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> Response:
        try:
            reply = self.pool.request(method, url, body=body, headers=headers)
        except urllib3.exceptions.HTTPError as error:
            return Response(None, error=f"{type(error).__name__}: {error}")
        text = reply.data[:4096].decode("utf-8", "replace")
        return Response(
            reply.status, text, _parse_retry_after(reply.headers.get("Retry-After"))
        )

    def close(self) -> None:
        self.pool.clear()


class SqliteSink:
    """The embedded store: points in a SQLite file, one row per field value.

    For trying labdock without a database server; the table layout is in
    `SQLITE_SCHEMA`.
    """

    SQLITE_SCHEMA = """
    CREATE TABLE IF NOT EXISTS points (
        measurement TEXT NOT NULL,
        tags TEXT NOT NULL,
        field TEXT NOT NULL,
        value,
        time_ns INTEGER NOT NULL,
        PRIMARY KEY (measurement, tags, field, time_ns)
    ) WITHOUT ROWID;
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False
        )
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.executescript(self.SQLITE_SCHEMA)

    def write(self, body: bytes) -> Response:
        from labdock.acquire.lineprotocol import LineProtocolError, parse_line_protocol

        try:
            points = parse_line_protocol(body.decode("utf-8"))
        except LineProtocolError as error:
            return Response(400, f"unable to parse: {error}")
        rows = []
        for point in points:
            tags = ",".join(f"{k}={v}" for k, v in sorted(point.tags.items()))
            for field, value in point.fields.items():
                rows.append((point.measurement, tags, field, value, point.time_ns or 0))
        try:
            self.connection.execute("BEGIN")
            self.connection.executemany(
                "INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?)", rows
            )
            self.connection.execute("COMMIT")
        except sqlite3.Error as error:
            if self.connection.in_transaction:
                self.connection.execute("ROLLBACK")
            return Response(503, f"sqlite write failed: {error}")
        return Response(204)

    def probe(self) -> Response:
        return Response(204)

    def close(self) -> None:
        self.connection.close()


def make_sink(config: DatabaseConfig) -> Sink:
    if config.api == "sqlite":
        return SqliteSink(config.sqlite_path)
    return HttpSink(config)


@dataclass(slots=True)
class _Line:
    entry: SpooledEntry
    text: str


class _Retry(Exception):
    def __init__(self, verdict: Verdict, response: Response) -> None:
        super().__init__(verdict.value)
        self.verdict = verdict
        self.response = response


class Writer:
    """The writer thread: takes batches from the spool and writes them."""

    def __init__(
        self,
        config: AcquireConfig,
        spool: Spool,
        metrics: Metrics,
        sink: Sink | None = None,
    ) -> None:
        self.config = config
        self.spool = spool
        self.metrics = metrics
        self.sink = sink or make_sink(config.database)
        self.ready = threading.Event()
        self.unready_reason: str | None = "no write yet"
        self._stop = threading.Event()
        self._flushing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._attempt = 0
        self._request_started: float | None = None
        self._written_since_compaction = False
        self._compacted_at = time.monotonic()

    def start(self) -> None:
        response = self.sink.probe()
        if response.status is not None and response.status < 300:
            self._set_ready()
        else:
            self._set_unready(f"database probe failed: {_describe(response)}")
            # The service keeps spooling, so without this line a wrong URL or
            # token shows only in /readyz until the first write is retried.
            log.warning(
                "database.probe_failed",
                url=self.config.database.url,
                error=_describe(response),
            )
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Flush until the spool is empty or `timeout` passes; return True if empty."""
        deadline = time.monotonic() + timeout
        self._flushing.set()
        while (
            self.spool.messages
            and time.monotonic() < deadline
            and self._thread.is_alive()
        ):
            self.spool.wake()
            time.sleep(0.05)
        self._stop.set()
        self.spool.wake()
        # A request still in flight at the deadline is abandoned: its lines
        # stay in the spool and are written again on the next start.
        self._thread.join(max(0.1, deadline - time.monotonic()))
        if not self._thread.is_alive():
            self.sink.close()
        return self.spool.messages == 0

    @property
    def stalled(self) -> bool:
        """True while one write request has been waiting for over 5 s."""
        started = self._request_started
        return started is not None and time.monotonic() - started > STALLED_SECONDS

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _set_ready(self) -> None:
        if not self.ready.is_set():
            log.info("database.ready", url=self.config.database.url)
        self.ready.set()
        self.unready_reason = None
        self.metrics.database_ready.set(1)

    def _set_unready(self, reason: str) -> None:
        self.ready.clear()
        self.unready_reason = reason
        self.metrics.database_ready.set(0)

    def _run(self) -> None:
        batch = self.config.batch
        while not self._stop.is_set():
            try:
                entries = self.spool.take(0, batch.max_lines, batch.max_bytes)
            except (SpoolError, sqlite3.Error) as error:
                log.error("spool.read_failed", error=str(error))
                self._stop.wait(1.0)
                continue
            if not entries:
                self._compact_drained_spool()
                self.spool.wait_for_entries(batch.max_delay)
                continue
            if len(entries) < batch.max_lines and not self._flushing.is_set():
                # Let the batch fill, but no longer than its oldest line may
                # wait. The spool's message count is cheap, so the batch is
                # read again only once, when it is full or due.
                due = entries[0].spooled_ns / 1e9 + batch.max_delay
                while (
                    self.spool.messages < batch.max_lines
                    and time.time() < due
                    and not self._flushing.is_set()
                ):
                    self.spool.wait_for_entries(due - time.time())
                entries = self.spool.take(0, batch.max_lines, batch.max_bytes)
            try:
                self._write_entries(entries)
            except Exception as error:  # noqa: BLE001 (the writer must not die)
                log.exception("writer.failed", error=f"{type(error).__name__}: {error}")
                self._set_unready(f"writer failed: {error}")
                self._stop.wait(min(self.config.retry.maximum, 5.0))

    def _compact_drained_spool(self) -> None:
        # After a backlog drains, give the spool's file space back, at most
        # once a minute.
        now = time.monotonic()
        if self._written_since_compaction and now - self._compacted_at > 60:
            self.spool.checkpoint()
            self._compacted_at = now
            self._written_since_compaction = False

    def _write_entries(self, entries: Sequence[SpooledEntry]) -> None:
        try:
            written, rejected = self._deliver_entries(entries)
        except _Retry as retry:
            self._back_off(retry)
            return
        deadletters = [
            DeadLetter(
                received_ns=line.entry.spooled_ns,
                topic=line.entry.topic,
                payload=line.text.encode(),
                stage="write",
                reason=reason,
                detail=detail,
            )
            for line, reason, detail in rejected
        ]
        try:
            self.spool.remove(entries, deadletters)
        except SpoolError as error:
            log.error("spool.remove_failed", error=str(error))
            self._stop.wait(1.0)
            return
        for line, reason, detail in rejected:
            self.metrics.deadlettered.labels("write", reason).inc()
            log.warning(
                "writer.line_rejected",
                topic=line.entry.topic,
                reason=reason,
                detail=detail,
            )
        self.metrics.points_written.inc(written - len(rejected))
        self._written_since_compaction = True
        self._attempt = 0
        self._set_ready()

    def _deliver_entries(
        self, entries: Sequence[SpooledEntry]
    ) -> tuple[int, list[tuple[_Line, str, str]]]:
        """Write the lines of `entries`; return their number and the lines
        rejected for good, with reason and detail.

        The batch goes out as one request, joined from the entries' bodies.
        Only when the database rejects part of it are the lines taken apart
        to find which. Raises _Retry when the whole batch must wait and be
        written again.
        """
        written = sum(entry.line_count() for entry in entries)
        if written == 1:
            return written, self._deliver(self._lines(entries))
        body = "\n".join([entry.body for entry in entries]).encode() + b"\n"
        verdict, response = self._send(body)
        if verdict is Verdict.OK:
            return written, []
        return written, self._settle(self._lines(entries), len(body), verdict, response)

    @staticmethod
    def _lines(entries: Sequence[SpooledEntry]) -> list[_Line]:
        return [
            _Line(entry, text) for entry in entries for text in split_lines(entry.body)
        ]

    def _send(self, body: bytes) -> tuple[Verdict, Response]:
        started = time.perf_counter()
        self._request_started = time.monotonic()
        try:
            response = self.sink.write(body)
        finally:
            self._request_started = None
        self.metrics.write_latency.observe(time.perf_counter() - started)
        return classify(response), response

    def _deliver(self, lines: list[_Line]) -> list[tuple[_Line, str, str]]:
        """Write `lines`; return the ones rejected for good with reason and detail.

        Raises _Retry when the whole batch must wait and be written again.
        """
        if not lines:
            return []
        body = "\n".join(line.text for line in lines).encode() + b"\n"
        if len(lines) == 1 and len(body) > self.config.batch.max_bytes * 4:
            return [(lines[0], "line_too_large", f"line of {len(body)} bytes")]
        verdict, response = self._send(body)
        return self._settle(lines, len(body), verdict, response)

    def _settle(
        self, lines: list[_Line], size: int, verdict: Verdict, response: Response
    ) -> list[tuple[_Line, str, str]]:
        """Act on the database's verdict on `lines` (a body of `size` bytes):
        return the lines rejected for good, halving the batch to find them.

        Raises _Retry when the whole batch must wait and be written again.
        """
        if verdict is Verdict.OK:
            return []
        if verdict is Verdict.TOO_LARGE and len(lines) == 1 and size < SMALL_LINE_BYTES:
            raise _Retry(
                Verdict.HOLD,
                Response(
                    response.status,
                    f"a {size}-byte line was rejected as too large: raise the "
                    "body size limit of the database or of the proxy in front of it",
                ),
            )
        if verdict in (Verdict.TOO_LARGE, Verdict.REJECTED):
            if len(lines) == 1:
                reason = (
                    "line_too_large" if verdict is Verdict.TOO_LARGE else "rejected"
                )
                return [(lines[0], reason, _describe(response))]
            middle = len(lines) // 2
            return self._deliver(lines[:middle]) + self._deliver(lines[middle:])
        raise _Retry(verdict, response)

    def _back_off(self, retry: _Retry) -> None:
        response = retry.response
        cause = {
            Verdict.RETRY: "unavailable"
            if response.status is None
            else str(response.status),
            Verdict.UNAUTHORIZED: "unauthorized",
            Verdict.HOLD: str(response.status),
        }.get(retry.verdict, retry.verdict.value)
        self.metrics.retries.labels(cause).inc()
        settings = self.config.retry
        ceiling = min(settings.maximum, settings.initial * (2**self._attempt))
        delay = random.uniform(ceiling / 2, ceiling)
        if response.retry_after is not None:
            delay = max(delay, min(response.retry_after, settings.retry_after_max))
        self._attempt = min(self._attempt + 1, 30)
        self._set_unready(f"{retry.verdict.value}: {_describe(response)}")
        event = {
            Verdict.UNAUTHORIZED: "writer.unauthorized",
            Verdict.HOLD: "writer.rejected_request",
        }.get(retry.verdict, "writer.retry")
        log.warning(
            event,
            status=response.status,
            detail=_describe(response),
            retry_in=round(delay, 2),
            spooled=self.spool.messages,
        )
        self._stop.wait(delay)


def _describe(response: Response) -> str:
    if response.status is None:
        return response.error or "no response"
    body = " ".join(response.body.split())[:300]
    return f"HTTP {response.status}: {body}" if body else f"HTTP {response.status}"

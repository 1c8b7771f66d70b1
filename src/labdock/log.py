"""Structured logging: readable on a terminal, JSON lines in a container.

Events have stable dotted names (`writer.retry`) and key-value fields. A
filter drops repeats of one event beyond a few per interval and reports how
many it dropped, so an outage does not flood the log.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = ("password", "token", "secret", "authorization")


def _mask_secrets(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in event:
        if any(word in key.lower() for word in _SECRET_KEYS):
            event[key] = "***"
    return event


class RepeatLimiter:
    """Let through at most `burst` events of one name per `interval` seconds.

    The first event after a quiet interval carries `suppressed=N` when N
    events of that name were dropped.
    """

    def __init__(self, burst: int = 5, interval: float = 60.0) -> None:
        self.burst = burst
        self.interval = interval
        self._state: dict[str, tuple[float, int, int]] = {}
        self._lock = threading.Lock()

    def __call__(
        self, _logger: Any, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        name = str(event.get("event"))
        now = time.monotonic()
        with self._lock:
            start, count, suppressed = self._state.get(name, (now, 0, 0))
            if now - start >= self.interval:
                if suppressed:
                    event["suppressed"] = suppressed
                start, count, suppressed = now, 0, 0
            count += 1
            if count > self.burst:
                self._state[name] = (start, count, suppressed + 1)
                raise structlog.DropEvent
            self._state[name] = (start, count, suppressed)
        return event


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog and the standard logging that libraries use."""
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    numeric_level = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            RepeatLimiter(),
            _mask_secrets,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Libraries log through the standard library; render their records the
    # same way, so that a container's log stays one JSON object per line.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer,
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(max(numeric_level, logging.WARNING))
    threading.excepthook = _log_thread_crash


def _log_thread_crash(arguments: threading.ExceptHookArgs) -> None:
    thread = arguments.thread.name if arguments.thread else "unknown"
    structlog.get_logger("labdock").error(
        "thread.crashed",
        thread=thread,
        exc_info=(arguments.exc_type, arguments.exc_value, arguments.exc_traceback),
    )

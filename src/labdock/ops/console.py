"""Terminal output shared by the operations commands: log lines and tables."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence

import click

_FORMAT = "%(asctime)s %(levelname)s %(message)s"


class _UTCFormatter(logging.Formatter):
    def formatTime(  # noqa: N802 (logging's API)
        self, record: logging.LogRecord, datefmt: str | None = None
    ) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))


def setup_logging(verbose: bool = False) -> None:
    """Send labdock's log lines to stderr.

    On a terminal only warnings and errors are shown unless `verbose`,
    because info lines would break the progress bar. Elsewhere (cron,
    systemd) every step is logged.
    """
    logger = logging.getLogger("labdock")
    if verbose or not sys.stderr.isatty():
        level = logging.DEBUG if verbose else logging.INFO
    else:
        level = logging.WARNING
    logger.setLevel(level)
    if not any(getattr(h, "_labdock_ops", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_UTCFormatter(_FORMAT))
        handler._labdock_ops = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Return rows as left-aligned columns; the last column is not padded."""
    table = [list(header), *[list(row) for row in rows]]
    widths = [
        max(len(row[column]) for row in table) for column in range(len(header) - 1)
    ]
    lines = []
    for row in table:
        cells = [value.ljust(widths[i]) for i, value in enumerate(row[:-1])]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines) + "\n"


def format_bytes(count: float) -> str:
    """Return a byte count as B, KiB, MiB, GiB or TiB with one decimal."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    value = float(count)
    for unit in units:
        if abs(value) < 1024 or unit == units[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


class ToolError(click.ClickException):
    """A usage or tool error: exit code 2, as every labdock command documents."""

    exit_code = 2

"""Progress of long operations: a bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import IO, Any, Protocol

import click


class Progress(Protocol):
    """Receives one call per step of a long operation."""

    def begin(self, total: int, label: str) -> None: ...

    def step(self, description: str) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
    """Reports nothing; for library callers and tests."""

    def begin(self, total: int, label: str) -> None:
        pass

    def step(self, description: str) -> None:
        pass

    def finish(self) -> None:
        pass


class LineProgress:
    """Prints `label [3/9] description` per step, for logs and cron mail."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total = 0
        self.done = 0
        self.label = ""

    def begin(self, total: int, label: str) -> None:
        self.total, self.done, self.label = total, 0, label

    def step(self, description: str) -> None:
        self.done += 1
        print(
            f"{self.label} [{self.done}/{self.total}] {description}",
            file=self.stream,
            flush=True,
        )

    def finish(self) -> None:
        pass


class BarProgress:
    """A click progress bar that shows the current step's description."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._current = ""

    def begin(self, total: int, label: str) -> None:
        bar: Any = click.progressbar(
            length=total,
            label=label,
            file=sys.stderr,
            item_show_func=lambda _item: self._current,
        )
        bar.__enter__()
        self._bar = bar

    def step(self, description: str) -> None:
        self._current = description
        if self._bar is not None:
            self._bar.update(1)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


def for_terminal() -> Progress:
    """Return a bar when stderr is a terminal, plain lines otherwise."""
    return BarProgress() if sys.stderr.isatty() else LineProgress()

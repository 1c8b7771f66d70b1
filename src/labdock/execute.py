"""Run external commands: the one place where labdock starts subprocesses.

Every command is logged before it runs, with secret values masked. A caller
passes the secrets it knows about (`secrets=`); values of environment
variables whose names look like credentials are masked as well.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

MASK = "******"
_SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|API_KEY)", re.I)


class CommandError(Exception):
    """A command that could not start, timed out or exited non-zero."""

    def __init__(self, message: str, result: CommandResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class CommandResult:
    """The outcome of one finished command."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def mask(text: str, secrets: Iterable[str]) -> str:
    """Replace each non-empty secret value in `text` with a fixed mask."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def secret_environment_values(env: Mapping[str, str]) -> list[str]:
    """Return the values of variables whose names look like credentials."""
    return [value for name, value in env.items() if _SECRET_NAME.search(name)]


def format_command(argv: Sequence[str], secrets: Iterable[str] = ()) -> str:
    """Return `argv` as a shell-quoted line with secrets masked."""
    return mask(shlex.join(argv), secrets)


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    secrets: Iterable[str] = (),
    timeout: float | None = None,
    check: bool = True,
    capture: bool = True,
) -> CommandResult:
    """Run a command to completion and return its result.

    `env` entries are added to the current environment. With `check`, a
    non-zero exit raises CommandError; stdout and stderr are captured unless
    `capture` is false, in which case they go to the terminal. Secrets are
    masked in the log lines and in the error message, not in the returned
    output.
    """
    args = tuple(os.fspath(part) for part in argv)
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    hidden = [*secrets, *secret_environment_values(env or {})]
    command_line = format_command(args, hidden)
    logger.debug("running %s%s", command_line, f" in {cwd}" if cwd else "")
    try:
        completed = subprocess.run(
            args,
            cwd=cwd,
            env=full_env,
            input=input_text,
            text=True,
            capture_output=capture,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as error:
        raise CommandError(
            f"command not found: {args[0]} ({error.strerror})"
        ) from error
    except subprocess.TimeoutExpired as error:
        raise CommandError(f"timed out after {timeout}s: {command_line}") from error
    result = CommandResult(
        argv=args,
        returncode=completed.returncode,
        stdout=completed.stdout or "",
        stderr=completed.stderr or "",
    )
    if completed.returncode != 0:
        logger.debug("exit %d from %s", completed.returncode, command_line)
        if check:
            detail = mask(result.stderr.strip() or result.stdout.strip(), hidden)
            raise CommandError(
                f"{command_line} failed with exit code {completed.returncode}"
                + (f": {detail}" if detail else ""),
                result,
            )
    return result

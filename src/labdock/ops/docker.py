"""Calls to the docker CLI that the operations need, through labdock.execute.

The engine is whatever DOCKER_HOST (or the CLI's context) points at, as for
`docker compose`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from labdock import execute
from labdock.ops.errors import OpsError


class DockerError(OpsError):
    """The docker CLI is missing or a docker command failed."""


def docker(
    *args: str,
    check: bool = True,
    input_text: str | None = None,
    timeout: float | None = 120,
    environment: Mapping[str, str] | None = None,
    secrets: Sequence[str] = (),
) -> execute.CommandResult:
    """Run `docker ARGS`; a failure raises DockerError when `check` is set."""
    try:
        return execute.run(
            ["docker", *args],
            env=environment,
            input_text=input_text,
            timeout=timeout,
            check=check,
            secrets=secrets,
        )
    except execute.CommandError as error:
        raise DockerError(str(error)) from error


def _inspect(kind: str, names: Sequence[str]) -> list[dict[str, Any]]:
    if not names:
        return []
    result = docker(kind, "inspect", *names, check=False)
    if not result.stdout.strip():
        return []
    data: list[dict[str, Any]] = json.loads(result.stdout)
    return data


def inspect_containers(ids: Sequence[str]) -> list[dict[str, Any]]:
    """Return `docker container inspect` of each existing container."""
    return _inspect("container", ids)


def inspect_container(name: str) -> dict[str, Any] | None:
    found = inspect_containers([name])
    return found[0] if found else None


def inspect_volume(name: str) -> dict[str, Any] | None:
    found = _inspect("volume", [name])
    return found[0] if found else None


def inspect_image(reference: str) -> dict[str, Any] | None:
    found = _inspect("image", [reference])
    return found[0] if found else None


def project_containers(project: str) -> list[dict[str, Any]]:
    """Return `inspect` of every container of a Compose project, stopped ones too."""
    listed = docker(
        "ps",
        "--all",
        "--quiet",
        "--no-trunc",
        "--filter",
        f"label=com.docker.compose.project={project}",
    )
    return inspect_containers(listed.stdout.split())


def all_containers() -> list[dict[str, Any]]:
    """Return `inspect` of every container on the engine."""
    listed = docker("ps", "--all", "--quiet", "--no-trunc")
    return inspect_containers(listed.stdout.split())


def service_of(container: Mapping[str, Any]) -> str:
    """Return the Compose service of an inspected container, or its name."""
    labels = (container.get("Config") or {}).get("Labels") or {}
    service = labels.get("com.docker.compose.service")
    if service:
        return str(service)
    return str(container.get("Name", "")).lstrip("/")


def container_name(container: Mapping[str, Any]) -> str:
    return str(container.get("Name", "")).lstrip("/")


def exec_in(
    container: str,
    argv: Sequence[str],
    *,
    input_text: str | None = None,
    timeout: float | None = 120,
    check: bool = False,
    user: str | None = None,
) -> execute.CommandResult:
    """Run a command inside a running container."""
    args = ["exec"]
    if input_text is not None:
        args.append("-i")
    if user is not None:
        args += ["--user", user]
    return docker(
        *args, container, *argv, input_text=input_text, timeout=timeout, check=check
    )


def logs_tail(container: str, lines: int = 20) -> list[str]:
    """Return the last lines a container wrote to stdout and stderr."""
    result = docker("logs", "--tail", str(lines), container, check=False)
    text = result.stdout + result.stderr
    return [line for line in text.splitlines() if line.strip()][-lines:]


def copy_from(container: str, source: str, destination: Path) -> None:
    """Copy a path out of a container (running or stopped) to the host."""
    docker("cp", f"{container}:{source}", str(destination), timeout=None)


def copy_to(source: Path, container: str, destination: str) -> None:
    """Copy a host path into a container."""
    docker("cp", str(source), f"{container}:{destination}", timeout=None)


def image_passwd(image: str) -> str | None:
    """Return the text of /etc/passwd in an image, or None if it has none.

    The file is copied from a created, never started, container, so this
    works for images without a shell.
    """
    created = docker("create", image, check=False)
    if created.returncode != 0:
        return None
    container = created.stdout.strip()
    try:
        with tempfile.TemporaryDirectory(prefix="labdock-passwd-") as scratch:
            target = Path(scratch) / "passwd"
            copied = docker("cp", f"{container}:/etc/passwd", str(target), check=False)
            if copied.returncode != 0 or not target.is_file():
                return None
            return target.read_text(encoding="utf-8", errors="replace")
    finally:
        # --volumes: the image's VOLUME entries gave the container anonymous
        # volumes, which would outlive it.
        docker("rm", "--force", "--volumes", container, check=False)


def container_status(container: Mapping[str, Any]) -> str:
    """Return one word for an inspected container's state.

    healthy, or running for a container without a healthcheck; starting and
    unhealthy from its healthcheck; otherwise Docker's state (created,
    restarting, paused, exited, dead).
    """
    state = container.get("State") or {}
    status = str(state.get("Status", "unknown"))
    if status != "running":
        return status
    health = state.get("Health")
    if not health:
        return "running"
    return str(health.get("Status", "starting"))


def is_up(status: str) -> bool:
    """Return whether a container_status() means the service is serving."""
    return status in ("healthy", "running")


def wait_until_up(
    name: str,
    timeout: float,
    *,
    interval: float = 1.0,
    clock: Any = None,
    sleep: Any = None,
) -> tuple[bool, str]:
    """Wait until a container is healthy (or running, without a healthcheck).

    Returns (True, status) once it is, and (False, status) as soon as it is
    unhealthy, exited, dead or restarting, or when `timeout` seconds pass.
    """
    import time

    now = clock or time.monotonic
    pause = sleep or time.sleep
    deadline = now() + timeout
    status = "missing"
    while True:
        container = inspect_container(name)
        status = container_status(container) if container else "missing"
        if is_up(status):
            return True, status
        if status in ("unhealthy", "exited", "dead", "restarting", "missing"):
            return False, status
        if now() >= deadline:
            return False, f"{status} after {timeout:g}s"
        pause(interval)

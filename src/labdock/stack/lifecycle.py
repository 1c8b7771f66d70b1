"""`labdock up|down|status|logs` for a laid-down services tree."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from labdock import execute
from labdock.stack import secrets, tree
from labdock.stack.compose import Compose, ComposeError

logger = logging.getLogger(__name__)

DEFAULT_WAIT_TIMEOUT = 300
# Services `up` starts and provisions before the rest, because the rest
# need what the provisioning hooks create.
FIRST_STAGE = ("emqx", "influxdb")
# Run in the emqx container, so that the password never appears on
# labdock's command line.
SET_EMQX_DASHBOARD_PASSWORD = (
    'emqx ctl admins passwd admin "$(cat /run/secrets/emqx_dashboard_password)"'
)
_HOST_RULE = re.compile(r"Host\(`([^`]+)`\)")


class StackError(Exception):
    """A lifecycle step failed; the message names the step and what to do."""


class UnknownServiceError(StackError):
    """A service name given on the command line is not in the project."""


@dataclass(frozen=True)
class ServiceState:
    """One row of `labdock status`."""

    service: str
    state: str
    health: str
    url: str


def _compose(directory: Path, environment: Mapping[str, str] | None) -> Compose:
    try:
        return Compose(directory, environment=environment)
    except ComposeError as error:
        raise StackError(str(error)) from error


def ensure_network(name: str, environment: Mapping[str, str] | None = None) -> bool:
    """Create the external network when it is missing; return whether it was."""
    env = dict(environment or {})
    found = execute.run(["docker", "network", "inspect", name], env=env, check=False)
    if found.returncode == 0:
        return False
    try:
        execute.run(
            ["docker", "network", "create", "--driver", "bridge", name], env=env
        )
    except execute.CommandError as error:
        raise StackError(f"cannot create network {name}: {error}") from error
    logger.info("created network %s", name)
    return True


def check_services(
    directory: Path,
    services: Sequence[str],
    environment: Mapping[str, str] | None = None,
) -> None:
    """Raise UnknownServiceError when a name in `services` is not in the project.

    Compose itself ignores an unknown name in `logs` and prints nothing.
    """
    if not services:
        return
    try:
        listed = _compose(directory, environment).run("config", "--services")
    except ComposeError as error:
        raise StackError(str(error)) from error
    known = sorted(listed.stdout.split())
    unknown = [name for name in services if name not in known]
    if unknown:
        raise UnknownServiceError(
            f"unknown service {', '.join(unknown)}; services: {', '.join(known)}"
        )


def _is_empty_secret(path: Path) -> bool:
    try:
        return not path.read_bytes().strip()
    except PermissionError:
        # Run as root, `secrets init` gives each file to its container's uid
        # with mode 0600. Another user may still see its size.
        return path.stat().st_size == 0


def _check_ready(directory: Path) -> dict[str, str]:
    if not (directory / ".env").is_file():
        raise StackError(
            f"{directory / '.env'} is missing; run `labdock init {directory}` first"
        )
    missing = [
        spec.name
        for spec in secrets.SPECS
        if not (secrets.secrets_dir(directory) / spec.name).is_file()
    ]
    if missing:
        raise StackError(
            "missing secret files: "
            + ", ".join(missing)
            + f"; run `labdock secrets init {directory}`"
        )
    # `secrets check` reports these as errors too. Only the files that
    # `labdock up` provisions itself may still be empty here.
    empty = [
        spec.name
        for spec in secrets.SPECS
        if not spec.provisioned
        and _is_empty_secret(secrets.secrets_dir(directory) / spec.name)
    ]
    if empty:
        raise StackError(
            "empty secret files: "
            + ", ".join(empty)
            + f"; delete them and run `labdock secrets init {directory}`"
        )
    return tree.env_values(directory)


def up(
    directory: Path,
    services: Sequence[str] = (),
    *,
    wait_timeout: int = DEFAULT_WAIT_TIMEOUT,
    hooks: bool = True,
    environment: Mapping[str, str] | None = None,
) -> list[ServiceState]:
    """Render the tree, create the external network and start the services.

    Compose starts them in dependency order and `--wait` blocks until every
    healthcheck passes. With `hooks`, EMQX and InfluxDB start first and are
    provisioned (dashboard password, the acquisition's write token) before
    the rest.
    """
    settings = _check_ready(directory)
    check_services(directory, services, environment)
    try:
        tree.render(directory, settings)
    except tree.TreeError as error:
        raise StackError(str(error)) from error
    ensure_network(settings.get("TRAEFIK_NETWORK") or "traefik_network", environment)
    compose = _compose(directory, environment)
    wait = ["-d", "--wait", "--wait-timeout", str(wait_timeout)]
    try:
        if hooks and not services:
            compose.run("up", *wait, *FIRST_STAGE, capture=False)
            provision(directory, compose, settings)
        compose.run("up", *wait, *services, capture=False)
    except ComposeError as error:
        raise StackError(
            f"{error}; see `labdock logs` for the failing service"
        ) from error
    return status(directory, environment=environment)


def provision(directory: Path, compose: Compose, settings: Mapping[str, str]) -> None:
    """Run the post-start steps that need a running EMQX and InfluxDB.

    NOTE: the tests' stand-in images have neither `emqx ctl admins` nor the
    influx CLI, so these steps are not covered by the tests.
    """
    compose.run("exec", "-T", "emqx", "sh", "-c", SET_EMQX_DASHBOARD_PASSWORD)
    logger.info("set the EMQX dashboard password of admin")

    token_path = secrets.secrets_dir(directory) / "influxdb_write_token"
    if token_path.read_text(encoding="utf-8").strip():
        return

    org = settings.get("INFLUXDB_ORG") or "lab"
    bucket = settings.get("INFLUXDB_BUCKET") or "sensors"
    listed = compose.run(
        "exec",
        "-T",
        "influxdb",
        "influx",
        "bucket",
        "list",
        "--org",
        org,
        "--name",
        bucket,
        "--json",
    )
    bucket_id = json.loads(listed.stdout)[0]["id"]

    created = compose.run(
        "exec",
        "-T",
        "influxdb",
        "influx",
        "auth",
        "create",
        "--org",
        org,
        "--write-bucket",
        bucket_id,
        "--description",
        "labdock sensor-acquisition",
        "--json",
    )
    value = json.loads(created.stdout)["token"]
    secrets.write_secret(token_path, value, secrets.ACQUIRE_UID)
    logger.info("created the InfluxDB write token of sensor-acquisition")


def down(directory: Path, *, environment: Mapping[str, str] | None = None) -> None:
    """Stop and remove the containers; volumes, and so the data, are kept."""
    try:
        _compose(directory, environment).run("down", capture=False)
    except ComposeError as error:
        raise StackError(str(error)) from error


def _urls(directory: Path, environment: Mapping[str, str] | None) -> dict[str, str]:
    urls: dict[str, str] = {}
    try:
        model = _compose(directory, environment).config()
    except ComposeError:
        return urls
    for name, service in (model.get("services") or {}).items():
        labels = service.get("labels") or {}
        for key, value in sorted(labels.items()):
            match = _HOST_RULE.search(str(value))
            if (
                key.startswith("traefik.http.routers.")
                and key.endswith(".rule")
                and match
            ):
                urls[name] = f"https://{match.group(1)}"
                break
            if key.startswith("traefik.tcp.routers.") and key.endswith(".rule"):
                sni = re.search(r"HostSNI\(`([^`]+)`\)", str(value))
                if sni and name not in urls:
                    urls[name] = f"mqtts://{sni.group(1)}:8883"
    return urls


def status(
    directory: Path, *, environment: Mapping[str, str] | None = None
) -> list[ServiceState]:
    """Return the state, health and public URL of every service's container."""
    compose = _compose(directory, environment)
    try:
        rows = compose.ps()
    except ComposeError as error:
        raise StackError(str(error)) from error
    urls = _urls(directory, environment)
    states = [
        ServiceState(
            service=str(row.get("Service", "")),
            state=str(row.get("State", "")),
            health=str(row.get("Health") or "-"),
            url=urls.get(str(row.get("Service", "")), "-"),
        )
        for row in rows
    ]
    return sorted(states, key=lambda state: state.service)


def format_table(states: Sequence[ServiceState]) -> str:
    """Return the states as an aligned text table."""
    header = ("SERVICE", "STATE", "HEALTH", "URL")
    rows = [header, *((s.service, s.state, s.health, s.url) for s in states)]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = [
        "  ".join(value.ljust(widths[column]) for column, value in enumerate(row[:3]))
        + "  "
        + row[3]
        for row in rows
    ]
    return "\n".join(lines) + "\n"


def logs(
    directory: Path,
    services: Sequence[str] = (),
    *,
    tail: int = 100,
    follow: bool = False,
    environment: Mapping[str, str] | None = None,
) -> None:
    """Print the services' logs to the terminal."""
    check_services(directory, services, environment)
    args = ["logs", "--tail", str(tail), *(["--follow"] if follow else []), *services]
    try:
        _compose(directory, environment).run(*args, capture=False)
    except ComposeError as error:
        raise StackError(str(error)) from error

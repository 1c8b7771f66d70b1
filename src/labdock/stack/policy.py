"""Policy rules for a Compose project, checked on the resolved model.

Each rule is one function registered with `@rule`; it receives the project
and yields (service, message) pairs. tests/stack/fixtures/policy/ contains one
Compose file per rule that breaks that rule alone.

A service may waive rules with the label `labdock.policy.waive` (rule ids,
comma-separated) when it also gives `labdock.policy.waive.reason`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

WAIVE_LABEL = "labdock.policy.waive"
WAIVE_REASON_LABEL = "labdock.policy.waive.reason"

Service = dict[str, Any]
Check = Callable[["Project"], Iterator[tuple[str | None, str]]]


@dataclass(frozen=True)
class Rule:
    """A policy rule: an id, what it requires, how to fix a finding."""

    id: str
    summary: str
    fix: str
    check: Check


@dataclass(frozen=True)
class Finding:
    """One broken rule in one service (or in the project, service None)."""

    rule: str
    message: str
    fix: str
    file: str
    service: str | None = None
    line: int | None = None
    level: str = "error"


RULES: dict[str, Rule] = {}


def rule(rule_id: str, summary: str, fix: str) -> Callable[[Check], Check]:
    """Register a rule function under `rule_id`."""

    def register(function: Check) -> Check:
        if rule_id in RULES:
            raise ValueError(f"rule {rule_id} is registered twice")
        RULES[rule_id] = Rule(rule_id, summary, fix, function)
        return function

    return register


class Project:
    """The resolved Compose model plus where each service was defined."""

    def __init__(self, model: dict[str, Any], root_file: Path) -> None:
        self.model = model
        self.root_file = root_file
        self.services: dict[str, Service] = dict(model.get("services") or {})
        self.networks: dict[str, dict[str, Any]] = dict(model.get("networks") or {})
        self.secrets: dict[str, dict[str, Any]] = dict(model.get("secrets") or {})
        self.sources = _service_sources(root_file)

    def source_of(self, service: str | None) -> tuple[Path, int | None]:
        """Return the file and line that define a service."""
        if service is None:
            return self.root_file, None
        return self.sources.get(service, (self.root_file, None))

    def waived(self, service: str, rule_id: str) -> bool:
        labels = _labels(self.services.get(service, {}))
        waived = {part.strip() for part in labels.get(WAIVE_LABEL, "").split(",")}
        return rule_id in waived and bool(labels.get(WAIVE_REASON_LABEL, "").strip())

    def service_items(self) -> Iterator[tuple[str, Service]]:
        yield from sorted(self.services.items())


def _service_sources(root_file: Path) -> dict[str, tuple[Path, int | None]]:
    """Map service names to the file and line that define them.

    Follows `include:` entries of the root file one level deep, which is
    how the shipped tree is laid out.
    """
    sources: dict[str, tuple[Path, int | None]] = {}
    files = [root_file]
    try:
        root = yaml.safe_load(root_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return sources
    for entry in root.get("include") or []:
        paths = entry.get("path") if isinstance(entry, dict) else entry
        for path in [paths] if isinstance(paths, str) else list(paths or []):
            files.append(root_file.parent / path)
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
            data = yaml.safe_load(text) or {}
        except (OSError, yaml.YAMLError):
            continue
        for name in data.get("services") or {}:
            match = re.search(rf"^  {re.escape(name)}:", text, re.M)
            line = text.count("\n", 0, match.start()) + 1 if match else None
            sources.setdefault(name, (file, line))
    return sources


def _labels(service: Service) -> dict[str, str]:
    labels = service.get("labels") or {}
    if isinstance(labels, list):
        pairs = (item.split("=", 1) for item in labels)
        return {pair[0]: pair[1] if len(pair) > 1 else "" for pair in pairs}
    return {str(key): str(value) for key, value in labels.items()}


def _environment(service: Service) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        pairs = (item.split("=", 1) for item in environment)
        return {pair[0]: pair[1] if len(pair) > 1 else "" for pair in pairs}
    return {str(k): "" if v is None else str(v) for k, v in environment.items()}


def _service_networks(service: Service) -> list[str]:
    networks = service.get("networks") or {}
    return list(networks) if isinstance(networks, (dict, list)) else []


# --- images ---------------------------------------------------------------


@rule(
    "image-pinned",
    "Every service names an image with a fixed version tag or digest.",
    "Set image: to name:VERSION (never latest), e.g. through a *_VERSION "
    "variable in .env.",
)
def check_image_pinned(project: Project) -> Iterator[tuple[str | None, str]]:
    for name, service in project.service_items():
        image = str(service.get("image") or "")
        if not image:
            yield name, "has no image: (a build: alone gives an unversioned image)"
            continue
        if "@sha256:" in image:
            continue
        last = image.rsplit("/", 1)[-1]
        if ":" not in last:
            yield name, f"image {image!r} has no tag, so it means latest"
        elif last.rsplit(":", 1)[1] in ("latest", "stable", "edge", "main"):
            yield name, f"image {image!r} uses a moving tag"


# --- runtime hygiene --------------------------------------------------------


@rule(
    "healthcheck-defined",
    "Every long-running service has a healthcheck.",
    "Add healthcheck: with a test that probes the service itself.",
)
def check_healthcheck(project: Project) -> Iterator[tuple[str | None, str]]:
    for name, service in project.service_items():
        healthcheck = service.get("healthcheck") or {}
        if healthcheck.get("disable") or healthcheck.get("test") in (None, ["NONE"]):
            yield name, "has no healthcheck"


@rule(
    "restart-policy",
    "Every long-running service restarts after a crash or a reboot.",
    "Set restart: unless-stopped (or always / on-failure).",
)
def check_restart(project: Project) -> Iterator[tuple[str | None, str]]:
    for name, service in project.service_items():
        policy = str(service.get("restart") or "no")
        if not (
            policy in ("always", "unless-stopped") or policy.startswith("on-failure")
        ):
            yield name, f"restart policy is {policy!r}"


@rule(
    "log-rotation",
    "Container logs are rotated (json-file with max-size and max-file, or local).",
    "Set logging: driver: json-file with options max-size and max-file.",
)
def check_logging(project: Project) -> Iterator[tuple[str | None, str]]:
    for name, service in project.service_items():
        logging = service.get("logging") or {}
        driver = logging.get("driver", "json-file")
        options = logging.get("options") or {}
        if driver == "local":
            continue
        if driver != "json-file":
            yield name, f"log driver {driver!r} is not rotated by labdock's rules"
        elif "max-size" not in options or "max-file" not in options:
            yield (
                name,
                "json-file logs have no max-size and max-file, so they grow forever",
            )


@rule(
    "resource-limits",
    "Every service has memory, CPU and process-count limits.",
    "Set deploy.resources.limits.memory, .cpus and .pids.",
)
def check_limits(project: Project) -> Iterator[tuple[str | None, str]]:
    for name, service in project.service_items():
        limits = ((service.get("deploy") or {}).get("resources") or {}).get(
            "limits"
        ) or {}
        missing = [key for key in ("memory", "cpus", "pids") if not limits.get(key)]
        if missing:
            yield name, "has no limit for " + ", ".join(missing)


@rule(
    "no-new-privileges",
    "No process in a container gains privileges through setuid binaries.",
    "Add security_opt: [no-new-privileges:true].",
)
def check_no_new_privileges(project: Project) -> Iterator[tuple[str | None, str]]:
    for name, service in project.service_items():
        options = [
            str(option).replace("=", ":")
            for option in service.get("security_opt") or []
        ]
        if (
            "no-new-privileges:true" not in options
            and "no-new-privileges" not in options
        ):
            yield name, "does not set no-new-privileges"


@rule(
    "capabilities-dropped",
    "Every service drops all capabilities and adds back only what it needs.",
    "Set cap_drop: [ALL] and list the needed ones under cap_add:.",
)
def check_capabilities(project: Project) -> Iterator[tuple[str | None, str]]:
    dangerous = {"SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "SYS_MODULE", "ALL"}
    for name, service in project.service_items():
        dropped = {
            str(cap).upper().removeprefix("CAP_")
            for cap in service.get("cap_drop") or []
        }
        if "ALL" not in dropped:
            yield name, "does not drop ALL capabilities"
        added = {
            str(cap).upper().removeprefix("CAP_")
            for cap in service.get("cap_add") or []
        }
        for capability in sorted(added & dangerous):
            yield name, f"adds the capability {capability}"


@rule(
    "read-only-root",
    "The root file system is read-only where the image allows it.",
    "Set read_only: true with tmpfs: for scratch paths, or waive the rule "
    "with the labdock.policy.waive and labdock.policy.waive.reason labels.",
)
def check_read_only(project: Project) -> Iterator[tuple[str | None, str]]:
    for name, service in project.service_items():
        if not service.get("read_only"):
            yield name, "has a writable root file system"


@rule(
    "no-privileged",
    "No service runs privileged or in the host's namespaces.",
    "Remove privileged: true, network_mode: host, pid: host and ipc: host.",
)
def check_privileged(project: Project) -> Iterator[tuple[str | None, str]]:
    for name, service in project.service_items():
        if service.get("privileged"):
            yield name, "runs privileged"
        for key in ("network_mode", "pid", "ipc", "userns_mode"):
            if service.get(key) == "host":
                yield name, f"uses {key}: host"


# --- Docker socket ----------------------------------------------------------


def _socket_mounts(service: Service) -> Iterator[dict[str, Any]]:
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict) and str(volume.get("source", "")).endswith(
            "docker.sock"
        ):
            yield volume


@rule(
    "docker-socket-proxy",
    "Only a socket proxy mounts the Docker socket: read-only, on internal "
    "networks alone, with no published port.",
    "Mount the socket only into the socket proxy (:ro, internal network) "
    "and point Traefik's docker provider at tcp://socket-proxy:2375.",
)
def check_docker_socket(project: Project) -> Iterator[tuple[str | None, str]]:
    for name, service in project.service_items():
        for mount in _socket_mounts(service):
            if not mount.get("read_only"):
                yield name, "mounts the Docker socket writable"
            if service.get("ports"):
                yield name, "mounts the Docker socket and publishes ports"
            for network in _service_networks(service):
                if not (project.networks.get(network) or {}).get("internal"):
                    yield (
                        name,
                        "mounts the Docker socket and joins non-internal network "
                        f"{network}",
                    )
            image = str(service.get("image", ""))
            if "socket-proxy" not in image and "socket-proxy" not in name:
                yield name, "mounts the Docker socket but is not the socket proxy"


# --- networks ---------------------------------------------------------------


@rule(
    "backend-internal",
    "The backend network is internal and traefik_network is external.",
    "Declare networks: backend: internal: true and traefik_network: external: true.",
)
def check_networks(project: Project) -> Iterator[tuple[str | None, str]]:
    backend = project.networks.get("backend")
    if backend is not None and not backend.get("internal"):
        yield None, "network backend is not internal: true"
    public = project.networks.get("traefik_network")
    if public is not None and not public.get("external"):
        yield None, "network traefik_network is not external: true"


@rule(
    "ports-only-on-traefik",
    "Only Traefik publishes ports; everything else is reached through it.",
    "Remove ports: and add Traefik labels (traefik.enable=true and a router).",
)
def check_ports(project: Project) -> Iterator[tuple[str | None, str]]:
    for name, service in project.service_items():
        image = str(service.get("image", ""))
        if service.get("ports") and "traefik" not in name and "traefik" not in image:
            yield name, "publishes ports"


@rule(
    "traefik-docker-network",
    "A routed service that is not on traefik_network names its network for Traefik.",
    "Add the label traefik.docker.network=<the network Traefik shares with it>.",
)
def check_traefik_network(project: Project) -> Iterator[tuple[str | None, str]]:
    for name, service in project.service_items():
        labels = _labels(service)
        if labels.get("traefik.enable") != "true":
            continue
        networks = _service_networks(service)
        chosen = labels.get("traefik.docker.network")
        names = {str((project.networks.get(n) or {}).get("name", n)) for n in networks}
        if chosen:
            # Checked on traefik_network too: Traefik would route to an
            # address on a network the service is not on.
            if chosen not in names and chosen not in networks:
                yield (
                    name,
                    f"traefik.docker.network={chosen} is not one of its networks "
                    f"({', '.join(sorted(names)) or 'none'})",
                )
        elif "traefik_network" not in networks:
            yield (
                name,
                "is routed by Traefik but not on traefik_network and has no "
                "traefik.docker.network label",
            )


# The shipped services that need no route out of the host. Other services
# opt in with the label labdock.network.internal=true.
INTERNAL_SERVICES = ("emqx", "influxdb", "sensor-acquisition")
INTERNAL_LABEL = "labdock.network.internal"


@rule(
    "internal-on-backend-only",
    "EMQX, InfluxDB, the acquisition service and every service labelled "
    "labdock.network.internal=true are on the backend network only.",
    "Keep networks: [backend] and let Traefik reach the service through "
    "traefik.docker.network. A service that needs a route out is not internal: "
    "remove its label, or waive the rule with a reason for a shipped one.",
)
def check_internal_services(project: Project) -> Iterator[tuple[str | None, str]]:
    for name, service in project.service_items():
        internal = _labels(service).get(INTERNAL_LABEL, "").lower() == "true"
        if name not in INTERNAL_SERVICES and not internal:
            continue
        networks = _service_networks(service)
        others = sorted(network for network in networks if network != "backend")
        if others:
            yield (
                name,
                f"is an internal service but joins {', '.join(others)}, which "
                "gives it a route out of the host",
            )
        elif "backend" not in networks:
            yield name, "is an internal service but is not on the backend network"


# --- secrets ----------------------------------------------------------------

_SECRET_KEY = re.compile(
    r"(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|COOKIE)", re.I
)


@rule(
    "no-secret-in-environment",
    "No credential is passed as an environment value.",
    "Move the value to a file under secrets/, mount it with secrets: and "
    "point the image's *_FILE variable at /run/secrets/<name>.",
)
def check_environment_secrets(project: Project) -> Iterator[tuple[str | None, str]]:
    secret_values = _secret_file_values(project)
    for name, service in project.service_items():
        for key, value in sorted(_environment(service).items()):
            if not value or key.endswith("_FILE") or value.startswith("/run/secrets/"):
                continue
            if _SECRET_KEY.search(key):
                yield name, f"environment variable {key} holds a literal value"
            elif value.strip() in secret_values:
                secret = secret_values[value.strip()]
                yield name, f"environment variable {key} holds the value of {secret}"
            elif _looks_like_credential(value):
                yield (
                    name,
                    f"environment variable {key} holds a value that looks like a "
                    "credential (a token or a URL with a password)",
                )


# A password in a URL's user information: scheme://user:password@host.
_URL_PASSWORD = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
# Token-like: one long word of base64 or hex characters.
_TOKEN = re.compile(r"[A-Za-z0-9_+/=-]{24,}")
_HEX = re.compile(r"[0-9a-fA-F]{32,}")


def _looks_like_credential(value: str) -> bool:
    """Return whether `value` looks like a password or token.

    A heuristic: a URL with a password, a hex string of 32 or more digits, or
    a word of 24 or more base64 characters that mixes lower case, upper case
    and digits. Paths and ${VARIABLE} references do not match.
    """
    text = value.strip()
    if _URL_PASSWORD.search(text):
        return True
    if text.startswith(("/", "$")) or not _TOKEN.fullmatch(text):
        return False
    if _HEX.fullmatch(text):
        return True
    classes = [
        any(c.islower() for c in text),
        any(c.isupper() for c in text),
        any(c.isdigit() for c in text),
    ]
    return all(classes)


def _secret_file_values(project: Project) -> dict[str, str]:
    """Return the value of each readable secret file, mapped to its secret name.

    Values shorter than 8 characters are left out because they would match
    ordinary settings by chance.
    """
    values: dict[str, str] = {}
    for secret_name, secret in sorted(project.secrets.items()):
        file = secret.get("file")
        if not file:
            continue
        try:
            text = Path(str(file)).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if len(text) >= 8:
            values[text] = f"secret {secret_name}"
    return values


@rule(
    "secrets-are-files",
    "Secrets are files under the tree's secrets/ directory.",
    "Declare each secret with file: ../secrets/<name> (relative to the "
    "service's directory) and create it with `labdock secrets init`.",
)
def check_secret_files(project: Project) -> Iterator[tuple[str | None, str]]:
    secrets_dir = project.root_file.parent.resolve() / "secrets"
    for secret_name, secret in sorted(project.secrets.items()):
        file = secret.get("file")
        if not file:
            yield (
                None,
                f"secret {secret_name} is not a file (an environment: secret "
                "ends up in the resolved model)",
            )
            continue
        if Path(str(file)).resolve().parent != secrets_dir:
            yield None, f"secret {secret_name} reads {file}, outside {secrets_dir}"


@rule(
    "ldap-over-tls",
    "LDAP is reached over LDAPS or StartTLS, never in the clear.",
    "Use an ldaps:// URL, or ldap:// with StartTLS and a waiver label that says so.",
)
def check_ldap(project: Project) -> Iterator[tuple[str | None, str]]:
    for name, service in project.service_items():
        for key, value in sorted(_environment(service).items()):
            if value.lower().startswith("ldap://"):
                yield name, f"{key}={value} is plain LDAP"


def evaluate(project: Project, rules: list[Rule] | None = None) -> list[Finding]:
    """Run the rules over a project and return every finding not waived."""
    findings = []
    for current in rules if rules is not None else list(RULES.values()):
        for service, message in current.check(project):
            if service is not None and project.waived(service, current.id):
                continue
            file, line = project.source_of(service)
            findings.append(
                Finding(
                    rule=current.id,
                    message=message,
                    fix=current.fix,
                    file=str(file),
                    service=service,
                    line=line,
                )
            )
    return findings

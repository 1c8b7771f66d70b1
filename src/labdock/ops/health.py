"""`labdock health`: one verdict per check, for people and monitoring systems.

The checks cover each container's state, healthcheck, restarts and OOM
kills, and each service's own health endpoint. Endpoints are probed from
inside the container, because the services are on an internal network
without published ports. Then the expiry of Traefik's ACME certificates,
free space on the filesystems of the data volumes, and the age of each
service's last successful backup.

Severities follow the Nagios plugin convention, which monitoring systems
read from the exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the
checks could not run).
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labdock import execute
from labdock.ops import docker
from labdock.ops.backup import SECRETS
from labdock.ops.errors import OpsError
from labdock.ops.project import Project
from labdock.ops.settings import HealthSettings, Settings, resolve
from labdock.ops.status import load_status

logger = logging.getLogger(__name__)

OK, WARNING, CRITICAL, UNKNOWN = "ok", "warning", "critical", "unknown"
SEVERITY_ORDER = {OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3}
HARBOR_PROJECT = "harbor"
HARBOR_CORE_SERVICE = "core"


@dataclass(frozen=True)
class Check:
    """One verdict: what was checked, on what, how bad, and why."""

    check: str
    target: str
    severity: str
    message: str


def exit_code(checks: Sequence[Check]) -> int:
    """Return the Nagios exit code of the worst check (0 when there is none)."""
    return max((SEVERITY_ORDER[check.severity] for check in checks), default=0)


# --- endpoint probes ---------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """A command run inside a service's container and how to read its output."""

    what: str
    argv: tuple[str, ...]
    parse: Callable[[int, str], tuple[str, str]]


def _exit_ok(returncode: int, output: str) -> tuple[str, str]:
    if returncode == 0:
        return OK, output.strip().splitlines()[-1] if output.strip() else "ok"
    return CRITICAL, output.strip()[-300:] or f"exit code {returncode}"


def parse_emqx_status(returncode: int, output: str) -> tuple[str, str]:
    if returncode == 0 and "is running" in output:
        return OK, "emqx is running"
    return CRITICAL, output.strip()[-300:] or f"emqx ctl status exited {returncode}"


def parse_influx_health(returncode: int, output: str) -> tuple[str, str]:
    """Read InfluxDB's /health: {"status": "pass"|"fail", "message": ...}."""
    if returncode != 0:
        return CRITICAL, output.strip()[-300:] or f"/health failed ({returncode})"
    try:
        data = json.loads(output)
    except json.JSONDecodeError:
        # A 2xx response that is not JSON (curl -f fails on any other status).
        return OK, output.strip()[:80] or "200"
    if isinstance(data, dict) and data.get("status") != "pass":
        return CRITICAL, f"status {data.get('status')}: {data.get('message', '')}"
    return OK, "pass"


def parse_harbor_health(returncode: int, output: str) -> tuple[str, str]:
    """Read Harbor's /api/v2.0/health: overall status and each component's."""
    if returncode != 0:
        return CRITICAL, output.strip()[
            -300:
        ] or f"/api/v2.0/health failed ({returncode})"
    try:
        data = json.loads(output)
    except json.JSONDecodeError:
        return CRITICAL, f"not JSON: {output.strip()[:120]}"
    if data.get("status") == "healthy":
        return OK, "healthy"
    broken = [
        f"{c.get('name')}: {c.get('error') or c.get('status')}"
        for c in data.get("components") or []
        if c.get("status") != "healthy"
    ]
    return CRITICAL, "unhealthy: " + ("; ".join(broken) or str(data.get("status")))


def parse_readyz(returncode: int, output: str) -> tuple[str, str]:
    """Read the acquisition service's /readyz: 200 ready, 503 with failed checks."""
    try:
        data = json.loads(output)
    except json.JSONDecodeError:
        return (OK, "ready") if returncode == 0 else (CRITICAL, output.strip()[-300:])
    if returncode == 0:
        return OK, "ready"
    failed = [name for name, passed in (data.get("checks") or {}).items() if not passed]
    errors = [str(v) for k, v in data.items() if k.endswith("_error") and v]
    return CRITICAL, "not ready: " + ", ".join(failed) + (
        f" ({'; '.join(errors)})" if errors else ""
    )


def parse_http_code(returncode: int, output: str) -> tuple[str, str]:
    code = output.strip()[-3:]
    if returncode == 0 and code.startswith(("2", "3")):
        return OK, f"HTTP {code}"
    return CRITICAL, f"HTTP {code or 'no answer'} (curl exit {returncode})"


_READYZ = (
    "import sys, urllib.error, urllib.request\n"
    "try:\n"
    "    answer = urllib.request.urlopen('http://127.0.0.1:9108/readyz', timeout=4)\n"
    "    print(answer.read().decode())\n"
    "except urllib.error.HTTPError as error:\n"
    "    print(error.read().decode())\n"
    "    sys.exit(1)\n"
)

PROBES: dict[str, Probe] = {
    "traefik": Probe("Traefik ping", ("traefik", "healthcheck", "--ping"), _exit_ok),
    "emqx": Probe(
        "EMQX status", ("/opt/emqx/bin/emqx", "ctl", "status"), parse_emqx_status
    ),
    "influxdb": Probe(
        "InfluxDB /health",
        ("curl", "-fsS", "--max-time", "5", "http://127.0.0.1:8086/health"),
        parse_influx_health,
    ),
    "lam": Probe(
        "LAM login page",
        (
            "curl",
            "-sS",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://127.0.0.1:80/",
        ),
        parse_http_code,
    ),
    "sensor-acquisition": Probe(
        "acquisition /readyz", ("python3", "-c", _READYZ), parse_readyz
    ),
    "socket-proxy": Probe(
        "socket proxy /_ping",
        (
            "sh",
            "-c",
            "wget -q -O - http://127.0.0.1:2375/_ping "
            "|| curl -fsS http://127.0.0.1:2375/_ping",
        ),
        _exit_ok,
    ),
    HARBOR_CORE_SERVICE: Probe(
        "Harbor /api/v2.0/health",
        ("curl", "-fsS", "--max-time", "5", "http://127.0.0.1:8080/api/v2.0/health"),
        parse_harbor_health,
    ),
}


def probe(service: str, container: str) -> Check | None:
    """Run the service's probe in its container; None when it has no probe."""
    found = PROBES.get(service)
    if found is None:
        return None
    try:
        result = docker.exec_in(container, list(found.argv), timeout=20)
    except docker.DockerError as error:
        return Check("endpoint", service, CRITICAL, f"{found.what}: {error}")
    output = result.stdout if result.stdout.strip() else result.stderr
    severity, message = found.parse(result.returncode, output)
    return Check("endpoint", service, severity, f"{found.what}: {message}")


# --- containers ----------------------------------------------------------------


def container_checks(
    service: str,
    containers: Sequence[Mapping[str, Any]],
    settings: HealthSettings,
) -> list[Check]:
    """Judge the containers of one service from `docker inspect`."""
    if not containers:
        return [Check("container", service, CRITICAL, "no container; run `labdock up`")]
    checks = []
    for container in containers:
        name = docker.container_name(container)
        state = container.get("State") or {}
        status = docker.container_status(container)
        restarts = int(container.get("RestartCount") or 0)
        if status in ("healthy", "running"):
            severity, message = OK, status
        elif status == "starting":
            severity, message = WARNING, "healthcheck still starting"
        else:
            severity = CRITICAL
            message = status
            if status == "exited":
                message += f" with exit code {state.get('ExitCode')}"
            if status == "unhealthy":
                log = (state.get("Health") or {}).get("Log") or []
                if log:
                    message += f": {str(log[-1].get('Output', '')).strip()[-200:]}"
        if restarts >= settings.restart_warning_count:
            severity = max(severity, WARNING, key=SEVERITY_ORDER.__getitem__)
            message += f", restarted {restarts} times"
        if state.get("OOMKilled"):
            severity = CRITICAL
            message += ", killed for lack of memory (OOM)"
        checks.append(Check("container", f"{service} ({name})", severity, message))
    return checks


# --- certificates ----------------------------------------------------------------


def certificate_end(pem: str) -> datetime:
    """Return a PEM certificate's notAfter, read by `openssl x509`."""
    try:
        result = execute.run(
            ["openssl", "x509", "-noout", "-enddate"], input_text=pem, timeout=10
        )
    except execute.CommandError as error:
        raise OpsError(f"openssl cannot read the certificate: {error}") from error
    text = result.stdout.strip().removeprefix("notAfter=")
    return datetime.strptime(text, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC)


def acme_certificates(acme_json: str) -> list[tuple[str, str]]:
    """Return (main domain, PEM chain) of every certificate in Traefik's acme.json."""
    data = json.loads(acme_json) if acme_json.strip() else {}
    found = []
    for resolver in (data or {}).values():
        for entry in (resolver or {}).get("Certificates") or []:
            domain = (entry.get("domain") or {}).get("main", "?")
            pem = base64.b64decode(entry.get("certificate", "")).decode(
                "ascii", "replace"
            )
            found.append((str(domain), pem))
    return found


def certificate_checks(
    acme_json: str, settings: HealthSettings, now: datetime
) -> list[Check]:
    checks = []
    for domain, pem in acme_certificates(acme_json):
        try:
            end = certificate_end(pem)
        except (OpsError, ValueError) as error:
            checks.append(Check("certificate", domain, WARNING, str(error)))
            continue
        days = (end - now).total_seconds() / 86400
        if days < settings.certificate_critical_days:
            severity = CRITICAL
        elif days < settings.certificate_warning_days:
            severity = WARNING
        else:
            severity = OK
        verb = "expired" if days < 0 else "expires"
        checks.append(
            Check(
                "certificate",
                domain,
                severity,
                f"{verb} {end.date().isoformat()} ({days:.0f} days)",
            )
        )
    if not checks:
        checks.append(
            Check(
                "certificate",
                "acme.json",
                WARNING,
                "Traefik holds no ACME certificate yet; see `labdock logs traefik`",
            )
        )
    return checks


# --- disk ------------------------------------------------------------------------


def disk_check(label: str, path: Path, settings: HealthSettings) -> Check:
    try:
        stats = os.statvfs(path)
    except OSError as error:
        return Check("disk", label, UNKNOWN, f"cannot stat {path}: {error.strerror}")
    free = stats.f_bavail * stats.f_frsize
    total = stats.f_blocks * stats.f_frsize or 1
    percent = 100.0 * free / total
    if percent < settings.disk_critical_percent:
        severity = CRITICAL
    elif percent < settings.disk_warning_percent:
        severity = WARNING
    else:
        severity = OK
    return Check(
        "disk",
        label,
        severity,
        f"{percent:.1f}% free ({free / 2**30:.1f} GiB of {total / 2**30:.1f} GiB) at {path}",
    )


# --- backups ---------------------------------------------------------------------


def backup_checks(
    status: Mapping[str, Any], settings: HealthSettings, now: datetime
) -> list[Check]:
    services = status.get("services") or {}
    if not services:
        return [
            Check(
                "backup",
                "all",
                WARNING,
                "no backup recorded; run `labdock backup run` and schedule it",
            )
        ]
    checks = []
    for service, entry in sorted(services.items()):
        last = entry.get("last_success")
        if not last:
            checks.append(
                Check(
                    "backup",
                    service,
                    CRITICAL,
                    f"never succeeded; last error: {entry.get('last_error')}",
                )
            )
            continue
        hours = (now - datetime.fromisoformat(str(last))).total_seconds() / 3600
        message = f"last success {hours:.1f} h ago"
        if service == SECRETS:
            # Only runs with --include-secrets take them, and the scheduled
            # run does not, so their age is no sign of a missed backup.
            severity = OK
            message += " (backed up only with --include-secrets)"
        elif hours > settings.backup_critical_hours:
            severity = CRITICAL
        elif hours > settings.backup_warning_hours:
            severity = WARNING
        else:
            severity = OK
        if entry.get("last_result") == "failed":
            severity = max(severity, WARNING, key=SEVERITY_ORDER.__getitem__)
            message += f"; the last attempt failed: {entry.get('last_error')}"
        checks.append(Check("backup", service, severity, message))
    return checks


# --- all -------------------------------------------------------------------------


def _acme_text(project: Project) -> str | None:
    if "traefik" not in project.services:
        return None
    for mount in project.volume_mounts("traefik"):
        volume = docker.inspect_volume(mount.name)
        if volume is None:
            continue
        path = Path(str(volume.get("Mountpoint", ""))) / "acme.json"
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""
        except OSError:
            return None
    return None


def run_checks(
    project: Project,
    settings: Settings,
    *,
    now: datetime | None = None,
    services: Sequence[str] | None = None,
) -> list[Check]:
    """Run every check against a tree's project; return them in a stable order."""
    moment = now or datetime.now(UTC)
    health = settings.health
    checks: list[Check] = []
    names = [
        name
        for name in project.start_order()
        if not project.service(name).get("profiles")
    ]
    if services:
        # Checked first: an unknown name would otherwise select no check
        # at all and report OK.
        unknown = [name for name in services if name not in [*names, "harbor"]]
        if unknown:
            raise OpsError(
                f"unknown service {', '.join(unknown)}; services: "
                + ", ".join([*names, "harbor"])
            )
        names = [name for name in names if name in services]
    by_service = project.containers()
    for name in names:
        containers = by_service.get(name, [])
        checks.extend(container_checks(name, containers, health))
        for container in containers:
            if (container.get("State") or {}).get("Running"):
                found = probe(name, docker.container_name(container))
                if found is not None:
                    checks.append(found)
    if not services or "harbor" in services:
        for container in docker.project_containers(HARBOR_PROJECT):
            if docker.service_of(container) == HARBOR_CORE_SERVICE:
                checks.extend(container_checks("harbor", [container], health))
                if (container.get("State") or {}).get("Running"):
                    found = probe(HARBOR_CORE_SERVICE, docker.container_name(container))
                    if found is not None:
                        checks.append(found)
    if not services:
        acme = _acme_text(project)
        if acme is not None:
            checks.extend(certificate_checks(acme, health, moment))
        checks.extend(_disk_checks(project, settings))
        try:
            status = load_status(resolve(project.tree, settings.backup.status_file))
        except OpsError as error:
            checks.append(Check("backup", "all", UNKNOWN, str(error)))
        else:
            checks.extend(backup_checks(status, health, moment))
    return checks


def _disk_checks(project: Project, settings: Settings) -> list[Check]:
    seen: set[int] = set()
    checks = []
    paths: list[tuple[str, Path]] = []
    for name in project.services:
        for mount in project.volume_mounts(name):
            volume = docker.inspect_volume(mount.name)
            if volume is not None:
                paths.append((f"volume {mount.name}", Path(str(volume["Mountpoint"]))))
    harbor = settings.backup.harbor_data or Path(
        project.settings().get("HARBOR_DATA") or "/data/harbor"
    )
    if harbor.is_dir():
        paths.append(("Harbor data", harbor))
    repository = settings.backup.repository or ""
    if repository.startswith("/") and Path(repository).is_dir():
        paths.append(("backup repository", Path(repository)))
    for label, path in paths:
        try:
            device = path.stat().st_dev
        except OSError:
            checks.append(Check("disk", label, UNKNOWN, f"cannot stat {path}"))
            continue
        if device in seen:
            continue
        seen.add(device)
        checks.append(disk_check(label, path, settings.health))
    return checks

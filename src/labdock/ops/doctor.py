"""`labdock doctor [SERVICE]`: find why a service misbehaves, and print the fix.

Three groups of checks, each finding carrying its fix:

- a service that does not start: exit code, OOM kill, restarts, the last
  log lines matched against known failures, missing or unreadable secret
  files, port conflicts, unset Compose variables;
- network connectivity: name resolution and TCP reachability along the
  paths the stack needs (depends_on, Traefik to the services it routes,
  Traefik to the socket proxy, LAM to the host's LDAP server), probed from
  inside the source container; Traefik's router errors from its API when
  it is reachable, else from its log;
- volume permissions: owner and mode of each writable named volume against
  the user the container runs as.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from labdock.ops import backup, docker, schedule
from labdock.ops.errors import OpsError
from labdock.ops.project import Project
from labdock.stack.compose import ComposeError

logger = logging.getLogger(__name__)

ERROR, WARNING, INFO = "error", "warning", "info"

# The port each shipped service listens on inside the stack.
SERVICE_PORTS = {
    "emqx": 1883,
    "influxdb": 8086,
    "lam": 80,
    "sensor-acquisition": 9108,
    "socket-proxy": 2375,
    "traefik": 8080,
}
# Capabilities that let root in a container write files it does not own.
_ROOT_OVERRIDES = {"CAP_DAC_OVERRIDE", "DAC_OVERRIDE", "ALL", "CAP_ALL"}


@dataclass(frozen=True)
class Finding:
    """One problem with the service it concerns and the fix."""

    service: str
    severity: str
    problem: str
    fix: str
    detail: tuple[str, ...] = ()


@dataclass(frozen=True)
class LogPattern:
    pattern: re.Pattern[str]
    problem: str
    fix: str


def _pattern(regex: str, problem: str, fix: str) -> LogPattern:
    return LogPattern(re.compile(regex, re.IGNORECASE), problem, fix)


LOG_PATTERNS = (
    _pattern(
        r"permission denied|operation not permitted",
        "the process was denied access to a file or directory",
        "give the container's user the files it writes: see the volume findings, "
        "or chown the volume to the user the image runs as",
    ),
    _pattern(
        r"address already in use|port is already allocated",
        "a port the service binds is already taken",
        "stop the other process or container, or change the port in .env",
    ),
    _pattern(
        r"/run/secrets/\S*:? no such file|no such file or directory.*/run/secrets",
        "a secret file the service reads is missing",
        "run `labdock secrets init`, then `labdock up`",
    ),
    _pattern(
        r"exec format error",
        "the image is built for another CPU architecture",
        "pull the image for this host's platform (docker compose pull)",
    ),
    _pattern(
        r"unknown_env_vars",
        "EMQX ignored environment variables it does not know",
        "fix the EMQX_* names; a path is written with __, e.g. EMQX_NODE__NAME",
    ),
    _pattern(
        r"client version [\d.]+ is too old",
        "Traefik is older than v3.6.1 and cannot use this Docker Engine's API",
        "update traefik to v3.6.1 or later: labdock update traefik --to v3.7.15",
    ),
    _pattern(
        r"permissions \d+ for \S*acme\.json are too open",
        "Traefik refuses acme.json because its mode is not 600",
        "chmod 600 acme.json in the traefik_acme volume",
    ),
    _pattern(
        r"no space left on device",
        "the disk under the service's data is full",
        "free space on the filesystem of the Docker data root, then restart",
    ),
    _pattern(
        r"cannot allocate memory|out of memory",
        "the service ran out of memory",
        "raise deploy.resources.limits.memory of the service",
    ),
)


def classify_logs(service: str, lines: Sequence[str]) -> list[Finding]:
    """Return one finding per known failure that the log lines show."""
    findings = []
    for known in LOG_PATTERNS:
        matching = [line for line in lines if known.pattern.search(line)]
        if matching:
            findings.append(
                Finding(service, ERROR, known.problem, known.fix, (matching[-1],))
            )
    return findings


_EXIT_MEANINGS = {
    0: "it ended without an error (it was stopped, or its command finished)",
    1: "a generic error",
    2: "a usage error (wrong command or options)",
    126: "its command is not executable",
    127: "its command was not found in the image",
    137: "it was killed (SIGKILL: out of memory, or it ignored SIGTERM on stop)",
    139: "it crashed (SIGSEGV)",
    143: "it was stopped (SIGTERM)",
}


def exit_meaning(code: int) -> str:
    return _EXIT_MEANINGS.get(code, f"exit code {code}")


# --- a service that does not start --------------------------------------------------


def container_findings(
    service: str, container: Mapping[str, Any], log_lines: Sequence[str]
) -> list[Finding]:
    """Judge one inspected container and its last log lines."""
    state = container.get("State") or {}
    status = docker.container_status(container)
    restarts = int(container.get("RestartCount") or 0)
    code = int(state.get("ExitCode") or 0)
    findings: list[Finding] = []
    tail = tuple(log_lines[-10:])
    if state.get("OOMKilled"):
        limit = int((container.get("HostConfig") or {}).get("Memory") or 0)
        shown = f"{limit / 2**20:.0f} MiB" if limit else "no limit"
        findings.append(
            Finding(
                service,
                ERROR,
                f"the kernel killed it for lack of memory (limit: {shown})",
                "raise deploy.resources.limits.memory of the service, or find what "
                "makes it grow",
                tail,
            )
        )
    if status in ("exited", "dead") or (status == "restarting") or restarts >= 3:
        looping = status == "restarting" or restarts >= 3
        if looping and status == "running":
            # Caught between two restarts: Docker keeps no exit code for a
            # running container, so there is none to report.
            problem = (
                f"it keeps restarting ({restarts} restarts so far) and is running "
                "again for now"
            )
        elif looping:
            problem = (
                f"it keeps restarting ({restarts} restarts so far); it last exited "
                f"with code {code}: {exit_meaning(code)}"
            )
        else:
            problem = f"it exited with code {code}: {exit_meaning(code)}"
        findings.append(
            Finding(
                service,
                ERROR,
                problem,
                "read the log lines above; `labdock logs "
                f"{service}` shows more. Fix the cause, then `labdock up {service}`",
                tail,
            )
        )
    elif status == "unhealthy":
        log = (state.get("Health") or {}).get("Log") or []
        output = str(log[-1].get("Output", "")).strip() if log else ""
        findings.append(
            Finding(
                service,
                ERROR,
                "its healthcheck fails" + (f": {output[-200:]}" if output else ""),
                f"run the healthcheck by hand: docker exec {docker.container_name(container)} "
                "with the test from its compose.yaml",
                tail,
            )
        )
    error = str(state.get("Error") or "")
    if error:
        findings.append(
            Finding(
                service, ERROR, f"Docker could not start it: {error}", _start_fix(error)
            )
        )
    if findings or status not in ("healthy", "running"):
        findings.extend(classify_logs(service, [*log_lines, error]))
    return findings


def _start_fix(error: str) -> str:
    if re.search(r"port is already allocated|address already in use", error):
        return "free the port or change it in .env (HTTP_PORT, HTTPS_PORT, MQTTS_PORT)"
    if "no such file or directory" in error:
        return "create the missing file or directory that a bind mount names"
    return "fix the cause Docker names, then `labdock up`"


def secret_findings(
    service: str, files: Mapping[str, Path], reader_uid: int | None
) -> list[Finding]:
    """Check the host files of a service's secrets: present, and readable by it."""
    findings = []
    for name, path in sorted(files.items()):
        if not path.is_file():
            findings.append(
                Finding(
                    service,
                    ERROR,
                    f"secret file {path} ({name}) is missing",
                    "run `labdock secrets init`",
                )
            )
            continue
        info = path.stat()
        if reader_uid in (None, 0):
            continue
        readable = (
            info.st_uid == reader_uid and info.st_mode & 0o400
        ) or info.st_mode & 0o004
        if not readable:
            findings.append(
                Finding(
                    service,
                    ERROR,
                    f"secret file {path} is owned by uid {info.st_uid} with mode "
                    f"{info.st_mode & 0o777:04o}, but {service} reads it as uid "
                    f"{reader_uid} (Compose file secrets keep the host owner)",
                    f"chown {reader_uid} {path}",
                )
            )
    return findings


def published_ports(service: Mapping[str, Any]) -> list[tuple[str, int]]:
    """Return (host IP, host port) of each port a Compose service publishes."""
    ports = []
    for entry in service.get("ports") or []:
        published = entry.get("published") if isinstance(entry, dict) else None
        if published:
            ports.append((str(entry.get("host_ip") or "0.0.0.0"), int(published)))
    return ports


def port_findings(
    service: str,
    wanted: Sequence[tuple[str, int]],
    others: Sequence[Mapping[str, Any]],
) -> list[Finding]:
    """Find published ports that containers of other projects already hold."""
    findings = []
    for container in others:
        bindings = (container.get("HostConfig") or {}).get("PortBindings") or {}
        if not (container.get("State") or {}).get("Running"):
            continue
        taken = {
            int(binding.get("HostPort") or 0)
            for values in bindings.values()
            for binding in values or []
        }
        for _host_ip, port in wanted:
            if port in taken:
                findings.append(
                    Finding(
                        service,
                        ERROR,
                        f"host port {port} is already published by container "
                        f"{docker.container_name(container)}",
                        f"stop {docker.container_name(container)} or change the port "
                        "in .env",
                    )
                )
    return findings


def compose_warnings(stderr: str) -> list[Finding]:
    """Turn `docker compose config` warnings about unset variables into findings."""
    findings = []
    for match in re.finditer(r'"(\w+)" variable is not set', stderr):
        findings.append(
            Finding(
                "compose",
                WARNING,
                f"variable {match.group(1)} is not set and defaults to a blank string",
                f"set {match.group(1)} in .env (see .env.example)",
            )
        )
    return findings


# --- volume permissions -------------------------------------------------------------


def parse_user(user: str, passwd: str | None) -> tuple[int | None, int | None]:
    """Return (uid, gid) of a Docker `User` value ('', 'name', '1000:1000', ...)."""
    if not user:
        return 0, 0
    name, _, group = user.partition(":")
    uid: int | None = int(name) if name.isdigit() else None
    gid: int | None = int(group) if group.isdigit() else None
    if uid is None or (gid is None and not group):
        for line in (passwd or "").splitlines():
            fields = line.split(":")
            if len(fields) >= 4 and (fields[0] == name or fields[2] == name):
                uid = int(fields[2]) if uid is None else uid
                gid = int(fields[3]) if gid is None else gid
                break
    return uid, gid


def writable(
    uid: int, gid: int | None, owner: int, group: int, mode: int, root_override: bool
) -> bool:
    """Return whether a user can write into a directory with this owner and mode."""
    if uid == 0 and (owner == 0 or root_override):
        return True
    if uid == owner:
        return bool(mode & 0o200)
    if gid is not None and gid == group:
        return bool(mode & 0o020)
    return bool(mode & 0o002)


def volume_findings(
    service: str,
    mounts: Sequence[tuple[str, str, Path | None]],
    uid: int | None,
    gid: int | None,
    root_override: bool,
) -> list[Finding]:
    """Check each (volume, target, host directory) against the container user."""
    findings = []
    if uid is None:
        return [
            Finding(
                service,
                INFO,
                "the user the image runs as could not be resolved to a uid",
                "set `user: UID:GID` on the service to let doctor check its volumes",
            )
        ]
    for volume, target, directory in mounts:
        if directory is None:
            continue
        try:
            info = directory.stat()
        except OSError as error:
            findings.append(
                Finding(
                    service,
                    INFO,
                    f"cannot read the owner of volume {volume}: {error.strerror}",
                    "run labdock doctor as root on the Docker host",
                )
            )
            continue
        mode = info.st_mode & 0o7777
        if writable(uid, gid, info.st_uid, info.st_gid, mode, root_override):
            continue
        user = f"{uid}:{gid}" if gid is not None else str(uid)
        findings.append(
            Finding(
                service,
                ERROR,
                f"volume {volume} (mounted at {target}) is owned by "
                f"{info.st_uid}:{info.st_gid} with mode {mode:04o}, so {service}, "
                f"which runs as {user}, cannot write to it",
                f"chown -R {user} {directory}  (or: docker run --rm -v {volume}:/v "
                f"IMAGE chown -R {user} /v)",
            )
        )
    return findings


# --- network -------------------------------------------------------------------------

# Resolves a name and opens a TCP connection with whatever the image has.
# Prints RESOLVE_FAILED, CONNECT_FAILED, OK or NO_TOOL.
_PROBE = r"""
host="$1"; port="$2"
if command -v python3 >/dev/null 2>&1; then
  exec python3 - "$host" "$port" <<'EOF'
import socket, sys
try:
    address = socket.getaddrinfo(sys.argv[1], int(sys.argv[2]), proto=socket.IPPROTO_TCP)
except OSError as error:
    print("RESOLVE_FAILED", error); sys.exit(0)
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), 3).close()
except OSError as error:
    print("CONNECT_FAILED", error); sys.exit(0)
print("OK")
EOF
elif command -v curl >/dev/null 2>&1; then
  curl -s -o /dev/null --connect-timeout 3 --max-time 4 "telnet://$host:$port" </dev/null
  case $? in 6) echo RESOLVE_FAILED;; 7|28) echo CONNECT_FAILED;; *) echo OK;; esac
elif command -v getent >/dev/null 2>&1; then
  getent hosts "$host" >/dev/null && echo NO_TOOL resolved || echo RESOLVE_FAILED
else
  echo NO_TOOL
fi
"""


def parse_probe(output: str) -> tuple[str, str]:
    """Return (verdict, detail) from the probe's output."""
    text = output.strip()
    for verdict in ("RESOLVE_FAILED", "CONNECT_FAILED", "NO_TOOL", "OK"):
        for line in text.splitlines():
            if line.startswith(verdict):
                return verdict, line[len(verdict) :].strip()
    return "NO_TOOL", text[-200:]


def connectivity_paths(project: Project) -> list[tuple[str, str, int, str]]:
    """Return (source, target host, port, why) for every path the stack needs."""
    paths = []
    for name in project.services:
        service = project.service(name)
        if service.get("profiles"):
            continue
        for dependency in sorted(project.dependencies(name)):
            if dependency in SERVICE_PORTS:
                paths.append(
                    (name, dependency, SERVICE_PORTS[dependency], "depends_on")
                )
        labels = service.get("labels") or {}
        if name != "traefik" and str(labels.get("traefik.enable")) == "true":
            ports = [
                int(value)
                for key, value in labels.items()
                if key.endswith(".loadbalancer.server.port") and str(value).isdigit()
            ]
            for port in sorted(set(ports)) or (
                [SERVICE_PORTS[name]] if name in SERVICE_PORTS else []
            ):
                if "traefik" in project.services:
                    paths.append(("traefik", name, port, "routed by Traefik"))
    if "lam" in project.services:
        env = project.service("lam").get("environment") or {}
        url = urlsplit(str(env.get("LDAP_SERVER") or ""))
        if url.hostname:
            default = 636 if url.scheme == "ldaps" else 389
            paths.append(("lam", url.hostname, url.port or default, "LDAP on the host"))
    return paths


def network_findings(
    project: Project, running: Mapping[str, str], services: Sequence[str]
) -> list[Finding]:
    """Probe each needed path whose source or target is one of `services`."""
    findings = []
    for source, target, port, why in connectivity_paths(project):
        if source not in services and target not in services:
            continue
        container = running.get(source)
        if container is None:
            continue
        result = docker.exec_in(
            container, ["sh", "-c", _PROBE, "probe", target, str(port)], timeout=20
        )
        verdict, detail = parse_probe(result.stdout + result.stderr)
        if verdict == "OK":
            continue
        if verdict == "NO_TOOL":
            findings.append(
                Finding(
                    source,
                    INFO,
                    f"cannot probe {target}:{port} from {source}: the image has no "
                    "shell, python3 or curl",
                    "probe it from another container on the same network",
                )
            )
            continue
        if why == "LDAP on the host":
            fix = (
                f"map {target} to the host with extra_hosts ({target}:host-gateway), "
                "make slapd listen on an address the Docker bridge reaches, and "
                "allow the Docker subnets in the host firewall"
            )
        elif verdict == "RESOLVE_FAILED":
            fix = (
                f"put {source} and {target} on a common network in their compose "
                "files, and make sure the target container is running"
            )
        else:
            fix = f"check that {target} is running and listens on port {port}"
        findings.append(
            Finding(
                source,
                ERROR,
                f"{source} cannot {'resolve' if verdict == 'RESOLVE_FAILED' else 'reach'} "
                f"{target}:{port} ({why}){': ' + detail if detail else ''}",
                fix,
            )
        )
    return findings


def router_findings(routers: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """Turn Traefik's /api/http/routers response into findings."""
    findings = []
    for router in routers:
        errors = [str(e) for e in router.get("error") or []]
        status = str(router.get("status", "enabled"))
        if status == "enabled" and not errors:
            continue
        findings.append(
            Finding(
                "traefik",
                ERROR if status == "disabled" else WARNING,
                f"router {router.get('name')} is {status}"
                + (f": {'; '.join(errors)}" if errors else ""),
                "fix the router's traefik.* labels (rule, service, middlewares) and "
                "recreate the service",
            )
        )
    return findings


def traefik_routers(
    address: str, host: str, user: str, password: str, timeout: float = 5.0
) -> list[dict[str, Any]]:
    """Read /api/http/routers from Traefik's dashboard router.

    `address` is https://IP:PORT of the websecure entrypoint and `host` the
    dashboard's host name, sent as SNI and Host header. The certificate is
    not verified: the connection goes to an address chosen by the operator,
    usually loopback, where the name would not match anyway.
    """
    import urllib3

    url = urlsplit(address)
    pool = urllib3.HTTPSConnectionPool(
        url.hostname or "127.0.0.1",
        url.port or 443,
        server_hostname=host,
        assert_hostname=False,
        cert_reqs="CERT_NONE",
        timeout=urllib3.Timeout(total=timeout),
        retries=False,
    )
    headers = urllib3.make_headers(basic_auth=f"{user}:{password}")
    headers["Host"] = host
    try:
        response = pool.request("GET", "/api/http/routers", headers=headers)
    except urllib3.exceptions.HTTPError as error:
        raise OpsError(f"cannot reach Traefik's API at {address}: {error}") from error
    finally:
        pool.close()
    if response.status != 200:
        raise OpsError(
            f"Traefik's API at {address} (Host {host}) returned HTTP "
            f"{response.status}; a 403 means ADMIN_ALLOWLIST does not include "
            "the address labdock connects from"
        )
    data = json.loads(response.data.decode("utf-8"))
    return list(data) if isinstance(data, list) else []


_TRAEFIK_ERROR = re.compile(r'(level=error|"level":"error"|\bERR\b)', re.IGNORECASE)
# ANSI escape sequences (CSI): Traefik 3 colours its console log level, so
# the log contains "\x1b[31mERR" and the `\bERR\b` match needs them removed.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def strip_ansi(line: str) -> str:
    return _ANSI_ESCAPE.sub("", line)


def traefik_log_findings(lines: Sequence[str]) -> list[Finding]:
    """Find router and provider errors in Traefik's log."""
    plain = [strip_ansi(line) for line in lines]
    errors = [
        line
        for line in plain
        if _TRAEFIK_ERROR.search(line)
        and re.search(r"router|middleware|service|provider", line, re.IGNORECASE)
    ]
    if not errors:
        return []
    return [
        Finding(
            "traefik",
            WARNING,
            f"Traefik logged {len(errors)} router or provider errors",
            "read them below and fix the labels or files they name",
            tuple(errors[-5:]),
        )
    ]


# --- all -----------------------------------------------------------------------------


@dataclass
class Diagnosis:
    findings: list[Finding] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.severity != INFO]


def _container_user(
    container: Mapping[str, Any], image_user: str
) -> tuple[int | None, int | None, bool]:
    config = container.get("Config") or {}
    user = str(config.get("User") or image_user or "")
    passwd = docker.image_passwd(str(config.get("Image") or container.get("Image")))
    uid, gid = parse_user(user, passwd)
    host_config = container.get("HostConfig") or {}
    dropped = {str(c).upper() for c in host_config.get("CapDrop") or []}
    added = {str(c).upper() for c in host_config.get("CapAdd") or []}
    root_override = bool(added & _ROOT_OVERRIDES) or not (dropped & {"ALL", "CAP_ALL"})
    return uid, gid, root_override


def diagnose(
    project: Project,
    services: Sequence[str] | None = None,
    *,
    traefik_api: str | None = None,
) -> Diagnosis:
    """Run every check for `services` (default: all) of a tree's project."""
    names = [n for n in project.start_order() if not project.service(n).get("profiles")]
    if services:
        unknown = [s for s in services if s not in names]
        if unknown:
            raise OpsError(
                f"unknown service {', '.join(unknown)}; services: {', '.join(names)}"
            )
        names = [n for n in names if n in services]
    diagnosis = Diagnosis(checked=names)
    # Before the other checks, so that they see the containers running.
    diagnosis.findings.extend(interrupted_backup_findings(project.tree))
    try:
        config = project.compose().run("config", "--quiet", check=False)
        diagnosis.findings.extend(compose_warnings(config.stderr))
    except ComposeError as error:
        diagnosis.findings.append(
            Finding("compose", ERROR, str(error), "run `labdock validate`")
        )
    by_service = project.containers()
    others = [
        c
        for c in docker.all_containers()
        if ((c.get("Config") or {}).get("Labels") or {}).get(
            "com.docker.compose.project"
        )
        != project.name
    ]
    running: dict[str, str] = {}
    for name in project.services:
        for container in by_service.get(name, []):
            if (container.get("State") or {}).get("Running"):
                running[name] = docker.container_name(container)
    for name in names:
        diagnosis.findings.extend(_diagnose_service(project, name, by_service, others))
    diagnosis.findings.extend(network_findings(project, running, names))
    if "traefik" in names and "traefik" in running:
        diagnosis.findings.extend(
            _traefik_findings(project, running["traefik"], traefik_api)
        )
    return diagnosis


def interrupted_backup_findings(tree: Path) -> list[Finding]:
    """Start what a killed backup run left stopped or paused, and report it."""
    actions = backup.resume_interrupted(tree)
    if not actions:
        return []
    return [
        Finding(
            "backup",
            WARNING,
            "a backup run was killed while it had services stopped or paused; "
            "doctor started them again",
            "find out why the run was killed, e.g. `journalctl -u "
            f"{schedule.UNIT_NAME}.service`, and run `labdock backup run` again",
            tuple(actions),
        )
    ]


def _traefik_findings(
    project: Project, container: str, address: str | None
) -> list[Finding]:
    settings = project.settings()
    host = f"traefik.{settings.get('LABDOCK_DOMAIN', '')}"
    address = address or f"https://127.0.0.1:{settings.get('HTTPS_PORT') or 443}"
    password_file = project.tree / "secrets" / "traefik_dashboard_password"
    try:
        password = password_file.read_text(encoding="utf-8").strip()
        return router_findings(traefik_routers(address, host, "admin", password))
    except (OSError, OpsError, ValueError) as error:
        findings = [
            Finding(
                "traefik",
                INFO,
                f"router errors were read from Traefik's log, not its API: {error}",
                "pass --traefik-api https://ADDRESS:PORT of the websecure entrypoint, "
                "reachable from an address in ADMIN_ALLOWLIST",
            )
        ]
        return findings + traefik_log_findings(docker.logs_tail(container, 300))


def _diagnose_service(
    project: Project,
    name: str,
    by_service: Mapping[str, Sequence[Mapping[str, Any]]],
    others: Sequence[Mapping[str, Any]],
) -> list[Finding]:
    findings: list[Finding] = []
    containers = by_service.get(name, [])
    service = project.service(name)
    if not containers:
        findings.append(
            Finding(name, ERROR, "it has no container", f"run `labdock up {name}`")
        )
        findings.extend(secret_findings(name, project.secret_files(name), None))
        return findings
    container = containers[0]
    container_id = docker.container_name(container)
    image = docker.inspect_image(str(container.get("Image", ""))) or {}
    image_user = str((image.get("Config") or {}).get("User") or "")
    uid, gid, root_override = _container_user(container, image_user)
    status = docker.container_status(container)
    lines = docker.logs_tail(container_id, 40) if status not in ("healthy",) else []
    findings.extend(container_findings(name, container, lines))
    findings.extend(secret_findings(name, project.secret_files(name), uid))
    if status not in ("healthy", "running"):
        findings.extend(port_findings(name, published_ports(service), others))
    mounts = []
    for mount in project.volume_mounts(name):
        if mount.read_only:
            continue
        volume = docker.inspect_volume(mount.name)
        directory = Path(str(volume["Mountpoint"])) if volume else None
        mounts.append((mount.name, mount.target, directory))
    findings.extend(volume_findings(name, mounts, uid, gid, root_override))
    return findings

"""`labdock backup run`: each service's data into the restic repository.

A run backs up the tree's configuration, then each service by its method
(see labdock.ops.settings.DEFAULT_METHODS). Each part of a service (a dump,
a volume, a directory) becomes one restic snapshot whose root is the part's
content, tagged `labdock`, `service=NAME` and `part=NAME`. All snapshots of
one run carry the run's start time, so retention per service and part
keeps or drops whole runs, and a run is identified by that time.

A service that fails does not stop the run: the run goes on with the other
services, removes the failed service's snapshots of this run with restic
forget, and reports the failure at the end.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from labdock.ops import docker, native
from labdock.ops.errors import OpsError
from labdock.ops.progress import NoProgress, Progress
from labdock.ops.project import Project
from labdock.ops.restic import BackupSummary, ForgetGroup, Restic, ResticError
from labdock.ops.settings import (
    BackupSettings,
    ServiceBackup,
    method_for,
    repository_of,
    resolve,
)
from labdock.ops.state import STATE_DIR, read_json, state_dir, write_atomic
from labdock.stack import secrets as stack_secrets

logger = logging.getLogger(__name__)

TAG = "labdock"
TREE = "tree"
SECRETS = "secrets"
HARBOR = "harbor"
# Paths of the tree that contain secrets, are generated or describe a
# running command. The tree part leaves them out, and the secrets part takes
# the secret ones. A restored lock file would name a command of the past.
TREE_EXCLUDES = (
    "secrets",
    "harbor/installer",
    "sensor-acquisition/wheels",
    ".labdock/staging",
    ".labdock/backup.lock",
    "__pycache__",
)
SECRET_PATHS = (
    "secrets",
    "harbor/installer/harbor.yml",
    "harbor/installer/common/config",
)

PartKind = Literal["tree", "secrets", "volume", "influx", "emqx", "harbor-db", "path"]


@dataclass(frozen=True)
class Part:
    """One snapshot's worth of a service: a dump, a volume or a directory."""

    service: str
    name: str
    kind: PartKind
    volume: str | None = None
    path: Path | None = None

    @property
    def tags(self) -> tuple[str, ...]:
        return (TAG, f"service={self.service}", f"part={self.name}")

    @property
    def label(self) -> str:
        return f"{self.service}/{self.name}"


@dataclass(frozen=True)
class ServicePlan:
    """The parts of one service that a run backs up, and its backup method."""

    service: str
    method: str
    parts: tuple[Part, ...]
    stop_timeout: int = 30


@dataclass
class PartResult:
    part: Part
    summary: BackupSummary | None = None
    error: str | None = None
    # The part's directory was empty, so no snapshot was written.
    empty: bool = False


@dataclass
class ServiceResult:
    """The outcome of one service in a run."""

    service: str
    method: str
    started: datetime
    finished: datetime | None = None
    parts: list[PartResult] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(part.error is None for part in self.parts)

    @property
    def added_bytes(self) -> int:
        return sum(p.summary.data_added for p in self.parts if p.summary)

    @property
    def duration(self) -> float:
        end = self.finished or self.started
        return (end - self.started).total_seconds()

    def failure(self) -> str | None:
        if self.error:
            return self.error
        for part in self.parts:
            if part.error:
                return f"{part.part.name}: {part.error}"
        return None


@dataclass
class RunReport:
    """A whole run: its time, each service's result and the retention outcome."""

    time: datetime
    results: list[ServiceResult] = field(default_factory=list)
    pruned: list[ForgetGroup] | None = None
    prune_error: str | None = None
    stale_locks_removed: int = 0
    # What the run did to containers that an interrupted run left stopped
    # or paused.
    resumed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results) and self.prune_error is None


def run_id(moment: datetime) -> str:
    """Return the id of the run that started at `moment`: its UTC time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- plan ----------------------------------------------------------------------


def harbor_data(settings: BackupSettings, env: dict[str, str]) -> Path:
    if settings.harbor_data is not None:
        return settings.harbor_data
    return Path(env.get("HARBOR_DATA") or "/data/harbor")


def harbor_present(tree: Path) -> bool:
    return (tree / "harbor" / "installer" / "docker-compose.yml").is_file()


def plan_service(
    project: Project,
    service: str,
    settings: BackupSettings,
    *,
    include_secrets: bool,
) -> ServicePlan:
    """Return the parts of one Compose service under its configured method."""
    chosen: ServiceBackup = method_for(settings, service)
    if chosen.method == "skip":
        return ServicePlan(service, "skip", ())
    if chosen.method == "native":
        kind: PartKind = "influx" if service == "influxdb" else "emqx"
        name = "influx-backup" if service == "influxdb" else "data-export"
        return ServicePlan(service, "native", (Part(service, name, kind),))
    mounts = project.volume_mounts(service)
    wanted = set(chosen.volumes) if chosen.volumes is not None else None
    parts = []
    for mount in mounts:
        if wanted is not None and mount.key not in wanted:
            continue
        if mount.key in chosen.exclude_volumes:
            continue
        if mount.key in settings.secret_volumes and not include_secrets:
            continue
        parts.append(Part(service, f"volume-{mount.key}", "volume", volume=mount.name))
    if wanted is not None:
        unknown = wanted - {mount.key for mount in mounts}
        if unknown:
            raise OpsError(
                f"backup.services.{service}.volumes names "
                f"{', '.join(sorted(unknown))}, "
                f"which {service} does not mount; its volumes: "
                + (", ".join(mount.key for mount in mounts) or "none")
            )
    return ServicePlan(service, chosen.method, tuple(parts), chosen.stop_timeout)


def plan_harbor(settings: BackupSettings, env: dict[str, str]) -> ServicePlan:
    """Return Harbor's parts: database dump, registry storage, secret key."""
    chosen = method_for(settings, HARBOR)
    if chosen.method == "skip":
        return ServicePlan(HARBOR, "skip", ())
    data = harbor_data(settings, env)
    return ServicePlan(
        HARBOR,
        "native",
        (
            Part(HARBOR, "database", "harbor-db"),
            Part(HARBOR, "registry", "path", path=data / "registry"),
            # The key encrypts credentials stored in the database, so the
            # dump is of little use without it.
            Part(HARBOR, "secret-key", "path", path=data / "secret"),
        ),
    )


def plan_run(
    project: Project | None,
    settings: BackupSettings,
    *,
    tree: Path,
    services: Sequence[str] | None,
    include_secrets: bool,
) -> list[ServicePlan]:
    """Return the plan of a run: the tree, the secrets if asked, then services.

    `services` None means every service; an empty list means only the tree
    (and secrets). Services without a named volume have nothing to back up
    and are left out.
    """
    plans = [ServicePlan(TREE, "files", (Part(TREE, "config", "tree"),))]
    if include_secrets:
        plans.append(
            ServicePlan(SECRETS, "files", (Part(SECRETS, "files", "secrets"),))
        )
    wanted = None if services is None else list(services)
    if wanted == []:
        return plans
    if project is None:
        raise OpsError("backing up services needs the Compose project")
    available = [
        name
        for name in project.start_order()
        if not project.service(name).get("profiles")
    ]
    # A misspelt name in backup.services would otherwise leave its service
    # on the default method without a word.
    configured = [name for name in settings.services if name != HARBOR]
    misspelt = [name for name in configured if name not in project.services]
    if misspelt:
        raise OpsError(
            f"backup.services in .labdock/ops.yaml names {', '.join(misspelt)}, "
            f"which is not a service of the project; services: "
            f"{', '.join(sorted(project.services))}, {HARBOR}"
        )
    env = project.settings()
    with_harbor = harbor_present(tree) or HARBOR in settings.services
    names = available + ([HARBOR] if with_harbor else [])
    if wanted is not None:
        unknown = [name for name in wanted if name not in names]
        if unknown:
            raise OpsError(
                f"unknown service {', '.join(unknown)}; services: {', '.join(names)}"
            )
        names = [name for name in names if name in wanted]
    for name in names:
        plan = (
            plan_harbor(settings, env)
            if name == HARBOR
            else plan_service(project, name, settings, include_secrets=include_secrets)
        )
        if plan.parts or (wanted is not None and plan.method != "skip"):
            plans.append(plan)
    return plans


# --- run -----------------------------------------------------------------------


@contextmanager
def run_lock(tree: Path, command: str = "backup") -> Iterator[None]:
    """Hold TREE/.labdock/backup.lock so that backups, restores, updates and
    rollbacks never overlap, because each of them stops or replaces containers."""
    path = state_dir(tree) / "backup.lock"
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            handle.seek(0)
            # The file contains "PID COMMAND". Files written before the command was
            # recorded contain only the pid of a backup command.
            pid, _, holder = handle.read().strip().partition(" ")
            raise OpsError(
                f"another labdock {holder or 'backup'} command (pid {pid or 'unknown'}) "
                f"is holding the lock on {path}; wait for it to finish"
            ) from error
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {command}")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


QUIESCE_RECORD = "backup-quiesced.json"


def quiesce_record_path(tree: Path) -> Path:
    return state_dir(tree) / QUIESCE_RECORD


def read_quiesce_record(tree: Path) -> dict[str, Any] | None:
    """Return the record of containers a run stopped or paused, or None.

    A record that is left when no run is in progress means a run was
    killed before it could start them again.
    """
    path = tree / STATE_DIR / QUIESCE_RECORD
    try:
        data = read_json(path)
    except (OSError, ValueError) as error:
        logger.error("backup.quiesce_record_unreadable file=%s error=%s", path, error)
        return {"stopped": [], "paused": [], "error": str(error)}
    if not isinstance(data, dict):
        return None
    return data


def resume_quiesced(tree: Path) -> list[str]:
    """Unpause and start the containers that an interrupted run left behind.

    Returns one line per container it acted on; an empty list when no
    record was left. The caller must hold the run lock, so that the record
    of a run in progress is never taken for a left one.
    """
    record = read_quiesce_record(tree)
    if record is None:
        return []
    actions = []
    for container in record.get("paused") or []:
        logger.warning("backup.resume_unpause container=%s", container)
        docker.docker("unpause", str(container), check=False)
        actions.append(f"unpaused {container}")
    # Recorded in stop order, so the reverse starts each service before
    # its dependents.
    for container in reversed(record.get("stopped") or []):
        logger.warning("backup.resume_start container=%s", container)
        docker.docker("start", str(container), check=False)
        actions.append(f"started {container}")
    logger.warning(
        "backup.interrupted_run_resumed pid=%s started=%s containers=%d",
        record.get("pid"),
        record.get("started"),
        len(actions),
    )
    quiesce_record_path(tree).unlink(missing_ok=True)
    return actions


def resume_interrupted(tree: Path) -> list[str]:
    """Run resume_quiesced() unless a backup run holds the lock right now."""
    try:
        with run_lock(tree):
            return resume_quiesced(tree)
    except OpsError:
        return []


class Terminated(BaseException):
    """SIGTERM arrived during a run; raised so that stopped services restart."""


@contextmanager
def terminate_gracefully() -> Iterator[None]:
    """Turn the first SIGTERM into a Terminated exception while the block runs.

    systemd stops a unit with SIGTERM, and the default action would kill
    the run with its services still stopped. Later SIGTERMs are ignored
    while the services are started again. Outside the main thread, where
    Python cannot set handlers, the block runs unchanged.
    """
    received: list[int] = []

    def handle(signum: int, _frame: object) -> None:
        if received:
            logger.warning(
                "backup.signal_ignored signal=%d: restarting services", signum
            )
            return
        received.append(signum)
        logger.warning("backup.terminated signal=%d: restarting services", signum)
        raise Terminated(signum)

    try:
        previous = signal.signal(signal.SIGTERM, handle)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Quiesce:
    """Stops or pauses a service and its dependents, and always undoes it.

    Each container is written to TREE/.labdock/backup-quiesced.json before
    it is stopped or paused, and the record is removed once all run again.
    A run killed in between leaves the record, and the next run, `labdock
    up` or `labdock doctor` starts the containers (resume_quiesced).
    """

    def __init__(self, project: Project, plan: ServicePlan) -> None:
        self.project = project
        self.plan = plan
        self.stopped: list[str] = []
        self.paused: list[str] = []
        self.started = datetime.now(UTC).isoformat(timespec="seconds")

    def _running(self, service: str) -> list[str]:
        return [
            docker.container_name(container)
            for container in self.project.containers().get(service, [])
            if (container.get("State") or {}).get("Running")
        ]

    def _record(self) -> None:
        record = {
            "pid": os.getpid(),
            "started": self.started,
            "service": self.plan.service,
            "stopped": self.stopped,
            "paused": self.paused,
        }
        write_atomic(
            quiesce_record_path(self.project.tree),
            json.dumps(record, indent=2) + "\n",
            0o600,
        )

    def __enter__(self) -> Quiesce:
        try:
            self._quiesce()
        except BaseException:
            # __exit__ does not run when __enter__ fails.
            self._resume()
            raise
        return self

    def _quiesce(self) -> None:
        if self.plan.method == "stop":
            affected = {self.plan.service} | self.project.dependents(self.plan.service)
            # Dependents stop first, so nothing writes to a stopped service.
            for service in reversed(self.project.start_order(affected)):
                for container in self._running(service):
                    self.stopped.append(container)
                    self._record()
                    logger.info("backup.stop container=%s", container)
                    docker.docker(
                        "stop",
                        "-t",
                        str(self.plan.stop_timeout),
                        container,
                        timeout=None,
                    )
        elif self.plan.method == "pause":
            for container in self._running(self.plan.service):
                self.paused.append(container)
                self._record()
                logger.info("backup.pause container=%s", container)
                docker.docker("pause", container)

    def __exit__(self, *_exc: object) -> None:
        self._resume()

    def _resume(self) -> None:
        for container in self.paused:
            docker.docker("unpause", container, check=False)
        # Started in reverse stop order: the service before its dependents,
        # each healthy before the next starts.
        for container in reversed(self.stopped):
            logger.info("backup.start container=%s", container)
            docker.docker("start", container, check=False)
            up, status = docker.wait_until_up(container, 120)
            if not up:
                logger.error(
                    "backup.start_failed container=%s status=%s: it did not come "
                    "back after the backup; see `labdock doctor`",
                    container,
                    status,
                )
        quiesce_record_path(self.project.tree).unlink(missing_ok=True)


class BackupRunner:
    """Carries out a plan against one repository."""

    def __init__(
        self,
        tree: Path,
        restic: Restic,
        settings: BackupSettings,
        *,
        project: Project | None,
        progress: Progress | None = None,
    ) -> None:
        self.tree = tree
        self.restic = restic
        self.settings = settings
        self.project = project
        self.progress = progress or NoProgress()
        self.staging = resolve(tree, settings.staging_dir)

    def run(self, plans: Sequence[ServicePlan], *, prune: bool = False) -> RunReport:
        """Back up every plan, then apply retention when `prune` is set."""
        resumed = resume_quiesced(self.tree)
        if not self.restic.is_initialized():
            raise OpsError(
                f"no restic repository at {self.restic.repository}; run "
                "`labdock backup init` to create it"
            )
        report = RunReport(time=datetime.now(UTC).replace(microsecond=0))
        report.resumed = resumed
        live = self.restic.clear_stale_locks()
        exclusive = [lock for lock in live if lock.exclusive]
        if exclusive:
            lock = exclusive[0]
            raise OpsError(
                f"the repository is locked exclusively by restic pid {lock.pid} on "
                f"{lock.hostname} since {lock.time.isoformat(timespec='seconds')} "
                "(a prune or check is running); try again when it has finished"
            )
        total = sum(len(plan.parts) for plan in plans) + (1 if prune else 0)
        self.progress.begin(total, "backup")
        try:
            for plan in plans:
                report.results.append(self._run_service(plan, report.time))
            if prune:
                self.progress.step("retention")
                try:
                    report.pruned = self.restic.forget_policy(
                        self.settings.retention.policy(), tags=[TAG]
                    )
                except OpsError as error:
                    report.prune_error = str(error)
                    logger.error("backup.prune_failed error=%s", error)
        finally:
            self.progress.finish()
            shutil.rmtree(self.staging, ignore_errors=True)
        return report

    def _run_service(self, plan: ServicePlan, moment: datetime) -> ServiceResult:
        result = ServiceResult(plan.service, plan.method, datetime.now(UTC))
        logger.info(
            "backup.service_started service=%s method=%s", plan.service, plan.method
        )
        if not plan.parts:
            result.error = (
                f"nothing to back up: {plan.service} mounts no named volume that "
                "its method covers"
            )
        else:
            try:
                if plan.method in ("stop", "pause"):
                    if self.project is None:
                        raise OpsError("stopping services needs the Compose project")
                    with Quiesce(self.project, plan):
                        self._parts(plan, moment, result)
                else:
                    self._parts(plan, moment, result)
            except OpsError as error:
                result.error = str(error)
        result.finished = datetime.now(UTC)
        if not result.ok:
            self._forget_partial(result)
            logger.error(
                "backup.service_failed service=%s error=%s",
                plan.service,
                result.failure(),
            )
        else:
            logger.info(
                "backup.service_completed service=%s added_bytes=%d seconds=%.1f",
                plan.service,
                result.added_bytes,
                result.duration,
            )
        return result

    def _parts(
        self, plan: ServicePlan, moment: datetime, result: ServiceResult
    ) -> None:
        for part in plan.parts:
            self.progress.step(part.label)
            outcome = PartResult(part)
            result.parts.append(outcome)
            started = time.monotonic()
            try:
                outcome.summary = self._back_up_part(part, moment)
            except OpsError as error:
                outcome.error = str(error)
                continue
            if outcome.summary is None:
                outcome.empty = True
                logger.info("backup.part_empty part=%s: nothing to back up", part.label)
                continue
            logger.info(
                "backup.part_completed part=%s snapshot=%s files=%d added_bytes=%d "
                "seconds=%.1f",
                part.label,
                outcome.summary.snapshot_id,
                outcome.summary.total_files_processed,
                outcome.summary.data_added,
                time.monotonic() - started,
            )

    def _forget_partial(self, result: ServiceResult) -> None:
        ids = [p.summary.snapshot_id for p in result.parts if p.summary is not None]
        if not ids:
            return
        try:
            self.restic.forget_ids(ids)
            logger.info(
                "backup.partial_forgotten service=%s snapshots=%s",
                result.service,
                ",".join(ids),
            )
        except ResticError as error:
            logger.error(
                "backup.partial_forget_failed service=%s snapshots=%s error=%s",
                result.service,
                ",".join(ids),
                error,
            )

    def _back_up_part(self, part: Part, moment: datetime) -> BackupSummary | None:
        """Back up one part; return None when its directory is empty.

        restic 0.14 refuses to save an empty snapshot, and an empty volume
        (a log volume, a configuration never written) is not an error.
        """
        staging = self.staging / part.service / part.name
        try:
            if part.kind == "tree":
                excludes = [str(self.tree / path) for path in TREE_EXCLUDES]
                staging_dir = self.staging
                if staging_dir.is_relative_to(self.tree):
                    excludes.append(str(staging_dir))
                return self.restic.backup(
                    self.tree, tags=part.tags, time=moment, excludes=excludes
                )
            if part.kind == "secrets":
                present = [path for path in SECRET_PATHS if (self.tree / path).exists()]
                if not present:
                    raise OpsError(
                        f"{self.tree / 'secrets'} is missing; run "
                        "`labdock secrets init`"
                    )
                return self.restic.backup(
                    self.tree, tags=part.tags, time=moment, paths=present
                )
            if part.kind == "volume":
                assert part.volume is not None
                directory = volume_directory(part.volume)
                if not any(directory.iterdir()):
                    return None
                return self.restic.backup(directory, tags=part.tags, time=moment)
            if part.kind == "path":
                assert part.path is not None
                if not part.path.is_dir():
                    raise OpsError(
                        f"{part.path} does not exist; set backup.harbor_data in "
                        ".labdock/ops.yaml to Harbor's data_volume"
                    )
                if not any(part.path.iterdir()):
                    return None
                return self.restic.backup(part.path, tags=part.tags, time=moment)
            source = self._dump(part, staging)
            return self.restic.backup(source, tags=part.tags, time=moment)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _dump(self, part: Part, staging: Path) -> Path:
        if part.kind == "harbor-db":
            return native.harbor_dump(staging)
        if self.project is None:
            raise OpsError("a native dump needs the Compose project")
        container = self.project.running_container(part.service)
        if part.kind == "influx":
            return native.influx_backup(container, staging)
        return native.emqx_export(container, staging)


def volume_directory(name: str) -> Path:
    """Return the host directory of a Docker volume, checked to be readable.

    Volumes are read in place, so ownership and modes survive a restore.
    This needs labdock on the Docker host with access to the engine's data
    root, which means root for the default /var/lib/docker.
    """
    volume = docker.inspect_volume(name)
    if volume is None:
        raise OpsError(
            f"volume {name} does not exist; start the service once with `labdock up`"
        )
    mountpoint = Path(str(volume.get("Mountpoint", "")))
    if not mountpoint.is_dir() or not os.access(mountpoint, os.R_OK | os.X_OK):
        raise OpsError(
            f"cannot read volume {name} at {mountpoint}; run labdock as root on "
            "the Docker host"
        )
    return mountpoint


def open_repository(
    tree: Path, settings: BackupSettings, repository: str | None = None
) -> Restic:
    """Return the configured repository.

    Raises OpsError when the password file is missing, unreadable or empty.
    """
    location = repository_of(settings, repository)
    password_file = resolve(tree, settings.password_file)
    if not password_file.is_file():
        raise OpsError(
            f"the repository password file {password_file} is missing; "
            "`labdock backup init` creates it, or write the password of an "
            "existing repository into it (mode 0600)"
        )
    try:
        password = password_file.read_bytes()
    except OSError as error:
        raise OpsError(
            f"cannot read the repository password file {password_file}: "
            f"{error.strerror}; run labdock as root or as the owner of that file"
        ) from error
    if not password.strip():
        raise OpsError(
            f"the repository password file {password_file} is empty; write the "
            "password of the repository into it, or delete it and run "
            "`labdock backup init` for a new repository"
        )
    cache = resolve(tree, settings.cache_dir) if settings.cache_dir else None
    return Restic(location, password_file, cache_dir=cache, hostname=settings.host)


def init_repository(
    tree: Path, settings: BackupSettings, repository: str | None = None
) -> tuple[Restic, bool]:
    """Create the password file if missing, then the repository if missing.

    Returns the repository and whether it was created. A missing repository
    setting raises OpsError before the password file is written.
    """
    repository_of(settings, repository)
    password_file = resolve(tree, settings.password_file)
    if not password_file.exists():
        password_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        stack_secrets.write_secret(password_file, stack_secrets.password({}), 0)
        logger.info("backup.password_created file=%s", password_file)
    restic = open_repository(tree, settings, repository)
    if restic.is_initialized():
        return restic, False
    restic.init()
    return restic, True

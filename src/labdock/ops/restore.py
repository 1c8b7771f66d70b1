"""`labdock backup restore`: bring back one service or all, in a fixed order.

Order, and why:

1. tree: the Compose files and .env (and .labdock), so that the rest can
   be created. Restored when the target has no compose.yaml, when `tree`
   is named, or with --force; otherwise the existing configuration stays.
2. secrets (with --include-secrets only): the operator token that
   InfluxDB's restore needs, and every service's credentials.
3. traefik, socket-proxy: the entrypoint and its certificates.
4. emqx, then influxdb: the stores that the acquisition service uses.
5. lam, then harbor.
6. sensor-acquisition last, so that its spool replays into a database that
   is already restored.

Services with volume parts are stopped (dependents first) while their
volumes are replaced, and started again afterwards. Every precondition
(the part's volume is still mounted, the volume is empty or --force is
set) is checked before anything is stopped, and every service that was
running is started again even when the restore fails. Native parts need
the service running, so it is started first. A volume or directory that is
not empty is replaced only with --force.

A restore acts only on the Compose project of the target tree. When
containers of the same project name were created from another tree, as
the live one is when restoring into a new directory on the same host, the
restore stops before any service step. --project-name gives the target a
project name of its own.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from labdock.ops import docker, native
from labdock.ops.backup import (
    HARBOR,
    SECRETS,
    TAG,
    TREE,
    harbor_data,
    volume_directory,
)
from labdock.ops.catalog import select_parts
from labdock.ops.errors import OpsError
from labdock.ops.progress import NoProgress, Progress
from labdock.ops.project import Project, VolumeMount
from labdock.ops.restic import Restic, Snapshot
from labdock.ops.settings import BackupSettings, resolve
from labdock.stack import envfile, lifecycle
from labdock.stack import harbor as stack_harbor
from labdock.stack.compose import ComposeError

logger = logging.getLogger(__name__)

# Compose's rule for project names.
PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
RESTORE_ORDER = (
    TREE,
    SECRETS,
    "traefik",
    "socket-proxy",
    "emqx",
    "influxdb",
    "lam",
    HARBOR,
    "sensor-acquisition",
)
WAIT_TIMEOUT = 300


@dataclass
class ServiceRestore:
    service: str
    run: str | None = None
    parts: list[str] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class RestoreReport:
    target: Path
    results: list[ServiceRestore] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)


def restore_order(names: Sequence[str]) -> list[str]:
    """Return `names` in restore order; unknown services go before the last step."""
    known = [name for name in RESTORE_ORDER if name in names]
    others = sorted(name for name in names if name not in RESTORE_ORDER)
    if "sensor-acquisition" in known:
        known.remove("sensor-acquisition")
        return known + others + ["sensor-acquisition"]
    return known + others


def is_empty(directory: Path) -> bool:
    return not directory.exists() or not any(directory.iterdir())


def clear_directory(directory: Path) -> None:
    """Delete the content of `directory`, keeping the directory itself."""
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def set_project_name(tree: Path, name: str) -> None:
    """Set COMPOSE_PROJECT_NAME and the project's internal networks in tree/.env.

    The internal networks get names of their own because their default names
    are fixed, so two projects would otherwise share them. TRAEFIK_NETWORK
    stays: it is the external network that the host's Traefik routes on.
    """
    if not PROJECT_NAME.fullmatch(name):
        raise OpsError(
            f"--project-name {name!r} is invalid; use lowercase letters, digits, "
            "dashes and underscores, starting with a letter or digit"
        )
    env = tree / ".env"
    text = env.read_text(encoding="utf-8") if env.is_file() else ""
    values = {
        "COMPOSE_PROJECT_NAME": name,
        "BACKEND_NETWORK": f"{name}_backend",
        "SOCKET_PROXY_NETWORK": f"{name}_socket_proxy",
    }
    if envfile.parse_env(text).get("COMPOSE_PROJECT_NAME") == name:
        return
    env.write_text(envfile.set_values(text, values), encoding="utf-8")
    logger.info("restore.project_name tree=%s name=%s", tree, name)


def check_project_owner(project: Project) -> None:
    """Raise OpsError when another tree's containers use the project's name.

    Compose would otherwise recreate that tree's live containers from the
    restored files, and a --force restore would replace its volumes.
    """
    others = project.foreign_directories()
    if others:
        raise OpsError(
            f"project {project.name} of {project.tree} also has containers "
            f"created from {', '.join(str(path) for path in others)}; restore "
            "under another name with --project-name NAME, or stop that project "
            "first with `labdock down -C "
            f"{others[0]}`"
        )


class Restorer:
    """Restores the selected services of one repository into a tree."""

    def __init__(
        self,
        target: Path,
        restic: Restic,
        settings: BackupSettings,
        *,
        host: str,
        run: str | None = None,
        force: bool = False,
        include_secrets: bool = False,
        project_name: str | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.target = target
        self.restic = restic
        self.settings = settings
        self.host = host
        self.run = run
        self.force = force
        self.include_secrets = include_secrets
        self.project_name = project_name
        self.progress = progress or NoProgress()
        self.staging = resolve(target, settings.staging_dir) / "restore"
        self._project: Project | None = None

    def restore(self, services: Sequence[str] | None = None) -> RestoreReport:
        """Restore `services` (default: everything in the repository)."""
        snapshots = self.restic.snapshots(tags=[TAG])
        available = sorted(
            {s.service for s in snapshots if s.service and s.hostname == self.host}
        )
        if not available:
            others = sorted({s.hostname for s in snapshots})
            raise OpsError(
                f"the repository has no labdock snapshot from host {self.host}"
                + (
                    f"; hosts in it: {', '.join(others)}; pass --from-host"
                    if others
                    else ""
                )
            )
        if services:
            names = list(services)
            unknown = [name for name in names if name not in available]
            if unknown:
                raise OpsError(
                    f"no snapshot of {', '.join(unknown)}; backed-up services: "
                    + ", ".join(available)
                )
            explicit_tree = TREE in names
        else:
            names = [
                name for name in available if name != SECRETS or self.include_secrets
            ]
            explicit_tree = False
        if SECRETS in names and not self.include_secrets:
            raise OpsError("restoring secrets needs --include-secrets")
        if TREE not in names and not (self.target / "compose.yaml").is_file():
            names.insert(0, TREE)
        report = RestoreReport(self.target)
        ordered = restore_order(names)
        self.progress.begin(len(ordered), "restore")
        try:
            for name in ordered:
                if name not in (TREE, SECRETS, HARBOR):
                    # Outside the per-service errors: a project that belongs
                    # to another tree stops the whole restore.
                    self.project()
                self.progress.step(name)
                report.results.append(
                    self._restore_service(name, snapshots, explicit_tree)
                )
            if self.project_name and (self.target / "compose.yaml").is_file():
                # Only a service step loads the project and so sets the name.
                # A restore of the tree alone must set it too, or the restored
                # tree would start under the live project's name.
                set_project_name(self.target, self.project_name)
        finally:
            self.progress.finish()
            shutil.rmtree(self.staging, ignore_errors=True)
        return report

    # --- steps ------------------------------------------------------------------

    def _restore_service(
        self, name: str, snapshots: Sequence[Snapshot], explicit_tree: bool
    ) -> ServiceRestore:
        result = ServiceRestore(name)
        try:
            parts = select_parts(snapshots, name, host=self.host, run=self.run)
            result.run = self.run or "latest"
            if name in (TREE, SECRETS):
                self._restore_files(name, parts, explicit_tree, result)
            elif name == HARBOR:
                self._restore_harbor(parts, result)
            else:
                self._restore_compose_service(name, parts, result)
        except (OpsError, ComposeError) as error:
            result.error = str(error)
            logger.error("restore.failed service=%s error=%s", name, error)
        else:
            if result.skipped:
                logger.info(
                    "restore.skipped service=%s reason=%s", name, result.skipped
                )
            else:
                logger.info(
                    "restore.completed service=%s parts=%s",
                    name,
                    ",".join(result.parts),
                )
        return result

    def _restore_files(
        self,
        name: str,
        parts: dict[str, Snapshot],
        explicit_tree: bool,
        result: ServiceRestore,
    ) -> None:
        if name == TREE:
            existing = (self.target / "compose.yaml").is_file()
            if existing and not (explicit_tree or self.force):
                result.skipped = (
                    f"{self.target} already has a configuration; name `tree` or "
                    "pass --force to overwrite it"
                )
                return
        self.target.mkdir(parents=True, exist_ok=True)
        for part, snapshot in sorted(parts.items()):
            self.restic.restore(snapshot.id, self.target)
            result.parts.append(part)
        self._project = None

    def project(self) -> Project:
        """Load the target's Compose project, checked to belong to the target.

        With --project-name, the target's .env is first set to that name.
        """
        if self._project is None:
            if self.project_name:
                set_project_name(self.target, self.project_name)
            project = Project.load(self.target)
            check_project_owner(project)
            self._project = project
        return self._project

    def _compose_up(self, services: Sequence[str], *, start: bool) -> None:
        project = self.project()
        lifecycle.ensure_network(
            project.settings().get("TRAEFIK_NETWORK") or "traefik_network"
        )
        args = ["up", "--no-deps"]
        args += (
            ["-d", "--wait", "--wait-timeout", str(WAIT_TIMEOUT)]
            if start
            else ["--no-start"]
        )
        try:
            project.compose().run(*args, *services, capture=True)
        except ComposeError as error:
            raise OpsError(
                f"docker compose {' '.join(args)} {' '.join(services)} failed: {error}"
            ) from error

    def _running_containers(self, service: str) -> list[str]:
        return [
            docker.container_name(container)
            for container in self.project().containers().get(service, [])
            if (container.get("State") or {}).get("Running")
        ]

    def _restore_compose_service(
        self, name: str, parts: dict[str, Snapshot], result: ServiceRestore
    ) -> None:
        project = self.project()
        volume_parts = {p: s for p, s in parts.items() if p.startswith("volume-")}
        native_parts = {p: s for p, s in parts.items() if not p.startswith("volume-")}
        if volume_parts:
            self._restore_volumes(name, volume_parts, result)
        if native_parts:
            self._compose_up([name], start=True)
            container = project.running_container(name)
            for part, snapshot in sorted(native_parts.items()):
                staging = self.staging / name / part
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir(parents=True)
                self.restic.restore(snapshot.id, staging)
                if part == "influx-backup":
                    native.influx_restore(container, staging)
                elif part == "data-export":
                    native.emqx_import(container, staging)
                else:
                    raise OpsError(f"unknown part {part} of {name}")
                result.parts.append(part)

    def _check_volumes(
        self, name: str, volume_parts: dict[str, Snapshot]
    ) -> dict[str, VolumeMount]:
        """Check every volume part before anything is stopped.

        Returns the mount of each part. Raises OpsError when the service no
        longer mounts a part's volume, or when a volume has content and
        --force is not set.
        """
        mounts = {
            f"volume-{mount.key}": mount for mount in self.project().volume_mounts(name)
        }
        for part in sorted(volume_parts):
            if part not in mounts:
                raise OpsError(
                    f"{name} no longer mounts the volume of part {part}; "
                    "restore it by hand with `restic restore`"
                )
            volume = mounts[part].name
            if self.force or docker.inspect_volume(volume) is None:
                continue
            directory = volume_directory(volume)
            if not is_empty(directory):
                raise OpsError(
                    f"volume {volume} at {directory} is not empty; pass --force to "
                    "replace its content with the backup"
                )
        return mounts

    def _restore_volumes(
        self, name: str, volume_parts: dict[str, Snapshot], result: ServiceRestore
    ) -> None:
        """Stop `name` and its dependents, replace its volumes, start them again.

        Every service that was running when the step began is started again,
        also when the step fails. `name` itself is started only when its
        volumes were restored, so a failed restore leaves a stopped service
        stopped.
        """
        project = self.project()
        mounts = self._check_volumes(name, volume_parts)
        affected = {name} | project.dependents(name)
        running = {service for service in affected if self._running_containers(service)}
        try:
            for service in reversed(project.start_order(affected)):
                for container in self._running_containers(service):
                    docker.docker("stop", container, timeout=None)
            # Creates the containers and volumes of a fresh data root.
            self._compose_up([name], start=False)
            for part, snapshot in sorted(volume_parts.items()):
                directory = volume_directory(mounts[part].name)
                self._replace(directory, snapshot, f"volume {mounts[part].name}")
                result.parts.append(part)
        except BaseException:
            self._start_again(running)
            raise
        failed = self._start_again(running | {name})
        if failed:
            raise OpsError(
                f"the volumes of {name} were restored, but "
                + "; ".join(failed)
                + "; see `labdock logs` and start them with `labdock up`"
            )

    def _start_again(self, services: set[str]) -> list[str]:
        """Start `services` in dependency order; return one message per failure.

        A failure does not stop the others from being started.
        """
        failures = []
        for service in self.project().start_order(services):
            try:
                self._compose_up([service], start=True)
            except OpsError as error:
                logger.error("restore.start_failed service=%s error=%s", service, error)
                failures.append(f"{service} did not start: {error}")
        return failures

    def _replace(self, directory: Path, snapshot: Snapshot, what: str) -> None:
        if not is_empty(directory):
            if not self.force:
                raise OpsError(
                    f"{what} at {directory} is not empty; pass --force to replace "
                    "its content with the backup"
                )
            clear_directory(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.restic.restore(snapshot.id, directory)

    def _restore_harbor(
        self, parts: dict[str, Snapshot], result: ServiceRestore
    ) -> None:
        # NOTE: not exercised by the test suite, which has no Harbor images.
        data = harbor_data(self.settings, self.project().settings())
        try:
            compose = stack_harbor.harbor_compose(self.target)
        except stack_harbor.HarborError as error:
            raise OpsError(
                f"{error}; Harbor's files must exist before its data"
            ) from error
        directories = {"registry": data / "registry", "secret-key": data / "secret"}
        for part, directory in directories.items():
            if part in parts and not self.force and not is_empty(directory):
                raise OpsError(
                    f"Harbor {directory.name} at {directory} is not empty; pass "
                    "--force to replace its content with the backup"
                )
        compose.run("stop", check=False)
        try:
            for part, directory in directories.items():
                if part in parts:
                    self._replace(directory, parts[part], f"Harbor {directory.name}")
                    result.parts.append(part)
            if "database" in parts:
                compose.run("up", "-d", "--wait", "postgresql")
                staging = self.staging / HARBOR / "database"
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir(parents=True)
                self.restic.restore(parts["database"].id, staging)
                native.harbor_load(staging)
                result.parts.append("database")
        finally:
            # Harbor was stopped as a whole, so it is started again whatever
            # failed above.
            try:
                compose.run("up", "-d", "--wait", "--wait-timeout", str(WAIT_TIMEOUT))
            except ComposeError as error:
                logger.error("restore.start_failed service=harbor error=%s", error)
                result.error = f"Harbor did not start again: {error}"

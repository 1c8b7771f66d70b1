"""`labdock update SERVICE` and `labdock rollback SERVICE`.

An update pulls first, so a failed pull stops nothing. It records the
running image by ID and registry digest, recreates the one service, and
waits until it is healthy. When it is not healthy in time, the service is
recreated from the recorded image and checked again. Every attempt is
appended to TREE/.labdock/deployments.jsonl.

Each shipped service's `image:` has a `${NAME_IMAGE:-...}` variable, and
the update switches the image through it. The variable is set in the
environment of the Compose calls during the update. It is written to .env
(or NAME_VERSION, for a version) only once the new image is healthy.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from labdock.ops import docker
from labdock.ops.errors import OpsError
from labdock.ops.project import Project
from labdock.ops.state import state_dir
from labdock.stack.compose import ComposeError
from labdock.stack.envfile import read_env, set_values

logger = logging.getLogger(__name__)

HISTORY_FILE = "deployments.jsonl"
DEFAULT_TIMEOUT = 300
ROLLBACK_REPOSITORY = "labdock-rollback"
_IMAGE_VARIABLE = re.compile(r"^\$\{([A-Za-z0-9_]+_IMAGE):?-")
_VERSION_VARIABLE = re.compile(r"\$\{([A-Za-z0-9_]+_VERSION)(?::?-[^}]*)?\}")


@dataclass(frozen=True)
class ImageRecord:
    """A running image: the reference it was started from, its ID and digest."""

    reference: str
    image_id: str
    digest: str | None = None

    def pin(self) -> str:
        """Return a reference that names exactly this image."""
        return self.digest or rollback_tag(self.image_id)


@dataclass
class Deployment:
    """One line of deployments.jsonl."""

    id: str
    time: str
    service: str
    action: str  # update, rollback
    result: str  # succeeded, rolled-back, failed, unchanged
    before: ImageRecord | None
    after: ImageRecord | None
    env_before: dict[str, str] = field(default_factory=dict)
    env_after: dict[str, str] = field(default_factory=dict)
    message: str = ""
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Deployment:
        def image(value: Any) -> ImageRecord | None:
            return ImageRecord(**value) if isinstance(value, dict) else None

        return cls(
            id=str(data["id"]),
            time=str(data["time"]),
            service=str(data["service"]),
            action=str(data["action"]),
            result=str(data["result"]),
            before=image(data.get("before")),
            after=image(data.get("after")),
            env_before=dict(data.get("env_before") or {}),
            env_after=dict(data.get("env_after") or {}),
            message=str(data.get("message", "")),
            seconds=float(data.get("seconds", 0.0)),
        )


def rollback_tag(image_id: str) -> str:
    """Return the local tag that keeps an image without a digest reachable."""
    return f"{ROLLBACK_REPOSITORY}:{image_id.removeprefix('sha256:')[:12]}"


def history_path(tree: Path) -> Path:
    return state_dir(tree) / HISTORY_FILE


def read_history(tree: Path) -> list[Deployment]:
    """Return every recorded deployment, oldest first; bad lines are skipped."""
    path = tree / ".labdock" / HISTORY_FILE
    if not path.is_file():
        return []
    deployments = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            deployments.append(Deployment.from_dict(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            logger.warning(
                "deploy.history_line_skipped line=%d error=%s", number, error
            )
    return deployments


def append_history(tree: Path, deployment: Deployment) -> None:
    with history_path(tree).open("a", encoding="utf-8") as handle:
        handle.write(deployment.to_json() + "\n")


def image_variables(raw_image: str) -> tuple[str | None, str | None]:
    """Return the NAME_IMAGE and NAME_VERSION variables of a raw `image:` value."""
    image = _IMAGE_VARIABLE.match(raw_image)
    versions = _VERSION_VARIABLE.findall(raw_image)
    return (image.group(1) if image else None, versions[-1] if versions else None)


def raw_image(tree: Path, service: str) -> str:
    """Return the uninterpolated `image:` of a service from the tree's files."""
    files = [tree / "compose.yaml"]
    top = yaml.safe_load(files[0].read_text(encoding="utf-8")) or {}
    for entry in top.get("include") or []:
        paths = entry.get("path") if isinstance(entry, dict) else entry
        for path in [paths] if isinstance(paths, str) else paths or []:
            files.append(tree / str(path))
    for file in files:
        if not file.is_file():
            continue
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        found = ((data.get("services") or {}).get(service) or {}).get("image")
        if found:
            return str(found)
    raise OpsError(f"service {service} has no image: in {tree}'s Compose files")


def with_tag(reference: str, tag: str) -> str:
    """Return `reference` with its tag (and digest) replaced by `tag`."""
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: name.rfind(":")]
    return f"{name}:{tag}"


def is_reference(value: str) -> bool:
    """Return whether --to names a whole image rather than a version."""
    return "/" in value or ":" in value or "@" in value


def image_record(reference: str, image_id: str) -> ImageRecord:
    """Describe a local image, with the registry digest when it has one."""
    inspected = docker.inspect_image(image_id) or {}
    digests = [str(d) for d in inspected.get("RepoDigests") or []]
    repository = reference.split("@", 1)[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository[: repository.rfind(":")]
    matching = [d for d in digests if d.split("@", 1)[0] == repository]
    candidates = matching or digests
    digest = candidates[0] if candidates else None
    return ImageRecord(reference=reference, image_id=image_id, digest=digest)


@dataclass
class Outcome:
    """The result of an update or rollback, for the command's output and exit code."""

    deployment: Deployment
    ok: bool
    log_tail: list[str] = field(default_factory=list)


class Deployer:
    """Updates and rolls back the services of one tree."""

    def __init__(
        self,
        project: Project,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        pull: bool = True,
    ) -> None:
        self.project = project
        self.tree = project.tree
        self.timeout = timeout
        self.pull = pull

    # --- helpers ----------------------------------------------------------------

    def _container(self, service: str) -> dict[str, Any] | None:
        containers = self.project.containers().get(service, [])
        running = [c for c in containers if (c.get("State") or {}).get("Running")]
        chosen = running or containers
        return chosen[0] if chosen else None

    def _current(self, service: str) -> ImageRecord:
        container = self._container(service)
        if container is None:
            raise OpsError(
                f"{service} has no container; start it with `labdock up {service}` "
                "before updating it"
            )
        reference = str((container.get("Config") or {}).get("Image", ""))
        return image_record(reference, str(container.get("Image", "")))

    def _variables(self, service: str) -> tuple[str, str | None]:
        image_variable, version_variable = image_variables(
            raw_image(self.tree, service)
        )
        if image_variable is None:
            raise OpsError(
                f"the image: of {service} has no ${{NAME_IMAGE:-...}} variable, so "
                "labdock cannot switch its image; write it as "
                f"${{{service.upper().replace('-', '_')}_IMAGE:-repository:tag}}"
            )
        return image_variable, version_variable

    def _recreate(
        self, service: str, environment: Mapping[str, str]
    ) -> tuple[bool, str]:
        compose = self.project.compose(environment)
        try:
            compose.run("up", "-d", "--no-deps", service, timeout=self.timeout)
        except ComposeError as error:
            return False, f"docker compose up failed: {error}"
        container = self._container(service)
        if container is None:
            return False, "no container after docker compose up"
        up, status = docker.wait_until_up(
            docker.container_name(container), self.timeout
        )
        return up, status

    def _log_tail(self, service: str) -> list[str]:
        container = self._container(service)
        if container is None:
            return []
        return docker.logs_tail(docker.container_name(container), 15)

    def _write_env(self, updates: Mapping[str, str]) -> None:
        if not updates:
            return
        path = self.tree / ".env"
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        path.write_text(set_values(text, dict(updates)), encoding="utf-8")

    def _env(self, names: list[str]) -> dict[str, str]:
        values = read_env(self.tree / ".env")
        return {name: values.get(name, "") for name in names}

    def _keep_reachable(self, record: ImageRecord) -> None:
        # A rollback tag keeps an image without a digest from being pruned
        # and gives Compose a name for it.
        if record.digest is None:
            docker.docker("tag", record.image_id, rollback_tag(record.image_id))

    # --- update -----------------------------------------------------------------

    def update(self, service: str, to: str | None = None) -> Outcome:
        """Pull, recreate and health-check `service`; roll back when it fails."""
        started = time.monotonic()
        image_variable, version_variable = self._variables(service)
        before = self._current(service)
        configured = str(self.project.service(service).get("image", before.reference))
        if to is None:
            target = configured
        elif is_reference(to):
            target = to
        else:
            target = with_tag(configured, to)
        override = {image_variable: target}
        if self.pull:
            try:
                self.project.compose(override).run("pull", service, timeout=None)
            except ComposeError as error:
                raise OpsError(
                    f"pulling {target} failed, so {service} was left running on "
                    f"{before.reference}: {error}"
                ) from error
        pulled = docker.inspect_image(target)
        if pulled is None:
            raise OpsError(
                f"image {target} is not on this host"
                + ("" if self.pull else " and --no-pull was given")
                + f"; {service} was left running on {before.reference}"
            )
        new_id = str(pulled.get("Id", ""))
        deployment = Deployment(
            id=uuid.uuid4().hex[:12],
            time=datetime.now(UTC).isoformat(timespec="seconds"),
            service=service,
            action="update",
            result="unchanged",
            before=before,
            after=image_record(target, new_id),
        )
        if new_id == before.image_id:
            deployment.message = f"{service} already runs {target} ({new_id[:19]})"
            return Outcome(deployment, True)
        self._keep_reachable(before)
        names = [image_variable] + ([version_variable] if version_variable else [])
        deployment.env_before = self._env(names)
        logger.info(
            "update.recreate service=%s from=%s to=%s",
            service,
            before.image_id[:19],
            new_id[:19],
        )
        up, status = self._recreate(service, override)
        if up:
            updates = self._env_updates(to, target, image_variable, version_variable)
            self._write_env(updates)
            deployment.env_after = self._env(names)
            deployment.result = "succeeded"
            deployment.message = f"{service} runs {target} and is {status}"
            deployment.seconds = round(time.monotonic() - started, 1)
            append_history(self.tree, deployment)
            logger.info("update.succeeded service=%s image=%s", service, target)
            return Outcome(deployment, True)
        tail = self._log_tail(service)
        logger.error(
            "update.unhealthy service=%s image=%s status=%s: rolling back to %s",
            service,
            target,
            status,
            before.pin(),
        )
        deployment.message = f"{target} was not healthy ({status})"
        self._restore(service, before, image_variable, deployment)
        deployment.seconds = round(time.monotonic() - started, 1)
        append_history(self.tree, deployment)
        return Outcome(deployment, False, tail)

    def _env_updates(
        self,
        to: str | None,
        target: str,
        image_variable: str,
        version_variable: str | None,
    ) -> dict[str, str]:
        if to is None:
            return {}
        current = read_env(self.tree / ".env")
        if is_reference(to) or current.get(image_variable) or version_variable is None:
            return {image_variable: target}
        return {version_variable: to}

    def _restore(
        self,
        service: str,
        before: ImageRecord,
        image_variable: str,
        deployment: Deployment,
    ) -> bool:
        """Recreate `service` from the recorded image; return whether it is up."""
        up, status = self._recreate(service, {image_variable: before.pin()})
        container = self._container(service)
        running_id = str(container.get("Image", "")) if container else ""
        if up and running_id == before.image_id:
            deployment.result = "rolled-back"
            deployment.message += f"; rolled back to {before.pin()}, which is {status}"
            self._pin_if_moved(service, before, image_variable, deployment)
            logger.info("update.rolled_back service=%s image=%s", service, before.pin())
            return True
        deployment.result = "failed"
        deployment.message += (
            f"; the rollback to {before.pin()} is {status} too. Run `labdock doctor "
            f"{service}` and `labdock logs {service}`"
        )
        logger.error("update.rollback_failed service=%s status=%s", service, status)
        return False

    def _pin_if_moved(
        self,
        service: str,
        before: ImageRecord,
        image_variable: str,
        deployment: Deployment,
    ) -> None:
        # A pull of the same tag moves the tag to the new image, so the
        # service is pinned by digest and the next `labdock up` keeps it.
        configured = str(self.project.service(service).get("image", ""))
        resolved = docker.inspect_image(configured) if configured else None
        if resolved is not None and str(resolved.get("Id")) == before.image_id:
            return
        deployment.env_after = {image_variable: before.pin()}
        self._write_env(deployment.env_after)
        deployment.message += (
            f"; {configured} now names the new image, so .env pins "
            f"{image_variable}={before.pin()} (remove it to follow the version again)"
        )

    # --- rollback ---------------------------------------------------------------

    def rollback(self, service: str) -> Outcome:
        """Go back to the image that the last successful update replaced.

        Earlier rollbacks are not targets, so a second rollback in a row
        keeps that image instead of returning to the updated one.
        """
        started = time.monotonic()
        history = [
            d
            for d in read_history(self.tree)
            if d.service == service
            and d.action == "update"
            and d.result == "succeeded"
            and d.before
        ]
        if not history:
            raise OpsError(
                f"no successful update of {service} is recorded in "
                f"{history_path(self.tree)}; there is nothing to roll back to"
            )
        last = history[-1]
        assert last.before is not None
        target = last.before
        image_variable, _version = self._variables(service)
        if docker.inspect_image(target.image_id) is None:
            if not target.digest:
                raise OpsError(
                    f"image {target.image_id[:19]} of the earlier deployment is no "
                    "longer on this host and has no registry digest to pull"
                )
            docker.docker("pull", target.digest, timeout=None)
        self._keep_reachable(target)
        before = self._current(service)
        deployment = Deployment(
            id=uuid.uuid4().hex[:12],
            time=datetime.now(UTC).isoformat(timespec="seconds"),
            service=service,
            action="rollback",
            result="failed",
            before=before,
            after=target,
            env_before=self._env(list(last.env_before) or [image_variable]),
        )
        up, status = self._recreate(service, {image_variable: target.pin()})
        if up:
            # Undo the .env change of the deployment being rolled back; a
            # same-tag update changed nothing there, so pin the image.
            updates = dict(last.env_before) or {image_variable: target.pin()}
            self._write_env(updates)
            deployment.env_after = updates
            deployment.result = "succeeded"
            deployment.message = f"{service} runs {target.pin()} again and is {status}"
            tail: list[str] = []
        else:
            tail = self._log_tail(service)
            deployment.message = f"{target.pin()} is {status}; {service} is left as is"
        deployment.seconds = round(time.monotonic() - started, 1)
        append_history(self.tree, deployment)
        return Outcome(deployment, up, tail)

"""The Compose project of a services tree as the operations see it.

Wraps the resolved model (`docker compose config`) with the questions the
operations ask: which named volumes a service mounts, which services
depend on it, and the order in which to stop and start them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labdock.ops import docker
from labdock.ops.errors import OpsError
from labdock.stack import tree as stack_tree
from labdock.stack.compose import Compose, ComposeError

WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"


@dataclass(frozen=True)
class VolumeMount:
    """A named volume mounted by a service."""

    key: str  # the name under the Compose file's top-level volumes:
    name: str  # the Docker volume's name, usually <project>_<key>
    target: str  # the path inside the container
    read_only: bool


def start_order(dependencies: Mapping[str, Iterable[str]]) -> list[str]:
    """Return services so that each comes after everything it depends on.

    Ties are broken by name, so the order is stable. A cycle raises
    OpsError naming the services in it.
    """
    remaining = {
        name: set(deps) & set(dependencies) for name, deps in dependencies.items()
    }
    order: list[str] = []
    while remaining:
        ready = sorted(name for name, deps in remaining.items() if not deps)
        if not ready:
            raise OpsError(
                "depends_on has a cycle between " + ", ".join(sorted(remaining))
            )
        for name in ready:
            order.append(name)
            del remaining[name]
        for deps in remaining.values():
            deps.difference_update(ready)
    return order


class Project:
    """A services tree's Compose project, loaded once."""

    def __init__(
        self,
        tree: Path,
        model: Mapping[str, Any],
        *,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.tree = tree
        self.model = model
        self.environment = dict(environment or {})
        self.name = str(model.get("name") or "labdock")

    @classmethod
    def load(
        cls, tree: Path, *, environment: Mapping[str, str] | None = None
    ) -> Project:
        """Resolve the tree's Compose model; raise OpsError when Compose fails."""
        if not (tree / "compose.yaml").is_file():
            raise OpsError(
                f"{tree} has no compose.yaml; pass the services tree with -C DIR "
                "or run `labdock init DIR` first"
            )
        try:
            model = Compose(tree, environment=environment).config()
        except ComposeError as error:
            raise OpsError(
                f"docker compose cannot load {tree}: {error}; run `labdock validate`"
            ) from error
        return cls(tree, model, environment=environment)

    def compose(self, environment: Mapping[str, str] | None = None) -> Compose:
        """Return a Compose runner, with extra variables when given."""
        return Compose(
            self.tree, environment={**self.environment, **(environment or {})}
        )

    @property
    def services(self) -> list[str]:
        return sorted((self.model.get("services") or {}).keys())

    def service(self, name: str) -> dict[str, Any]:
        services = self.model.get("services") or {}
        if name not in services:
            raise OpsError(
                f"no service {name!r} in {self.tree}; services: "
                + ", ".join(self.services)
            )
        found: dict[str, Any] = services[name]
        return found

    def dependencies(self, name: str) -> set[str]:
        """Return the services `name` lists under depends_on."""
        return set((self.service(name).get("depends_on") or {}).keys())

    def dependency_map(self) -> dict[str, set[str]]:
        return {name: self.dependencies(name) for name in self.services}

    def dependents(self, name: str) -> set[str]:
        """Return every service that depends on `name`, directly or not."""
        graph = self.dependency_map()
        found: set[str] = set()
        frontier = {name}
        while frontier:
            current = frontier.pop()
            for candidate, deps in graph.items():
                if current in deps and candidate not in found:
                    found.add(candidate)
                    frontier.add(candidate)
        return found

    def start_order(self, names: Iterable[str] | None = None) -> list[str]:
        """Return `names` (default: all services) in dependency order."""
        wanted = set(self.services if names is None else names)
        return [name for name in start_order(self.dependency_map()) if name in wanted]

    def volume_mounts(self, name: str) -> list[VolumeMount]:
        """Return the named volumes that service `name` mounts."""
        declared = self.model.get("volumes") or {}
        mounts = []
        for entry in self.service(name).get("volumes") or []:
            if entry.get("type") != "volume" or not entry.get("source"):
                continue
            key = str(entry["source"])
            volume_name = str(
                (declared.get(key) or {}).get("name") or f"{self.name}_{key}"
            )
            mounts.append(
                VolumeMount(
                    key=key,
                    name=volume_name,
                    target=str(entry.get("target", "")),
                    read_only=bool(entry.get("read_only", False)),
                )
            )
        return mounts

    def secret_files(self, name: str) -> dict[str, Path]:
        """Return the host files of the file secrets that service `name` mounts."""
        declared = self.model.get("secrets") or {}
        files: dict[str, Path] = {}
        for entry in self.service(name).get("secrets") or []:
            source = entry.get("source") if isinstance(entry, dict) else str(entry)
            if not source:
                continue
            path = (declared.get(source) or {}).get("file")
            if path:
                files[str(source)] = Path(str(path))
        return files

    def containers(self) -> dict[str, list[dict[str, Any]]]:
        """Return the inspected containers of the project, by service."""
        by_service: dict[str, list[dict[str, Any]]] = {}
        for container in docker.project_containers(self.name):
            by_service.setdefault(docker.service_of(container), []).append(container)
        return by_service

    def foreign_directories(self) -> list[Path]:
        """Return the other trees whose containers use this project's name.

        Compose labels each container with the directory of the project that
        created it, so a container with another directory belongs to another
        tree that happens to share COMPOSE_PROJECT_NAME.
        """
        found = set()
        for container in docker.project_containers(self.name):
            labels = (container.get("Config") or {}).get("Labels") or {}
            directory = labels.get(WORKING_DIR_LABEL)
            if directory and Path(directory).resolve() != self.tree.resolve():
                found.add(Path(directory))
        return sorted(found)

    def running_container(self, name: str) -> str:
        """Return the name of the running container of service `name`."""
        for container in self.containers().get(name, []):
            if (container.get("State") or {}).get("Running"):
                return docker.container_name(container)
        raise OpsError(
            f"service {name} has no running container; start it with "
            f"`labdock up {name}`"
        )

    def settings(self) -> dict[str, str]:
        """Return the tree's .env values."""
        return stack_tree.env_values(self.tree)

"""Restore steps around stopping services, with Docker and restic replaced by fakes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from labdock.ops import docker, restore
from labdock.ops.errors import OpsError
from labdock.ops.project import WORKING_DIR_LABEL, Project
from labdock.ops.restic import Snapshot
from labdock.ops.restore import Restorer, ServiceRestore, check_project_owner
from labdock.ops.settings import BackupSettings
from labdock.stack.envfile import read_env

MODEL: dict[str, Any] = {
    "name": "labdock",
    "services": {
        "influxdb": {
            "volumes": [
                {"type": "volume", "source": "influxdb_data", "target": "/data"}
            ]
        },
        "emqx": {},
        "sensor-acquisition": {"depends_on": {"emqx": {}, "influxdb": {}}},
    },
    "volumes": {"influxdb_data": {"name": "labdock_influxdb_data"}},
}


class FakeRestic:
    """Stands in for Restic.restore; fails when `fail` is set."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.restored: list[tuple[str, Path]] = []

    def restore(self, snapshot_id: str, target: Path) -> None:
        if self.fail:
            raise OpsError("restic restore failed: connection reset")
        self.restored.append((snapshot_id, target))


class FakeEngine:
    """A fake engine: the containers and volume a restore finds, and its commands."""

    def __init__(self, volume: Path, running: set[str]) -> None:
        self.volume = volume
        self.running = set(running)
        self.commands: list[tuple[str, ...]] = []
        self.started: list[str] = []

    def docker(self, *args: str, **_options: object) -> None:
        self.commands.append(args)
        if args[0] == "stop":
            self.running.discard(args[1].removeprefix("labdock-").removesuffix("-1"))

    def inspect_volume(self, name: str) -> dict[str, Any]:
        return {"Name": name, "Mountpoint": str(self.volume)}

    def containers(self) -> dict[str, list[dict[str, Any]]]:
        return {
            service: [{"Name": f"/labdock-{service}-1", "State": {"Running": True}}]
            for service in self.running
        }

    def compose_up(self, services: list[str], *, start: bool) -> None:
        if start:
            self.started.extend(services)
            self.running.update(services)


def _snapshot() -> Snapshot:
    return Snapshot(
        id="a" * 64,
        short_id="aaaaaaaa",
        time=datetime(2026, 1, 1, tzinfo=UTC),
        hostname="labhost",
        tags=("labdock", "service=influxdb", "part=volume-influxdb_data"),
        paths=("/",),
    )


def _restorer(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    engine: FakeEngine,
    restic: FakeRestic,
    *,
    force: bool = False,
) -> Restorer:
    restorer = Restorer(
        tmp_path / "services",
        restic,  # type: ignore[arg-type]
        BackupSettings.model_validate({"host": "labhost"}),
        host="labhost",
        force=force,
    )
    project = Project(tmp_path / "services", MODEL)
    monkeypatch.setattr(project, "containers", engine.containers)
    restorer._project = project
    monkeypatch.setattr(restorer, "_compose_up", engine.compose_up)
    monkeypatch.setattr(docker, "docker", engine.docker)
    monkeypatch.setattr(docker, "inspect_volume", engine.inspect_volume)
    return restorer


def _restore_influxdb(restorer: Restorer) -> ServiceRestore:
    result = ServiceRestore("influxdb")
    restorer._restore_compose_service(
        "influxdb", {"volume-influxdb_data": _snapshot()}, result
    )
    return result


def test_full_volume_rejected_before_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "engine").write_text("data")
    engine = FakeEngine(volume, {"influxdb", "sensor-acquisition"})
    restorer = _restorer(tmp_path, monkeypatch, engine, FakeRestic())

    with pytest.raises(OpsError, match="is not empty; pass --force"):
        _restore_influxdb(restorer)

    assert engine.commands == []
    assert engine.running == {"influxdb", "sensor-acquisition"}


def test_failed_restore_restarts_services(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "engine").write_text("data")
    engine = FakeEngine(volume, {"influxdb", "sensor-acquisition"})
    restic = FakeRestic(fail=True)
    restorer = _restorer(tmp_path, monkeypatch, engine, restic, force=True)

    with pytest.raises(OpsError, match="connection reset"):
        _restore_influxdb(restorer)

    stopped = [args[1] for args in engine.commands if args[0] == "stop"]
    assert stopped == ["labdock-sensor-acquisition-1", "labdock-influxdb-1"]
    assert engine.started == ["influxdb", "sensor-acquisition"]


def test_forced_restore_restarts_acquisition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "engine").write_text("data")
    engine = FakeEngine(volume, {"influxdb", "sensor-acquisition"})
    restic = FakeRestic()
    restorer = _restorer(tmp_path, monkeypatch, engine, restic, force=True)

    result = _restore_influxdb(restorer)

    assert result.parts == ["volume-influxdb_data"]
    assert restic.restored == [("a" * 64, volume)]
    assert engine.started == ["influxdb", "sensor-acquisition"]
    assert engine.running == {"influxdb", "sensor-acquisition"}


def test_stopped_dependent_stays_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    engine = FakeEngine(volume, {"influxdb"})
    restorer = _restorer(tmp_path, monkeypatch, engine, FakeRestic())

    _restore_influxdb(restorer)

    assert engine.started == ["influxdb"]


def test_start_failure_reported_after_restore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    engine = FakeEngine(volume, {"influxdb", "sensor-acquisition"})
    restorer = _restorer(tmp_path, monkeypatch, engine, FakeRestic())

    def compose_up(services: list[str], *, start: bool) -> None:
        if start and services == ["influxdb"]:
            raise OpsError("influxdb is unhealthy")
        engine.compose_up(services, start=start)

    monkeypatch.setattr(restorer, "_compose_up", compose_up)

    with pytest.raises(OpsError, match="influxdb did not start"):
        _restore_influxdb(restorer)
    # A failure to start one service does not keep the others stopped.
    assert engine.started == ["sensor-acquisition"]


def _container(directory: Path) -> dict[str, Any]:
    return {
        "Name": "/labdock-influxdb-1",
        "Config": {"Labels": {WORKING_DIR_LABEL: str(directory)}},
    }


def test_other_tree_project_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = tmp_path / "live"
    monkeypatch.setattr(docker, "project_containers", lambda name: [_container(live)])
    project = Project(tmp_path / "restored", MODEL)

    with pytest.raises(OpsError) as raised:
        check_project_owner(project)

    assert str(live) in str(raised.value)
    assert "--project-name NAME" in str(raised.value)


def test_same_tree_project_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "services"
    monkeypatch.setattr(docker, "project_containers", lambda name: [_container(tree)])

    check_project_owner(Project(tree, MODEL))


def test_project_name_written_to_env(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "COMPOSE_PROJECT_NAME=labdock\nLABDOCK_DOMAIN=lab.example.org\n"
    )

    restore.set_project_name(tmp_path, "labdock-copy")

    values = read_env(tmp_path / ".env")
    assert values["COMPOSE_PROJECT_NAME"] == "labdock-copy"
    assert values["BACKEND_NETWORK"] == "labdock-copy_backend"
    assert values["SOCKET_PROXY_NETWORK"] == "labdock-copy_socket_proxy"
    assert values["LABDOCK_DOMAIN"] == "lab.example.org"


class TreeRestic:
    """Stands in for Restic with one run that contains only the tree."""

    def snapshots(self, tags: list[str]) -> list[Snapshot]:
        return [
            Snapshot(
                id="b" * 64,
                short_id="bbbbbbbb",
                time=datetime(2026, 1, 1, tzinfo=UTC),
                hostname="labhost",
                tags=("labdock", "service=tree", "part=config"),
                paths=("/",),
            )
        ]

    def restore(self, snapshot_id: str, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        (target / "compose.yaml").write_text("services: {}\n")
        (target / ".env").write_text("COMPOSE_PROJECT_NAME=labdock\n")


def test_tree_restore_sets_project_name(tmp_path: Path) -> None:
    target = tmp_path / "copy"
    restorer = Restorer(
        target,
        TreeRestic(),  # type: ignore[arg-type]
        BackupSettings.model_validate({"host": "labhost"}),
        host="labhost",
        project_name="labdock-copy",
    )

    report = restorer.restore(["tree"])

    assert report.ok, report.results
    values = read_env(target / ".env")
    assert values["COMPOSE_PROJECT_NAME"] == "labdock-copy"
    assert values["BACKEND_NETWORK"] == "labdock-copy_backend"


def test_invalid_project_name_rejected(tmp_path: Path) -> None:
    with pytest.raises(OpsError, match="is invalid"):
        restore.set_project_name(tmp_path, "Lab Copy")

"""Stopped and paused services of a backup run survive a killed run."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from labdock.ops import backup, docker
from labdock.ops.backup import Part, Quiesce, ServicePlan
from labdock.ops.project import Project

MODEL: dict[str, Any] = {
    "name": "labdock",
    "services": {
        "influxdb": {},
        "sensor-acquisition": {"depends_on": {"influxdb": {}}},
    },
}


class FakeEngine:
    """Records docker commands and what the quiesce record held at each stop."""

    def __init__(self, tree: Path) -> None:
        self.tree = tree
        self.commands: list[tuple[str, ...]] = []
        self.recorded_at_stop: list[list[str]] = []

    def docker(self, *args: str, **_options: object) -> None:
        self.commands.append(args)
        if args[0] in ("stop", "pause"):
            record = json.loads(backup.quiesce_record_path(self.tree).read_text())
            self.recorded_at_stop.append(record["stopped"] + record["paused"])

    def containers(self) -> dict[str, list[dict[str, Any]]]:
        return {
            service: [{"Name": f"/labdock-{service}-1", "State": {"Running": True}}]
            for service in MODEL["services"]
        }


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine(tmp_path)
    monkeypatch.setattr(docker, "docker", fake.docker)
    monkeypatch.setattr(docker, "wait_until_up", lambda name, timeout: (True, "up"))
    return fake


def _quiesce(tmp_path: Path, engine: FakeEngine, method: str) -> Quiesce:
    project = Project(tmp_path, MODEL)
    project.containers = engine.containers  # type: ignore[method-assign]
    plan = ServicePlan("influxdb", method, (Part("influxdb", "volume-x", "volume"),))
    return Quiesce(project, plan)


def test_stop_recorded_before_stopping(tmp_path: Path, engine: FakeEngine) -> None:
    with _quiesce(tmp_path, engine, "stop"):
        pass

    assert engine.recorded_at_stop == [
        ["labdock-sensor-acquisition-1"],
        ["labdock-sensor-acquisition-1", "labdock-influxdb-1"],
    ]
    assert not backup.quiesce_record_path(tmp_path).exists()


def test_killed_run_resumed_later(tmp_path: Path, engine: FakeEngine) -> None:
    quiesce = _quiesce(tmp_path, engine, "stop")
    # A run killed with SIGKILL never reaches __exit__.
    quiesce.__enter__()
    assert backup.read_quiesce_record(tmp_path) is not None
    engine.commands.clear()

    actions = backup.resume_interrupted(tmp_path)

    assert actions == [
        "started labdock-influxdb-1",
        "started labdock-sensor-acquisition-1",
    ]
    assert engine.commands == [
        ("start", "labdock-influxdb-1"),
        ("start", "labdock-sensor-acquisition-1"),
    ]
    assert backup.read_quiesce_record(tmp_path) is None
    assert backup.resume_interrupted(tmp_path) == []


def test_killed_pause_unpaused_later(tmp_path: Path, engine: FakeEngine) -> None:
    _quiesce(tmp_path, engine, "pause").__enter__()
    engine.commands.clear()

    actions = backup.resume_interrupted(tmp_path)

    assert actions == ["unpaused labdock-influxdb-1"]
    assert engine.commands == [("unpause", "labdock-influxdb-1")]


def test_sigterm_restarts_stopped_services(tmp_path: Path, engine: FakeEngine) -> None:
    with (
        pytest.raises(backup.Terminated),
        backup.terminate_gracefully(),
        _quiesce(tmp_path, engine, "stop"),
    ):
        os.kill(os.getpid(), signal.SIGTERM)

    started = [args[1] for args in engine.commands if args[0] == "start"]
    assert started == ["labdock-influxdb-1", "labdock-sensor-acquisition-1"]
    assert not backup.quiesce_record_path(tmp_path).exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_resume_skipped_while_run_holds_lock(
    tmp_path: Path, engine: FakeEngine
) -> None:
    _quiesce(tmp_path, engine, "stop").__enter__()

    with backup.run_lock(tmp_path):
        # The record belongs to the run in progress, so it is left alone.
        assert backup.resume_interrupted(tmp_path) == []

    assert backup.read_quiesce_record(tmp_path) is not None


def test_status_reports_left_record(tmp_path: Path, engine: FakeEngine) -> None:
    from click.testing import CliRunner

    from labdock.cli import main

    _quiesce(tmp_path, engine, "stop").__enter__()
    (tmp_path / "compose.yaml").write_text("services: {}\n")

    result = CliRunner().invoke(main, ["backup", "status", "-C", str(tmp_path)])

    assert result.exit_code == 0, result.output
    assert "was killed while labdock-sensor-acquisition-1" in result.output
    assert "starts them again" in result.output

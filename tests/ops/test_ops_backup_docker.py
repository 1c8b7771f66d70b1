"""Backup and restore of running services on the private Docker engine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_ops_deploy_docker import read_points, write_point

from conftest import StackTree, docker_cli
from labdock.cli import main
from labdock.ops.restic import Restic
from labdock.stack import lifecycle

pytestmark = pytest.mark.docker


def started_at(stack: StackTree, service: str) -> str:
    return docker_cli(
        stack.engine, "inspect", "-f", "{{.State.StartedAt}}", stack.container(service)
    ).strip()


def test_restore_into_fresh_tree_serves_points(
    stack: StackTree, restic_repo: Restic, tmp_path: Path
) -> None:
    settings = stack.path / ".labdock" / "ops.yaml"
    settings.parent.mkdir(exist_ok=True)
    settings.write_text(
        json.dumps(
            {
                "backup": {
                    "repository": restic_repo.repository,
                    "password_file": str(restic_repo.password_file),
                    "cache_dir": str(tmp_path / "restic-cache"),
                    "host": "labhost",
                    # The stand-in has no influx CLI, so its volume is copied
                    # with the service stopped.
                    "services": {"influxdb": {"method": "stop"}},
                }
            }
        )
    )
    lifecycle.up(stack.path, ["influxdb", "lam"], hooks=False, wait_timeout=120)
    influx = stack.container("influxdb")
    write_point(stack.engine, influx)
    assert read_points(stack.engine, influx)
    before = started_at(stack, "influxdb")
    runner = CliRunner()

    backed_up = runner.invoke(
        main,
        [
            "backup",
            "run",
            "influxdb",
            "lam",
            "--include-secrets",
            "-C",
            str(stack.path),
        ],
    )
    assert backed_up.exit_code == 0, backed_up.output
    assert "all 4 backed up" in backed_up.stdout
    assert "(volume-lam_config empty)" in backed_up.stdout
    # Stopped for the copy and started again.
    assert started_at(stack, "influxdb") != before
    assert docker_cli(
        stack.engine, "inspect", "-f", "{{.State.Health.Status}}", influx
    ).strip() in ("healthy", "starting")
    status = json.loads((stack.path / ".labdock" / "backup-status.json").read_text())
    assert status["services"]["influxdb"]["last_result"] == "ok"
    prom = (stack.path / ".labdock" / "labdock_backup.prom").read_text()
    assert 'labdock_backup_last_run_success{service="influxdb"} 1' in prom

    verified = runner.invoke(main, ["backup", "verify", "-C", str(stack.path)])
    assert verified.exit_code == 0, verified.output
    assert "volume-influxdb_data" in verified.output

    # Lose the data: containers and volumes go, then the tree itself.
    stack.compose("down", "--volumes", "--timeout", "5")
    saved_settings = settings.read_text()
    shutil.rmtree(stack.path)
    fresh = tmp_path / "fresh"
    fresh_settings = tmp_path / "ops.yaml"
    fresh_settings.write_text(saved_settings)
    bootstrap = tmp_path / "bootstrap"
    (bootstrap / ".labdock").mkdir(parents=True)
    shutil.copy(fresh_settings, bootstrap / ".labdock" / "ops.yaml")

    restored = runner.invoke(
        main,
        [
            "backup",
            "restore",
            "-C",
            str(bootstrap),
            "--to",
            str(fresh),
            "--include-secrets",
        ],
    )
    assert restored.exit_code == 0, restored.output
    table = restored.stdout.splitlines()
    assert table[0].split()[:2] == ["SERVICE", "RESULT"]
    # lam's configuration volume was empty, so it has no snapshot.
    assert [line.split()[0] for line in table[1:]] == ["tree", "secrets", "influxdb"]
    assert (fresh / "compose.yaml").is_file()
    assert (fresh / "secrets" / "influxdb_admin_token").stat().st_uid == 1000

    rows = read_points(stack.engine, influx)
    assert rows, "the restored InfluxDB stand-in serves no points"
    assert rows[0]["values"] == [21.5]
    assert rows[0]["metric"] == {
        "__name__": "env_temperature",
        "device": "d1",
        "site": "lab",
    }
    # The fixture's teardown runs `compose down` in the old tree's place.
    shutil.copytree(fresh, stack.path)

"""Doctor and health against real failures on the private Docker engine."""

from __future__ import annotations

import os
import time

import pytest

from conftest import StackTree, build_image, docker_cli
from labdock.ops import doctor, health
from labdock.ops.project import Project
from labdock.ops.settings import load_settings
from labdock.stack import lifecycle

pytestmark = pytest.mark.docker


def wait_for_restarts(stack: StackTree, container: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        restarts = docker_cli(
            stack.engine, "inspect", "-f", "{{.RestartCount}}", container
        ).strip()
        if int(restarts or 0) >= count:
            return
        time.sleep(0.5)
    raise AssertionError(f"{container} did not restart {count} times within 60 s")


def test_crash_loop_reported_with_fix(stack: StackTree) -> None:
    build_image(
        stack.engine,
        "labdock-test/crashloop:test",
        "FROM labdock-test/base:bookworm\n"
        'CMD ["sh", "-c", "echo starting; '
        "echo 'fatal: open /var/lib/ldap-account-manager/config/lam.conf: "
        "permission denied' >&2; exit 3\"]\n",
    )
    stack.set_env(LAM_IMAGE="labdock-test/crashloop:test")
    lifecycle.ensure_network(f"{stack.project}_public")
    stack.compose("up", "-d", "lam")
    wait_for_restarts(stack, stack.container("lam"), 3)
    project = Project.load(stack.path)

    # Between two restarts the container runs briefly and Docker shows no
    # exit code; diagnose again until it is caught between runs.
    deadline = time.monotonic() + 30
    while True:
        diagnosis = doctor.diagnose(project, ["lam"])
        problems = [f.problem for f in diagnosis.findings if f.service == "lam"]
        looping = [p for p in problems if "keeps restarting" in p]
        if (looping and "code 3" in looping[0]) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert looping, problems
    assert "code 3" in looping[0]
    restart = next(f for f in diagnosis.findings if "keeps restarting" in f.problem)
    assert any("permission denied" in line for line in restart.detail)
    assert "labdock up lam" in restart.fix
    # The CLI prints the log lines between the problem and its fix.
    assert "read the log lines above" in restart.fix
    denied = [f for f in diagnosis.findings if "denied access" in f.problem]
    assert denied and "chown" in denied[0].fix

    # While the container runs between two restarts, health rates it a
    # warning (running, but restarted); check again until it is caught
    # between runs, as above.
    deadline = time.monotonic() + 30
    while True:
        checks = health.run_checks(project, load_settings(stack.path), services=["lam"])
        container_check = next(c for c in checks if c.check == "container")
        if container_check.severity == health.CRITICAL or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert container_check.severity == health.CRITICAL
    assert "restarted" in container_check.message
    assert health.exit_code(checks) == 2


def test_volume_with_wrong_owner_flagged(stack: StackTree) -> None:
    stack.compose("up", "--no-start", "influxdb")
    volume = f"{stack.project}_influxdb_data"
    mountpoint = docker_cli(
        stack.engine, "volume", "inspect", "-f", "{{.Mountpoint}}", volume
    ).strip()
    os.chown(mountpoint, 0, 0)
    os.chmod(mountpoint, 0o755)
    stack.compose("up", "-d", "influxdb")
    wait_for_restarts(stack, stack.container("influxdb"), 1)

    diagnosis = doctor.diagnose(Project.load(stack.path), ["influxdb"])

    owner = [f for f in diagnosis.findings if f"volume {volume}" in f.problem]
    assert owner, [f.problem for f in diagnosis.findings]
    assert "owned by 0:0 with mode 0755" in owner[0].problem
    assert "runs as 1000:1000" in owner[0].problem
    assert owner[0].fix.startswith(f"chown -R 1000:1000 {mountpoint}")


def test_healthy_service_passes(stack: StackTree) -> None:
    lifecycle.up(stack.path, ["influxdb"], hooks=False, wait_timeout=120)
    project = Project.load(stack.path)

    diagnosis = doctor.diagnose(project, ["influxdb"])
    checks = health.run_checks(project, load_settings(stack.path))

    assert diagnosis.problems == [], [f.problem for f in diagnosis.problems]
    influx = [c for c in checks if c.target.startswith("influxdb")]
    assert [c.severity for c in influx] == [health.OK, health.OK]
    assert any(c.check == "disk" for c in checks)
    backup = [c for c in checks if c.check == "backup"]
    assert backup[0].severity == health.WARNING


def test_corrupt_status_file_unknown(stack: StackTree) -> None:
    status_file = stack.path / ".labdock" / "backup-status.json"
    status_file.parent.mkdir(exist_ok=True)
    status_file.write_text('{"services": ', encoding="utf-8")

    checks = health.run_checks(Project.load(stack.path), load_settings(stack.path))

    backup = [c for c in checks if c.check == "backup"]
    assert len(backup) == 1
    assert backup[0].severity == health.UNKNOWN
    assert str(status_file) in backup[0].message
    assert "not valid JSON" in backup[0].message

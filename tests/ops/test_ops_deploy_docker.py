"""Update and rollback on the private Docker engine, with the InfluxDB stand-in."""

from __future__ import annotations

import json
import time

import pytest

from conftest import Engine, StackTree, build_image, docker_cli
from labdock.ops.deploy import Deployer, read_history
from labdock.ops.project import Project
from labdock.stack import lifecycle
from labdock.stack.envfile import read_env

pytestmark = pytest.mark.docker

POINT = "env,device=d1,site=lab temperature=21.5 1700000000000000000"


def write_point(engine: Engine, container: str) -> None:
    docker_cli(
        engine,
        "exec",
        container,
        "curl",
        "-fsS",
        "-XPOST",
        "http://127.0.0.1:8086/api/v2/write?bucket=sensors&precision=ns",
        "--data-binary",
        POINT,
    )


def read_points(engine: Engine, container: str) -> list[dict[str, object]]:
    """Export every series of the stand-in (VictoriaMetrics) as JSON lines."""
    deadline = time.monotonic() + 20
    while True:
        output = docker_cli(
            engine,
            "exec",
            container,
            "curl",
            "-fsS",
            "-G",
            "http://127.0.0.1:8086/api/v1/export",
            "--data-urlencode",
            'match[]={__name__=~"env.*"}',
        )
        rows = [json.loads(line) for line in output.splitlines() if line.strip()]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def image_id(engine: Engine, container: str) -> str:
    return docker_cli(engine, "inspect", "-f", "{{.Image}}", container).strip()


def test_unhealthy_update_rolled_back(stack: StackTree) -> None:
    engine = stack.engine
    lifecycle.up(stack.path, ["influxdb"], hooks=False, wait_timeout=120)
    container = stack.container("influxdb")
    write_point(engine, container)
    assert read_points(engine, container)
    original = image_id(engine, container)
    # Serves on 8087, so the shipped healthcheck (curl :8086/health) fails.
    build_image(
        engine,
        "labdock-test/influxdb:unhealthy",
        "FROM labdock-test/influxdb:test\n"
        'CMD ["victoria-metrics", "-httpListenAddr=:8087", '
        '"-storageDataPath=/var/lib/influxdb2/vm", "-retentionPeriod=100y"]\n',
    )

    project = Project.load(stack.path)
    outcome = Deployer(project, timeout=20, pull=False).update(
        "influxdb", "labdock-test/influxdb:unhealthy"
    )

    assert outcome.ok is False
    assert outcome.deployment.result == "rolled-back"
    assert "not healthy" in outcome.deployment.message
    assert image_id(engine, container) == original
    rows = read_points(engine, container)
    assert rows and rows[0]["values"] == [21.5]
    assert (
        read_env(stack.path / ".env")["INFLUXDB_IMAGE"] == "labdock-test/influxdb:test"
    )
    history = read_history(stack.path)
    assert [d.result for d in history] == ["rolled-back"]
    assert history[0].before is not None
    assert history[0].before.image_id == original


def test_update_then_rollback(stack: StackTree) -> None:
    engine = stack.engine
    lifecycle.up(stack.path, ["influxdb"], hooks=False, wait_timeout=120)
    container = stack.container("influxdb")
    write_point(engine, container)
    original = image_id(engine, container)
    build_image(
        engine,
        "labdock-test/influxdb:next",
        'FROM labdock-test/influxdb:test\nLABEL org.example.release="next"\n',
    )
    project = Project.load(stack.path)

    updated = Deployer(project, timeout=60, pull=False).update(
        "influxdb", "labdock-test/influxdb:next"
    )
    assert updated.ok, updated.deployment.message
    assert updated.deployment.result == "succeeded"
    assert image_id(engine, container) != original
    assert (
        read_env(stack.path / ".env")["INFLUXDB_IMAGE"] == "labdock-test/influxdb:next"
    )
    assert read_points(engine, container)

    rolled = Deployer(Project.load(stack.path), timeout=60).rollback("influxdb")
    assert rolled.ok, rolled.deployment.message
    assert image_id(engine, container) == original
    assert (
        read_env(stack.path / ".env")["INFLUXDB_IMAGE"] == "labdock-test/influxdb:test"
    )
    assert [d.action for d in read_history(stack.path)] == ["update", "rollback"]


def test_second_rollback_keeps_image(stack: StackTree) -> None:
    engine = stack.engine
    lifecycle.up(stack.path, ["influxdb"], hooks=False, wait_timeout=120)
    container = stack.container("influxdb")
    original = image_id(engine, container)
    build_image(
        engine,
        "labdock-test/influxdb:next",
        'FROM labdock-test/influxdb:test\nLABEL org.example.release="next"\n',
    )
    updated = Deployer(Project.load(stack.path), timeout=60, pull=False).update(
        "influxdb", "labdock-test/influxdb:next"
    )
    assert updated.ok, updated.deployment.message
    first = Deployer(Project.load(stack.path), timeout=60).rollback("influxdb")
    assert first.ok, first.deployment.message

    # A second rollback, such as a sysadmin who is unsure whether the first
    # one worked, goes back to what the last update replaced, not forward.
    second = Deployer(Project.load(stack.path), timeout=60).rollback("influxdb")

    assert second.ok, second.deployment.message
    assert image_id(engine, container) == original
    assert (
        read_env(stack.path / ".env")["INFLUXDB_IMAGE"] == "labdock-test/influxdb:test"
    )
    actions = [d.action for d in read_history(stack.path)]
    assert actions == ["update", "rollback", "rollback"]

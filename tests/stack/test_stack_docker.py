"""Acceptance tests of the stack on the project's own Docker Engine."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from stack_support import DOMAIN, Engine, Site

from labdock.stack import lifecycle, secrets
from labdock.stack.validate import validate

pytestmark = pytest.mark.docker


def _body_and_status(output: str) -> tuple[str, int]:
    body, _, status = output.rpartition("\n")
    return body, int(status)


def _publish(site: Site, topic: str, payload: dict[str, float]) -> None:
    site.engine.docker(
        "exec",
        site.container("emqx"),
        "mosquitto_pub",
        "-q",
        "1",
        "-t",
        topic,
        "-m",
        json.dumps(payload),
    )


def _stored(site: Site, series: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Return the database's samples of `series`, waiting until there are any."""
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        database = site.container("influxdb")
        site.engine.docker(
            "exec",
            database,
            "curl",
            "-fsS",
            "http://127.0.0.1:8086/internal/force_flush",
        )
        exported = site.engine.docker(
            "exec",
            database,
            "curl",
            "-fsS",
            "http://127.0.0.1:8086/api/v1/export",
            "-d",
            f'match[]={{__name__="{series}"}}',
        ).stdout
        rows = [json.loads(line) for line in exported.splitlines() if line.strip()]
        if rows:
            return rows
        time.sleep(1)
    return rows


def test_laid_down_site_validates(site: Site) -> None:
    result = validate(site.directory)
    assert result.findings == []


def test_status_lists_healthy_services(site: Site) -> None:
    states = {
        s.service: s
        for s in lifecycle.status(site.directory, environment=site.environment)
    }
    assert set(states) == {
        "emqx",
        "influxdb",
        "lam",
        "sensor-acquisition",
        "socket-proxy",
        "traefik",
    }
    for state in states.values():
        assert state.state == "running", state
        assert state.health == "healthy", state
    assert states["sensor-acquisition"].url == f"https://acquire.{DOMAIN}"


def test_traefik_routes_acquisition_by_labels(site: Site) -> None:
    body, status = _body_and_status(site.https(f"acquire.{DOMAIN}", "/healthz").stdout)
    assert status == 200
    assert json.loads(body)["alive"] is True

    # The router comes from the docker provider (labels), not from a file.
    password = secrets.read_secret(site.directory, "traefik_dashboard_password")
    body, status = _body_and_status(
        site.https(
            f"traefik.{DOMAIN}", "/api/http/routers", "-u", f"admin:{password}"
        ).stdout
    )
    assert status == 200
    routers = {router["name"]: router for router in json.loads(body)}
    assert routers["acquire@docker"]["rule"] == f"Host(`acquire.{DOMAIN}`)"
    assert routers["acquire@docker"]["status"] == "enabled"


def test_plain_http_redirects_to_https(site: Site) -> None:
    result = site.engine.exec_in_namespace(
        "curl",
        "-s",
        "-m",
        "10",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        "--resolve",
        f"acquire.{DOMAIN}:80:127.0.0.1",
        f"http://acquire.{DOMAIN}/healthz",
    )
    assert result.stdout == f"301 https://acquire.{DOMAIN}/healthz"


def test_dashboard_needs_authentication(site: Site) -> None:
    _, status = _body_and_status(site.https(f"traefik.{DOMAIN}", "/dashboard/").stdout)
    assert status == 401
    _, wrong = _body_and_status(
        site.https(
            f"traefik.{DOMAIN}", "/dashboard/", "-u", "admin:wrong-password"
        ).stdout
    )
    assert wrong == 401


def test_backend_container_is_isolated(site: Site) -> None:
    engine: Engine = site.engine
    lam_address = engine.docker(
        "inspect",
        "-f",
        f'{{{{(index .NetworkSettings.Networks "{site.project}_public").IPAddress}}}}',
        site.container("lam"),
    ).stdout.strip()
    public_gateway = engine.docker(
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Gateway}}",
        f"{site.project}_public",
    ).stdout.strip()
    backend_gateway = engine.docker(
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Gateway}}",
        f"{site.project}_backend",
    ).stdout.strip()
    # Targets outside the backend network: a service on the public network,
    # and Traefik's published port on the host side of both bridges. Docker
    # 20.10 still gives containers on an internal network a default route
    # (later engines drop it), so reachability is what is tested.
    targets = [
        ("emqx", 1883),
        (lam_address, 80),
        (public_gateway, 443),
        (backend_gateway, 443),
    ]
    probe = (
        "import socket\n"
        "def probe(host, port):\n"
        "    try:\n"
        "        socket.create_connection((host, port), 3).close()\n"
        "        return 'open'\n"
        "    except OSError:\n"
        "        return 'closed'\n"
        f"print(*(probe(host, port) for host, port in {targets!r}))\n"
    )
    result = engine.docker(
        "run",
        "--rm",
        "--network",
        f"{site.project}_backend",
        "labdock-test/base:bookworm",
        "python3",
        "-c",
        probe,
    )
    inside, public_service, public_host, backend_host = result.stdout.split()
    assert inside == "open"
    assert public_service == "closed"
    assert public_host == "closed"
    assert backend_host == "closed"


def test_secrets_are_files_and_not_exposed(site: Site) -> None:
    listing = site.engine.docker(
        "exec",
        site.container("sensor-acquisition"),
        "stat",
        "-c",
        "%n %u %a",
        "/run/secrets/mqtt_acquire_password",
        "/run/secrets/influxdb_write_token",
    ).stdout.split("\n")
    assert listing[0] == "/run/secrets/mqtt_acquire_password 10001 600"
    assert listing[1] == "/run/secrets/influxdb_write_token 10001 600"

    values = {
        spec.name: secrets.read_secret(site.directory, spec.name)
        for spec in secrets.SPECS
        if spec.name
        not in ("traefik_dashboard_users", "emqx_mqtt_users", "emqx_api_keys")
    }
    values = {name: value for name, value in values.items() if value}
    containers = [
        site.container(s)
        for s in (
            "traefik",
            "socket-proxy",
            "emqx",
            "influxdb",
            "lam",
            "sensor-acquisition",
        )
    ]
    inspected = site.engine.docker("inspect", *containers).stdout
    for container in containers:
        logs = site.engine.docker("logs", container)
        for name, value in values.items():
            assert value not in logs.stdout + logs.stderr, (
                f"{name} in the logs of {container}"
            )
    for name, value in values.items():
        assert value not in inspected, f"{name} appears in docker inspect"


def test_sensor_message_reaches_database(site: Site) -> None:
    device = f"d{uuid.uuid4().hex[:6]}"
    _publish(site, f"lab/room1/{device}/climate", {"temperature": 21.5, "humidity": 40})
    rows = _stored(site, "climate_temperature")
    mine = [row for row in rows if row["metric"]["device"] == device]
    assert len(mine) == 1
    assert mine[0]["values"] == [21.5]
    assert mine[0]["metric"]["room"] == "room1"


def test_data_survives_down_and_up(site: Site) -> None:
    device = f"d{uuid.uuid4().hex[:6]}"
    _publish(site, f"lab/room2/{device}/persist", {"value": 7.0})
    before = [
        r for r in _stored(site, "persist_value") if r["metric"]["device"] == device
    ]
    assert len(before) == 1

    lifecycle.down(site.directory, environment=site.environment)
    assert (
        site.engine.docker("ps", "-q", "--filter", f"name={site.project}-").stdout == ""
    )
    lifecycle.up(
        site.directory, hooks=False, wait_timeout=180, environment=site.environment
    )

    after = [
        r for r in _stored(site, "persist_value") if r["metric"]["device"] == device
    ]
    assert after == before
    _publish(site, f"lab/room2/{device}/persist", {"value": 8.0})
    deadline = time.monotonic() + 30
    values: list[object] = []
    while time.monotonic() < deadline:
        rows = [
            r for r in _stored(site, "persist_value") if r["metric"]["device"] == device
        ]
        values = sorted(v for r in rows for v in r["values"])
        if len(values) == 2:
            break
        time.sleep(1)
    assert values == [7.0, 8.0]

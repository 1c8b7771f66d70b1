"""Helpers of the stack tests that run on the project's own Docker Engine.

The engine (scripts/docker-engine.sh) runs in a network namespace of its
own, so published ports are reached with `engine.exec_in_namespace`. Images
are the local stand-ins of scripts/build-test-images.sh.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from labdock.stack.compose import Compose

REPO = Path(__file__).resolve().parents[2]
ENGINE_SCRIPT = REPO / "scripts" / "docker-engine.sh"
IMAGES_SCRIPT = REPO / "scripts" / "build-test-images.sh"
DOMAIN = "lab.test"

STAND_INS = {
    "TRAEFIK_IMAGE": "labdock-test/traefik:test",
    "SOCKET_PROXY_IMAGE": "labdock-test/socket-proxy:test",
    "EMQX_IMAGE": "labdock-test/emqx:test",
    "INFLUXDB_IMAGE": "labdock-test/influxdb:test",
    "LAM_IMAGE": "labdock-test/lam:test",
    "ACQUISITION_IMAGE": "labdock-test/sensor-acquisition:test",
}


@dataclass
class Engine:
    """The running test engine: its environment and namespace helpers."""

    environment: dict[str, str]
    socket_path: Path

    def docker(
        self, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", *args],
            env={**os.environ, **self.environment},
            capture_output=True,
            text=True,
            timeout=120,
            check=check,
        )

    def exec_in_namespace(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a host command inside the engine's network namespace."""
        return subprocess.run(
            ["bash", str(ENGINE_SCRIPT), "exec", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def script_environment() -> dict[str, str]:
    output = subprocess.run(
        ["bash", str(ENGINE_SCRIPT), "env"], capture_output=True, text=True, check=True
    ).stdout
    values = {}
    for line in output.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        values[name] = value
    return values


@dataclass
class Site:
    """A laid-down services tree running on the test engine."""

    directory: Path
    project: str
    environment: dict[str, str]
    engine: Engine

    def compose(self) -> Compose:
        return Compose(self.directory, environment=self.environment)

    def container(self, service: str) -> str:
        return f"{self.project}-{service}-1"

    def https(
        self, host: str, path: str, *extra: str
    ) -> subprocess.CompletedProcess[str]:
        """GET https://host/path through Traefik's published port 443."""
        return self.engine.exec_in_namespace(
            "curl",
            "-sk",
            "-m",
            "10",
            "-w",
            "\n%{http_code}",
            "--resolve",
            f"{host}:443:127.0.0.1",
            *extra,
            f"https://{host}{path}",
        )


def write_test_certificate(dynamic: Path) -> None:
    # Traefik rejects unknown server names (sniStrict), and the ACME resolver
    # cannot reach a CA from the engine's namespace, so the site serves a
    # self-signed wildcard certificate from the file provider, as a site with
    # its own CA would.
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={DOMAIN}",
            "-addext",
            f"subjectAltName=DNS:*.{DOMAIN},DNS:{DOMAIN}",
            "-keyout",
            str(dynamic / "site.key"),
            "-out",
            str(dynamic / "site.crt"),
        ],
        check=True,
        capture_output=True,
    )
    (dynamic / "site-certificate.yml").write_text(
        "tls:\n  certificates:\n"
        "    - certFile: /etc/traefik/dynamic/site.crt\n"
        "      keyFile: /etc/traefik/dynamic/site.key\n"
    )

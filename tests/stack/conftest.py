"""Fixtures for the stack tests that need the project's own Docker Engine."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from stack_support import (
    DOMAIN,
    ENGINE_SCRIPT,
    IMAGES_SCRIPT,
    STAND_INS,
    Engine,
    Site,
    script_environment,
    write_test_certificate,
)

from labdock.stack import lifecycle, secrets, tree
from labdock.stack.envfile import set_values


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """Start the project's Docker Engine (unless running) and build the images."""
    if shutil.which("nsenter") is None or os.geteuid() != 0:
        pytest.fail("the docker tests need root and nsenter to start their own engine")
    status = subprocess.run(["bash", str(ENGINE_SCRIPT), "status"], capture_output=True)
    started_here = status.returncode != 0
    if started_here:
        subprocess.run(["bash", str(ENGINE_SCRIPT), "start"], check=True, timeout=600)
    environment = script_environment()
    try:
        subprocess.run(
            ["bash", str(IMAGES_SCRIPT)],
            env={**os.environ, **environment},
            check=True,
            timeout=1200,
        )
        socket_path = Path(environment["DOCKER_HOST"].removeprefix("unix://"))
        yield Engine(
            environment={"DOCKER_HOST": environment["DOCKER_HOST"]},
            socket_path=socket_path,
        )
    finally:
        if started_here:
            subprocess.run(
                ["bash", str(ENGINE_SCRIPT), "stop"], check=False, timeout=120
            )


@pytest.fixture(scope="module")
def site(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Lay down, configure and start the stack with the stand-in images."""
    directory = tmp_path_factory.mktemp("site")
    project = f"ldt{uuid.uuid4().hex[:8]}"
    tree.lay_down(directory, domain=DOMAIN, email="ops@lab.test")
    secrets.init_secrets(directory)
    env_path = directory / ".env"
    env_path.write_text(
        set_values(
            env_path.read_text(),
            {
                "COMPOSE_PROJECT_NAME": project,
                "TRAEFIK_NETWORK": f"{project}_public",
                "BACKEND_NETWORK": f"{project}_backend",
                "SOCKET_PROXY_NETWORK": f"{project}_socket_proxy",
                # Traffic reaches Traefik from the namespace through Docker's
                # proxy, so the peer is a gateway of the engine's pool.
                "ADMIN_ALLOWLIST": "10.213.0.0/16",
                # No CA is reachable; a local address fails at once.
                "ACME_CA_SERVER": "https://127.0.0.1:14000/dir",
                "DOCKER_SOCKET": str(engine.socket_path),
            },
        )
    )
    write_test_certificate(directory / "traefik" / "dynamic")
    environment = {**engine.environment, **STAND_INS}
    running = Site(directory, project, environment, engine)
    try:
        lifecycle.up(directory, hooks=False, wait_timeout=180, environment=environment)
        yield running
    finally:
        running.compose().run("down", "--volumes", "--timeout", "5", check=False)
        engine.docker("network", "rm", f"{project}_public", check=False)

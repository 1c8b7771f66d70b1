"""Fixtures of the operations tests: real restic repositories and small trees.

`restic init` spends about three seconds deriving the key, so one
repository is created per session and each test gets a copy of it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from components import require_binary
from labdock.ops.restic import Restic
from labdock.stack import secrets as stack_secrets
from labdock.stack import tree as stack_tree
from labdock.stack.envfile import set_values

PASSWORD = "labdock-test-password\n"


@pytest.fixture(scope="session")
def restic_binary() -> str:
    return require_binary("restic", "restic")


@pytest.fixture(scope="session")
def restic_template(
    restic_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A freshly initialised, empty repository to copy from."""
    root = tmp_path_factory.mktemp("restic-template")
    password = root / "password"
    password.write_text(PASSWORD, encoding="utf-8")
    password.chmod(0o600)
    Restic(str(root / "repo"), password, binary=restic_binary).init()
    return root


@pytest.fixture
def restic_repo(restic_template: Path, restic_binary: str, tmp_path: Path) -> Restic:
    """An empty repository of this test, with its own cache directory."""
    repo = tmp_path / "repo"
    shutil.copytree(restic_template / "repo", repo)
    password = tmp_path / "restic-password"
    shutil.copy(restic_template / "password", password)
    return Restic(
        str(repo),
        password,
        cache_dir=tmp_path / "restic-cache",
        binary=restic_binary,
        hostname="labhost",
    )


def make_tree(root: Path) -> Path:
    """Write a small services tree: compose.yaml, .env, secrets and Harbor files."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "compose.yaml").write_text(
        "name: labdock\nservices:\n  app:\n    image: busybox\n", encoding="utf-8"
    )
    (root / ".env").write_text("LABDOCK_DOMAIN=lab.example.org\n", encoding="utf-8")
    (root / "traefik").mkdir()
    (root / "traefik" / "traefik.yml.tmpl").write_text("ping: {}\n", encoding="utf-8")
    stack_secrets.init_secrets(root, chown=False)
    installer = root / "harbor" / "installer"
    installer.mkdir(parents=True)
    (installer / "harbor.yml").write_text("harbor_admin_password: hunter2hunter2\n")
    (root / "sensor-acquisition" / "wheels").mkdir(parents=True)
    (root / "sensor-acquisition" / "wheels" / "x.whl").write_bytes(b"wheel")
    return root


@pytest.fixture
def services_tree(tmp_path: Path) -> Iterator[Path]:
    tree = make_tree(tmp_path / "services")
    yield tree
    shutil.rmtree(tree / ".labdock" / "staging", ignore_errors=True)


# --- Docker: a private engine and a laid-down tree with the stand-in images ---

REPO = Path(__file__).resolve().parents[2]
STAND_IN_IMAGES = {
    "TRAEFIK_IMAGE": "labdock-test/traefik:test",
    "SOCKET_PROXY_IMAGE": "labdock-test/socket-proxy:test",
    "EMQX_IMAGE": "labdock-test/emqx:test",
    "INFLUXDB_IMAGE": "labdock-test/influxdb:test",
    "LAM_IMAGE": "labdock-test/lam:test",
    "ACQUISITION_IMAGE": "labdock-test/sensor-acquisition:test",
}


@dataclass(frozen=True)
class Engine:
    """A running private Docker Engine (scripts/docker-engine.sh)."""

    host: str
    socket: Path


def _engine_env(directory: Path) -> dict[str, str]:
    return {**os.environ, "LABDOCK_DOCKER_DIR": str(directory)}


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The engine under $LABDOCK_OPS_DOCKER_DIR, or one started for this session.

    An engine that was already running is left running; one this fixture
    started is stopped at the end. The stand-in images are built when
    missing (scripts/build-test-images.sh).
    """
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        message = "the Docker tests need root and dockerd (apt install docker.io)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    configured = os.environ.get("LABDOCK_OPS_DOCKER_DIR")
    directory = Path(configured) if configured else tmp_path_factory.mktemp("engine")
    script = REPO / "scripts" / "docker-engine.sh"
    env = _engine_env(directory)
    was_running = (
        subprocess.run([script, "status"], env=env, capture_output=True).returncode == 0
    )
    if not was_running:
        subprocess.run([script, "start"], env=env, check=True, capture_output=True)
    socket_path = directory / "docker.sock"
    host = f"unix://{socket_path}"
    try:
        missing = [
            image
            for image in STAND_IN_IMAGES.values()
            if subprocess.run(
                ["docker", "-H", host, "image", "inspect", image], capture_output=True
            ).returncode
            != 0
        ]
        if missing:
            # The script caches the debootstrap root and the wheels under
            # $LABDOCK_IMAGE_CACHE, by default the repository's .work/images.
            subprocess.run(
                [REPO / "scripts" / "build-test-images.sh"],
                env={**env, "DOCKER_HOST": host},
                check=True,
            )
        yield Engine(host, socket_path)
    finally:
        if not was_running:
            subprocess.run([script, "stop"], env=env, capture_output=True)


def docker_cli(engine: Engine, *args: str, input_text: str | None = None) -> str:
    """Run the docker CLI against `engine`; return stdout, fail on an error."""
    result = subprocess.run(
        ["docker", "-H", engine.host, *args],
        input=input_text,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
    return result.stdout


def build_image(engine: Engine, tag: str, dockerfile: str) -> None:
    """Build an image from a Dockerfile with no context."""
    docker_cli(
        engine, "build", "--network", "none", "-t", tag, "-", input_text=dockerfile
    )


@dataclass
class StackTree:
    """A laid-down services tree whose project lives on the test engine."""

    path: Path
    project: str
    engine: Engine

    def compose(
        self, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        compose = Path(sys.executable).parent / "docker-compose"
        result = subprocess.run(
            [str(compose), "--project-directory", str(self.path), *args],
            env={**os.environ, "DOCKER_HOST": self.engine.host},
            capture_output=True,
            text=True,
        )
        if check:
            assert result.returncode == 0, f"compose {' '.join(args)}: {result.stderr}"
        return result

    def container(self, service: str) -> str:
        return f"{self.project}-{service}-1"

    def set_env(self, **values: str) -> None:
        env = self.path / ".env"
        env.write_text(set_values(env.read_text(), values))


def lay_down_tree(root: Path, engine: Engine, name: str) -> StackTree:
    """Lay the shipped tree down with stand-in images and project-unique names."""
    stack_tree.lay_down(root, domain="lab.test", email="ops@lab.test")
    values = {
        "COMPOSE_PROJECT_NAME": name,
        "TRAEFIK_NETWORK": f"{name}_public",
        "BACKEND_NETWORK": f"{name}_backend",
        "SOCKET_PROXY_NETWORK": f"{name}_socket",
        "DOCKER_SOCKET": str(engine.socket),
        "ADMIN_ALLOWLIST": "10.0.0.0/8",
        **STAND_IN_IMAGES,
    }
    env = root / ".env"
    env.write_text(set_values(env.read_text(), values))
    stack_secrets.init_secrets(root)
    return StackTree(root, name, engine)


@pytest.fixture
def stack(
    docker_engine: Engine,
    tmp_path: Path,
    unique_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[StackTree]:
    """A laid-down tree on the test engine; its containers, volumes and
    networks are removed afterwards."""
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    name = "ops" + unique_name.replace("_", "")[-10:]
    tree = lay_down_tree(tmp_path / "services", docker_engine, name)
    try:
        yield tree
    finally:
        # By project name, so that teardown works whatever the test did to
        # the tree's files.
        subprocess.run(
            [
                str(Path(sys.executable).parent / "docker-compose"),
                "-p",
                name,
                "down",
                "--volumes",
                "--remove-orphans",
                "--timeout",
                "5",
            ],
            env={**os.environ, "DOCKER_HOST": docker_engine.host},
            cwd=tmp_path,
            capture_output=True,
        )
        subprocess.run(
            ["docker", "-H", docker_engine.host, "network", "rm", f"{name}_public"],
            capture_output=True,
        )

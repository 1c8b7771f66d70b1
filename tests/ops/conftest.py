"""Fixtures of the operations tests: real restic repositories and small trees.

`restic init` spends about three seconds deriving the key, so one
repository is created per session and each test gets a copy of it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from components import require_binary
from labdock.ops.restic import Restic
from labdock.stack import secrets as stack_secrets

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

"""`labdock up|status` checks that need no Docker Engine."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from labdock.cli import main
from labdock.stack import lifecycle, secrets, tree
from labdock.stack.compose import parse_ps


def test_up_needs_env_file(tmp_path: Path) -> None:
    with pytest.raises(lifecycle.StackError, match="run `labdock init"):
        lifecycle.up(tmp_path)


def test_up_needs_secret_files(tmp_path: Path) -> None:
    tree.lay_down(tmp_path, domain="lab.test", email="ops@lab.test")
    (tmp_path / "secrets" / "lam_password").unlink(missing_ok=True)
    result = CliRunner().invoke(main, ["up", "-C", str(tmp_path)])
    assert result.exit_code == 1
    assert "missing secret files: traefik_dashboard_password" in result.output
    assert "labdock secrets init" in result.output


def test_up_reports_missing_secret_by_name(tmp_path: Path) -> None:
    tree.lay_down(tmp_path, domain="lab.test", email="ops@lab.test")
    secrets.init_secrets(tmp_path, chown=False)
    (tmp_path / "secrets" / "lam_password").unlink()
    with pytest.raises(
        lifecycle.StackError, match="missing secret files: lam_password;"
    ):
        lifecycle.up(tmp_path)


def test_up_rejects_empty_secret_file(tmp_path: Path) -> None:
    tree.lay_down(tmp_path, domain="lab.test", email="ops@lab.test")
    secrets.init_secrets(tmp_path, chown=False)
    (tmp_path / "secrets" / "influxdb_admin_password").write_text("")
    with pytest.raises(
        lifecycle.StackError, match="empty secret files: influxdb_admin_password;"
    ):
        lifecycle.up(tmp_path)


def test_up_checks_unreadable_secret_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree.lay_down(tmp_path, domain="lab.test", email="ops@lab.test")
    secrets.init_secrets(tmp_path, chown=False)
    (tmp_path / "secrets" / "influxdb_admin_password").write_text("")

    # The tests run as root, who can read any file, so the denial is faked.
    def deny(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", deny)
    with pytest.raises(
        lifecycle.StackError, match="empty secret files: influxdb_admin_password;"
    ):
        lifecycle.up(tmp_path)


def test_parse_ps_accepts_both_formats() -> None:
    lines = '{"Service":"a","State":"running"}\n{"Service":"b","State":"exited"}\n'
    array = '[{"Service":"a","State":"running"},{"Service":"b","State":"exited"}]'
    assert parse_ps(lines) == parse_ps(array)
    assert [row["Service"] for row in parse_ps(lines)] == ["a", "b"]
    assert parse_ps("") == []


def test_status_table_is_aligned() -> None:
    table = lifecycle.format_table(
        [
            lifecycle.ServiceState(
                "traefik", "running", "healthy", "https://traefik.lab.test"
            ),
            lifecycle.ServiceState("lam", "exited", "-", "-"),
        ]
    )
    lines = table.splitlines()
    assert lines[0].split() == ["SERVICE", "STATE", "HEALTH", "URL"]
    assert lines[1].split() == [
        "traefik",
        "running",
        "healthy",
        "https://traefik.lab.test",
    ]
    assert lines[2].split() == ["lam", "exited", "-", "-"]
    assert len({line.index(line.split()[1]) for line in lines}) == 1


@pytest.fixture
def laid_down(tmp_path: Path) -> Path:
    tree.lay_down(tmp_path, domain="lab.test", email="ops@lab.test")
    secrets.init_secrets(tmp_path, chown=False)
    return tmp_path


@pytest.mark.parametrize("command", ["logs", "up", "status"])
def test_unknown_service_rejected(laid_down: Path, command: str) -> None:
    result = CliRunner().invoke(main, [command, "nosuch", "-C", str(laid_down)])

    assert result.exit_code == 2, result.output
    assert "unknown service nosuch; services: " in result.output
    assert "sensor-acquisition" in result.output


def test_health_unknown_service_is_unknown(laid_down: Path) -> None:
    result = CliRunner().invoke(main, ["health", "nosuch", "-C", str(laid_down)])

    assert result.exit_code == 3, result.output
    assert result.output.startswith("UNKNOWN: unknown service nosuch; services: ")
    assert "influxdb" in result.output


@pytest.mark.parametrize("command", ["status", "down", "logs", "up"])
def test_commands_outside_tree_rejected(tmp_path: Path, command: str) -> None:
    result = CliRunner().invoke(main, [command, "-C", str(tmp_path)])

    assert result.exit_code == 2, result.output
    assert f"no compose.yaml in {tmp_path}; pass the services tree with -C DIR" in (
        result.output
    )


@pytest.mark.parametrize("command", ["status", "down", "logs"])
def test_unreachable_engine_is_tool_error(
    laid_down: Path, command: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'missing.sock'}")

    result = CliRunner().invoke(main, [command, "-C", str(laid_down)])

    assert result.exit_code == 2, result.output

"""`labdock secrets init|check|rotate` without a running stack."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import bcrypt
import pytest
from click.testing import CliRunner

from labdock.cli import main
from labdock.stack import rotate, secrets
from labdock.stack.compose import Compose, ComposeError


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / ".env").write_text("LABDOCK_DOMAIN=lab.test\n")
    (site / "compose.yaml").write_text("services: {}\n")
    secrets.init_secrets(site, chown=False)
    return site


def problems_of(site: Path, **options: object) -> list[str]:
    found = secrets.check_secrets(site, check_owner=False, git_history=False)
    return [f"{p.secret}: {p.message}" for p in found]


def test_init_creates_every_secret(site: Path) -> None:
    for spec in secrets.SPECS:
        path = site / "secrets" / spec.name
        assert path.is_file(), spec.name
        assert path.stat().st_mode & 0o777 == 0o600, spec.name
    assert (site / "secrets").stat().st_mode & 0o777 == 0o700


def test_init_values_are_random_and_strong(site: Path) -> None:
    passwords = [
        secrets.read_secret(site, spec.name)
        for spec in secrets.SPECS
        if spec.generate in (secrets.password, secrets.token)
    ]
    assert len(set(passwords)) == len(passwords)
    assert all(len(value) >= 32 for value in passwords)


def test_derived_secrets_match_sources(site: Path) -> None:
    password = secrets.read_secret(site, "traefik_dashboard_password")
    user, hashed = secrets.read_secret(site, "traefik_dashboard_users").split(":", 1)
    assert user == "admin"
    assert bcrypt.checkpw(password.encode(), hashed.encode())
    mqtt_password = secrets.read_secret(site, "mqtt_acquire_password")
    users = secrets.read_secret(site, "emqx_mqtt_users").splitlines()
    assert users == [
        "user_id,password,is_superuser",
        f"labdock-acquire,{mqtt_password},false",
    ]


def test_init_keeps_existing_files(site: Path) -> None:
    before = secrets.read_secret(site, "lam_password")
    outcome = secrets.init_secrets(site, chown=False)
    assert outcome.created == []
    assert secrets.read_secret(site, "lam_password") == before


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_init_sets_owner_of_reader(tmp_path: Path) -> None:
    secrets.init_secrets(tmp_path)
    assert (tmp_path / "secrets" / "influxdb_admin_token").stat().st_uid == 1000
    assert (tmp_path / "secrets" / "mqtt_acquire_password").stat().st_uid == 10001
    assert (tmp_path / "secrets" / "harbor_admin_password").stat().st_uid == 0


def test_check_clean_site(site: Path) -> None:
    assert problems_of(site) == []


def test_check_flags_loose_mode(site: Path) -> None:
    (site / "secrets" / "lam_password").chmod(0o644)
    assert problems_of(site) == [
        f"lam_password: mode is 0644; run chmod 600 {site / 'secrets' / 'lam_password'}"
    ]


def test_check_flags_missing_and_weak(site: Path) -> None:
    (site / "secrets" / "lam_password").unlink()
    secrets.write_secret(
        site / "secrets" / "harbor_admin_password", "Harbor12345", 0, chown=False
    )
    found = problems_of(site)
    assert any(p.startswith("lam_password:") and "missing" in p for p in found)
    assert any(p.startswith("harbor_admin_password:") and "weak" in p for p in found)


def test_check_warns_on_age(site: Path) -> None:
    old = time.time() - 400 * 86400
    os.utime(site / "secrets" / "lam_password", (old, old))
    [problem] = secrets.check_secrets(site, check_owner=False, git_history=False)
    assert problem.secret == "lam_password"
    assert problem.level == "warning"


def test_check_finds_value_in_env_and_compose(site: Path) -> None:
    value = secrets.read_secret(site, "influxdb_admin_password")
    (site / ".env").write_text(f"LABDOCK_DOMAIN=lab.test\nINFLUX_PASSWORD={value}\n")
    (site / "compose.yaml").write_text(
        f"services: {{x: {{environment: {{P: {value}}}}}}}\n"
    )
    found = problems_of(site)
    assert any(
        "appears in" in p and p.endswith(".env; remove it and rotate") for p in found
    )
    assert any("compose.yaml" in p for p in found)
    assert any(p.startswith("INFLUX_PASSWORD:") for p in found)


def test_check_finds_value_in_git_history(site: Path) -> None:
    value = secrets.read_secret(site, "lam_password")
    git = ["git", "-C", str(site), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (site / "notes.txt").write_text(value)
    subprocess.run([*git, "add", "notes.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "notes"], check=True)
    subprocess.run([*git, "rm", "-q", "notes.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "remove"], check=True)
    found = secrets.check_secrets(site, check_owner=False, git_history=True)
    assert [(p.secret, p.message) for p in found] == [
        ("lam_password", "its value appears in the git history; rotate it")
    ]


def test_check_cli_exit_code(site: Path) -> None:
    runner = CliRunner()
    clean = runner.invoke(main, ["secrets", "check", str(site), "--no-git"])
    # Owner checks apply when the tests run as root; files here are the test's.
    if os.geteuid() != 0:
        assert clean.exit_code == 0, clean.output
    (site / "secrets" / "lam_password").chmod(0o640)
    broken = runner.invoke(main, ["secrets", "check", str(site), "--no-git"])
    assert broken.exit_code == 1
    assert "lam_password: mode is 0640" in broken.output


@pytest.mark.parametrize("command", ["init", "check"])
def test_cli_outside_tree(tmp_path: Path, command: str) -> None:
    result = CliRunner().invoke(main, ["secrets", command, str(tmp_path)])

    assert result.exit_code == 2, result.output
    assert (
        f"no compose.yaml in {tmp_path}; pass the services tree with its "
        "DIRECTORY argument" in result.output
    )
    assert not (tmp_path / "secrets").exists()


def test_write_secret_keeps_inode(tmp_path: Path) -> None:
    path = tmp_path / "s"
    secrets.write_secret(path, "first-value", 0, chown=False)
    inode = path.stat().st_ino
    secrets.write_secret(path, "second", 0, chown=False)
    assert path.stat().st_ino == inode
    assert path.read_text() == "second"


def test_rotate_traefik_dashboard(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rotate, "_running", lambda compose, service: False)
    before = secrets.read_secret(site, "traefik_dashboard_password")
    message = rotate.rotate(site, "traefik_dashboard_password")
    after = secrets.read_secret(site, "traefik_dashboard_password")
    assert after != before
    hashed = secrets.read_secret(site, "traefik_dashboard_users").split(":", 1)[1]
    assert bcrypt.checkpw(after.encode(), hashed.encode())
    assert "traefik is not running" in message


def test_rotate_unsupported_prints_steps(site: Path) -> None:
    result = CliRunner().invoke(
        main, ["secrets", "rotate", "influxdb_admin_token", "-C", str(site)]
    )
    assert result.exit_code == 1
    assert "not implemented" in result.output
    assert "influx auth create --operator" in result.output


def test_rotate_unknown_name(site: Path) -> None:
    with pytest.raises(rotate.RotationError, match="unknown secret 'nope'"):
        rotate.rotate(site, "nope")


@pytest.mark.parametrize(
    "relative",
    [".env.bak", "scripts/rotate.sh", "pyproject.toml", "data/users.json", "NOTES.md"],
)
def test_check_scans_every_text_file(site: Path, relative: str) -> None:
    value = secrets.read_secret(site, "lam_password")
    path = site / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"copied here: {value}\n")

    found = problems_of(site)

    assert f"lam_password: its value appears in {path}; remove it and rotate" in found


def test_check_skips_binary_and_large_files(site: Path) -> None:
    value = secrets.read_secret(site, "lam_password")
    (site / "image.bin").write_bytes(b"\0\1\2" + value.encode())
    (site / "dump.sql").write_text(
        value + "x" * secrets.MAX_SCAN_BYTES, encoding="utf-8"
    )

    assert problems_of(site) == []


def test_env_backup_credential_variable_flagged(site: Path) -> None:
    (site / ".env.bak").write_text("LDAP_BIND_PASSWORD=hunter2\n")

    found = problems_of(site)

    assert any(p.startswith("LDAP_BIND_PASSWORD:") for p in found), found


def test_restic_password_checked(site: Path) -> None:
    path = site / "secrets" / "restic_password"
    path.write_text("password\n")
    path.chmod(0o644)

    found = problems_of(site)

    assert f"restic_password: mode is 0644; run chmod 600 {path}" in found
    assert any(p.startswith("restic_password: is weak") for p in found)


def test_restic_password_leak_found(site: Path) -> None:
    value = "c0rrect-h0rse-battery-staple-9f2"
    secrets.write_secret(site / "secrets" / "restic_password", value, 0, chown=False)
    (site / "backup.sh").write_text(f"export RESTIC_PASSWORD={value}\n")

    found = problems_of(site)

    assert (
        f"restic_password: its value appears in {site / 'backup.sh'}; remove it "
        "and rotate"
    ) in found


def test_weak_value_reported_once(site: Path) -> None:
    secrets.write_secret(
        site / "secrets" / "lam_password", "password", secrets.LAM_UID, chown=False
    )
    for name in ("README.md", "compose.yaml", "notes.txt"):
        (site / name).write_text("set the password in secrets/\n")

    found = problems_of(site)

    assert [p for p in found if p.startswith("lam_password:")] == [
        f"lam_password: is weak (shorter than {secrets.MIN_LENGTH} or a common value)"
    ]


def test_failed_git_search_reported(site: Path) -> None:
    # An empty .git directory makes every git command fail, as a repository
    # owned by another user does ("dubious ownership").
    (site / ".git").mkdir()

    found = secrets.check_secrets(site, check_owner=False, git_history=True)

    [problem] = found
    assert problem.secret == "git"
    assert problem.level == "warning"
    assert problem.message.startswith("could not search git history: ")
    assert "--no-git" in problem.message


def _failing_compose_run(self: Compose, *args: str, **options: object) -> None:
    raise ComposeError("docker compose exec failed with exit code 1: node down")


def test_rotate_emqx_failure_keeps_old_value(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rotate, "_running", lambda compose, service: True)
    monkeypatch.setattr(Compose, "run", _failing_compose_run)
    before = secrets.read_secret(site, "emqx_dashboard_password")

    result = CliRunner().invoke(
        main, ["secrets", "rotate", "emqx_dashboard_password", "-C", str(site)]
    )

    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "`emqx ctl admins passwd` failed" in result.output
    assert "old password was put back" in result.output
    assert secrets.read_secret(site, "emqx_dashboard_password") == before


def test_rotate_traefik_restart_failure_keeps_old(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rotate, "_running", lambda compose, service: True)
    monkeypatch.setattr(Compose, "run", _failing_compose_run)
    password = secrets.read_secret(site, "traefik_dashboard_password")
    users = secrets.read_secret(site, "traefik_dashboard_users")

    with pytest.raises(rotate.RotationError, match="restarting traefik failed"):
        rotate.rotate(site, "traefik_dashboard_password")

    assert secrets.read_secret(site, "traefik_dashboard_password") == password
    assert secrets.read_secret(site, "traefik_dashboard_users") == users


def test_init_outside_tree_rejected(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["secrets", "init", str(tmp_path)])

    assert result.exit_code == 2, result.output
    assert f"no compose.yaml in {tmp_path}" in result.output
    assert not (tmp_path / "secrets").exists()

"""Backup runs, retention, verify and status against a real restic, without Docker."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from labdock.ops import backup, status, verify
from labdock.ops.backup import BackupRunner, Part, ServicePlan, plan_run
from labdock.ops.catalog import group_runs, select_parts
from labdock.ops.errors import OpsError
from labdock.ops.restic import Restic, RetentionPolicy
from labdock.ops.settings import BackupSettings


def _settings(**values: object) -> BackupSettings:
    return BackupSettings.model_validate({"host": "labhost", **values})


def _ls(restic: Restic, snapshot_id: str) -> list[str]:
    result = restic.run("ls", snapshot_id, "--no-lock")
    return [line for line in result.stdout.splitlines() if line.startswith("/")]


def _run(tree: Path, restic: Restic, **options: object) -> backup.RunReport:
    settings = _settings()
    plans = plan_run(
        None,
        settings,
        tree=tree,
        services=[],
        include_secrets=bool(options.pop("include_secrets", False)),
    )
    runner = BackupRunner(tree, restic, settings, project=None)
    return runner.run(plans, prune=bool(options.pop("prune", False)))


def test_tree_backup_leaves_out_secrets(
    services_tree: Path, restic_repo: Restic
) -> None:
    (services_tree / ".labdock").mkdir(exist_ok=True)
    (services_tree / ".labdock" / "backup.lock").write_text("123 backup")
    report = _run(services_tree, restic_repo)
    assert report.ok, [r.failure() for r in report.results]
    assert [r.service for r in report.results] == ["tree"]
    snapshot = report.results[0].parts[0].summary
    assert snapshot is not None
    listed = _ls(restic_repo, snapshot.snapshot_id)
    assert "/compose.yaml" in listed
    assert "/.env" in listed
    assert "/traefik/traefik.yml.tmpl" in listed
    assert not [path for path in listed if path.startswith("/secrets")]
    assert not [path for path in listed if path.startswith("/harbor/installer")]
    assert not [path for path in listed if "wheels" in path]
    assert "/.labdock/backup.lock" not in listed


def test_secrets_only_when_asked(services_tree: Path, restic_repo: Restic) -> None:
    report = _run(services_tree, restic_repo, include_secrets=True)
    assert [r.service for r in report.results] == ["tree", "secrets"]
    secrets_part = report.results[1].parts[0].summary
    assert secrets_part is not None
    listed = _ls(restic_repo, secrets_part.snapshot_id)
    assert "/secrets/influxdb_admin_token" in listed
    assert "/harbor/installer/harbor.yml" in listed
    snapshots = restic_repo.snapshots(tags=["labdock"])
    assert {s.service for s in snapshots} == {"tree", "secrets"}


def test_failed_part_forgets_service_snapshots(
    services_tree: Path, restic_repo: Restic, tmp_path: Path
) -> None:
    present = tmp_path / "present"
    present.mkdir()
    (present / "file").write_text("x")
    plans = [
        ServicePlan("tree", "files", (Part("tree", "config", "tree"),)),
        ServicePlan(
            "harbor",
            "native",
            (
                Part("harbor", "registry", "path", path=present),
                Part("harbor", "secret-key", "path", path=tmp_path / "missing"),
            ),
        ),
    ]
    runner = BackupRunner(services_tree, restic_repo, _settings(), project=None)
    report = runner.run(plans)
    assert report.ok is False
    tree_result, harbor_result = report.results
    assert tree_result.ok
    assert harbor_result.ok is False
    assert "secret-key" in (harbor_result.failure() or "")
    assert str(tmp_path / "missing") in (harbor_result.failure() or "")
    services = {s.service for s in restic_repo.snapshots(tags=["labdock"])}
    assert services == {"tree"}


def test_status_json_and_textfile(services_tree: Path, restic_repo: Restic) -> None:
    report = _run(services_tree, restic_repo)
    status_file = services_tree / ".labdock" / "backup-status.json"
    textfile = services_tree / "metrics" / "labdock_backup.prom"
    status_file.parent.mkdir(exist_ok=True)
    status_file.write_text(
        json.dumps(
            {"services": {"influxdb": {"last_success": "2026-01-01T00:00:00+00:00"}}}
        )
    )
    status.write_status(report, status_file=status_file, textfile=textfile)
    data = json.loads(status_file.read_text())
    assert data["services"]["tree"]["last_result"] == "ok"
    assert data["services"]["tree"]["last_success"] is not None
    assert data["services"]["influxdb"]["last_success"] == "2026-01-01T00:00:00+00:00"
    text = textfile.read_text()
    assert "# TYPE labdock_backup_last_success_timestamp_seconds gauge" in text
    assert (
        'labdock_backup_last_success_timestamp_seconds{service="influxdb"} 1767225600'
        in text
    )
    assert 'labdock_backup_last_run_success{service="tree"} 1' in text


@pytest.mark.parametrize(
    "content",
    ['{"services": ', "[1, 2]", '{"services": [1]}', '{"services": {"lam": 1}}'],
)
def test_status_file_invalid(tmp_path: Path, content: str) -> None:
    status_file = tmp_path / "backup-status.json"
    status_file.write_text(content, encoding="utf-8")
    with pytest.raises(OpsError, match="next `labdock backup run` writes it again"):
        status.load_status(status_file)


def test_status_file_missing_empty(tmp_path: Path) -> None:
    assert status.load_status(tmp_path / "missing.json") == {"services": {}}


def test_run_replaces_corrupt_status(services_tree: Path, restic_repo: Restic) -> None:
    report = _run(services_tree, restic_repo)
    status_file = services_tree / ".labdock" / "backup-status.json"
    status_file.parent.mkdir(exist_ok=True)
    status_file.write_text('{"services": ', encoding="utf-8")
    textfile = services_tree / ".labdock" / "labdock_backup.prom"

    status.write_status(report, status_file=status_file, textfile=textfile)

    data = json.loads(status_file.read_text())
    assert data["services"]["tree"]["last_result"] == "ok"


def test_status_command_corrupt_file(services_tree: Path) -> None:
    from click.testing import CliRunner

    from labdock.cli import main

    status_file = services_tree / ".labdock" / "backup-status.json"
    status_file.parent.mkdir(exist_ok=True)
    status_file.write_text('{"services": ', encoding="utf-8")

    result = CliRunner().invoke(main, ["backup", "status", "-C", str(services_tree)])

    assert result.exit_code == 2, result.output
    assert f"{status_file} is not valid JSON" in result.output


def test_textfile_escapes_labels() -> None:
    text = status.render_textfile(
        {"services": {'a"b': {"last_result": "failed", "added_bytes": 0}}}
    )
    assert 'labdock_backup_last_run_success{service="a\\"b"} 0' in text


def test_retention_keeps_per_service_part(restic_repo: Restic, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "f").write_text("x")
    start = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
    moments = [
        start,
        start + timedelta(days=1),
        start + timedelta(days=2, hours=1),
        start + timedelta(days=2, hours=5),
    ]
    for service in ("emqx", "lam"):
        for moment in moments:
            tags = ["labdock", f"service={service}", "part=p"]
            restic_repo.backup(source, tags=tags, time=moment)
    groups = restic_repo.forget_policy(RetentionPolicy(keep_daily=2), tags=["labdock"])
    assert len(groups) == 2
    for group in groups:
        assert len(group.keep) == 2
        assert len(group.remove) == 2
    remaining = restic_repo.snapshots(tags=["labdock"])
    times = sorted({s.time for s in remaining})
    assert times == [moments[1], moments[3]]


def test_runs_grouped_and_selected(services_tree: Path, restic_repo: Restic) -> None:
    first = _run(services_tree, restic_repo)
    time.sleep(1.1)
    second = _run(services_tree, restic_repo)
    snapshots = restic_repo.snapshots(tags=["labdock"])
    runs = group_runs(snapshots)
    assert [run.id for run in runs] == [
        backup.run_id(first.time),
        backup.run_id(second.time),
    ]
    latest = select_parts(snapshots, "tree", host="labhost")
    assert latest["config"].time == second.time
    chosen = select_parts(
        snapshots, "tree", host="labhost", run=backup.run_id(first.time)
    )
    assert chosen["config"].time == first.time
    with pytest.raises(OpsError, match="--from-host"):
        select_parts(snapshots, "tree", host="newhost")


def test_verify_passes_after_run(
    services_tree: Path, restic_repo: Restic, tmp_path: Path
) -> None:
    _run(services_tree, restic_repo, include_secrets=True)
    report = verify.verify(restic_repo, host="labhost", scratch=tmp_path / "scratch")
    assert report.check_error is None
    assert [(p.service, p.part) for p in report.parts] == [
        ("secrets", "files"),
        ("tree", "config"),
    ]
    assert all(part.ok for part in report.parts), [p.problems for p in report.parts]


def test_verify_finds_broken_compose(
    services_tree: Path, restic_repo: Restic, tmp_path: Path
) -> None:
    (services_tree / "compose.yaml").write_text("services: [unclosed\n")
    _run(services_tree, restic_repo)
    report = verify.verify(restic_repo, host="labhost", scratch=tmp_path / "scratch")
    assert report.ok is False
    assert any("not valid YAML" in problem for problem in report.parts[0].problems)


def test_verify_finds_corrupt_pack(
    services_tree: Path, restic_repo: Restic, tmp_path: Path
) -> None:
    _run(services_tree, restic_repo)
    # Flip one byte in every pack, so that a tree blob is damaged too (a
    # structural check reads trees only). A deleted pack would make restic
    # retry its reads for minutes.
    for pack in Path(restic_repo.repository, "data").rglob("*"):
        if pack.is_file():
            content = bytearray(pack.read_bytes())
            content[10] ^= 0xFF
            pack.chmod(0o600)
            pack.write_bytes(bytes(content))
    report = verify.verify(restic_repo, host="labhost", scratch=tmp_path / "scratch")
    assert report.ok is False
    assert report.check_error is not None
    assert "repository contains errors" in report.check_error
    assert report.parts[0].problems == ["test restore skipped: restic check failed"]


def test_run_recovers_from_killed_run_lock(
    services_tree: Path, restic_repo: Restic, caplog: pytest.LogCaptureFixture
) -> None:
    killed = subprocess.Popen(
        [restic_repo.binary, "backup", "--stdin", "--stdin-filename", "held"],
        env={**os.environ, **restic_repo.environment()},
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not restic_repo.locks() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
        assert killed.stdin is not None
        killed.stdin.close()
    assert len(restic_repo.locks()) == 1
    with caplog.at_level(logging.WARNING, logger="labdock"):
        report = _run(services_tree, restic_repo, prune=True)
    assert report.ok, report.prune_error
    assert report.pruned is not None
    assert restic_repo.locks() == []
    assert f"pid={killed.pid}" in caplog.text


def test_second_run_blocked_by_run_lock(services_tree: Path) -> None:
    with (
        backup.run_lock(services_tree),
        pytest.raises(OpsError, match="another labdock backup"),
        backup.run_lock(services_tree),
    ):
        pass


def test_restore_blocked_by_run_lock(services_tree: Path, restic_repo: Restic) -> None:
    from click.testing import CliRunner

    from labdock.cli import main

    password = services_tree / "secrets" / "restic_password"
    password.write_bytes(restic_repo.password_file.read_bytes())
    command = ["backup", "restore", "-C", str(services_tree)]
    command += ["--repo", restic_repo.repository, "--force"]

    with backup.run_lock(services_tree):
        result = CliRunner().invoke(main, command)

    assert result.exit_code == 2, result.output
    assert "another labdock backup command" in result.output


def test_init_creates_password_and_repository(
    services_tree: Path, restic_binary: str, tmp_path: Path
) -> None:
    settings = _settings(repository=str(tmp_path / "new-repo"))
    restic, created = backup.init_repository(services_tree, settings)
    assert created is True
    password = services_tree / "secrets" / "restic_password"
    assert password.stat().st_mode & 0o777 == 0o600
    assert len(password.read_text()) >= 32
    _again, created_again = backup.init_repository(services_tree, settings)
    assert created_again is False
    assert restic.is_initialized()


def test_init_without_repository_writes_nothing(
    services_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RESTIC_REPOSITORY", raising=False)
    with pytest.raises(OpsError, match="no restic repository is set"):
        backup.init_repository(services_tree, _settings())
    assert not (services_tree / "secrets" / "restic_password").exists()


def test_init_command_outside_tree(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from labdock.cli import main

    missing = tmp_path / "not-a-tree"
    result = CliRunner().invoke(
        main,
        ["backup", "init", "-C", str(missing), "--repo", str(tmp_path / "repo")],
    )

    assert result.exit_code == 2, result.output
    assert f"no compose.yaml in {missing}" in result.output
    assert not missing.exists()
    assert not (tmp_path / "repo").exists()


def test_status_command_outside_tree(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from labdock.cli import main

    missing = tmp_path / "not-a-tree"
    result = CliRunner().invoke(main, ["backup", "status", "-C", str(missing)])

    assert result.exit_code == 2, result.output
    assert f"no compose.yaml in {missing}" in result.output
    assert "SERVICE" not in result.output


def test_schedule_command_outside_tree(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from labdock.cli import main

    missing = tmp_path / "not-a-tree"
    units = tmp_path / "units"
    command = ["backup", "schedule", "-C", str(missing), "--unit-dir", str(units)]

    result = CliRunner().invoke(main, [*command, "--no-enable"])

    assert result.exit_code == 2, result.output
    assert f"no compose.yaml in {missing}" in result.output
    assert not units.exists()


def test_open_repository_without_password(services_tree: Path) -> None:
    with pytest.raises(OpsError, match="backup init"):
        backup.open_repository(services_tree, _settings(repository="/nowhere"))


def test_open_repository_empty_password(services_tree: Path) -> None:
    password = services_tree / "secrets" / "restic_password"
    password.write_text("\n", encoding="utf-8")
    with pytest.raises(OpsError, match=f"{password} is empty"):
        backup.open_repository(services_tree, _settings(repository="/nowhere"))


def test_open_repository_unreadable_password(
    services_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tests run as root, who can read any file, so the denial is faked.
    password = services_tree / "secrets" / "restic_password"
    password.write_text("secret\n", encoding="utf-8")
    read_bytes = Path.read_bytes

    def deny(path: Path) -> bytes:
        if path == password:
            raise PermissionError(13, "Permission denied", str(path))
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", deny)
    with pytest.raises(OpsError, match=f"cannot read .* {password}: Permission denied"):
        backup.open_repository(services_tree, _settings(repository="/nowhere"))


def test_repository_required(
    services_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RESTIC_REPOSITORY", raising=False)
    with pytest.raises(OpsError, match="RESTIC_REPOSITORY"):
        backup.open_repository(services_tree, _settings())


@pytest.mark.parametrize("command", [["update", "app"], ["rollback", "app"]])
def test_update_blocked_by_run_lock(services_tree: Path, command: list[str]) -> None:
    from click.testing import CliRunner

    from labdock.cli import main

    with backup.run_lock(services_tree):
        result = CliRunner().invoke(main, [*command, "-C", str(services_tree)])

    assert result.exit_code == 2, result.output
    assert "another labdock backup command" in result.output


def test_lock_names_the_holding_command(services_tree: Path) -> None:
    with (
        backup.run_lock(services_tree, "update"),
        pytest.raises(OpsError, match=r"another labdock update command \(pid \d+\)"),
        backup.run_lock(services_tree),
    ):
        pass

"""The restic layer: output parsing, lock rules, and a real restic 0.14."""

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

from labdock import execute
from labdock.ops.errors import OpsError
from labdock.ops.restic import (
    Lock,
    Restic,
    ResticError,
    RetentionPolicy,
    classify_failure,
    error_text,
    parse_backup_summary,
    parse_forget,
    parse_lock,
    parse_snapshots,
    parse_time,
    stale_reason,
)

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


# --- parsing, no restic needed -------------------------------------------------


def test_parse_time_nanoseconds_and_offset() -> None:
    parsed = parse_time("2026-12-04T16:09:32.405950613+01:00")
    assert parsed == datetime(2026, 12, 4, 15, 9, 32, 405950, tzinfo=UTC)


def test_parse_time_without_fraction() -> None:
    assert parse_time("2026-12-01T10:00:00Z") == datetime(2026, 12, 1, 10, tzinfo=UTC)


def test_parse_snapshots_sorted_with_tags() -> None:
    output = json.dumps(
        [
            {
                "time": "2026-12-02T10:00:00Z",
                "hostname": "lab",
                "tags": ["labdock", "service=influxdb", "part=influx-backup"],
                "paths": ["/x"],
                "id": "b" * 64,
                "short_id": "bbbbbbbb",
            },
            {
                "time": "2026-12-01T10:00:00Z",
                "hostname": "lab",
                "tags": None,
                "paths": ["/y"],
                "id": "a" * 64,
                "short_id": "aaaaaaaa",
            },
        ]
    )
    snapshots = parse_snapshots(output)
    assert [s.short_id for s in snapshots] == ["aaaaaaaa", "bbbbbbbb"]
    assert snapshots[0].tags == ()
    assert snapshots[1].service == "influxdb"
    assert snapshots[1].part == "influx-backup"


def test_parse_snapshots_null_output() -> None:
    assert parse_snapshots("null") == []


def test_backup_summary_after_status_lines() -> None:
    output = "\n".join(
        [
            '{"message_type":"status","percent_done":0.5}',
            "not json",
            '{"message_type":"summary","files_new":2,"files_changed":1,'
            '"files_unmodified":3,"data_added":1395,"total_files_processed":6,'
            '"total_bytes_processed":5,"total_duration":0.21,"snapshot_id":"2d6b1da8"}',
        ]
    )
    summary = parse_backup_summary(output)
    assert summary.snapshot_id == "2d6b1da8"
    assert summary.data_added == 1395
    assert summary.total_files_processed == 6


def test_backup_summary_missing() -> None:
    with pytest.raises(ResticError, match="no summary"):
        parse_backup_summary('{"message_type":"status"}')


def test_parse_lock_without_uid() -> None:
    lock = parse_lock(
        "8a6c" * 16,
        '{"time":"2026-12-04T16:09:32.405950613Z","exclusive":false,'
        '"hostname":"vm","username":"root","pid":19329}',
    )
    assert lock.pid == 19329
    assert lock.exclusive is False
    assert lock.hostname == "vm"


def test_parse_forget_groups() -> None:
    output = json.dumps(
        [
            {
                "tags": ["labdock", "service=tree", "part=config"],
                "host": "lab",
                "paths": ["/srv"],
                "keep": [{"short_id": "k1"}],
                "remove": [{"short_id": "r1"}, {"short_id": "r2"}],
                "reasons": [],
            }
        ]
    )
    groups = parse_forget(output)
    assert groups[0].keep == ("k1",)
    assert groups[0].remove == ("r1", "r2")


def _lock(age: timedelta, host: str = "lab", pid: int = 100) -> Lock:
    return Lock("l" * 64, NOW - age, False, host, "root", pid)


@pytest.mark.parametrize(
    ("lock", "alive", "stale"),
    [
        (_lock(timedelta(minutes=31)), True, True),
        (_lock(timedelta(minutes=5)), False, True),
        (_lock(timedelta(minutes=5)), True, False),
        (_lock(timedelta(minutes=5), host="other"), False, False),
    ],
    ids=["older-than-30m", "dead-pid-here", "live-pid-here", "young-other-host"],
)
def test_stale_reason_follows_restic(lock: Lock, alive: bool, stale: bool) -> None:
    reason = stale_reason(lock, now=NOW, hostname="lab", alive=lambda _pid: alive)
    assert (reason is not None) is stale


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Fatal: wrong password or no key found", "password"),
        (
            "unable to create lock in backend: repository is already locked by PID 1",
            "locked",
        ),
        (
            "Fatal: unable to open config file: stat /x/config: no such file\n"
            "Is there a repository at the following location?",
            "no-repository",
        ),
        ("Fatal: something else", "failed"),
    ],
)
def test_classify_failure(text: str, kind: str) -> None:
    assert classify_failure(text) == kind


# Shortened output of restic 0.14 `backup` into a repository on a read-only
# file system: retry notices, the cause, then a Go stack trace.
READ_ONLY_OUTPUT = (
    "Save(<lock/5f10a9f5cf>) returned error, retrying after 552.330144ms: open /repo/locks/5f10-tmp-3744924054: read-only file system\n"
    "Save(<lock/5f10a9f5cf>) returned error, retrying after 1.080381816s: open /repo/locks/5f10-tmp-3974136312: read-only file system\n"
    "open /repo/locks/5f10-tmp-3355856717: read-only file system\n"
    "github.com/restic/restic/internal/backend/local.(*Local).Save\n"
    "\tgithub.com/restic/restic/internal/backend/local/local.go:153\n"
    "github.com/restic/restic/internal/restic.NewLock\n"
    "\tgithub.com/restic/restic/internal/restic/lock.go:66\n"
    "main.main\n"
    "\tgithub.com/restic/restic/cmd/restic/main.go:98\n"
    "runtime.goexit\n"
    "\truntime/asm_amd64.s:1594\n"
    "unable to create lock in backend\n"
)


def test_error_text_drops_stack_trace() -> None:
    assert error_text(READ_ONLY_OUTPUT) == (
        "open /repo/locks/5f10-tmp-3355856717: read-only file system\n"
        "unable to create lock in backend"
    )


def test_error_text_keeps_plain_error() -> None:
    assert error_text("Fatal: something else\n") == "Fatal: something else"


def test_error_uses_stdout_after_blank_stderr(tmp_path: Path) -> None:
    restic = Restic("/repo", tmp_path / "password")
    result = execute.CommandResult(
        argv=("restic", "check"),
        returncode=1,
        stdout="Fatal: repository contains errors\n",
        stderr="\n",
    )

    error = restic._error(["check"], result)

    assert str(error) == (
        "restic check failed with exit code 1: Fatal: repository contains errors"
    )


def test_retention_arguments() -> None:
    policy = RetentionPolicy(keep_daily=7, keep_weekly=4, keep_within="14d")
    assert policy.arguments() == [
        "--keep-daily",
        "7",
        "--keep-weekly",
        "4",
        "--keep-within",
        "14d",
    ]


def test_retention_empty_rejected() -> None:
    with pytest.raises(OpsError, match="keep nothing"):
        RetentionPolicy().arguments()


# --- a real restic 0.14 -------------------------------------------------------


def test_missing_repository_detected(restic_binary: str, tmp_path: Path) -> None:
    password = tmp_path / "pw"
    password.write_text("x")
    restic = Restic(str(tmp_path / "none"), password, binary=restic_binary)
    assert restic.is_initialized() is False


def test_wrong_password_message(restic_repo: Restic) -> None:
    restic_repo.password_file.write_text("not the password\n")
    with pytest.raises(ResticError) as caught:
        restic_repo.is_initialized()
    assert caught.value.kind == "password"
    assert str(restic_repo.password_file) in str(caught.value)


def test_backup_root_is_source_content(restic_repo: Restic, tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "file").write_text("data")
    moment = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    summary = restic_repo.backup(source, tags=["labdock", "service=x"], time=moment)
    snapshots = restic_repo.snapshots(tags=["labdock"])
    assert [s.short_id for s in snapshots] == [summary.snapshot_id]
    assert snapshots[0].time == moment
    assert snapshots[0].hostname == "labhost"
    target = tmp_path / "target"
    restic_repo.restore(summary.snapshot_id, target)
    assert (target / "sub" / "file").read_text() == "data"


def _hold_lock(restic: Restic) -> subprocess.Popen[bytes]:
    """Start a restic backup that waits on stdin, holding a non-exclusive lock."""
    process = subprocess.Popen(
        [restic.binary, "backup", "--stdin", "--stdin-filename", "held"],
        env={**os.environ, **restic.environment()},
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if restic.locks():
            return process
        time.sleep(0.2)
    process.kill()
    process.wait()
    assert process.stdin is not None
    process.stdin.close()
    raise AssertionError("restic backup --stdin created no lock within 30 s")


def test_stale_lock_of_killed_run_removed(
    restic_repo: Restic, caplog: pytest.LogCaptureFixture
) -> None:
    process = _hold_lock(restic_repo)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.stdin is not None
    process.stdin.close()
    assert len(restic_repo.locks()) == 1
    with caplog.at_level(logging.WARNING, logger="labdock"):
        live = restic_repo.clear_stale_locks()
    assert live == []
    assert restic_repo.locks() == []
    assert f"pid={process.pid}" in caplog.text
    assert "restic unlock" in caplog.text


def test_live_lock_kept(restic_repo: Restic) -> None:
    process = _hold_lock(restic_repo)
    try:
        live = restic_repo.clear_stale_locks()
        assert [lock.pid for lock in live] == [process.pid]
        assert len(restic_repo.locks()) == 1
    finally:
        process.kill()
        process.wait()
        assert process.stdin is not None
        process.stdin.close()

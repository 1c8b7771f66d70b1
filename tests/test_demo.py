"""`labdock demo` runs with nothing installed, and against a real InfluxDB."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from components import InfluxDB1, free_port
from labdock.cli import main
from labdock.demo import (
    create_database_v1,
    lab_sensors,
    labdock_command,
    malformed,
    reading,
    run_demo,
    storage_hint,
)


def test_demo_into_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_demo(duration=3, rate=40, workdir=tmp_path, database=None) == 0
    output = capsys.readouterr().out
    assert "dead letters kept with their reason" in output
    assert f"{labdock_command()} deadletter list --spool-dir" in output
    connection = sqlite3.connect(tmp_path / "points.sqlite")
    measurements = {
        row[0] for row in connection.execute("SELECT DISTINCT measurement FROM points")
    }
    connection.close()
    assert {"climate", "air", "door"} <= measurements


def test_labdock_command_without_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "labdock").write_text("#!/bin/sh\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr("sys.executable", str(bin_dir / "python"))
    monkeypatch.chdir(tmp_path)
    assert labdock_command() == "venv/bin/labdock"


def test_labdock_command_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "labdock").write_text("#!/bin/sh\n")
    (tmp_path / "labdock").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert labdock_command() == "labdock"


def test_demo_into_influxdb(
    tmp_path: Path, influxdb1: InfluxDB1, capsys: pytest.CaptureFixture[str]
) -> None:
    influxdb1.create_database("demo")
    target = {"url": influxdb1.url, "api": "v1", "database": "demo"}
    assert run_demo(duration=3, rate=40, workdir=tmp_path, database=target) == 0
    assert influxdb1.count("demo", "climate") > 0
    assert "Query what was stored in" in capsys.readouterr().out


def test_simulated_payloads_are_realistic() -> None:
    sensors = lab_sensors()
    kinds = {sensor.kind for sensor in sensors}
    assert kinds == {"climate", "co2", "power", "door"}
    rooms = {sensor.room for sensor in sensors}
    assert len(rooms) == 4
    topic, payload = reading(sensors[0], 1, 1_700_000_000.0)
    assert topic == "lab/cleanroom/th-01/climate"
    assert b'"ts": 1700000000000' in payload
    bad_topics = {malformed(n)[0] for n in range(4)}
    assert len(bad_topics) == 4


@pytest.mark.parametrize(
    "arguments",
    [["--rate", "0"], ["--rate", "-5"], ["--duration", "0"], ["--duration", "-1"]],
)
def test_demo_rejects_non_positive_values(arguments: list[str]) -> None:
    result = CliRunner().invoke(main, ["demo", *arguments])
    assert result.exit_code == 2
    assert "is not in the range x>0" in result.output


def test_run_demo_rejects_zero_rate(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must both be above 0"):
        run_demo(duration=1, rate=0, workdir=tmp_path, database=None)


def test_demo_creates_missing_database(
    tmp_path: Path, influxdb1: InfluxDB1, capsys: pytest.CaptureFixture[str]
) -> None:
    target = {"url": influxdb1.url, "api": "v1", "database": "new demo"}
    assert run_demo(duration=2, rate=40, workdir=tmp_path, database=target) == 0
    assert influxdb1.count("new demo", "climate") > 0
    assert create_database_v1(influxdb1.url, "new demo") is None


def test_demo_database_unreachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    target = {"url": url, "api": "v1", "database": "demo"}
    assert run_demo(duration=1, rate=10, workdir=tmp_path, database=target) == 1
    error = capsys.readouterr().err
    assert f"creating the database 'demo' at {url} failed" in error
    assert "check that InfluxDB runs there" in error


def test_demo_nothing_stored_prints_writer_error(
    tmp_path: Path, influxdb1: InfluxDB1, capsys: pytest.CaptureFixture[str]
) -> None:
    # InfluxDB 1.6 has no /api/v2/write, so every write fails.
    target = {"url": influxdb1.url, "api": "v2", "bucket": "demo", "org": "lab"}
    assert run_demo(duration=1, rate=10, workdir=tmp_path, database=target) == 1
    captured = capsys.readouterr()
    assert "the bucket 'demo' must exist" in captured.out
    assert "nothing was stored; the writer's last error: " in captured.err
    assert "that the bucket exists" in captured.err


def test_storage_hint_without_error() -> None:
    assert storage_hint("v1", None) == (
        "nothing was stored; the writer's last error: none recorded; "
        "check --database-url, --api and --database"
    )

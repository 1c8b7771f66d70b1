"""`labdock demo` runs with nothing installed, and against a real InfluxDB."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from components import InfluxDB1
from labdock.demo import lab_sensors, malformed, reading, run_demo


def test_demo_into_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_demo(duration=3, rate=40, workdir=tmp_path, database=None) == 0
    output = capsys.readouterr().out
    assert "dead letters kept with their reason" in output
    assert "labdock deadletter list --spool-dir" in output
    connection = sqlite3.connect(tmp_path / "points.sqlite")
    measurements = {
        row[0] for row in connection.execute("SELECT DISTINCT measurement FROM points")
    }
    connection.close()
    assert {"climate", "air", "door"} <= measurements


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

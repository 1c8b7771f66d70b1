"""`labdock decode`: lines on standard output, dead letters and config errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from labdock.acquire.decoders._sparkplug_schema import Payload
from labdock.cli import main

CONFIG = """\
mappings:
  - topic: plant/{device}/env
    measurement: env
    options:
      types: {battery: float, rssi: float}
      timestamp: {path: ts, format: ms, required: false}
  - topic: spBv1.0/#
    measurement: plc
    format: sparkplug_b
"""
ARRIVAL = "1764000000000000000"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "acquire.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    # LABDOCK_SECTION__KEY variables would override the test configuration.
    for name in list(os.environ):
        if name.startswith("LABDOCK_"):
            monkeypatch.delenv(name)
    return CliRunner()


def test_payload_argument(runner: CliRunner, config: Path) -> None:
    result = runner.invoke(
        main,
        [
            "decode",
            "--config",
            str(config),
            "--time",
            ARRIVAL,
            "plant/dev04/env",
            '{"temperature":19.4,"battery":"100.00","rssi":-71}',
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        result.stdout
        == f"env,device=dev04 battery=100,rssi=-71,temperature=19.4 {ARRIVAL}\n"
    )


def test_payload_from_stdin(runner: CliRunner, config: Path) -> None:
    payload = b'{"t":21.5,"ts":1700000000123}'
    for extra in ([], ["-"]):
        result = runner.invoke(
            main,
            ["decode", "--config", str(config), "plant/dev01/env", *extra],
            input=payload,
        )
        assert result.exit_code == 0, result.output
        assert result.stdout == "env,device=dev01 t=21.5 1700000000123000000\n"


def test_payload_from_file(runner: CliRunner, config: Path, tmp_path: Path) -> None:
    message = Payload(timestamp=1_709_644_930_000, seq=0)
    message.metrics.add(name="Temp", datatype=10, double_value=21.5)
    path = tmp_path / "birth.bin"
    path.write_bytes(message.SerializeToString())
    result = runner.invoke(
        main,
        [
            "decode",
            "--config",
            str(config),
            "--file",
            str(path),
            "spBv1.0/lab/NBIRTH/edge1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        result.stdout == "plc,edge_node=edge1,group=lab Temp=21.5 1709644930000000000\n"
    )


def test_default_configuration(runner: CliRunner) -> None:
    result = runner.invoke(
        main, ["decode", "--time", ARRIVAL, "lab/r1/d1/env", '{"t":22}']
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == f"env,device=d1,room=r1 t=22 {ARRIVAL}\n"


def test_deadletter_exits_1(runner: CliRunner, config: Path) -> None:
    result = runner.invoke(
        main,
        [
            "decode",
            "--config",
            str(config),
            "plant/dev01/env",
            '{"t":21.5,"ts":"soon"}',
        ],
    )
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("dead letter: invalid_timestamp: ")


def test_unmatched_topic_exits_1(runner: CliRunner, config: Path) -> None:
    result = runner.invoke(
        main, ["decode", "--config", str(config), "other/topic", "{}"]
    )
    assert result.exit_code == 1
    assert "no_mapping" in result.stderr


def test_dropped_values_reported(runner: CliRunner, config: Path) -> None:
    result = runner.invoke(
        main,
        [
            "decode",
            "--config",
            str(config),
            "--time",
            ARRIVAL,
            "plant/d/env",
            '{"t":NaN,"h":1}',
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == f"env,device=d h=1 {ARRIVAL}\n"
    assert "dropped 1 value(s): nonfinite" in result.stderr


def test_invalid_configuration_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "mappings:\n  - topic: a/{x}\n    format: nope\n"
        "  - topic: b/{measurement}\n    options: {number_type: decimal}\n"
    )
    result = runner.invoke(main, ["decode", "--config", str(path), "a/b", "{}"])
    assert result.exit_code == 2
    problems = [line for line in result.stderr.splitlines() if line.startswith("  ")]
    assert len(problems) == 2
    assert "unknown format 'nope'" in problems[0]
    assert "number_type" in problems[1]


def test_missing_configuration_file_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(
        main, ["decode", "--config", str(tmp_path / "none.yaml"), "a", "{}"]
    )
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def test_payload_argument_and_file_conflict(runner: CliRunner, config: Path) -> None:
    result = runner.invoke(
        main, ["decode", "--config", str(config), "--file", str(config), "a/b", "{}"]
    )
    assert result.exit_code == 2


def test_time_key_is_deadletter(runner: CliRunner, config: Path) -> None:
    arguments = ["decode", "--config", str(config), "--time", ARRIVAL]
    result = runner.invoke(main, [*arguments, "plant/dev04/env", '{"time":5,"t":1}'])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "dead letter: reserved_key: the value at 'time'" in result.stderr
    assert "rename option (time: new_name)" in result.stderr


def test_rebirth_request_printed_not_sent(runner: CliRunner, tmp_path: Path) -> None:
    message = Payload(timestamp=1_709_644_930_000, seq=4)
    message.metrics.add(alias=1, double_value=21.5)
    path = tmp_path / "ddata.bin"
    path.write_bytes(message.SerializeToString())
    config = tmp_path / "acquire.yaml"

    def decode() -> Result:
        return runner.invoke(
            main,
            [
                "decode",
                "--config",
                str(config),
                "--file",
                str(path),
                "spBv1.0/lab/DDATA/edge1/pump",
            ],
        )

    config.write_text(CONFIG + "    options: {rebirth_request: true}\n")
    result = decode()
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == (
        "rebirth request not sent: labdock acquire would publish "
        "Node Control/Rebirth = true to spBv1.0/lab/NCMD/edge1 (reason no_birth)"
    )
    assert lines[1].startswith("dead letter: sparkplug_no_birth: ")

    config.write_text(CONFIG)
    result = decode()
    assert result.exit_code == 1
    assert "rebirth request" not in result.stderr
    assert result.stderr.startswith("dead letter: sparkplug_no_birth: ")


def test_negative_number_payload(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "acquire.yaml"
    config.write_text(
        "mappings:\n  - {topic: 'lab/{device}/{measurement}', format: value}\n"
    )
    result = runner.invoke(
        main,
        [
            "decode",
            "--config",
            str(config),
            "--time",
            ARRIVAL,
            "lab/fridge/temp",
            "-3.5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == f"temp,device=fridge value=-3.5 {ARRIVAL}\n"


def test_misspelled_option_still_rejected(runner: CliRunner, config: Path) -> None:
    result = runner.invoke(
        main, ["decode", "--confg", str(config), "plant/dev04/env", "{}"]
    )
    assert result.exit_code == 2

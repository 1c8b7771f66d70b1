"""`labdock acquire --check` and `labdock deadletter` through the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from labdock.acquire.spool import DeadLetter, DeadLetterStore, Spool
from labdock.cli import main


def test_check_valid_configuration(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "acquire",
            "--check",
            "--broker",
            "mqtt://127.0.0.1:1883",
            "--topic",
            "plant/{device}/{measurement}",
            "--spool-dir",
            str(tmp_path),
        ],
        env={},
    )
    assert result.exit_code == 0, result.output
    assert "configuration is valid" in result.output
    assert "plant/+/+" in result.output


def test_check_lists_every_problem(tmp_path: Path) -> None:
    config = tmp_path / "acquisition.yaml"
    config.write_text(
        "broker: {url: 'mqtt://b:1883', password_file: /nonexistent/pw}\n"
        "database: {url: 'http://db:8086', api: v1}\n"
    )
    result = CliRunner().invoke(
        main, ["acquire", "--check", "--config", str(config)], env={}
    )
    assert result.exit_code == 2
    assert "invalid configuration:" in result.output
    assert "database: api v1 needs database:" in result.output


def test_check_missing_secret_file(tmp_path: Path) -> None:
    config = tmp_path / "acquisition.yaml"
    config.write_text(
        "broker: {url: 'mqtt://b:1883', username: acquire, password_file: /nonexistent/pw}\n"
        f"spool: {{directory: '{tmp_path / 'spool'}'}}\n"
    )
    result = CliRunner().invoke(
        main, ["acquire", "--check", "--config", str(config)], env={}
    )
    assert result.exit_code == 2
    assert "broker.password_file: /nonexistent/pw does not exist" in result.output


def test_check_reads_environment(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["acquire", "--check", "--spool-dir", str(tmp_path)],
        env={
            "LABDOCK_DATABASE__URL": "http://db:8086",
            "LABDOCK_DATABASE__API": "v1",
            "LABDOCK_DATABASE__DATABASE": "lab",
        },
    )
    assert result.exit_code == 0, result.output
    assert "writing to http://db:8086 (v1)" in result.output


def seed_deadletters(spool_dir: Path) -> None:
    spool = Spool(spool_dir, 1 << 20)
    spool.append(
        [],
        [
            DeadLetter(
                1_700_000_000_000_000_000,
                "plant/dev01/status",
                b"online",
                "decode",
                "json_decode_error",
                "not JSON",
            ),
            DeadLetter(
                1_700_000_001_000_000_000,
                "plant/dev01/env",
                b'{"t": 1.5}',
                "decode",
                "no_mapping",
                "no template",
            ),
        ],
    )
    spool.close()


def test_deadletter_list_text_and_json(tmp_path: Path) -> None:
    seed_deadletters(tmp_path)
    runner = CliRunner()
    text = runner.invoke(
        main, ["deadletter", "list", "--spool-dir", str(tmp_path)], env={}
    )
    assert text.exit_code == 0, text.output
    assert "2 dead letter(s): json_decode_error 1, no_mapping 1" in text.output
    assert "payload: online" in text.output
    assert "2023-11-14T22:13:20.000+00:00" in text.output
    as_json = runner.invoke(
        main,
        [
            "deadletter",
            "list",
            "--spool-dir",
            str(tmp_path),
            "--format",
            "json",
            "--reason",
            "no_mapping",
        ],
        env={},
    )
    rows = [json.loads(line) for line in as_json.output.splitlines()]
    assert len(rows) == 1
    assert rows[0]["topic"] == "plant/dev01/env"
    assert rows[0]["payload"] == '{"t": 1.5}'


def test_deadletter_replay_after_mapping_fix(tmp_path: Path) -> None:
    seed_deadletters(tmp_path)
    config = tmp_path / "acquisition.yaml"
    config.write_text(
        f"spool: {{directory: '{tmp_path}'}}\n"
        "mappings:\n  - topic: 'plant/{device}/{measurement}'\n"
    )
    result = CliRunner().invoke(
        main, ["deadletter", "replay", "--config", str(config)], env={}
    )
    assert result.exit_code == 1, "the non-JSON status message still fails"
    assert "replayed 1 dead letter(s) into the spool; 1 still fail" in result.output
    spool = Spool(tmp_path, 1 << 20)
    entries = spool.take(0, 10, 1 << 20)
    spool.close()
    assert [entry.body for entry in entries] == [
        "env,device=dev01 t=1.5 1700000001000000000"
    ]
    store = DeadLetterStore(tmp_path)
    assert store.counts() == {"json_decode_error": 1}
    store.close()


def test_deadletter_purge_by_reason(tmp_path: Path) -> None:
    seed_deadletters(tmp_path)
    result = CliRunner().invoke(
        main,
        [
            "deadletter",
            "purge",
            "--spool-dir",
            str(tmp_path),
            "--reason",
            "no_mapping",
            "--yes",
        ],
        env={},
    )
    assert result.exit_code == 0, result.output
    store = DeadLetterStore(tmp_path)
    assert store.counts() == {"json_decode_error": 1}
    store.close()


def test_deadletter_without_spool(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["deadletter", "list", "--spool-dir", str(tmp_path / "none")], env={}
    )
    assert result.exit_code == 2
    assert "no spool at" in result.output


def test_check_rejects_non_pem_ca(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("broker: not a certificate\n")
    result = CliRunner().invoke(
        main,
        [
            "acquire",
            "--check",
            "--broker",
            "mqtts://broker:8883",
            "--spool-dir",
            str(tmp_path / "spool"),
        ],
        env={"LABDOCK_BROKER__CA_FILE": str(bogus)},
    )
    assert result.exit_code == 2
    assert "contains no usable CA certificate" in result.output


def deadletter_command(*arguments: str) -> Any:
    return CliRunner().invoke(main, ["deadletter", *arguments], env={})


def test_deadletter_list_unknown_reason(tmp_path: Path) -> None:
    seed_deadletters(tmp_path)
    for fmt in ("text", "json"):
        result = deadletter_command(
            "list", "--spool-dir", str(tmp_path), "--reason", "nosuch", "--format", fmt
        )
        assert result.exit_code == 1, fmt
        assert "no dead letters have the reason 'nosuch'" in result.stderr
        assert "reasons present: json_decode_error (1), no_mapping (1)" in result.stderr


def test_deadletter_purge_unknown_reason(tmp_path: Path) -> None:
    seed_deadletters(tmp_path)
    result = deadletter_command(
        "purge", "--spool-dir", str(tmp_path), "--reason", "typo", "--yes"
    )
    assert result.exit_code == 1
    assert "no dead letters have the reason 'typo'" in result.stderr
    assert "reasons present: json_decode_error (1)" in result.stderr
    store = DeadLetterStore(tmp_path)
    assert sum(store.counts().values()) == 2
    store.close()


def test_deadletter_replay_unknown_id(tmp_path: Path) -> None:
    seed_deadletters(tmp_path)
    result = deadletter_command("replay", "--spool-dir", str(tmp_path), "--id", "99999")
    assert result.exit_code == 1
    assert "no dead letter has the id #99999" in result.stderr
    store = DeadLetterStore(tmp_path)
    assert sum(store.counts().values()) == 2
    store.close()


def test_deadletter_replay_unknown_reason(tmp_path: Path) -> None:
    seed_deadletters(tmp_path)
    result = deadletter_command(
        "replay", "--spool-dir", str(tmp_path), "--reason", "nosuch"
    )
    assert result.exit_code == 1
    assert "no dead letters have the reason 'nosuch'" in result.stderr


def test_deadletter_reason_on_empty_store(tmp_path: Path) -> None:
    Spool(tmp_path, 1 << 20).close()
    result = deadletter_command("list", "--spool-dir", str(tmp_path), "--reason", "x")
    assert result.exit_code == 1
    assert "there are no dead letters" in result.stderr


def test_deadletter_replay_write_stage_warns(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    line = "env,device=dev01 t=1.5 1700000001000000000"
    spool.append(
        [],
        [
            DeadLetter(
                1_700_000_001_000_000_000,
                "plant/dev01/env",
                line.encode(),
                "write",
                "rejected",
                "field type conflict",
            )
        ],
    )
    spool.close()
    result = deadletter_command("replay", "--spool-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "replayed 1 dead letter(s) into the spool; 0 still fail" in result.stdout
    assert "1 of them are lines the database rejected, re-sent as they" in result.stdout
    assert "the database side is fixed first" in result.stdout
    spool = Spool(tmp_path, 1 << 20)
    entries = spool.take(0, 10, 1 << 20)
    spool.close()
    assert [entry.body for entry in entries] == [line]


def test_deadletter_binary_payload_shown(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    letter = DeadLetter(1, "spBv1.0/g/DDATA/n/d", b"\xff\x00", "decode", "x", "y")
    spool.append([], [letter])
    spool.close()
    text = deadletter_command("list", "--spool-dir", str(tmp_path))
    assert "payload: (binary, base64) /wA=" in text.stdout
    as_json = deadletter_command(
        "list", "--spool-dir", str(tmp_path), "--format", "json"
    )
    (row,) = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert row["payload"] == "/wA="
    assert row["payload_encoding"] == "base64"


def test_check_warns_about_shadowed_mapping(tmp_path: Path) -> None:
    config = tmp_path / "acquisition.yaml"
    config.write_text(
        f"spool: {{directory: '{tmp_path / 'spool'}'}}\n"
        "mappings:\n"
        "  - topic: 'lab/{room}/{device}/{measurement}'\n"
        "  - topic: 'lab/{room}/{device}/door'\n"
        "    measurement: door\n"
        "    format: value\n"
    )
    result = CliRunner().invoke(
        main, ["acquire", "--check", "--config", str(config)], env={}
    )
    assert result.exit_code == 0, result.output
    assert (
        "warning: mappings.1 ('lab/{room}/{device}/door') is never used"
        in result.output
    )
    assert "move the narrower mapping first" in result.output


def test_format_without_topic_rejected(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["acquire", "--check", "--format", "senml", "--spool-dir", str(tmp_path)],
        env={},
    )
    assert result.exit_code == 2
    assert "--format applies to the --topic mappings" in result.output


def test_deadletter_list_damaged_spool(tmp_path: Path) -> None:
    (tmp_path / "spool.sqlite").write_bytes(b"not a database at all" * 400)
    result = CliRunner().invoke(
        main, ["deadletter", "list", "--spool-dir", str(tmp_path)], env={}
    )
    assert result.exit_code == 2
    assert "is damaged" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_check_rejects_spool_file(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    config = tmp_path / "acquisition.yaml"
    for directory in (afile, afile / "spool"):
        config.write_text(f"spool: {{directory: '{directory}'}}\n")
        result = CliRunner().invoke(
            main, ["acquire", "--check", "--config", str(config)], env={}
        )
        assert result.exit_code == 2, result.output
        assert f"spool.directory: {directory}" in result.output
        assert f"{afile} is not a directory" in result.output

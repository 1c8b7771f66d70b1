"""`labdock deadletter`: show, re-drive and purge dead letters."""

from __future__ import annotations

import base64
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from labdock.acquire.spool import DeadLetter, DeadLetterStore, SpoolError


def _open_store(
    config_path: Path | None, spool_dir: Path | None
) -> tuple[DeadLetterStore, Any]:
    from labdock.cli.acquire import load_or_exit

    config = load_or_exit(
        config_path, {"spool": {"directory": spool_dir}} if spool_dir else {}
    )
    try:
        return DeadLetterStore(config.spool.directory), config
    except SpoolError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)


_config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="LABDOCK_CONFIG",
    help="The service's configuration file (env LABDOCK_CONFIG).",
)
_spool_option = click.option(
    "--spool-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Spool directory, when it differs from the configuration's.",
)
_reason_option = click.option("--reason", help="Only dead letters with this reason.")


def _time(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds")


def _payload_text(deadletter: DeadLetter) -> str:
    try:
        return deadletter.payload.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(deadletter.payload).decode()


@click.group()
def deadletter() -> None:
    """Show and re-drive messages that could not be stored."""


@deadletter.command("list")
@_config_option
@_spool_option
@_reason_option
@click.option(
    "--limit", type=int, default=100, show_default=True, help="Most dead letters shown."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
)
def list_command(
    config_path: Path | None,
    spool_dir: Path | None,
    reason: str | None,
    limit: int,
    fmt: str,
) -> None:
    """List dead letters with their topic, reason and payload, oldest first."""
    store, _ = _open_store(config_path, spool_dir)
    letters = store.list(reason=reason, limit=limit)
    if fmt == "json":
        for letter in letters:
            click.echo(
                json.dumps(
                    {
                        "id": letter.id,
                        "time": _time(letter.received_ns),
                        "topic": letter.topic,
                        "stage": letter.stage,
                        "reason": letter.reason,
                        "detail": letter.detail,
                        "payload": _payload_text(letter),
                    }
                )
            )
        return
    counts = store.counts()
    click.echo(
        f"{sum(counts.values())} dead letter(s): "
        + (", ".join(f"{r} {n}" for r, n in counts.items()) or "none")
    )
    for letter in letters:
        payload = _payload_text(letter)
        if len(payload) > 120:
            payload = payload[:117] + "..."
        click.echo(
            f"#{letter.id} {_time(letter.received_ns)} {letter.stage} {letter.reason} "
            f"topic={letter.topic!r}\n    {letter.detail}\n    payload: {payload}"
        )


@deadletter.command("replay")
@_config_option
@_spool_option
@_reason_option
@click.option(
    "--id", "ids", type=int, multiple=True, help="Only this dead letter; repeatable."
)
def replay_command(
    config_path: Path | None,
    spool_dir: Path | None,
    reason: str | None,
    ids: tuple[int, ...],
) -> None:
    """Decode dead letters again with the current configuration.

    Those that now decode go into the spool with their original arrival
    time, and the running service writes them. Lines the database rejected
    are spooled again as they are. The rest stay, with their new reason.
    Exit status 1 when some still fail.
    """
    from labdock.acquire.pipeline import Pipeline

    store, config = _open_store(config_path, spool_dir)
    pipeline = Pipeline(config)
    letters = [d for d in store.list(reason=reason) if not ids or d.id in ids]
    resolved: list[DeadLetter] = []
    entries: list[tuple[int, str, str]] = []
    failing: list[tuple[DeadLetter, str, str]] = []
    now_ns = time.time_ns()
    for letter in letters:
        if letter.stage == "write":
            resolved.append(letter)
            entries.append(
                (now_ns, letter.topic, letter.payload.decode("utf-8", "replace"))
            )
            continue
        outcome = pipeline.process(letter.topic, letter.payload, letter.received_ns)
        if outcome.reason is None:
            resolved.append(letter)
            entries.append((now_ns, letter.topic, "\n".join(outcome.lines)))
        else:
            failing.append((letter, outcome.reason, outcome.detail or ""))
    store.resolve(resolved, entries, failing)
    click.echo(
        f"replayed {len(resolved)} dead letter(s) into the spool; {len(failing)} still fail"
    )
    for letter, new_reason, detail in failing[:20]:
        click.echo(f"  #{letter.id} {letter.topic!r}: {new_reason}: {detail}", err=True)
    sys.exit(1 if failing else 0)


@deadletter.command("purge")
@_config_option
@_spool_option
@_reason_option
@click.option("--yes", is_flag=True, help="Don't ask for confirmation.")
def purge_command(
    config_path: Path | None, spool_dir: Path | None, reason: str | None, yes: bool
) -> None:
    """Delete dead letters for good (all, or those with --reason)."""
    store, _ = _open_store(config_path, spool_dir)
    letters = store.list(reason=reason)
    if not letters:
        click.echo("no dead letters to purge")
        return
    if not yes:
        click.confirm(f"delete {len(letters)} dead letter(s) for good?", abort=True)
    store.resolve(letters, [], [])
    click.echo(f"deleted {len(letters)} dead letter(s)")


COMMANDS = [deadletter]

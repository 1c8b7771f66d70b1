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


def _payload_text(deadletter: DeadLetter) -> tuple[str, str]:
    """Return the payload as text and its encoding: `utf-8` or `base64`."""
    try:
        return deadletter.payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(deadletter.payload).decode(), "base64"


def _payload_display(deadletter: DeadLetter) -> str:
    text, encoding = _payload_text(deadletter)
    if encoding == "base64":
        text = "(binary, base64) " + text
    if len(text) > 120:
        text = text[:117] + "..."
    return text


def _reasons_present(store: DeadLetterStore) -> str:
    counts = store.counts()
    if not counts:
        return "there are no dead letters"
    return "reasons present: " + ", ".join(f"{r} ({n})" for r, n in counts.items())


def _check_reason(store: DeadLetterStore, reason: str | None) -> None:
    """Exit 1 when no dead letter has `reason`, listing the reasons there are."""
    if not reason or reason in store.counts():
        return
    click.echo(
        f"error: no dead letters have the reason {reason!r}; {_reasons_present(store)}",
        err=True,
    )
    sys.exit(1)


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
    _check_reason(store, reason)
    letters = store.list(reason=reason, limit=limit)
    if fmt == "json":
        for letter in letters:
            payload, encoding = _payload_text(letter)
            click.echo(
                json.dumps(
                    {
                        "id": letter.id,
                        "time": _time(letter.received_ns),
                        "topic": letter.topic,
                        "stage": letter.stage,
                        "reason": letter.reason,
                        "detail": letter.detail,
                        "payload": payload,
                        "payload_encoding": encoding,
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
        click.echo(
            f"#{letter.id} {_time(letter.received_ns)} {letter.stage} {letter.reason} "
            f"topic={letter.topic!r}\n    {letter.detail}\n"
            f"    payload: {_payload_display(letter)}"
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
    (stage write) are spooled again as they are, so fix the database side
    (such as a field type conflict) first. The rest stay, with their new
    reason. Exit status 1 when some still fail, or when --reason or --id
    matches no dead letter.
    """
    from labdock.acquire.pipeline import Pipeline

    store, config = _open_store(config_path, spool_dir)
    pipeline = Pipeline(config)
    _check_reason(store, reason)
    matching = store.list(reason=reason)
    missing = sorted(set(ids) - {letter.id for letter in matching})
    if missing:
        where = f" with the reason {reason!r}" if reason else ""
        click.echo(
            f"error: no dead letter{where} has the id "
            f"{', '.join(f'#{i}' for i in missing)}; "
            "list them with labdock deadletter list",
            err=True,
        )
        sys.exit(1)
    letters = [d for d in matching if not ids or d.id in ids]
    if not letters:
        click.echo("no dead letters to replay")
        return
    resolved: list[DeadLetter] = []
    entries: list[tuple[int, str, str]] = []
    failing: list[tuple[DeadLetter, str, str]] = []
    resent = 0
    now_ns = time.time_ns()
    for letter in letters:
        if letter.stage == "write":
            resolved.append(letter)
            entries.append(
                (now_ns, letter.topic, letter.payload.decode("utf-8", "replace"))
            )
            resent += 1
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
    if resent:
        click.echo(
            f"{resent} of them are lines the database rejected, re-sent as they "
            "are: unless the database side is fixed first (such as a field type "
            "conflict or a retention period), they fail again and return as "
            "dead letters"
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
    _check_reason(store, reason)
    letters = store.list(reason=reason)
    if not letters:
        click.echo("no dead letters to purge")
        return
    if not yes:
        click.confirm(f"delete {len(letters)} dead letter(s) for good?", abort=True)
    store.resolve(letters, [], [])
    click.echo(f"deleted {len(letters)} dead letter(s)")


COMMANDS = [deadletter]

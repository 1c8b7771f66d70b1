"""`labdock decode`: show what one MQTT message becomes, without a broker."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from labdock.acquire.config import ConfigError, load_config
from labdock.acquire.decoders.sparkplug import REBIRTH_METRIC
from labdock.acquire.pipeline import Pipeline


def _read_payload(payload: str | None, file: Path | None) -> bytes:
    if file is not None:
        if payload is not None:
            raise click.UsageError(
                "give the payload as an argument or with --file, not both"
            )
        try:
            return file.read_bytes()
        except OSError as error:
            raise click.UsageError(f"cannot read {file}: {error.strerror}") from None
    if payload is None or payload == "-":
        return sys.stdin.buffer.read()
    # Arguments that aren't valid UTF-8 reach Python as surrogate escapes;
    # fsencode restores their original bytes.
    return os.fsencode(payload)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class _DecodeCommand(click.Command):
    """The decode command, which takes a negative number such as -3.5 as PAYLOAD.

    Click reads every argument that starts with '-' as an option, so a
    negative reading would fail with "No such option: -3". Unknown options
    are therefore passed through as arguments when they parse as a number,
    and rejected as usual otherwise.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        known = {name for param in self.get_params(ctx) for name in param.opts}
        for arg in args:
            if arg == "--":
                break
            name = arg.split("=", 1)[0]
            if (
                arg[:1] == "-"
                and name not in known
                and name != "-"
                and not _is_number(arg)
            ):
                raise click.NoSuchOption(name, ctx=ctx)
        return super().parse_args(ctx, args)


@click.command(cls=_DecodeCommand, context_settings={"ignore_unknown_options": True})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="YAML configuration file; without it the default configuration is used.",
)
@click.option(
    "--file",
    "file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Read the payload from this file (binary payloads such as Sparkplug B).",
)
@click.option(
    "--time",
    "received_ns",
    type=int,
    help="Arrival time in nanoseconds since the epoch; default: now.",
)
@click.argument("topic")
@click.argument("payload", required=False)
def decode(
    config_path: Path | None,
    file: Path | None,
    received_ns: int | None,
    topic: str,
    payload: str | None,
) -> None:
    """Print the line protocol that a message on TOPIC would be written as.

    PAYLOAD is the message text; with '-' or no PAYLOAD (and no --file) it is
    read from standard input. The message goes through the same mapping,
    decoder and checks as in `labdock acquire`, at the arrival time --time.

    When the message would make `labdock acquire` send a Sparkplug rebirth
    request (the sparkplug_b option rebirth_request), the request is printed
    on standard error and not sent.

    Exit status: 0 with the lines on standard output, 1 when the message
    would be a dead letter (its reason and detail on standard error), 2 for
    an invalid configuration or usage.
    """
    data = _read_payload(payload, file)
    try:
        config = load_config(config_path)
    except ConfigError as error:
        click.echo("invalid configuration:", err=True)
        for problem in error.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(2)
    pipeline = Pipeline(config)
    now = time.time_ns() if received_ns is None else received_ns
    outcome = pipeline.process(topic, data, now)
    for reason, count in sorted(outcome.dropped.items()):
        click.echo(f"dropped {count} value(s): {reason}", err=True)
    for request in pipeline.take_rebirth_requests():
        click.echo(
            "rebirth request not sent: labdock acquire would publish "
            f"{REBIRTH_METRIC} = true to {request.topic} (reason {request.reason})",
            err=True,
        )
    if outcome.reason is not None:
        click.echo(f"dead letter: {outcome.reason}: {outcome.detail or ''}", err=True)
        sys.exit(1)
    if not outcome.lines:
        click.echo("the message writes no line", err=True)
    for line in outcome.lines:
        click.echo(line)


COMMANDS = [decode]

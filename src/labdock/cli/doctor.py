"""`labdock doctor [SERVICE...]`: find what is wrong and print the fix."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from labdock.cli.stack import resolve_tree, tree_option
from labdock.ops import doctor
from labdock.ops.console import ToolError, setup_logging
from labdock.ops.errors import OpsError
from labdock.ops.project import Project


@click.command("doctor")
@click.argument("services", nargs=-1)
@tree_option
@click.option(
    "--traefik-api",
    default=None,
    help="https://ADDRESS:PORT of Traefik's websecure entrypoint, to read router "
    "errors from its API (default: https://127.0.0.1:HTTPS_PORT).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option("-v", "--verbose", is_flag=True, help="Log every command.")
def doctor_command(
    services: tuple[str, ...],
    directory: Path | None,
    traefik_api: str | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Diagnose SERVICES (default: all): start failures, network, volumes.

    Every finding comes with its fix. Exit codes: 0 no problem found,
    1 problems found, 2 usage or tool error.
    """
    setup_logging(verbose)
    try:
        project = Project.load(resolve_tree(directory))
        diagnosis = doctor.diagnose(
            project, list(services) or None, traefik_api=traefik_api
        )
    except OpsError as error:
        raise ToolError(str(error)) from error
    if as_json:
        click.echo(json.dumps([asdict(f) for f in diagnosis.findings], indent=2))
    else:
        for finding in diagnosis.findings:
            click.echo(
                f"{finding.severity.upper()} {finding.service}: {finding.problem}"
            )
            for line in finding.detail:
                click.echo(f"    | {line}")
            click.echo(f"    fix: {finding.fix}")
        problems = len(diagnosis.problems)
        click.echo(
            f"checked {', '.join(diagnosis.checked)}: "
            + (
                f"{problems} problem{'s' if problems != 1 else ''} found"
                if problems
                else "no problem found"
            )
        )
    raise SystemExit(1 if diagnosis.problems else 0)


COMMANDS = [doctor_command]

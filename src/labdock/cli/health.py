"""`labdock health`: the state of every service, for people and monitoring."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from labdock.cli.stack import resolve_tree, tree_option
from labdock.ops import health
from labdock.ops.console import format_table, setup_logging
from labdock.ops.errors import OpsError
from labdock.ops.project import Project
from labdock.ops.settings import load_settings


@click.command("health")
@click.argument("services", nargs=-1)
@tree_option
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people, json for scripts and monitoring.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every command.")
def health_command(
    services: tuple[str, ...],
    directory: Path | None,
    output_format: str,
    verbose: bool,
) -> None:
    """Check containers, health endpoints, certificates, disk space and backups.

    With SERVICES, only their containers and endpoints are checked.

    Exit codes follow the Nagios plugin convention, so monitoring systems
    (Nagios, Icinga, Zabbix, Checkmk) can run this command as a check:
    0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the checks could not run).
    """
    setup_logging(verbose)
    try:
        tree = resolve_tree(directory)
        checks = health.run_checks(
            Project.load(tree), load_settings(tree), services=list(services) or None
        )
    except OpsError as error:
        click.echo(f"UNKNOWN: {error}", err=True)
        raise SystemExit(3) from error
    code = health.exit_code(checks)
    overall = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][code]
    if output_format == "json":
        data = {"status": overall.lower(), "checks": [asdict(c) for c in checks]}
        click.echo(json.dumps(data, indent=2))
    else:
        rows = [(c.check, c.target, c.severity.upper(), c.message) for c in checks]
        click.echo(
            format_table(("CHECK", "TARGET", "STATUS", "DETAIL"), rows), nl=False
        )
        click.echo(f"overall: {overall}")
    raise SystemExit(code)


COMMANDS = [health_command]

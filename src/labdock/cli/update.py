"""`labdock update SERVICE` and `labdock rollback SERVICE`."""

from __future__ import annotations

from pathlib import Path

import click

from labdock.cli.stack import resolve_tree, tree_option
from labdock.ops.backup import run_lock
from labdock.ops.console import ToolError, setup_logging
from labdock.ops.deploy import DEFAULT_TIMEOUT, Deployer, Outcome
from labdock.ops.errors import OpsError
from labdock.ops.project import Project


def _print(outcome: Outcome) -> None:
    deployment = outcome.deployment
    click.echo(f"{deployment.service}: {deployment.result}: {deployment.message}")
    if outcome.log_tail:
        click.echo(f"last log lines of {deployment.service}:")
        for line in outcome.log_tail:
            click.echo(f"  {line}")


@click.command("update")
@click.argument("service")
@tree_option
@click.option(
    "--to",
    "version",
    default=None,
    help="Version (a tag, such as 5.8.9) or whole image reference to run; "
    "default: pull the configured tag again.",
)
@click.option(
    "--timeout",
    type=float,
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the new container to become healthy.",
)
@click.option(
    "--no-pull",
    is_flag=True,
    help="Use an image already on this host (one built or loaded locally).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every command.")
def update_command(
    service: str,
    directory: Path | None,
    version: str | None,
    timeout: float,
    no_pull: bool,
    verbose: bool,
) -> None:
    """Update SERVICE: pull, recreate, wait for health, roll back if unhealthy.

    The image is pulled before anything stops, so a failed pull leaves the
    service running. The deployment is recorded in .labdock/deployments.jsonl.
    Exit codes: 0 updated (or already current), 1 unhealthy and rolled back
    (or the rollback failed too), 2 usage or tool error.
    """
    setup_logging(verbose)
    try:
        tree = resolve_tree(directory)
        project = Project.load(tree)
        project.service(service)
        with run_lock(tree, "update"):
            outcome = Deployer(project, timeout=timeout, pull=not no_pull).update(
                service, version
            )
    except OpsError as error:
        raise ToolError(str(error)) from error
    _print(outcome)
    raise SystemExit(0 if outcome.ok else 1)


@click.command("rollback")
@click.argument("service")
@tree_option
@click.option(
    "--timeout",
    type=float,
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the container to become healthy.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every command.")
def rollback_command(
    service: str, directory: Path | None, timeout: float, verbose: bool
) -> None:
    """Run SERVICE on the image its last successful update replaced.

    Exit codes: 0 rolled back, 1 that image is not healthy, 2 usage or tool
    error (such as no recorded deployment).
    """
    setup_logging(verbose)
    try:
        tree = resolve_tree(directory)
        project = Project.load(tree)
        project.service(service)
        with run_lock(tree, "rollback"):
            outcome = Deployer(project, timeout=timeout).rollback(service)
    except OpsError as error:
        raise ToolError(str(error)) from error
    _print(outcome)
    raise SystemExit(0 if outcome.ok else 1)


COMMANDS = [update_command, rollback_command]

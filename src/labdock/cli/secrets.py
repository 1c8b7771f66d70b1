"""`labdock secrets init|check|rotate`: the stack's secret files."""

from __future__ import annotations

from pathlib import Path

import click

from labdock.cli.stack import require_tree
from labdock.stack import rotate as rotation
from labdock.stack import secrets


@click.group("secrets")
def secrets_group() -> None:
    """Create, check and rotate the secret files under secrets/."""


@secrets_group.command("init")
@click.argument(
    "directory", type=click.Path(path_type=Path, file_okay=False), required=False
)
def init_command(directory: Path | None) -> None:
    """Create every missing secret: random, mode 0600, owned by its reader."""
    root = require_tree(directory, "its DIRECTORY argument")
    outcome = secrets.init_secrets(root)
    for name in outcome.created:
        click.echo(f"created secrets/{name}")
    click.echo(
        f"{len(outcome.created)} created, {len(outcome.existing)} already present"
    )


@secrets_group.command("check")
@click.argument(
    "directory", type=click.Path(path_type=Path, file_okay=False), required=False
)
@click.option(
    "--max-age-days",
    type=int,
    default=secrets.DEFAULT_MAX_AGE_DAYS,
    show_default=True,
    help="Age in days after which a secret should be rotated (a warning).",
)
@click.option("--no-git", is_flag=True, help="Skip the search of the git history.")
def check_command(directory: Path | None, max_age_days: int, no_git: bool) -> None:
    """Check mode, owner, age and strength, and search for leaked values.

    Checks every file under secrets/, restic_password included. Leaks are
    searched in every text file of the tree up to 1 MiB (secrets/ and .git/
    excepted) and, when the tree is in a git repository, in every commit;
    a git search that fails is a warning. Values shorter than 12 characters
    or weak are reported as weak and not searched. Exit 1 on any error.
    """
    root = require_tree(directory, "its DIRECTORY argument")
    problems = secrets.check_secrets(
        root, max_age_days=max_age_days, git_history=not no_git
    )
    for problem in problems:
        click.echo(f"{problem.level}: {problem.secret}: {problem.message}")
    errors = [problem for problem in problems if problem.level == "error"]
    if not problems:
        click.echo(f"{len(secrets.SPECS)} secrets checked, no problems")
    raise SystemExit(1 if errors else 0)


@secrets_group.command("rotate")
@click.argument("name")
@click.option(
    "-C",
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Services tree (default as for `labdock up`).",
)
@click.option("--harbor-url", help="Harbor's base URL, for harbor_admin_password.")
def rotate_command(name: str, directory: Path | None, harbor_url: str | None) -> None:
    """Rotate the secret NAME.

    Carried out by labdock: traefik_dashboard_password (and its users
    file), emqx_dashboard_password and harbor_admin_password. For every
    other secret the command prints the manual steps and exits 1.
    """
    try:
        message = rotation.rotate(require_tree(directory), name, harbor_url=harbor_url)
    except rotation.RotationError as error:
        raise click.ClickException(str(error)) from error
    click.echo(message)


COMMANDS = [secrets_group]

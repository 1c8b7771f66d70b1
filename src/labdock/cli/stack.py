"""`labdock init|render|validate|up|down|status|logs`: the services tree."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from labdock.ops import backup as ops_backup
from labdock.ops.console import ToolError
from labdock.stack import lifecycle, tree
from labdock.stack.envfile import parse_env, set_values
from labdock.stack.validate import FORMATTERS, ValidationToolError, validate

DEFAULT_TREE = Path("/opt/services")
F = TypeVar("F", bound=Callable[..., Any])


def default_tree() -> Path:
    """Return the tree to act on when no --dir is given.

    $LABDOCK_TREE, else the current directory if it has compose.yaml,
    else /opt/services.
    """
    configured = os.environ.get("LABDOCK_TREE")
    if configured:
        return Path(configured)
    if Path("compose.yaml").is_file():
        return Path.cwd()
    return DEFAULT_TREE


def tree_option(function: F) -> F:
    decorated: F = click.option(
        "-C",
        "--dir",
        "directory",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Services tree (default: $LABDOCK_TREE, the current directory "
        "if it has compose.yaml, else /opt/services).",
    )(function)
    return decorated


def resolve_tree(directory: Path | None) -> Path:
    return (directory or default_tree()).resolve()


def require_tree(directory: Path | None, argument: str = "-C DIR") -> Path:
    """Return the resolved tree; raise ToolError (exit 2) when it has no compose.yaml.

    `argument` is how the command takes the tree, for the error message.
    """
    root = resolve_tree(directory)
    if not (root / "compose.yaml").is_file():
        raise ToolError(
            f"no compose.yaml in {root}; pass the services tree with {argument}"
        )
    return root


def _tool_error(error: lifecycle.StackError) -> ToolError:
    return ToolError(str(error))


@click.command("init")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--domain",
    default=None,
    help="Base domain (services get <name>.<domain>); prompted for when a new "
    ".env is created on a terminal. Updates LABDOCK_DOMAIN of an existing .env.",
)
@click.option(
    "--email",
    default=None,
    help="ACME e-mail for Let's Encrypt; prompted for like --domain. Updates "
    "ACME_EMAIL of an existing .env.",
)
@click.option("--force", is_flag=True, help="Overwrite files changed on this host.")
def init_command(
    directory: Path, domain: str | None, email: str | None, force: bool
) -> None:
    """Lay the services tree down in DIRECTORY and create its .env.

    Files changed on this host are kept; the shipped version is written
    beside them as FILE.labdock-new unless --force is given. An existing
    .env is kept, except for the keys that --domain and --email set.
    """
    env_path = directory / ".env"
    env_exists = env_path.is_file()
    if not env_exists:
        domain = domain or _prompt(
            "--domain", "Base domain (services get <name>.<domain>)"
        )
        email = email or _prompt("--email", "ACME e-mail for Let's Encrypt")
    if domain is not None and not tree.is_dns_name(domain):
        raise click.BadParameter(
            f"{domain!r} is not a domain name; give the base domain alone, "
            "such as lab.example.org",
            param_hint="--domain",
        )
    if email is not None and "@" not in email:
        raise click.BadParameter(
            f"{email!r} is not an e-mail address", param_hint="--email"
        )
    try:
        report = tree.lay_down(
            directory, domain=domain or "", email=email or "", force=force
        )
    except tree.TreeError as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"{directory}: {len(report.created)} created, {len(report.updated)} updated, "
        f"{len(report.unchanged)} unchanged"
    )
    for relative in report.kept:
        click.echo(
            f"kept your changes to {relative}; the shipped version is in "
            f"{relative}{tree.NEW_SUFFIX}"
        )
    for relative in report.overwritten:
        click.echo(f"overwrote your changes to {relative} (--force)")
    if report.env_created:
        click.echo(f"created {env_path}; review it, then run:")
    else:
        changed = _update_env(env_path, {"LABDOCK_DOMAIN": domain, "ACME_EMAIL": email})
        for key, (old, new) in changed.items():
            click.echo(f"updated {key} in {env_path}: {old!r} -> {new!r}")
        click.echo(f"kept the other settings of the existing {env_path}; next steps:")
    click.echo(f"  labdock secrets init {directory}")
    click.echo(f"  labdock validate {directory}")
    click.echo(f"  labdock up -C {directory}")


def _prompt(flag: str, text: str) -> str:
    """Ask for a value on stdin; raise UsageError (exit 2) when stdin has ended.

    Without a terminal (cron, CI, ssh without -t) stdin is usually empty,
    and click's own "Aborted!" with exit 1 would not name the flags.
    """
    try:
        value: str = click.prompt(text)
    except click.Abort:
        if sys.stdin.isatty():
            raise
        raise click.UsageError(
            f"{flag} is required: there is no terminal to ask on and no .env "
            "yet; pass --domain DOMAIN --email ADDRESS"
        ) from None
    return value


def _update_env(
    env_path: Path, requested: dict[str, str | None]
) -> dict[str, tuple[str, str]]:
    """Set the requested keys that differ in `env_path`; return old and new values."""
    text = env_path.read_text(encoding="utf-8")
    current = parse_env(text)
    changed = {
        key: (current.get(key, ""), value)
        for key, value in requested.items()
        if value is not None and current.get(key) != value
    }
    if changed:
        updates = {key: new for key, (_old, new) in changed.items()}
        env_path.write_text(set_values(text, updates), encoding="utf-8")
    return changed


@click.command("render")
@tree_option
def render_command(directory: Path | None) -> None:
    """Render the tree's *.tmpl files from .env (`up` does this too)."""
    root = resolve_tree(directory)
    try:
        outputs = tree.render(root)
    except tree.TreeError as error:
        raise click.ClickException(str(error)) from error
    for output in outputs:
        click.echo(f"rendered {output}")


@click.command("validate")
@click.argument(
    "target",
    type=click.Path(path_type=Path, exists=True),
    required=False,
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(sorted(FORMATTERS)),
    default="text",
    show_default=True,
    help="Report format; sarif is SARIF 2.1.0 for code-scanning tools.",
)
def validate_command(target: Path | None, output_format: str) -> None:
    """Check a services tree or Compose file: Compose first, then the policy rules.

    Exit codes: 0 no findings, 1 findings, 2 the check itself could not run.
    """
    try:
        result = validate(target or default_tree())
    except ValidationToolError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from error
    click.echo(FORMATTERS[output_format](result), nl=False)
    raise SystemExit(0 if result.clean else 1)


@click.command("up")
@click.argument("services", nargs=-1)
@tree_option
@click.option(
    "--wait-timeout",
    type=int,
    default=lifecycle.DEFAULT_WAIT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the healthchecks to pass.",
)
@click.option(
    "--no-hooks",
    is_flag=True,
    help="Skip the post-start provisioning of EMQX and InfluxDB.",
)
def up_command(
    services: tuple[str, ...], directory: Path | None, wait_timeout: int, no_hooks: bool
) -> None:
    """Start the stack (or SERVICES) and wait until it is healthy.

    Containers that a killed backup run left stopped or paused are started
    first.
    """
    root = require_tree(directory)
    try:
        lifecycle.check_services(root, services)
    except lifecycle.StackError as error:
        raise _tool_error(error) from error
    for action in ops_backup.resume_interrupted(root):
        click.echo(f"{action}, which a killed backup run had left stopped")
    try:
        states = lifecycle.up(
            root,
            services,
            wait_timeout=wait_timeout,
            hooks=not no_hooks,
        )
    except lifecycle.StackError as error:
        raise click.ClickException(str(error)) from error
    click.echo(lifecycle.format_table(states), nl=False)


@click.command("down")
@tree_option
def down_command(directory: Path | None) -> None:
    """Stop and remove the containers; volumes and data are kept.

    Exit codes: 0 success, 2 usage or tool error (no tree, engine unreachable).
    """
    try:
        lifecycle.down(require_tree(directory))
    except lifecycle.StackError as error:
        raise _tool_error(error) from error


@click.command("status")
@click.argument("services", nargs=-1)
@tree_option
def status_command(services: tuple[str, ...], directory: Path | None) -> None:
    """Print each service's (or SERVICES') state, health and URL.

    Exit codes: 0 every service runs, 1 a service is down, unhealthy or has
    no container, 2 usage or tool error (no tree, engine unreachable).
    """
    root = require_tree(directory)
    try:
        lifecycle.check_services(root, services)
        states = lifecycle.status(root)
    except lifecycle.StackError as error:
        raise _tool_error(error) from error
    if services:
        states = [state for state in states if state.service in services]
    click.echo(lifecycle.format_table(states), nl=False)
    unhealthy = [s for s in states if s.state != "running" or s.health == "unhealthy"]
    raise SystemExit(1 if unhealthy or not states else 0)


@click.command("logs")
@click.argument("services", nargs=-1)
@tree_option
@click.option(
    "--tail", type=int, default=100, show_default=True, help="Lines per service."
)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
def logs_command(
    services: tuple[str, ...], directory: Path | None, tail: int, follow: bool
) -> None:
    """Print the logs of the stack or of SERVICES.

    Exit codes: 0 success, 2 usage or tool error (no tree, unknown service,
    engine unreachable).
    """
    try:
        lifecycle.logs(require_tree(directory), services, tail=tail, follow=follow)
    except lifecycle.StackError as error:
        raise _tool_error(error) from error


COMMANDS = [
    init_command,
    render_command,
    validate_command,
    up_command,
    down_command,
    status_command,
    logs_command,
]

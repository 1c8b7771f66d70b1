"""`labdock harbor prepare|up|down|ldap`: Harbor as its own Compose project."""

from __future__ import annotations

from pathlib import Path

import click

from labdock.cli.stack import resolve_tree, tree_option
from labdock.stack import harbor, lifecycle, secrets, tree
from labdock.stack.compose import ComposeError


@click.group("harbor")
def harbor_group() -> None:
    """Set up and run Harbor behind Traefik."""


@harbor_group.command("prepare")
@tree_option
def prepare_command(directory: Path | None) -> None:
    """Render harbor/installer/harbor.yml and run Harbor's prepare step."""
    root = resolve_tree(directory)
    try:
        harbor.prepare(root)
    except (harbor.HarborError, secrets.SecretError, tree.TreeError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"prepared {root / harbor.INSTALLER}; start it with `labdock harbor up`")


@harbor_group.command("up")
@tree_option
@click.option("--wait-timeout", type=int, default=600, show_default=True)
def up_command(directory: Path | None, wait_timeout: int) -> None:
    """Start Harbor and wait for its healthchecks."""
    root = resolve_tree(directory)
    try:
        lifecycle.ensure_network(
            tree.env_values(root).get("TRAEFIK_NETWORK") or "traefik_network"
        )
        compose = harbor.harbor_compose(root)
        compose.run(
            "up", "-d", "--wait", "--wait-timeout", str(wait_timeout), capture=False
        )
    except (harbor.HarborError, ComposeError, lifecycle.StackError) as error:
        raise click.ClickException(str(error)) from error


@harbor_group.command("down")
@tree_option
def down_command(directory: Path | None) -> None:
    """Stop Harbor; its data under HARBOR_DATA is kept."""
    try:
        harbor.harbor_compose(resolve_tree(directory)).run("down", capture=False)
    except (harbor.HarborError, ComposeError) as error:
        raise click.ClickException(str(error)) from error


@harbor_group.command("ldap")
@tree_option
@click.option(
    "--url", "harbor_url", help="Harbor's base URL (default https://harbor.<domain>)."
)
@click.option("--ldap-url", help="LDAP URL (default LDAP_URL from .env).")
@click.option("--base-dn", help="Base DN of users (default LDAP_BASE_DN from .env).")
@click.option(
    "--search-dn", required=True, help="DN Harbor binds with to search users."
)
@click.option(
    "--uid",
    "uid_attribute",
    default="uid",
    show_default=True,
    help="Attribute that holds the user name.",
)
@click.option("--filter", "search_filter", default="", help="Extra LDAP search filter.")
@click.option(
    "--group-base-dn", default="", help="Base DN of groups; empty: no group sync."
)
@click.option("--group-filter", default="", help="LDAP filter of groups.")
@click.option(
    "--group-admin-dn", default="", help="Group whose members become Harbor admins."
)
@click.option(
    "--verify-cert/--no-verify-cert",
    default=True,
    show_default=True,
    help="Verify the LDAP server's certificate.",
)
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False),
    help="CA bundle for Harbor's own certificate.",
)
@click.option(
    "--ping/--no-ping",
    default=True,
    show_default=True,
    help="Test the bind with POST /api/v2.0/ldap/ping afterwards.",
)
def ldap_command(
    directory: Path | None,
    harbor_url: str | None,
    ldap_url: str | None,
    base_dn: str | None,
    search_dn: str,
    uid_attribute: str,
    search_filter: str,
    group_base_dn: str,
    group_filter: str,
    group_admin_dn: str,
    verify_cert: bool,
    ca_file: str | None,
    ping: bool,
) -> None:
    """Switch Harbor to LDAP authentication through its API.

    The admin password and the search DN's password come from
    secrets/harbor_admin_password and secrets/harbor_ldap_search_password.
    Run it before anyone signs in: Harbor keeps its auth mode once other
    users exist.
    """
    root = resolve_tree(directory)
    settings = tree.env_values(root)
    domain = settings.get("LABDOCK_DOMAIN", "")
    try:
        admin_password = secrets.read_secret(root, "harbor_admin_password")
        search_password = secrets.read_secret(root, "harbor_ldap_search_password")
    except secrets.SecretError as error:
        raise click.ClickException(str(error)) from error
    ldap = harbor.LdapSettings(
        url=ldap_url or settings.get("LDAP_URL", ""),
        base_dn=base_dn or settings.get("LDAP_BASE_DN", ""),
        search_dn=search_dn,
        search_password=search_password,
        uid=uid_attribute,
        filter=search_filter,
        verify_cert=verify_cert,
        group_base_dn=group_base_dn,
        group_search_filter=group_filter,
        group_admin_dn=group_admin_dn,
    )
    if not ldap.url or not ldap.base_dn:
        raise click.ClickException(
            "set --ldap-url and --base-dn, or LDAP_URL and LDAP_BASE_DN in .env"
        )
    if ldap.url.lower().startswith("ldap://"):
        click.echo(
            "warning: plain ldap:// sends the search password in the clear", err=True
        )
    client = harbor.HarborClient(
        harbor_url or f"https://harbor.{domain}", admin_password, ca_file=ca_file
    )
    try:
        client.configure_ldap(ldap, ping=ping)
    except harbor.HarborError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Harbor now authenticates against {ldap.url}")


COMMANDS = [harbor_group]

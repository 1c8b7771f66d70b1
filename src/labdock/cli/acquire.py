"""`labdock acquire`: run the sensor acquisition service."""

from __future__ import annotations

import os
import ssl
import sys
from pathlib import Path
from typing import Any

import click

from labdock.acquire.config import AcquireConfig, ConfigError, load_config
from labdock.acquire.topics import filter_covers


def _overrides(**flags: Any) -> dict[str, Any]:
    overrides: dict[str, Any] = {}

    def put(section: str, key: str, value: Any) -> None:
        if value is not None:
            overrides.setdefault(section, {})[key] = value

    put("broker", "url", flags["broker"])
    put("broker", "client_id", flags["client_id"])
    put("broker", "share_group", flags["share_group"])
    put("database", "url", flags["database_url"])
    put("database", "api", flags["api"])
    put("database", "database", flags["database"])
    put("database", "bucket", flags["bucket"])
    put("database", "org", flags["org"])
    put("database", "token_file", flags["token_file"])
    put("spool", "directory", flags["spool_dir"])
    put("http", "listen", flags["listen"])
    if flags["topic"]:
        overrides["mappings"] = [
            {"topic": topic, "format": flags["format"] or "json"}
            for topic in flags["topic"]
        ]
    return overrides


def load_or_exit(config_path: Path | None, overrides: dict[str, Any]) -> AcquireConfig:
    """Load the configuration, or print every problem and exit with status 2."""
    try:
        return load_config(config_path, overrides=overrides)
    except ConfigError as error:
        click.echo("invalid configuration:", err=True)
        for problem in error.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(2)


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="LABDOCK_CONFIG",
    help="YAML configuration file (env LABDOCK_CONFIG).",
)
@click.option("--broker", help="Broker URL, mqtt://host:port or mqtts://host:port.")
@click.option("--client-id", help="Fixed MQTT client id of this replica.")
@click.option("--share-group", help="Shared subscription group, for several replicas.")
@click.option(
    "--topic",
    multiple=True,
    help="Topic template, e.g. 'lab/{room}/{device}/{measurement}'; repeatable. "
    "Replaces the configured mappings.",
)
@click.option("--format", help="Payload format of the --topic mappings (default json).")
@click.option(
    "--database-url", help="http(s)://host:port of the database, or sqlite:///path."
)
@click.option(
    "--api", type=click.Choice(["v1", "v2", "v3", "sqlite"]), help="Write API."
)
@click.option("--database", help="Database name (v1, v3).")
@click.option("--bucket", help="Bucket (v2).")
@click.option("--org", help="Organization (v2).")
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File holding the API token (v2, v3).",
)
@click.option(
    "--spool-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Spool directory.",
)
@click.option("--listen", help="host:port of /healthz, /readyz and /metrics.")
@click.option("--check", is_flag=True, help="Validate the configuration and exit.")
def acquire(config_path: Path | None, check: bool, **flags: Any) -> None:
    """Move sensor readings from the MQTT broker into the database.

    Every setting comes from the configuration file, then LABDOCK_SECTION__KEY
    environment variables (LABDOCK_DATABASE__URL=...), then these flags.
    Runs until SIGTERM or SIGINT, then flushes the messages it has within
    shutdown_timeout seconds.
    """
    if flags["format"] and not flags["topic"]:
        click.echo(
            "error: --format applies to the --topic mappings; give --topic too, "
            "or set format: in the configuration's mappings",
            err=True,
        )
        sys.exit(2)
    config = load_or_exit(config_path, _overrides(**flags))
    if check:
        for warning in _shadowed_mappings(config):
            click.echo(f"warning: {warning}", err=True)
        problems = _check_files(config)
        if problems:
            click.echo("invalid configuration:", err=True)
            for problem in problems:
                click.echo(f"  {problem}", err=True)
            sys.exit(2)
        click.echo(
            f"configuration is valid: {len(config.mappings)} mapping(s), subscribing to "
            + ", ".join(config.subscription_filters())
            + f"; writing to {config.database.url} ({config.database.api})"
        )
        return
    from labdock.acquire.service import Service
    from labdock.acquire.spool import SpoolError
    from labdock.log import configure_logging

    configure_logging(config.log.level, config.log.format)
    problems = _check_files(config)
    if problems:
        click.echo("invalid configuration:", err=True)
        for problem in problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(2)
    try:
        service = Service(config)
    except (SpoolError, ConfigError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    sys.exit(service.run())


def _check_files(config: AcquireConfig) -> list[str]:
    """Return problems with the files the configuration names."""
    problems = []
    files = {
        "broker.password_file": config.broker.password_file,
        "broker.ca_file": config.broker.ca_file,
        "broker.cert_file": config.broker.cert_file,
        "broker.key_file": config.broker.key_file,
        "database.password_file": config.database.password_file,
        "database.token_file": config.database.token_file,
        "database.ca_file": config.database.ca_file,
    }
    for key, path in files.items():
        if path is not None and not path.is_file():
            problems.append(
                f"{key}: {path} does not exist or is not a file; create it or fix the path"
            )
        elif path is not None and not os.access(path, os.R_OK):
            problems.append(f"{key}: {path} is not readable by this user; fix its mode")
    problems += _check_certificates(config)
    if config.broker.password_file and not config.broker.username:
        problems.append(
            "broker.password_file is set but broker.username is not; set both"
        )
    problems += _check_spool_directory(config.spool.directory)
    return problems


def _check_spool_directory(spool: Path) -> list[str]:
    """Return a problem when the service could not create or write `spool`."""
    # The service creates missing directories, so the nearest existing one
    # must be a directory that this user can write to.
    existing = spool
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return [
            f"spool.directory: {spool}: {existing} is not a directory; "
            "choose a directory path for the spool"
        ]
    if not os.access(existing, os.W_OK):
        return [
            f"spool.directory: {spool} is not writable by this user; fix the owner "
            f"or mode of {existing}"
        ]
    return []


def _shadowed_mappings(config: AcquireConfig) -> list[str]:
    """Return a warning for each mapping that an earlier one always wins over."""
    warnings = []
    filters = [mapping.template.filter for mapping in config.mappings]
    for later, later_filter in enumerate(filters):
        for earlier, earlier_filter in enumerate(filters[:later]):
            if filter_covers(earlier_filter, later_filter):
                warnings.append(
                    f"mappings.{later} ({config.mappings[later].topic!r}) is never "
                    f"used: mappings.{earlier} ({config.mappings[earlier].topic!r}) "
                    "matches every topic it would; move the narrower mapping first"
                )
                break
    return warnings


def _check_certificates(config: AcquireConfig) -> list[str]:
    """Return problems with the PEM files, loaded as the service would."""
    problems = []
    for name, path in (
        ("broker.ca_file", config.broker.ca_file),
        ("database.ca_file", config.database.ca_file),
    ):
        if path is not None and path.is_file():
            try:
                ssl.create_default_context(cafile=str(path))
            except (ssl.SSLError, OSError) as error:
                problems.append(
                    f"{name}: {path} contains no usable CA certificate ({error}); "
                    "give a PEM file with -----BEGIN CERTIFICATE-----"
                )
    cert, key = config.broker.cert_file, config.broker.key_file
    if cert is not None and key is not None and cert.is_file() and key.is_file():
        try:
            ssl.create_default_context().load_cert_chain(str(cert), str(key))
        except (ssl.SSLError, OSError) as error:
            problems.append(
                f"broker.cert_file, broker.key_file: cannot load {cert} with {key} "
                f"({error}); give the PEM certificate and its matching key"
            )
    return problems


COMMANDS = [acquire]

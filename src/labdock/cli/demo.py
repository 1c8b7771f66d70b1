"""`labdock demo`: try the acquisition service with nothing installed."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=20,
    show_default=True,
    help="Seconds the sensors publish; greater than 0.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=50,
    show_default=True,
    help="Messages per second, all sensors together; greater than 0.",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("demo-data"),
    show_default=True,
    help="Directory of the spool and the embedded store.",
)
@click.option(
    "--database-url",
    help="Write to this InfluxDB (http://host:port) instead of SQLite.",
)
@click.option(
    "--api",
    type=click.Choice(["v1", "v2", "v3"]),
    default="v1",
    show_default=True,
    help="Write API of --database-url.",
)
@click.option(
    "--database",
    default="labdock_demo",
    show_default=True,
    help=(
        "Database (v1, v3) or bucket (v2) name. A missing v1 database is "
        "created; a v2 bucket must exist."
    ),
)
@click.option("--org", default="", help="Organization (v2).")
def demo(
    duration: float,
    rate: float,
    workdir: Path,
    database_url: str | None,
    api: str,
    database: str,
    org: str,
) -> None:
    """Run an embedded broker, simulated lab sensors and the acquisition service.

    Points go to an embedded SQLite store unless --database-url is given.
    With --api v1 the database is created when it is missing; with --api v2
    the bucket must already exist.
    """
    from labdock.demo import run_demo

    target = None
    if database_url:
        target = {"url": database_url, "api": api, "database": database}
        if api == "v2":
            target = {"url": database_url, "api": api, "bucket": database, "org": org}
    sys.exit(run_demo(duration=duration, rate=rate, workdir=workdir, database=target))


COMMANDS = [demo]

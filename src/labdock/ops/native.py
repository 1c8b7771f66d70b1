"""Each service's own consistent export and import, run inside its container.

InfluxDB: `influx backup` and `influx restore --full` with the operator
token, read from the container's secret file so that it never appears on a
command line. EMQX: `emqx ctl data export` and `emqx ctl data import`.
Harbor: `pg_dump` and `psql` of the database `registry` in harbor-db.

The dumps are written inside a data volume, not /tmp: the containers' /tmp
is a tmpfs, which `docker cp` cannot read.
"""

from __future__ import annotations

import logging
import re
import shlex
import shutil
from pathlib import Path

from labdock.ops import docker
from labdock.ops.errors import OpsError

logger = logging.getLogger(__name__)

INFLUX_DUMP = "/var/lib/influxdb2/.labdock-backup"
INFLUX_RESTORE = "/var/lib/influxdb2/.labdock-restore"
TOKEN_FILE = "/run/secrets/influxdb_admin_token"
EMQX_HOME = "/opt/emqx"
EMQX_BACKUP_DIR = "/opt/emqx/data/backup"
HARBOR_DB_CONTAINER = "harbor-db"
HARBOR_DATABASE = "registry"
# pg_dump ends a complete plain-text dump with this comment line.
PG_DUMP_TRAILER = "-- PostgreSQL database dump complete"

_EXPORT_PATH = re.compile(r"([^\s\"']*emqx-export-[^\"'\s]+\.tar\.gz)")


class NativeError(OpsError):
    """A service's own export or import failed."""


def _run(container: str, script: str, what: str, timeout: float | None) -> str:
    result = docker.exec_in(container, ["sh", "-c", script], timeout=timeout)
    if result.returncode != 0:
        detail = (result.stderr.strip() or result.stdout.strip())[-1500:]
        raise NativeError(
            f"{what} in container {container} failed with exit code "
            f"{result.returncode}: {detail}"
        )
    return result.stdout


def _fresh(directory: Path) -> Path:
    shutil.rmtree(directory, ignore_errors=True)
    directory.parent.mkdir(parents=True, exist_ok=True)
    return directory


# --- InfluxDB ----------------------------------------------------------------


def influx_backup_script(dump: str = INFLUX_DUMP) -> str:
    """Return the shell line that dumps every bucket and the metadata."""
    quoted = shlex.quote(dump)
    return f'rm -rf {quoted} && influx backup {quoted} -t "$(cat {TOKEN_FILE})"'


def influx_restore_script(source: str = INFLUX_RESTORE) -> str:
    """Return the shell line that replaces all data and metadata from a dump."""
    return f'influx restore {shlex.quote(source)} --full -t "$(cat {TOKEN_FILE})"'


def influx_backup(container: str, staging: Path, timeout: float | None = None) -> Path:
    """Dump InfluxDB into STAGING (created fresh) and return it."""
    target = _fresh(staging)
    try:
        _run(container, influx_backup_script(), "influx backup", timeout)
        docker.copy_from(container, INFLUX_DUMP, target)
    finally:
        docker.exec_in(container, ["rm", "-rf", INFLUX_DUMP])
    return target


def influx_restore(container: str, dump: Path, timeout: float | None = None) -> None:
    """Load a dump made by influx_backup into a running InfluxDB.

    `influx restore --full` replaces the server's buckets, users and tokens
    with the dump's. The operator token in the container's secret file must
    be the one the dump was made with (the same secrets/ file).
    """
    docker.exec_in(container, ["rm", "-rf", INFLUX_RESTORE])
    docker.copy_to(dump, container, INFLUX_RESTORE)
    try:
        _run(container, influx_restore_script(), "influx restore", timeout)
    finally:
        docker.exec_in(container, ["rm", "-rf", INFLUX_RESTORE])


# --- EMQX --------------------------------------------------------------------


def parse_export_path(output: str) -> str:
    """Return the archive path that `emqx ctl data export` printed.

    EMQX 5 prints a path relative to its home directory, such as
    data/backup/emqx-export-2023-06-19-15-14-19.947.tar.gz.
    """
    match = _EXPORT_PATH.search(output)
    if not match:
        raise NativeError(
            f"emqx ctl data export printed no archive path: {output.strip()[-500:]}"
        )
    path = match.group(1)
    return path if path.startswith("/") else f"{EMQX_HOME}/{path}"


def emqx_export(container: str, staging: Path, timeout: float | None = None) -> Path:
    """Export EMQX's configuration and built-in database into STAGING."""
    target = _fresh(staging)
    target.mkdir()
    output = _run(container, "emqx ctl data export", "emqx ctl data export", timeout)
    archive = parse_export_path(output)
    try:
        docker.copy_from(container, archive, target / Path(archive).name)
    finally:
        docker.exec_in(container, ["rm", "-f", archive])
    return target


def emqx_import(container: str, staging: Path, timeout: float | None = None) -> None:
    """Import the archive in STAGING into a running EMQX.

    The archive keeps its exported name because EMQX rejects a renamed one.
    Import adds and updates records; it deletes none.
    """
    archives = sorted(staging.glob("emqx-export-*.tar.gz"))
    if not archives:
        raise NativeError(f"no emqx-export-*.tar.gz in {staging}")
    archive = archives[-1]
    destination = f"{EMQX_BACKUP_DIR}/{archive.name}"
    docker.copy_to(archive, container, destination)
    try:
        _run(
            container,
            f"emqx ctl data import {shlex.quote(destination)}",
            "emqx ctl data import",
            timeout,
        )
    finally:
        docker.exec_in(container, ["rm", "-f", destination])


# --- Harbor ------------------------------------------------------------------


def harbor_dump(staging: Path, timeout: float | None = None) -> Path:
    """Write a plain-text pg_dump of Harbor's database into STAGING."""
    target = _fresh(staging)
    target.mkdir()
    result = docker.exec_in(
        HARBOR_DB_CONTAINER,
        ["pg_dump", "-U", "postgres", "--clean", "--if-exists", HARBOR_DATABASE],
        timeout=timeout,
    )
    if result.returncode != 0:
        raise NativeError(
            f"pg_dump of {HARBOR_DATABASE} in {HARBOR_DB_CONTAINER} failed with exit "
            f"code {result.returncode}: {result.stderr.strip()[-1000:]}"
        )
    # NOTE: the dump passes through memory as text; Harbor's database stores
    # metadata only (blobs are in the registry storage), so it stays small.
    (target / f"{HARBOR_DATABASE}.sql").write_text(result.stdout, encoding="utf-8")
    return target


def harbor_load(staging: Path, timeout: float | None = None) -> None:
    """Load the dump in STAGING into Harbor's running database container."""
    dump = staging / f"{HARBOR_DATABASE}.sql"
    if not dump.is_file():
        raise NativeError(f"{dump} is missing from the restored Harbor database part")
    result = docker.exec_in(
        HARBOR_DB_CONTAINER,
        ["psql", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-d", HARBOR_DATABASE],
        input_text=dump.read_text(encoding="utf-8"),
        timeout=timeout,
    )
    if result.returncode != 0:
        raise NativeError(
            f"psql into {HARBOR_DATABASE} failed with exit code {result.returncode}: "
            f"{result.stderr.strip()[-1000:]}"
        )

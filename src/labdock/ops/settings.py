"""Settings of the operations commands: TREE/.labdock/ops.yaml.

One pydantic model validates the file, supplies the defaults and documents
each key. Every key is optional; a tree without the file gets the defaults,
and the backup repository can come from $RESTIC_REPOSITORY or --repo
instead.

Example:

    backup:
      repository: /srv/backup/labdock        # or sftp:..., s3:..., rest:...
      password_file: secrets/restic_password
      retention: {keep_daily: 7, keep_weekly: 4, keep_monthly: 12}
      services:
        influxdb: {method: native}
        sensor-acquisition: {method: stop}
    health:
      backup_warning_hours: 26
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from labdock.ops.errors import OpsError
from labdock.ops.restic import RetentionPolicy
from labdock.ops.state import STATE_DIR

SETTINGS_FILE = "ops.yaml"

Method = Literal["native", "stop", "pause", "live", "skip"]

# How each shipped service is backed up unless ops.yaml sets another method.
# native: the service's own consistent export (InfluxDB, EMQX, Harbor).
# stop: stop the service and its dependents, copy its named volumes, start
# them again in dependency order. pause: freeze the container while its
# volumes are copied. live: copy the volumes while the service runs, for
# data that changes rarely (LAM's configuration, Traefik's acme.json).
DEFAULT_METHODS: dict[str, Method] = {
    "influxdb": "native",
    "emqx": "native",
    "harbor": "native",
    "traefik": "live",
    "lam": "live",
    "sensor-acquisition": "stop",
}
NATIVE_SERVICES = frozenset({"influxdb", "emqx", "harbor"})
# Volumes whose content is a secret: InfluxDB's CLI configuration contains the
# operator token in plain text.
DEFAULT_SECRET_VOLUMES = ("influxdb_config",)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class ServiceBackup(_Model):
    """The backup method of one service and its options."""

    method: Method = Field(
        "stop",
        description=(
            "native (influxdb, emqx and harbor only), stop, pause, live or skip."
        ),
    )
    volumes: list[str] | None = Field(
        None,
        description=(
            "Compose volume names to copy with stop, pause or live; default: "
            "every named volume of the service."
        ),
    )
    exclude_volumes: list[str] = Field(
        default_factory=list,
        description="Compose volume names to leave out, such as log volumes.",
    )
    stop_timeout: int = Field(
        30, ge=1, description="Seconds a stopped container gets to exit."
    )


class Retention(_Model):
    """restic forget's keep options, applied per service and part."""

    keep_last: int | None = Field(None, ge=0)
    keep_hourly: int | None = Field(None, ge=0)
    keep_daily: int | None = Field(7, ge=0)
    keep_weekly: int | None = Field(4, ge=0)
    keep_monthly: int | None = Field(12, ge=0)
    keep_yearly: int | None = Field(None, ge=0)
    keep_within: str | None = Field(
        None, description="Keep everything newer than this, e.g. 14d or 1y2m."
    )

    def policy(self) -> RetentionPolicy:
        return RetentionPolicy(**self.model_dump())


class BackupSettings(_Model):
    """The `backup:` section."""

    repository: str | None = Field(
        None,
        description=(
            "restic repository: a path or any restic backend URL. "
            "Default: $RESTIC_REPOSITORY."
        ),
    )
    password_file: Path = Field(
        Path("secrets/restic_password"),
        description="File with the repository password, relative to the tree.",
    )
    cache_dir: Path | None = Field(
        None, description="restic's cache directory; default: restic's own."
    )
    host: str = Field(
        default_factory=socket.gethostname,
        description="Host name recorded in snapshots and used to find them.",
    )
    staging_dir: Path = Field(
        Path(STATE_DIR) / "staging",
        description=(
            "Where native dumps are written before restic reads them, relative "
            "to the tree; needs room for the largest dump."
        ),
    )
    status_file: Path = Field(
        Path(STATE_DIR) / "backup-status.json",
        description="Last run and last success per service, as JSON.",
    )
    textfile: Path = Field(
        Path(STATE_DIR) / "labdock_backup.prom",
        description=(
            "Prometheus textfile for node_exporter's textfile collector, e.g. "
            "/var/lib/prometheus/node-exporter/labdock_backup.prom."
        ),
    )
    harbor_data: Path | None = Field(
        None,
        description=(
            "Harbor's data_volume; default: HARBOR_DATA in .env, else /data/harbor."
        ),
    )
    secret_volumes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SECRET_VOLUMES),
        description="Volumes that hold secrets, copied only with --include-secrets.",
    )
    read_data_subset: str | None = Field(
        None,
        description=(
            "Passed to `restic check --read-data-subset` by verify, e.g. 5% or "
            "1/7; default: check the structure only."
        ),
    )
    retention: Retention = Field(default_factory=lambda: Retention.model_validate({}))
    services: dict[str, ServiceBackup] = Field(default_factory=dict)


class HealthSettings(_Model):
    """The `health:` section: thresholds of `labdock health`."""

    backup_warning_hours: float = Field(26, gt=0)
    backup_critical_hours: float = Field(50, gt=0)
    disk_warning_percent: float = Field(15, ge=0, le=100)
    disk_critical_percent: float = Field(5, ge=0, le=100)
    certificate_warning_days: float = Field(21, ge=0)
    certificate_critical_days: float = Field(7, ge=0)
    restart_warning_count: int = Field(3, ge=1)


class Settings(_Model):
    """The whole ops.yaml file."""

    backup: BackupSettings = Field(
        default_factory=lambda: BackupSettings.model_validate({})
    )
    health: HealthSettings = Field(
        default_factory=lambda: HealthSettings.model_validate({})
    )


def settings_path(tree: Path) -> Path:
    return tree / STATE_DIR / SETTINGS_FILE


def load_settings(tree: Path) -> Settings:
    """Read TREE/.labdock/ops.yaml, or return the defaults when it is missing.

    Raises OpsError listing every invalid key with its path.
    """
    path = settings_path(tree)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Settings.model_validate({})
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise OpsError(f"{path} is not valid YAML: {error}") from error
    try:
        return Settings.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            ".".join(str(part) for part in item["loc"]) + ": " + item["msg"]
            for item in error.errors()
        )
        raise OpsError(f"{path}: {problems}") from error


def method_for(settings: BackupSettings, service: str) -> ServiceBackup:
    """Return the backup settings of `service`, the default when unset."""
    configured = settings.services.get(service)
    if configured is not None:
        if configured.method == "native" and service not in NATIVE_SERVICES:
            raise OpsError(
                f"backup.services.{service}.method is native, but labdock has a "
                f"native backup only for {', '.join(sorted(NATIVE_SERVICES))}; "
                "use stop, pause or live"
            )
        return configured
    return ServiceBackup.model_validate(
        {"method": DEFAULT_METHODS.get(service, "stop")}
    )


def repository_of(settings: BackupSettings, override: str | None = None) -> str:
    """Return the repository: --repo, then ops.yaml, then $RESTIC_REPOSITORY."""
    repository = override or settings.repository or os.environ.get("RESTIC_REPOSITORY")
    if not repository:
        raise OpsError(
            "no restic repository is set; pass --repo, set backup.repository in "
            ".labdock/ops.yaml or export RESTIC_REPOSITORY"
        )
    return repository


def resolve(tree: Path, path: Path) -> Path:
    """Return `path` made absolute against the tree."""
    return path if path.is_absolute() else tree / path

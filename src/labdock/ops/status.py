"""The last backup of each service, as JSON and as a Prometheus textfile.

The JSON file is the record `labdock health` reads; the textfile is for
node_exporter's textfile collector. Both are rewritten atomically after
every run and keep the entries of services the run did not touch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labdock.ops.backup import RunReport, run_id
from labdock.ops.errors import OpsError
from labdock.ops.state import read_json, write_atomic

logger = logging.getLogger(__name__)

METRIC_PREFIX = "labdock_backup"


def updated_status(
    previous: Mapping[str, Any] | None, report: RunReport
) -> dict[str, Any]:
    """Return the status after `report`, starting from the previous status."""
    services: dict[str, Any] = dict((previous or {}).get("services") or {})
    for result in report.results:
        entry = dict(services.get(result.service) or {})
        finished = result.finished or result.started
        entry.update(
            {
                "last_attempt": finished.isoformat(timespec="seconds"),
                "last_run": run_id(report.time),
                "last_result": "ok" if result.ok else "failed",
                "last_error": result.failure(),
                "method": result.method,
                "duration_seconds": round(result.duration, 3),
                "added_bytes": result.added_bytes,
            }
        )
        if result.ok:
            entry["last_success"] = finished.isoformat(timespec="seconds")
            entry["last_success_run"] = run_id(report.time)
            entry["snapshots"] = {
                part.part.name: part.summary.snapshot_id
                for part in result.parts
                if part.summary is not None
            }
        services[result.service] = entry
    return {
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
        "services": dict(sorted(services.items())),
    }


def load_status(path: Path) -> dict[str, Any]:
    """Return the status record in `path`, or an empty one when it is missing.

    Raises OpsError when the file is not valid JSON or not a status record.
    """
    remedy = "delete it, and the next `labdock backup run` writes it again"
    try:
        data = read_json(path)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise OpsError(f"{path} is not valid JSON ({error}); {remedy}") from error
    if data is None:
        return {"services": {}}
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("services"), dict)
        or not all(isinstance(entry, dict) for entry in data["services"].values())
    ):
        raise OpsError(
            f"{path} is not a backup status record (a JSON object whose "
            f"services key maps each service to an object); {remedy}"
        )
    return data


def _timestamp(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_textfile(status: Mapping[str, Any]) -> str:
    """Return the status in the Prometheus text exposition format."""
    services: Mapping[str, Any] = status.get("services") or {}
    metrics: list[tuple[str, str, Callable[[Mapping[str, Any]], Any]]] = [
        (
            "last_success_timestamp_seconds",
            "Unix time of the last successful backup of the service.",
            lambda entry: _timestamp(entry.get("last_success")),
        ),
        (
            "last_attempt_timestamp_seconds",
            "Unix time of the last backup attempt of the service.",
            lambda entry: _timestamp(entry.get("last_attempt")),
        ),
        (
            "last_run_success",
            "1 if the last backup of the service succeeded, else 0.",
            lambda entry: 1.0 if entry.get("last_result") == "ok" else 0.0,
        ),
        (
            "last_run_duration_seconds",
            "Duration of the last backup of the service.",
            lambda entry: entry.get("duration_seconds"),
        ),
        (
            "last_run_added_bytes",
            "Bytes the last backup of the service added to the repository.",
            lambda entry: entry.get("added_bytes"),
        ),
    ]
    lines: list[str] = []
    for suffix, help_text, value_of in metrics:
        name = f"{METRIC_PREFIX}_{suffix}"
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        for service, entry in sorted(services.items()):
            value = value_of(entry)
            if value is None:
                continue
            lines.append(f'{name}{{service="{_escape(service)}"}} {float(value):.17g}')
    return "\n".join(lines) + "\n"


def write_status(
    report: RunReport, *, status_file: Path, textfile: Path
) -> dict[str, Any]:
    """Merge `report` into the status file and rewrite the textfile.

    An unreadable status file is replaced, because the run's own result
    must not be lost to it; the entries of other services are then lost.
    """
    try:
        previous = load_status(status_file)
    except OpsError as error:
        logger.warning("backup.status_replaced error=%s", error)
        previous = {}
    status = updated_status(previous, report)
    write_atomic(status_file, json.dumps(status, indent=2) + "\n")
    write_atomic(textfile, render_textfile(status))
    return status

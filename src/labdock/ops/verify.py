"""`labdock backup verify`: restic check, then a test restore with content checks.

The test restore writes each part of the latest run (or a given run) into a
scratch directory and checks it. The number of restored entries must match
the count that restic reports for the snapshot, and each kind of part must
have the content a restore needs (a parseable compose.yaml, an InfluxDB
manifest whose files are all there, a complete pg_dump, ...).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labdock.ops.backup import TAG
from labdock.ops.catalog import group_runs
from labdock.ops.errors import OpsError
from labdock.ops.native import HARBOR_DATABASE, PG_DUMP_TRAILER
from labdock.ops.progress import NoProgress, Progress
from labdock.ops.restic import Restic, Snapshot
from labdock.stack import secrets as stack_secrets

logger = logging.getLogger(__name__)


@dataclass
class PartCheck:
    """The test restore of one part and the problems found in it."""

    service: str
    part: str
    snapshot: str
    entries: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class VerifyReport:
    check_output: str = ""
    check_error: str | None = None
    run: str | None = None
    parts: list[PartCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.check_error is None and all(part.ok for part in self.parts)


def count_entries(root: Path) -> int:
    """Count files, directories and links below `root`, as restic stats does."""
    count = 0
    for _directory, directories, files in os.walk(root):
        count += len(directories) + len(files)
    return count


# --- content checks, one per kind of part -------------------------------------


def check_tree(root: Path) -> list[str]:
    compose = root / "compose.yaml"
    if not compose.is_file():
        return ["compose.yaml is missing from the tree"]
    try:
        yaml.safe_load(compose.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        return [f"compose.yaml is not valid YAML: {error}"]
    return []


def check_secrets(root: Path) -> list[str]:
    directory = root / "secrets"
    problems = []
    for spec in stack_secrets.SPECS:
        path = directory / spec.name
        if not path.is_file():
            problems.append(f"secrets/{spec.name} is missing")
        elif not spec.provisioned and path.stat().st_size == 0:
            problems.append(f"secrets/{spec.name} is empty")
    return problems


def _file_names(value: Any) -> list[str]:
    if isinstance(value, dict):
        names = []
        for key, item in value.items():
            if key == "fileName" and isinstance(item, str):
                names.append(item)
            else:
                names.extend(_file_names(item))
        return names
    if isinstance(value, list):
        return [name for item in value for name in _file_names(item)]
    return []


def check_influx(root: Path) -> list[str]:
    manifests = sorted(root.glob("*.manifest"))
    if not manifests:
        return ["no *.manifest file: not an `influx backup` directory"]
    problems = []
    for manifest in manifests:
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            problems.append(f"{manifest.name} is not valid JSON: {error}")
            continue
        for name in _file_names(data):
            if not (root / name).is_file():
                problems.append(f"{name}, listed in {manifest.name}, is missing")
    return problems


def check_emqx(root: Path) -> list[str]:
    archives = sorted(root.glob("emqx-export-*.tar.gz"))
    if len(archives) != 1:
        return [f"expected one emqx-export-*.tar.gz, found {len(archives)}"]
    try:
        with tarfile.open(archives[0], "r:gz") as archive:
            members = archive.getnames()
    except (tarfile.TarError, OSError) as error:
        return [f"{archives[0].name} is not a readable tar.gz: {error}"]
    if not members:
        return [f"{archives[0].name} is empty"]
    return []


def check_harbor_db(root: Path) -> list[str]:
    dump = root / f"{HARBOR_DATABASE}.sql"
    if not dump.is_file():
        return [f"{dump.name} is missing"]
    with dump.open("rb") as handle:
        handle.seek(max(dump.stat().st_size - 4096, 0))
        tail = handle.read().decode("utf-8", "replace")
    if PG_DUMP_TRAILER not in tail:
        return [f"{dump.name} lacks pg_dump's closing line: the dump is truncated"]
    return []


def check_harbor_secret(root: Path) -> list[str]:
    if not (root / "keys" / "secretkey").is_file():
        return ["keys/secretkey is missing"]
    return []


def check_acme(root: Path) -> list[str]:
    acme = root / "acme.json"
    if not acme.is_file() or acme.stat().st_size == 0:
        return []
    try:
        json.loads(acme.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        return [f"acme.json is not valid JSON: {error}"]
    return []


def content_check(service: str, part: str) -> Callable[[Path], list[str]] | None:
    """Return the content check for a part, or None when only counts apply."""
    checks: dict[tuple[str, str], Callable[[Path], list[str]]] = {
        ("tree", "config"): check_tree,
        ("secrets", "files"): check_secrets,
        ("influxdb", "influx-backup"): check_influx,
        ("emqx", "data-export"): check_emqx,
        ("harbor", "database"): check_harbor_db,
        ("harbor", "secret-key"): check_harbor_secret,
        ("traefik", "volume-traefik_acme"): check_acme,
    }
    return checks.get((service, part))


# --- verify ------------------------------------------------------------------


def verify(
    restic: Restic,
    *,
    host: str,
    scratch: Path,
    run: str | None = None,
    services: Sequence[str] | None = None,
    read_data_subset: str | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Check the repository, then test-restore one run's parts into `scratch`."""
    report = VerifyReport(run=run)
    steps = progress or NoProgress()
    snapshots = [s for s in restic.snapshots(tags=[TAG]) if s.hostname == host]
    runs = group_runs(snapshots)
    selected = _latest_per_service(runs, run, services)
    steps.begin(len(selected) + 1, "verify")
    try:
        steps.step("restic check")
        try:
            report.check_output = restic.check(read_data_subset)
        except OpsError as error:
            report.check_error = str(error)
        if report.check_error is not None:
            # Restoring from a damaged repository retries each missing pack
            # for minutes; the failed check is the finding.
            report.parts = [
                PartCheck(
                    s.service or "?",
                    s.part or "?",
                    s.short_id,
                    problems=["test restore skipped: restic check failed"],
                )
                for s in selected
            ]
            return report
        scratch.mkdir(parents=True, exist_ok=True)
        for snapshot in selected:
            steps.step(f"{snapshot.service}/{snapshot.part}")
            report.parts.append(_restore_and_check(restic, snapshot, scratch))
    finally:
        steps.finish()
    if not selected:
        report.check_error = report.check_error or (
            f"no labdock snapshot from host {host} to test-restore; run "
            "`labdock backup run` first"
        )
    return report


def _latest_per_service(
    runs: Sequence[Any], run: str | None, services: Sequence[str] | None
) -> list[Snapshot]:
    chosen: dict[tuple[str, str], Snapshot] = {}
    for candidate in runs:
        if run not in (None, "latest") and candidate.id != run:
            continue
        for snapshot in candidate.snapshots:
            if services and snapshot.service not in services:
                continue
            chosen[(snapshot.service or "", snapshot.part or "")] = snapshot
    if run not in (None, "latest") and not chosen:
        raise OpsError(f"no run {run} in the repository; see `labdock backup list`")
    # Keep only the latest run of each service, so that a service whose
    # last run failed is checked at its last good run and parts stay together.
    latest: dict[str, Snapshot] = {}
    for snapshot in chosen.values():
        current = latest.get(snapshot.service or "")
        if current is None or snapshot.time > current.time:
            latest[snapshot.service or ""] = snapshot
    return sorted(
        (s for s in chosen.values() if s.time == latest[s.service or ""].time),
        key=lambda s: (s.service or "", s.part or ""),
    )


def _restore_and_check(restic: Restic, snapshot: Snapshot, scratch: Path) -> PartCheck:
    service = snapshot.service or "?"
    part = snapshot.part or "?"
    result = PartCheck(service, part, snapshot.short_id)
    target = Path(tempfile.mkdtemp(prefix=f"{service}-{part}-", dir=scratch))
    try:
        restic.restore(snapshot.id, target, verify=True)
        expected_entries, _size = restic.restore_size(snapshot.id)
        result.entries = count_entries(target)
        # restic's count includes the snapshot's root directory.
        if result.entries not in (expected_entries, expected_entries - 1):
            result.problems.append(
                f"restored {result.entries} entries, the snapshot contains "
                f"{expected_entries}"
            )
        check = content_check(service, part)
        if check is not None:
            result.problems.extend(check(target))
    except OpsError as error:
        result.problems.append(str(error))
    finally:
        shutil.rmtree(target, ignore_errors=True)
    level = logging.INFO if result.ok else logging.ERROR
    logger.log(
        level,
        "verify.part service=%s part=%s snapshot=%s entries=%d problems=%s",
        service,
        part,
        snapshot.short_id,
        result.entries,
        "; ".join(result.problems) or "none",
    )
    return result

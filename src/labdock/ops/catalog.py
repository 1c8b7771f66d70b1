"""The runs in a repository: snapshots grouped by run, and the latest per service."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from labdock.ops.backup import run_id
from labdock.ops.errors import OpsError
from labdock.ops.restic import Snapshot


@dataclass
class Run:
    """The snapshots one `backup run` wrote, which share host and time."""

    id: str
    time: datetime
    host: str
    snapshots: list[Snapshot] = field(default_factory=list)

    @property
    def services(self) -> list[str]:
        return sorted({s.service for s in self.snapshots if s.service})

    def parts(self, service: str) -> dict[str, Snapshot]:
        return {
            snapshot.part: snapshot
            for snapshot in self.snapshots
            if snapshot.service == service and snapshot.part
        }


def group_runs(snapshots: Iterable[Snapshot]) -> list[Run]:
    """Group labdock snapshots into runs, oldest first."""
    runs: dict[tuple[str, str], Run] = {}
    for snapshot in snapshots:
        identifier = run_id(snapshot.time)
        key = (snapshot.hostname, identifier)
        if key not in runs:
            runs[key] = Run(identifier, snapshot.time, snapshot.hostname)
        runs[key].snapshots.append(snapshot)
    return sorted(runs.values(), key=lambda run: (run.time, run.host))


def hosts(snapshots: Iterable[Snapshot]) -> list[str]:
    return sorted({snapshot.hostname for snapshot in snapshots})


def select_parts(
    snapshots: Sequence[Snapshot],
    service: str,
    *,
    host: str,
    run: str | None = None,
) -> dict[str, Snapshot]:
    """Return the parts of `service` from `run`, or from its latest run on `host`.

    Raises OpsError naming the hosts that do have snapshots when `host` has
    none, so that a restore on a new machine can suggest --from-host.
    """
    on_host = [s for s in snapshots if s.hostname == host and s.service == service]
    if not on_host:
        others = hosts(s for s in snapshots if s.service == service)
        hint = (
            f"; snapshots of {service} exist from {', '.join(others)}: pass "
            "--from-host NAME"
            if others
            else ""
        )
        raise OpsError(f"no snapshot of {service} from host {host}{hint}")
    runs = group_runs(on_host)
    if run is None or run == "latest":
        chosen = runs[-1]
    else:
        matching = [candidate for candidate in runs if candidate.id == run]
        if not matching:
            raise OpsError(
                f"run {run} has no snapshot of {service}; runs with {service}: "
                + ", ".join(candidate.id for candidate in runs[-5:])
            )
        chosen = matching[0]
    return chosen.parts(service)

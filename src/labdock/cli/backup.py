"""`labdock backup init|run|list|status|verify|restore|prune|schedule`."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from labdock.cli.stack import require_tree, resolve_tree, tree_option
from labdock.ops import backup as ops_backup
from labdock.ops import catalog, restore, schedule, status, verify
from labdock.ops.console import ToolError, format_bytes, format_table, setup_logging
from labdock.ops.errors import OpsError
from labdock.ops.progress import for_terminal
from labdock.ops.project import Project
from labdock.ops.settings import Settings, load_settings, resolve

F = TypeVar("F", bound=Callable[..., Any])


def repo_option(function: F) -> F:
    decorated: F = click.option(
        "--repo",
        "repository",
        default=None,
        help="restic repository (path or backend URL); default: backup.repository "
        "in .labdock/ops.yaml, then $RESTIC_REPOSITORY.",
    )(function)
    return decorated


def verbose_option(function: F) -> F:
    decorated: F = click.option(
        "-v", "--verbose", is_flag=True, help="Log every step and command."
    )(function)
    return decorated


def _context(directory: Path | None, verbose: bool) -> tuple[Path, Settings]:
    setup_logging(verbose)
    tree = resolve_tree(directory)
    try:
        return tree, load_settings(tree)
    except OpsError as error:
        raise ToolError(str(error)) from error


@click.group("backup")
def backup_group() -> None:
    """Back up the services' data into a restic repository, and restore it.

    Exit codes: 0 success, 1 a service or check failed (the others still
    ran), 2 usage or tool error (no repository, wrong password, ...).
    """


@backup_group.command("init")
@tree_option
@repo_option
@verbose_option
def init_command(directory: Path | None, repository: str | None, verbose: bool) -> None:
    """Create the repository password file (if missing) and the repository."""
    # The password file goes into the tree, so a wrong or default directory
    # must not get a secrets/ directory of its own.
    tree, settings = _context(require_tree(directory), verbose)
    try:
        restic, created = ops_backup.init_repository(tree, settings.backup, repository)
    except OpsError as error:
        raise ToolError(str(error)) from error
    verb = "created" if created else "found an existing"
    click.echo(f"{verb} restic repository {restic.repository}")
    click.echo(
        f"Keep a copy of {restic.password_file} away from this host: without it "
        "the repository cannot be read."
    )


@backup_group.command("run")
@click.argument("services", nargs=-1)
@tree_option
@repo_option
@click.option(
    "--include-secrets",
    is_flag=True,
    help="Also back up secrets/, Harbor's rendered passwords and secret volumes "
    "(only ever into the encrypted repository).",
)
@click.option(
    "--prune", is_flag=True, help="Apply the retention policy after the backup."
)
@verbose_option
def run_command(
    services: tuple[str, ...],
    directory: Path | None,
    repository: str | None,
    include_secrets: bool,
    prune: bool,
    verbose: bool,
) -> None:
    """Back up the tree's configuration and every service (or SERVICES).

    Each service is backed up by its method (native export, stop, pause or
    live copy of its volumes; see .labdock/ops.yaml). A failed service does
    not stop the others; the summary lists it and the exit code is 1.
    """
    tree, settings = _context(directory, verbose)
    try:
        restic = ops_backup.open_repository(tree, settings.backup, repository)
        with ops_backup.run_lock(tree), ops_backup.terminate_gracefully():
            project = Project.load(tree)
            plans = ops_backup.plan_run(
                project,
                settings.backup,
                tree=tree,
                services=list(services) or None,
                include_secrets=include_secrets,
            )
            runner = ops_backup.BackupRunner(
                tree, restic, settings.backup, project=project, progress=for_terminal()
            )
            report = runner.run(plans, prune=prune)
            status.write_status(
                report,
                status_file=resolve(tree, settings.backup.status_file),
                textfile=resolve(tree, settings.backup.textfile),
            )
    except OpsError as error:
        raise ToolError(str(error)) from error
    except ops_backup.Terminated as signal_number:
        click.echo(
            "backup run stopped by SIGTERM; the stopped services were started again",
            err=True,
        )
        raise SystemExit(128 + int(signal_number.args[0])) from None
    click.echo(_run_summary(report), nl=False)
    raise SystemExit(0 if report.ok else 1)


def _run_summary(report: ops_backup.RunReport) -> str:
    text = "".join(
        f"{action}, which a killed backup run had left stopped or paused\n"
        for action in report.resumed
    )
    rows = []
    for result in report.results:
        snapshots = [
            p.summary.snapshot_id if p.summary else f"({p.part.name} empty)"
            for p in result.parts
            if p.summary or p.empty
        ]
        rows.append(
            (
                result.service,
                result.method,
                "ok" if result.ok else "FAILED",
                format_bytes(result.added_bytes) if result.ok else "-",
                f"{result.duration:.1f}s",
                (result.failure() or "") if not result.ok else " ".join(snapshots),
            )
        )
    text += format_table(
        ("SERVICE", "METHOD", "RESULT", "ADDED", "TIME", "SNAPSHOTS / ERROR"), rows
    )
    failed = [result.service for result in report.results if not result.ok]
    run = ops_backup.run_id(report.time)
    if report.pruned is not None:
        removed = sum(len(group.remove) for group in report.pruned)
        text += f"retention: removed {removed} snapshots\n"
    if report.prune_error:
        text += f"retention FAILED: {report.prune_error}\n"
    if failed:
        text += (
            f"run {run}: {len(report.results) - len(failed)} of "
            f"{len(report.results)} backed up; FAILED: {', '.join(failed)}\n"
        )
    else:
        text += f"run {run}: all {len(report.results)} backed up\n"
    return text


def interrupted_message(record: dict[str, Any]) -> str:
    """Describe a quiesce record left by a killed run, with the fix."""
    containers = [*(record.get("stopped") or []), *(record.get("paused") or [])]
    return (
        f"WARNING: a backup run (pid {record.get('pid', '?')}, started "
        f"{record.get('started', '?')}) was killed while "
        f"{', '.join(containers) or 'its containers'} were stopped or paused; "
        "the next `labdock backup run`, `labdock up` or `labdock doctor` "
        "starts them again"
    )


@backup_group.command("list")
@tree_option
@repo_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--all-hosts", is_flag=True, help="Include runs of other hosts in the repository."
)
def list_command(
    directory: Path | None, repository: str | None, as_json: bool, all_hosts: bool
) -> None:
    """List the backup runs in the repository, oldest first."""
    tree, settings = _context(directory, False)
    try:
        restic = ops_backup.open_repository(tree, settings.backup, repository)
        snapshots = restic.snapshots(tags=[ops_backup.TAG])
    except OpsError as error:
        raise ToolError(str(error)) from error
    if not all_hosts:
        snapshots = [s for s in snapshots if s.hostname == settings.backup.host]
    runs = catalog.group_runs(snapshots)
    if as_json:
        data = [
            {
                "run": run.id,
                "host": run.host,
                "services": {
                    service: {
                        part: s.short_id for part, s in run.parts(service).items()
                    }
                    for service in run.services
                },
            }
            for run in runs
        ]
        click.echo(json.dumps(data, indent=2))
        return
    rows = [(run.id, run.host, " ".join(run.services)) for run in runs]
    click.echo(format_table(("RUN", "HOST", "SERVICES"), rows), nl=False)


@backup_group.command("status")
@tree_option
@click.option("--json", "as_json", is_flag=True, help="Print the status file as is.")
def status_command(directory: Path | None, as_json: bool) -> None:
    """Print the last backup attempt and success of each service."""
    # Outside a tree there is no status file, and an empty table with exit
    # 0 would read as a tree without services.
    tree, settings = _context(require_tree(directory), False)
    try:
        data = status.load_status(resolve(tree, settings.backup.status_file))
    except OpsError as error:
        raise ToolError(str(error)) from error
    left = ops_backup.read_quiesce_record(tree)
    if as_json:
        if left is not None:
            data = {**data, "interrupted_run": left}
        click.echo(json.dumps(data, indent=2))
        return
    if left is not None:
        click.echo(interrupted_message(left))
    rows = [
        (
            service,
            str(entry.get("last_success") or "never"),
            str(entry.get("last_result") or "-"),
            str(entry.get("last_error") or ""),
        )
        for service, entry in sorted((data.get("services") or {}).items())
    ]
    click.echo(
        format_table(("SERVICE", "LAST SUCCESS", "LAST RESULT", "ERROR"), rows),
        nl=False,
    )


@backup_group.command("verify")
@click.argument("services", nargs=-1)
@tree_option
@repo_option
@click.option("--run", "run", default=None, help="Run id to check (default: latest).")
@click.option(
    "--read-data-subset",
    default=None,
    help="Also read this share of the data packs, e.g. 5% or 1/7.",
)
@verbose_option
def verify_command(
    services: tuple[str, ...],
    directory: Path | None,
    repository: str | None,
    run: str | None,
    read_data_subset: str | None,
    verbose: bool,
) -> None:
    """Run `restic check`, then test-restore the latest run and check its content."""
    tree, settings = _context(directory, verbose)
    try:
        restic = ops_backup.open_repository(tree, settings.backup, repository)
        with tempfile.TemporaryDirectory(prefix="labdock-verify-") as scratch:
            report = verify.verify(
                restic,
                host=settings.backup.host,
                scratch=Path(scratch),
                run=run,
                services=list(services) or None,
                read_data_subset=read_data_subset or settings.backup.read_data_subset,
                progress=for_terminal(),
            )
    except OpsError as error:
        raise ToolError(str(error)) from error
    rows = [
        (
            part.service,
            part.part,
            part.snapshot,
            "ok" if part.ok else "FAILED",
            "; ".join(part.problems),
        )
        for part in report.parts
    ]
    click.echo(
        format_table(("SERVICE", "PART", "SNAPSHOT", "RESULT", "PROBLEMS"), rows),
        nl=False,
    )
    if report.check_error:
        click.echo(f"restic check FAILED: {report.check_error}")
    else:
        click.echo("restic check: no errors were found")
    raise SystemExit(0 if report.ok else 1)


@backup_group.command("restore")
@click.argument("services", nargs=-1)
@tree_option
@repo_option
@click.option("--run", "run", default=None, help="Run id to restore (default: latest).")
@click.option(
    "--from-host",
    default=None,
    help="Host whose snapshots to restore (default: this host's backup.host).",
)
@click.option(
    "--to",
    "target",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Restore into this tree instead, e.g. on a fresh host or data root.",
)
@click.option(
    "--include-secrets", is_flag=True, help="Restore secrets/ too (if backed up)."
)
@click.option(
    "--project-name",
    default=None,
    help="Compose project name to give the restored tree (written to its .env), "
    "so that it runs beside the live project of the same host.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace volumes and directories that are not empty, and the tree.",
)
@verbose_option
def restore_command(
    services: tuple[str, ...],
    directory: Path | None,
    repository: str | None,
    run: str | None,
    from_host: str | None,
    target: Path | None,
    include_secrets: bool,
    project_name: str | None,
    force: bool,
    verbose: bool,
) -> None:
    """Restore SERVICES (default: all) from the latest run, or from --run.

    Order: tree, secrets, traefik, socket-proxy, emqx, influxdb, lam,
    harbor, then sensor-acquisition. Services are stopped while their
    volumes are replaced and started again afterwards. A restore refuses
    to act when another tree's containers use the target's project name;
    pass --project-name for a restore beside the live project.
    """
    tree, settings = _context(directory, verbose)
    destination = (target or tree).resolve()
    try:
        restic = ops_backup.open_repository(tree, settings.backup, repository)
        restorer = restore.Restorer(
            destination,
            restic,
            settings.backup,
            host=from_host or settings.backup.host,
            run=run,
            force=force,
            include_secrets=include_secrets,
            project_name=project_name,
            progress=for_terminal(),
        )
        # A backup run or an update on the same tree stops and starts services,
        # so it must not overlap a restore that replaces their volumes.
        with ops_backup.run_lock(destination, "backup restore"):
            report = restorer.restore(list(services) or None)
    except OpsError as error:
        raise ToolError(str(error)) from error
    rows = [
        (
            result.service,
            "ok"
            if result.ok and not result.skipped
            else ("skipped" if result.ok else "FAILED"),
            " ".join(result.parts),
            result.error or result.skipped or "",
        )
        for result in report.results
    ]
    click.echo(format_table(("SERVICE", "RESULT", "PARTS", "DETAIL"), rows), nl=False)
    raise SystemExit(0 if report.ok else 1)


@backup_group.command("prune")
@tree_option
@repo_option
@click.option("--dry-run", is_flag=True, help="Print what would be removed.")
@verbose_option
def prune_command(
    directory: Path | None, repository: str | None, dry_run: bool, verbose: bool
) -> None:
    """Apply the retention policy (restic forget --prune) per service and part."""
    tree, settings = _context(directory, verbose)
    try:
        restic = ops_backup.open_repository(tree, settings.backup, repository)
        with ops_backup.run_lock(tree, "backup prune"):
            restic.clear_stale_locks()
            groups = restic.forget_policy(
                settings.backup.retention.policy(),
                tags=[ops_backup.TAG],
                dry_run=dry_run,
            )
    except OpsError as error:
        raise ToolError(str(error)) from error
    rows = [
        (
            ",".join(t for t in group.tags if t != ops_backup.TAG),
            group.host,
            str(len(group.keep)),
            " ".join(group.remove) or "-",
        )
        for group in groups
    ]
    click.echo(format_table(("GROUP", "HOST", "KEPT", "REMOVED"), rows), nl=False)
    if dry_run:
        click.echo("dry run: nothing was removed")


@backup_group.command("schedule")
@tree_option
@click.option(
    "--at", default="03:15", show_default=True, help="Daily time, HH:MM local time."
)
@click.option("--cron", is_flag=True, help="Print a crontab line instead of units.")
@click.option(
    "--unit-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=schedule.SYSTEMD_UNIT_DIR,
    show_default=True,
    help="Where to write the systemd units.",
)
@click.option(
    "--no-enable", is_flag=True, help="Write the units without enabling the timer."
)
def schedule_command(
    directory: Path | None, at: str, cron: bool, unit_dir: Path, no_enable: bool
) -> None:
    """Run `labdock backup run --prune` daily: a systemd timer or a cron line.

    The units are always written; the timer is enabled only when systemd
    is the init system (and not with --no-enable).
    """
    # A timer for a directory without compose.yaml would fail every night.
    tree, _settings = _context(require_tree(directory), False)
    plan = schedule.Schedule(tree=tree, at=at)
    try:
        if cron:
            click.echo(schedule.cron_line(plan))
            return
        written, enabled = schedule.install_timer(
            plan, unit_dir=unit_dir, enable=False if no_enable else None
        )
    except OpsError as error:
        raise ToolError(str(error)) from error
    for path in written:
        click.echo(f"wrote {path}")
    if enabled:
        click.echo(f"enabled {schedule.UNIT_NAME}.timer")
    elif no_enable:
        click.echo(
            f"the timer was not enabled; run `systemctl enable --now "
            f"{schedule.UNIT_NAME}.timer` when the tree is ready"
        )
    else:
        click.echo(
            "systemd is not running here, so the timer was not enabled; run "
            f"`systemctl enable --now {schedule.UNIT_NAME}.timer` on a systemd "
            "host, or add this line with `crontab -e`:"
        )
        click.echo(schedule.cron_line(plan))


COMMANDS = [backup_group]

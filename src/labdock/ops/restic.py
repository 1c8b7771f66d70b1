"""The restic repository: commands, their JSON output, locks and exit codes.

Written against restic 0.14 (Debian 12). Every call goes through
labdock.execute with RESTIC_REPOSITORY and RESTIC_PASSWORD_FILE in the
environment, so neither the repository URL nor the password appears on a
command line.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from labdock import execute
from labdock.ops.errors import OpsError

logger = logging.getLogger(__name__)

# restic treats a lock as stale when it is older than this, or when it was
# created on this host by a process that no longer runs (restic's design
# document, "Locks").
STALE_LOCK_AGE = timedelta(minutes=30)
# restic backup exits 3 when it wrote a snapshot but could not read some
# source files (restic 0.14 `backup --help`, "Exit status").
EXIT_INCOMPLETE = 3

_NOT_A_REPOSITORY = (
    "Is there a repository at the following location?",
    "unable to open config file",
    "repository does not exist",
)
_WRONG_PASSWORD = "wrong password or no key found"
_LOCKED = "repository is already locked"


class ResticError(OpsError):
    """A restic command failed; `kind` names the cause when it is known."""

    def __init__(self, message: str, kind: str = "failed") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Snapshot:
    """One restic snapshot, as `restic snapshots --json` lists it."""

    id: str
    short_id: str
    time: datetime
    hostname: str
    tags: tuple[str, ...]
    paths: tuple[str, ...]

    def tag_value(self, key: str) -> str | None:
        """Return VALUE of the first tag KEY=VALUE, or None."""
        prefix = key + "="
        for tag in self.tags:
            if tag.startswith(prefix):
                return tag[len(prefix) :]
        return None

    @property
    def service(self) -> str | None:
        return self.tag_value("service")

    @property
    def part(self) -> str | None:
        return self.tag_value("part")


@dataclass(frozen=True)
class BackupSummary:
    """The summary line of `restic backup --json`."""

    snapshot_id: str
    files_new: int
    files_changed: int
    files_unmodified: int
    data_added: int
    total_files_processed: int
    total_bytes_processed: int
    total_duration: float


@dataclass(frozen=True)
class Lock:
    """A lock file in the repository (`restic cat lock ID`)."""

    id: str
    time: datetime
    exclusive: bool
    hostname: str
    username: str
    pid: int


@dataclass(frozen=True)
class ForgetGroup:
    """One group of `restic forget --json`: what the policy keeps and removes."""

    tags: tuple[str, ...]
    host: str
    keep: tuple[str, ...]
    remove: tuple[str, ...]


@dataclass(frozen=True)
class RetentionPolicy:
    """restic forget's --keep-* options; None leaves an option out."""

    keep_last: int | None = None
    keep_hourly: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_yearly: int | None = None
    keep_within: str | None = None

    def arguments(self) -> list[str]:
        """Return the --keep-* arguments; raise OpsError when none is set."""
        arguments: list[str] = []
        for name in (
            "keep_last",
            "keep_hourly",
            "keep_daily",
            "keep_weekly",
            "keep_monthly",
            "keep_yearly",
            "keep_within",
        ):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, int) and value < 0:
                raise OpsError(f"retention {name} is {value}; use 0 or more")
            arguments += ["--" + name.replace("_", "-"), str(value)]
        if not arguments:
            raise OpsError(
                "the retention policy is empty, so restic would keep nothing; "
                "set at least one of keep_last, keep_daily, keep_weekly, "
                "keep_monthly, keep_yearly or keep_within under retention: in "
                ".labdock/backup.yaml"
            )
        return arguments


def parse_time(text: str) -> datetime:
    """Parse restic's RFC 3339 times, whose fractions have up to 9 digits."""
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    if not match:
        raise ResticError(f"unexpected time {text!r} in restic output", "output")
    base, fraction, zone = match.groups()
    micro = (fraction or ".0")[1:7].ljust(6, "0")
    zone = "+00:00" if zone == "Z" else zone
    return datetime.fromisoformat(f"{base}.{micro}{zone}")


def parse_snapshots(output: str) -> list[Snapshot]:
    """Parse `restic snapshots --json` into snapshots sorted by time."""
    data = json.loads(output or "[]") or []
    snapshots = [
        Snapshot(
            id=str(item["id"]),
            short_id=str(item.get("short_id") or item["id"][:8]),
            time=parse_time(str(item["time"])),
            hostname=str(item.get("hostname", "")),
            tags=tuple(item.get("tags") or ()),
            paths=tuple(item.get("paths") or ()),
        )
        for item in data
    ]
    return sorted(snapshots, key=lambda snapshot: snapshot.time)


def parse_backup_summary(output: str) -> BackupSummary:
    """Return the summary of `restic backup --json`, whose other lines are status."""
    for line in reversed(output.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if message.get("message_type") != "summary":
            continue
        return BackupSummary(
            snapshot_id=str(message["snapshot_id"]),
            files_new=int(message.get("files_new", 0)),
            files_changed=int(message.get("files_changed", 0)),
            files_unmodified=int(message.get("files_unmodified", 0)),
            data_added=int(message.get("data_added", 0)),
            total_files_processed=int(message.get("total_files_processed", 0)),
            total_bytes_processed=int(message.get("total_bytes_processed", 0)),
            total_duration=float(message.get("total_duration", 0.0)),
        )
    raise ResticError("restic backup printed no summary line", "output")


def parse_lock(lock_id: str, output: str) -> Lock:
    """Parse the JSON of `restic cat lock ID`."""
    data = json.loads(output)
    return Lock(
        id=lock_id,
        time=parse_time(str(data["time"])),
        exclusive=bool(data.get("exclusive", False)),
        hostname=str(data.get("hostname", "")),
        username=str(data.get("username", "")),
        pid=int(data.get("pid", 0)),
    )


def parse_forget(output: str) -> list[ForgetGroup]:
    """Parse `restic forget --json`: one JSON line contains the group list."""
    groups: list[dict[str, Any]] = []
    for line in output.splitlines():
        line = line.strip()
        # With --prune, progress lines such as "[0:00] 100.00% ..." follow.
        if not line.startswith("[{") and line != "[]":
            continue
        try:
            groups = json.loads(line)
        except json.JSONDecodeError:
            continue
        break
    return [
        ForgetGroup(
            tags=tuple(group.get("tags") or ()),
            host=str(group.get("host", "")),
            keep=tuple(item["short_id"] for item in group.get("keep") or ()),
            remove=tuple(item["short_id"] for item in group.get("remove") or ()),
        )
        for group in groups
    ]


def process_alive(pid: int) -> bool:
    """Return whether a process with this PID runs, as restic checks it (signal 0)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_reason(
    lock: Lock,
    *,
    now: datetime,
    hostname: str,
    alive: Callable[[int], bool] = process_alive,
) -> str | None:
    """Return why restic would treat `lock` as stale, or None if it is live.

    The rule is restic's own, so `restic unlock` removes exactly the locks
    this returns a reason for.
    """
    age = now - lock.time
    if age > STALE_LOCK_AGE:
        return f"it is {format_age(age)} old (restic's limit is 30 minutes)"
    if lock.hostname == hostname and not alive(lock.pid):
        return f"process {lock.pid} on this host ({hostname}) no longer runs"
    return None


def format_age(age: timedelta) -> str:
    """Return an age as '3d 4h', '2h 5m', '7m 3s' or '12s'."""
    seconds = max(int(age.total_seconds()), 0)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {seconds}s"
    return f"{seconds}s"


def error_text(output: str) -> str:
    """Return restic's error output without Go stack traces and retry notices.

    restic 0.14 printed a stack trace (a function line, then a tab-indented
    file line, per frame) when its repository was on a read-only file
    system, and it prints one line per retry before it gives up. Both push
    the cause out of a shortened message.
    """
    lines = output.strip().splitlines()
    message_lines = []
    for index, line in enumerate(lines):
        if line.startswith("\t") or "returned error, retrying after" in line:
            continue
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if following.startswith("\t"):
            continue
        message_lines.append(line)
    return "\n".join(message_lines)


def classify_failure(text: str) -> str:
    """Return the kind of a restic failure from its error output."""
    if _LOCKED in text:
        return "locked"
    if _WRONG_PASSWORD in text:
        return "password"
    if any(marker in text for marker in _NOT_A_REPOSITORY):
        return "no-repository"
    return "failed"


def restic_time(moment: datetime) -> str:
    """Format a time for `restic backup --time`, which reads local time."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


class Restic:
    """One restic repository and the password file that opens it."""

    def __init__(
        self,
        repository: str,
        password_file: Path,
        *,
        cache_dir: Path | None = None,
        binary: str = "restic",
        environment: Mapping[str, str] | None = None,
        hostname: str | None = None,
    ) -> None:
        self.repository = repository
        self.password_file = password_file
        self.cache_dir = cache_dir
        self.binary = binary
        self.extra_environment = dict(environment or {})
        self.hostname = hostname or socket.gethostname()

    def environment(self) -> dict[str, str]:
        """Return the variables every restic call gets."""
        env = {
            **self.extra_environment,
            "RESTIC_REPOSITORY": self.repository,
            "RESTIC_PASSWORD_FILE": str(self.password_file),
        }
        if self.cache_dir is not None:
            env["RESTIC_CACHE_DIR"] = str(self.cache_dir)
        return env

    def command(self, *args: str) -> list[str]:
        """Return the argv of `restic ARGS`."""
        return [self.binary, *args]

    def run(
        self,
        *args: str,
        cwd: Path | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> execute.CommandResult:
        """Run `restic ARGS`; a failure raises ResticError with its kind."""
        try:
            result = execute.run(
                self.command(*args),
                cwd=cwd,
                env=self.environment(),
                timeout=timeout,
                check=False,
            )
        except execute.CommandError as error:
            raise ResticError(
                f"{error}; install restic (apt install restic)"
            ) from error
        if check and result.returncode != 0:
            raise self._error(args, result)
        return result

    def _error(self, args: Sequence[str], result: execute.CommandResult) -> ResticError:
        # Blank stderr (or stderr of retry notices alone) must not hide stdout.
        text = (error_text(result.stderr) or error_text(result.stdout))[-2000:]
        kind = classify_failure(text)
        command = f"restic {args[0]}" if args else "restic"
        if kind == "no-repository":
            return ResticError(
                f"{command}: no restic repository at {self.repository}; "
                "run `labdock backup init` to create it",
                kind,
            )
        if kind == "password":
            return ResticError(
                f"{command}: the password in {self.password_file} does not open "
                f"{self.repository}; put the repository's password in that file",
                kind,
            )
        if kind == "locked":
            return ResticError(
                f"{command}: {self.repository} is locked by another restic process: "
                f"{text}. Wait for that process, or run `labdock doctor` to see "
                "whether the lock is stale",
                kind,
            )
        return ResticError(
            f"{command} failed with exit code {result.returncode}: {text}", kind
        )

    # --- repository ---------------------------------------------------------

    def is_initialized(self) -> bool:
        """Return whether the repository exists and the password opens it."""
        result = self.run("cat", "config", "--no-lock", check=False)
        if result.returncode == 0:
            return True
        error = self._error(["cat"], result)
        if error.kind == "no-repository":
            return False
        raise error

    def init(self) -> None:
        """Create the repository."""
        self.run("init")
        logger.info("restic.init repository=%s", self.repository)

    # --- backup and snapshots -----------------------------------------------

    def backup(
        self,
        source: Path,
        *,
        tags: Iterable[str],
        time: datetime,
        paths: Sequence[str] = (".",),
        excludes: Iterable[str] = (),
    ) -> BackupSummary:
        """Back up PATHS relative to `source` as one snapshot.

        With the default path `.` the snapshot's root is the content of
        `source`, so a restore with --target DIR recreates it in DIR.
        """
        args = [
            "backup",
            "--json",
            "--quiet",
            "--host",
            self.hostname,
            "--time",
            restic_time(time),
        ]
        for tag in tags:
            args += ["--tag", tag]
        for pattern in excludes:
            args += ["--exclude", pattern]
        result = self.run(*args, "--", *paths, cwd=source, check=False)
        if result.returncode == EXIT_INCOMPLETE:
            summary = parse_backup_summary(result.stdout)
            raise ResticError(
                f"restic could not read some files under {source}, so snapshot "
                f"{summary.snapshot_id} is incomplete: {result.stderr.strip()[-1000:]}",
                "incomplete",
            )
        if result.returncode != 0:
            raise self._error(["backup"], result)
        return parse_backup_summary(result.stdout)

    def snapshots(self, tags: Iterable[str] = ()) -> list[Snapshot]:
        """Return the snapshots that carry all of `tags`, oldest first."""
        args = ["snapshots", "--json", "--no-lock"]
        tag_list = ",".join(tags)
        if tag_list:
            args += ["--tag", tag_list]
        return parse_snapshots(self.run(*args).stdout)

    def forget_ids(self, ids: Iterable[str]) -> None:
        """Remove these snapshots (their data stays until the next prune)."""
        id_list = list(ids)
        if id_list:
            self.run("forget", *id_list)

    def forget_policy(
        self,
        policy: RetentionPolicy,
        *,
        tags: Iterable[str],
        group_by: str = "host,tags",
        prune: bool = True,
        dry_run: bool = False,
    ) -> list[ForgetGroup]:
        """Apply `policy` to each group; return what it kept and removed."""
        args = ["forget", "--json", "--group-by", group_by, *policy.arguments()]
        tag_list = ",".join(tags)
        if tag_list:
            args += ["--tag", tag_list]
        if dry_run:
            args.append("--dry-run")
        elif prune:
            args.append("--prune")
        return parse_forget(self.run(*args).stdout)

    def restore(self, snapshot_id: str, target: Path, *, verify: bool = False) -> None:
        """Restore a snapshot's content into `target`."""
        args = ["restore", snapshot_id, "--target", str(target)]
        if verify:
            args.append("--verify")
        self.run(*args)

    def restore_size(self, snapshot_id: str) -> tuple[int, int]:
        """Return (file count, bytes) that a restore of the snapshot writes."""
        result = self.run(
            "stats", snapshot_id, "--mode", "restore-size", "--json", "--no-lock"
        )
        data = json.loads(result.stdout)
        return int(data.get("total_file_count", 0)), int(data.get("total_size", 0))

    def check(self, read_data_subset: str | None = None) -> str:
        """Run `restic check`; return its output."""
        args = ["check"]
        if read_data_subset:
            args.append(f"--read-data-subset={read_data_subset}")
        result = self.run(*args)
        return result.stdout

    # --- locks --------------------------------------------------------------

    def locks(self) -> list[Lock]:
        """Return the lock files in the repository."""
        listed = self.run("list", "locks", "--no-lock")
        locks = []
        for lock_id in listed.stdout.split():
            shown = self.run("cat", "lock", lock_id, "--no-lock", check=False)
            if shown.returncode != 0:
                # The lock was removed between the two calls.
                continue
            locks.append(parse_lock(lock_id, shown.stdout))
        return locks

    def unlock(self) -> None:
        """Remove the stale locks (restic unlock leaves live ones alone)."""
        self.run("unlock")

    def clear_stale_locks(self, now: datetime | None = None) -> list[Lock]:
        """Remove stale locks with `restic unlock` and return the live ones.

        Each stale lock is logged with its owner and the reason before it
        is removed.
        """
        moment = now or datetime.now(UTC)
        live: list[Lock] = []
        stale = False
        for lock in self.locks():
            # restic records the machine's own host name in locks, which may
            # differ from the host name given to snapshots.
            reason = stale_reason(lock, now=moment, hostname=socket.gethostname())
            if reason is None:
                live.append(lock)
                continue
            stale = True
            logger.warning(
                "restic.stale_lock lock=%s pid=%d host=%s created=%s: removing it "
                "with `restic unlock` because %s",
                lock.id[:8],
                lock.pid,
                lock.hostname,
                lock.time.isoformat(timespec="seconds"),
                reason,
            )
        if stale:
            self.unlock()
        return live

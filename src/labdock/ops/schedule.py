"""`labdock backup schedule`: a systemd timer, or a cron line without systemd."""

from __future__ import annotations

import logging
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from labdock import execute
from labdock.ops.errors import OpsError

logger = logging.getLogger(__name__)

UNIT_NAME = "labdock-backup"
SYSTEMD_UNIT_DIR = Path("/etc/systemd/system")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class Schedule:
    """When and how the scheduled backup runs."""

    tree: Path
    at: str = "03:15"
    labdock: str = ""
    randomized_delay: str = "15min"

    def hour_minute(self) -> tuple[int, int]:
        match = _TIME.match(self.at)
        if not match:
            raise OpsError(f"--at {self.at!r} is not a time; use HH:MM, e.g. 03:15")
        return int(match.group(1)), int(match.group(2))

    def command(self) -> list[str]:
        """Return the argv the timer or cron runs."""
        program = self.labdock or str(Path(sys.executable).parent / "labdock")
        return [program, "backup", "run", "--prune", "-C", str(self.tree)]


def service_unit(schedule: Schedule) -> str:
    """Return the text of labdock-backup.service."""
    return (
        "[Unit]\n"
        "Description=labdock backup of the services tree into restic\n"
        "Wants=network-online.target docker.service\n"
        "After=network-online.target docker.service\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"ExecStart={shlex.join(schedule.command())}\n"
        # restic and Docker volumes need root on the Docker host.
        "User=root\n"
        "Nice=10\n"
        "IOSchedulingClass=idle\n"
    )


def timer_unit(schedule: Schedule) -> str:
    """Return the text of labdock-backup.timer."""
    hour, minute = schedule.hour_minute()
    return (
        "[Unit]\n"
        "Description=Daily labdock backup\n"
        "\n"
        "[Timer]\n"
        f"OnCalendar=*-*-* {hour:02d}:{minute:02d}:00\n"
        # Catch up on a run missed while the host was off.
        "Persistent=true\n"
        f"RandomizedDelaySec={schedule.randomized_delay}\n"
        "\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )


def cron_line(schedule: Schedule) -> str:
    """Return a crontab line (for `crontab -e` as root) running the backup daily."""
    hour, minute = schedule.hour_minute()
    return f"{minute} {hour} * * * {shlex.join(schedule.command())}"


def systemd_running(run_dir: Path = Path("/run/systemd/system")) -> bool:
    """Return whether systemd is the init system (sd_booted's test)."""
    return run_dir.is_dir()


def install_timer(
    schedule: Schedule,
    *,
    unit_dir: Path = SYSTEMD_UNIT_DIR,
    enable: bool | None = None,
) -> tuple[list[Path], bool]:
    """Write the two units; enable the timer when systemd runs.

    Returns the written files and whether the timer was enabled. `enable`
    None means: enable exactly when systemd runs.
    """
    unit_dir.mkdir(parents=True, exist_ok=True)
    service = unit_dir / f"{UNIT_NAME}.service"
    timer = unit_dir / f"{UNIT_NAME}.timer"
    service.write_text(service_unit(schedule), encoding="utf-8")
    timer.write_text(timer_unit(schedule), encoding="utf-8")
    should_enable = systemd_running() if enable is None else enable
    if should_enable:
        try:
            execute.run(["systemctl", "daemon-reload"])
            execute.run(["systemctl", "enable", "--now", f"{UNIT_NAME}.timer"])
        except execute.CommandError as error:
            raise OpsError(
                f"wrote {service} and {timer}, but enabling the timer failed: {error}"
            ) from error
        logger.info("schedule.enabled timer=%s", timer)
    return [service, timer], should_enable

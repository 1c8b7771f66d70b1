"""CPU time and resident memory of process trees, read from /proc (Linux only)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _read_stat(pid: int) -> tuple[int, float, float, int] | None:
    """Return (parent pid, user CPU seconds, system CPU seconds, resident
    bytes) of `pid`."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        statm = Path(f"/proc/{pid}/statm").read_text()
    except OSError:
        return None
    # The command name in brackets may contain spaces; the fields after it don't.
    fields = stat[stat.rindex(")") + 2 :].split()
    parent = int(fields[1])
    user = int(fields[11]) / CLOCK_TICKS
    system = int(fields[12]) / CLOCK_TICKS
    resident = int(statm.split()[1]) * PAGE_SIZE
    return parent, user, system, resident


def descendants(roots: set[int]) -> set[int]:
    """Return `roots` and every live process below them."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found = {pid for pid in roots if pid in parents}
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in found and pid not in found:
                found.add(pid)
                changed = True
    return found


def all_processes() -> dict[int, tuple[str, float]]:
    """Return the command name and CPU seconds of every process."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(entry.name)] = (name, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return found


def busiest_others(
    before: dict[int, tuple[str, float]], exclude: set[int], count: int = 3
) -> list[tuple[str, float]]:
    """Return the processes outside `exclude` that used the most CPU since `before`."""
    used = []
    for pid, (name, cpu) in all_processes().items():
        if pid in exclude:
            continue
        delta = cpu - before.get(pid, (name, 0.0))[1]
        if delta > 0.05:
            used.append((f"{name}[{pid}]", round(delta, 2)))
    return sorted(used, key=lambda item: -item[1])[:count]


@dataclass
class TreeUsage:
    """CPU and memory of one group of process trees, as sampled so far."""

    roots: set[int]
    tree: bool = True  # False: the roots only, without their children
    cpu_by_pid: dict[int, float] = field(default_factory=dict)
    system_by_pid: dict[int, float] = field(default_factory=dict)
    peak_rss: int = 0
    cpu_mark: float = 0.0
    system_mark: float = 0.0

    @property
    def cpu(self) -> float:
        """CPU seconds of every process seen, up to its last sample."""
        return sum(self.cpu_by_pid.values())

    def sample(self) -> None:
        rss = 0
        for pid in descendants(self.roots) if self.tree else self.roots:
            values = _read_stat(pid)
            if values is None:
                continue
            _, user, system, resident = values
            self.cpu_by_pid[pid] = user + system
            self.system_by_pid[pid] = system
            rss += resident
        self.peak_rss = max(self.peak_rss, rss)

    def mark(self) -> None:
        """Start counting CPU and peak memory from now."""
        self.sample()
        self.cpu_mark = self.cpu
        self.system_mark = sum(self.system_by_pid.values())
        self.peak_rss = 0
        self.sample()

    def cpu_since_mark(self) -> float:
        return self.cpu - self.cpu_mark

    def system_since_mark(self) -> float:
        """Return the kernel-mode part of `cpu_since_mark()`."""
        return sum(self.system_by_pid.values()) - self.system_mark


class Sampler:
    """Sample several named process groups every `interval` seconds in a thread."""

    def __init__(
        self, groups: dict[str, set[int]], interval: float = 0.1, flat: frozenset[str] = frozenset()
    ) -> None:
        self.groups = {
            name: TreeUsage(set(roots), tree=name not in flat) for name, roots in groups.items()
        }
        self.interval = interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> Sampler:
        for usage in self.groups.values():
            usage.mark()
        self._thread.start()
        return self

    def add_group(self, name: str, roots: set[int]) -> None:
        """Start sampling another group, counting its CPU from now."""
        usage = TreeUsage(set(roots))
        usage.mark()
        with self._lock:
            self.groups[name] = usage

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                groups = list(self.groups.values())
            for usage in groups:
                usage.sample()

    def stop(self) -> dict[str, TreeUsage]:
        """Take a last sample, stop, and return the usage of each group."""
        self._stop.set()
        self._thread.join()
        for usage in self.groups.values():
            usage.sample()
        return self.groups

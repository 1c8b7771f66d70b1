"""Benchmark `labdock acquire` against other MQTT-to-InfluxDB ingesters.

Each run starts a fresh Mosquitto and a fresh database server on loopback
and one contender, which it warms up until a first point is stored. Then
several publisher processes send QoS 1 messages, either as fast as the
broker takes them (`max`) or at a fixed rate (`fixed`). Meanwhile the
harness counts the stored messages in the database, polls for probe
messages to measure latency from publish to queryable, and samples the
contender's processes in /proc. `bench/README.md` explains the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))

from contenders import (  # noqa: E402
    Contender,
    Labdock,
    Run,
    Tools,
    all_contenders,
    tuning_contenders,
)
from procstat import Sampler, TreeUsage, all_processes, busiest_others  # noqa: E402
from profile_summary import summarize  # noqa: E402
from publisher import payload_for  # noqa: E402
from stores import InfluxStore, ReceiptFile, Store, VictoriaStore  # noqa: E402

from components import InfluxDB1, Mosquitto, VictoriaMetrics  # noqa: E402

# Broker limits of every run: no cap on queued messages, so a slow subscriber
# makes the broker hold messages instead of dropping them, and up to 10,000
# unacknowledged QoS 1 messages in flight to each subscriber (Mosquitto's
# default is 20).
BROKER_MAX_INFLIGHT = 10_000


@dataclass(frozen=True)
class Sizes:
    """Message counts and time limits of a benchmark."""

    fast: int  # messages of a max-rate run for contenders above ~10k msg/s
    medium: int
    slow: int
    publishers: int
    fixed_seconds: float  # length of a fixed-rate run
    stall_seconds: float  # a count that stays flat this long ends the run
    run_timeout: float  # seconds after the first publish that end any run
    probe_interval: float  # seconds between probes of one publisher

    def count(self, size: str) -> int:
        return {"fast": self.fast, "medium": self.medium, "slow": self.slow}[size]


FULL = Sizes(
    fast=200_000, medium=100_000, slow=20_000, publishers=3, fixed_seconds=15,
    stall_seconds=6, run_timeout=150, probe_interval=0.05,
)  # fmt: skip
SMOKE = Sizes(
    fast=3_000, medium=2_000, slow=1_000, publishers=2, fixed_seconds=3,
    stall_seconds=3, run_timeout=30, probe_interval=0.02,
)  # fmt: skip


@dataclass
class Publishing:
    """The publisher processes of one run and what they reported."""

    processes: list[subprocess.Popen[str]]
    probes: dict[int, int] = field(default_factory=dict)  # sent_us -> seq
    reports: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("probe "):
                _, seq, sent = line.split()
                with self.lock:
                    self.probes[int(sent)] = int(seq)
            elif line.startswith("{"):
                with self.lock:
                    self.reports.append(json.loads(line))

    @property
    def finished(self) -> bool:
        return all(process.poll() is not None for process in self.processes)


def start_publishers(
    broker_port: int, count: int, rate: float, sizes: Sizes, workdir: Path
) -> Publishing:
    """Start `sizes.publishers` processes that together send `count` messages."""
    start_at = time.time() + 0.5
    processes = []
    for index in range(sizes.publishers):
        share = count // sizes.publishers + (1 if index < count % sizes.publishers else 0)
        command = [
            sys.executable, str(BENCH / "publisher.py"),
            "--port", str(broker_port), "--count", str(share),
            "--index", str(index), "--publishers", str(sizes.publishers),
            "--rate", str(rate / sizes.publishers if rate else 0),
            "--probe-interval", str(sizes.probe_interval),
            "--start-at", str(start_at),
        ]  # fmt: skip
        with (workdir / f"publisher-{index}.log").open("ab") as log:
            processes.append(
                subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
            )
    publishing = Publishing(processes)
    for process in processes:
        threading.Thread(target=publishing.read, args=(process,), daemon=True).start()
    return publishing


def warm_up(contender: Contender, store: Store, broker_port: int, timeout: float = 60) -> None:
    """Publish a warm-up message every 0.5 s until one is stored."""
    deadline = time.monotonic() + timeout
    while store.warm_count() < 1:
        contender.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{contender.label}: no warm-up message stored in {timeout} s")
        subprocess.run(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker_port), "-q", "1",
             "-t", "bench/warm/dev000/warmup",
             "-m", payload_for(-1, time.time_ns() // 1000).decode()],
            check=True, timeout=10,
        )  # fmt: skip
        time.sleep(0.5)


def percentile(values: list[float], fraction: float) -> float | None:
    """Return the nearest-rank percentile of `values`, or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def machine_busy() -> tuple[float, float]:
    """Return the machine's busy CPU seconds since boot and the part of them
    spent in interrupts (loopback TCP is processed there), from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(value) for value in fields]
    idle = ticks[3] + ticks[4]  # idle and iowait
    interrupts = ticks[5] + ticks[6]  # irq and softirq
    hertz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks[:8]) - idle) / hertz, interrupts / hertz


def run_one(
    contender: Contender,
    database: str,
    mode: str,
    count: int,
    rate: float,
    sizes: Sizes,
    tools: Tools,
    work: Path,
    profile_to: Path | None = None,
) -> dict[str, Any]:
    """Run one contender once and return its figures."""
    name = f"{database}-{contender.key}-{mode}"
    workdir = work / "runs" / name
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {count} messages"
          + (f" at {rate:.0f} msg/s" if rate else " as fast as possible"), flush=True)
    broker = Mosquitto(
        workdir / "mosquitto", autosave_interval=3600, max_inflight_messages=BROKER_MAX_INFLIGHT
    )
    server: InfluxDB1 | VictoriaMetrics
    if database == "influxdb1":
        server = InfluxDB1(workdir / "influxdb")
    else:
        server = VictoriaMetrics(workdir / "victoria-metrics")
    broker.start()
    server.start()
    result: dict[str, Any] = {
        "contender": contender.key, "label": contender.label, "role": contender.role,
        "database": database, "mode": mode, "messages": count,
        "rate_requested": rate or None, "note": contender.note,
        "load_before": os.getloadavg()[0],
    }  # fmt: skip
    profiler: subprocess.Popen[bytes] | None = None
    try:
        store: Store = InfluxStore(server) if database == "influxdb1" else VictoriaStore(server)
        run = Run(workdir, broker.port, server.url, tools)
        contender.start(run)
        store = contender.store_override(run) or store
        warm_up(contender, store, broker.port)
        assert broker.pid is not None and server.pid is not None
        sampler = Sampler(
            {
                "contender": contender.pids(),
                "broker": {broker.pid},
                "database": {server.pid},
                "harness": {os.getpid()},
            },
            flat=frozenset({"harness"}),
        ).start()
        if profile_to is not None:
            profiler = start_profiler(contender, profile_to)
        busy_before = machine_busy()
        processes_before = all_processes()
        publishing = start_publishers(broker.port, count, rate, sizes, workdir)
        sampler.add_group("publishers", {p.pid for p in publishing.processes})
        monitor = monitor_run(contender, store, publishing, count, sizes)
        usage = sampler.stop()
        busy_after = machine_busy()
        busy = (busy_after[0] - busy_before[0], busy_after[1] - busy_before[1])
        ours = {os.getpid()}.union(*(set(group.cpu_by_pid) for group in usage.values()))
        result["busiest_other_processes"] = busiest_others(processes_before, ours)
        if profiler is not None:
            stop_profiler(profiler)
            profiler = None
        if isinstance(contender, Labdock):
            result["labdock_metrics"] = summarize_labdock(contender.labdock_metrics())
        contender.stop()
        rows, distinct = store.final_counts()
        result.update(
            figures(result, monitor, publishing, usage, busy, rows, distinct, store)
        )
    except Exception as error:  # noqa: BLE001 (one failed run must not end the benchmark)
        result["error"] = f"{type(error).__name__}: {error}"
        print(f"    failed: {result['error']}", flush=True)
    finally:
        if profiler is not None:
            stop_profiler(profiler)
        contender.stop()
        server.stop()
        broker.stop()
    result["load_after"] = os.getloadavg()[0]
    print("    " + summary_line(result), flush=True)
    return result


@dataclass
class Monitor:
    started: float  # wall-clock time of the first publish
    done_at: float  # when the final count was first seen
    done_count: int
    timed_out: bool
    latencies: list[float]
    probes_missing: int
    timeline: list[tuple[float, int]]


def monitor_run(
    contender: Contender, store: Store, publishing: Publishing, count: int, sizes: Sizes
) -> Monitor:
    """Poll the store until every message is counted, or the count stalls."""
    seen_probes: dict[int, float] = {}
    timeline: list[tuple[float, int]] = []
    last_count = -1
    last_change = time.time()
    next_count = 0.0
    started = time.time() + 0.5
    deadline = started + sizes.run_timeout
    timed_out = False
    while True:
        contender.check_alive()
        now = time.time()
        with publishing.lock:
            outstanding = [sent for sent in publishing.probes if sent not in seen_probes]
        if outstanding:
            found = store.probes_since(min(outstanding))
            answered = time.time()
            for sent in found:
                if sent in publishing.probes and sent not in seen_probes:
                    seen_probes[sent] = answered
        if now >= next_count:
            current = store.count()
            answered = time.time()
            timeline.append((answered, current))
            if current != last_count:
                last_count = current
                last_change = answered
            next_count = now + 0.25
            finished = publishing.finished
            with publishing.lock:
                probes_left = len(publishing.probes) - len(seen_probes)
            if finished and current >= count and probes_left == 0:
                break
            if finished and answered - last_change > sizes.stall_seconds:
                break
            if answered > deadline:
                timed_out = True
                break
        time.sleep(0.1)
    for process in publishing.processes:
        process.wait(30)
    with publishing.lock:
        latencies = [seen_probes[sent] - sent / 1e6 for sent in seen_probes]
        missing = len(publishing.probes) - len(seen_probes)
        reports = list(publishing.reports)
    if reports:
        started = min(report["started"] for report in reports)
    return Monitor(started, last_change, last_count, timed_out, latencies, missing, timeline)


def figures(
    result: dict[str, Any],
    monitor: Monitor,
    publishing: Publishing,
    usage: dict[str, TreeUsage],
    busy: tuple[float, float],
    rows: int,
    distinct: int,
    store: Store,
) -> dict[str, Any]:
    published = sum(report["acknowledged"] for report in publishing.reports)
    publish_end = max((report["finished"] for report in publishing.reports), default=0)
    done_at = monitor.done_at
    latencies = monitor.latencies
    method = "poll"
    if isinstance(store, ReceiptFile):
        done_at = store.last_receipt() or done_at
        latencies = store.probe_latencies()
        method = "receipt time"
    elapsed = max(done_at - monitor.started, 1e-6)
    contender_cpu = usage["contender"].cpu_since_mark()
    accounted = sum(group.cpu_since_mark() for group in usage.values())
    return {
        "published": published,
        "publish_rate": round(published / max(publish_end - monitor.started, 1e-6)),
        "stored_rows": rows,
        "stored": distinct,
        "duplicates": rows - distinct,
        "lost": published - distinct,
        "timed_out": monitor.timed_out,
        "seconds": round(elapsed, 2),
        "throughput": round(min(monitor.done_count, distinct) / elapsed)
        if not isinstance(store, ReceiptFile)
        else round(distinct / elapsed),
        "latency_method": method,
        "latency_p50_ms": _ms(percentile(latencies, 0.50)),
        "latency_p99_ms": _ms(percentile(latencies, 0.99)),
        "latency_max_ms": _ms(max(latencies) if latencies else None),
        "probes": len(latencies),
        "probes_missing": monitor.probes_missing if method == "poll" else 0,
        "peak_rss_mb": round(usage["contender"].peak_rss / 2**20, 1),
        "cpu_seconds": round(contender_cpu, 2),
        "cpu_per_100k": round(contender_cpu / max(published, 1) * 100_000, 2),
        "cpu_system_share": round(
            usage["contender"].system_since_mark() / max(contender_cpu, 1e-6), 2
        ),
        "broker_cpu_seconds": round(usage["broker"].cpu_since_mark(), 2),
        "database_cpu_seconds": round(usage["database"].cpu_since_mark(), 2),
        "publishers_cpu_seconds": round(usage["publishers"].cpu_since_mark(), 2),
        "harness_cpu_seconds": round(usage["harness"].cpu_since_mark(), 2),
        "interrupt_cpu_seconds": round(busy[1], 2),
        "other_cpu_seconds": round(max(0.0, busy[0] - busy[1] - accounted), 2),
        "timeline": [(round(t - monitor.started, 2), c) for t, c in monitor.timeline],
    }


def other_load(result: dict[str, Any]) -> float:
    """Return the cores that processes outside a run used on average during it."""
    if "error" in result:
        return float("inf")
    return float(result["other_cpu_seconds"]) / max(float(result["seconds"]), 0.1)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def summarize_labdock(snapshots: list[dict[str, float]]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for snapshot in snapshots:
        for name in (
            "labdock_acquire_messages_received_total",
            "labdock_acquire_points_written_total",
            "labdock_acquire_messages_duplicate_total",
        ):
            if name in snapshot:
                totals[name] = totals.get(name, 0) + snapshot[name]
    return totals


def summary_line(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"error: {result['error']}"
    return (
        f"stored {result['stored']}/{result['published']} at {result['throughput']} msg/s"
        f" (published at {result['publish_rate']} msg/s), p50 {result['latency_p50_ms']} ms,"
        f" p99 {result['latency_p99_ms']} ms, rss {result['peak_rss_mb']} MB,"
        f" cpu {result['cpu_per_100k']} s/100k, lost {result['lost']},"
        f" load {result['load_before']:.2f}"
    )


PROFILE_RATE = 250  # py-spy samples per second


def start_profiler(contender: Contender, output: Path) -> subprocess.Popen[bytes]:
    """Attach py-spy to the contender's first process, sampling the thread
    that holds the GIL, so the samples add up to the process's Python time."""
    py_spy = Path(sys.executable).parent / "py-spy"
    pid = min(contender.pids())
    command = [
        str(py_spy), "record", "--pid", str(pid), "--rate", str(PROFILE_RATE),
        "--threads", "--gil", "--nonblocking", "--format", "raw", "--output", str(output),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)
    return process


def stop_profiler(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(2)  # SIGINT makes py-spy write its output
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def machine_description() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])

    def version(command: list[str]) -> str:
        try:
            output = subprocess.run(command, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"
        text = (output.stdout or output.stderr).strip().splitlines()
        return text[0] if text else "unknown"

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mosquitto": version(["mosquitto", "-h"]),
        "influxd": version(["influxd", "version"]),
        "node": version(["node", "--version"]),
        "labdock_commit": version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
        "labdock_source": "modified" if version(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"]
        ) not in ("", "unknown") else "as committed",
    }


def max_run(
    contender: Contender,
    database: str,
    sizes: Sizes,
    tools: Tools,
    work: Path,
    busy_retry: float,
) -> dict[str, Any]:
    """Run `contender` once as fast as possible, twice when other work got
    in its way, and return the faster run."""
    count = sizes.count(contender.size)
    result = run_one(contender, database, "max", count, 0.0, sizes, tools, work)
    if other_load(result) <= busy_retry:
        return result
    print(f"    other load {other_load(result):.2f} cores: running it again")
    again = run_one(contender, database, "max", count, 0.0, sizes, tools, work)
    # Interference only slows a run down, so the faster of the two is the
    # closer estimate of what the contender can do.
    faster, slower = sorted((result, again), key=lambda run: -(run.get("throughput") or 0))
    faster["discarded_attempt"] = {key: slower.get(key) for key in ROUND_KEYS}
    return faster


ROUND_KEYS = ("throughput", "cpu_per_100k", "peak_rss_mb", "lost", "other_cpu_seconds",
              "seconds", "error")  # fmt: skip


def median_run(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the run with the median throughput (the lower of the two middle
    ones for an even count), with every round's figures under `rounds`."""
    finished = sorted(
        (run for run in results if run.get("throughput")), key=lambda run: run["throughput"]
    )
    median = finished[(len(finished) - 1) // 2] if finished else results[-1]
    if len(results) > 1:
        median["rounds"] = [{key: run.get(key) for key in ROUND_KEYS} for run in results]
    return median


def rounds_count(text: str) -> int:
    """Parse --rounds: median_run() needs at least one run to pick from."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, three contenders")
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="results folder")
    parser.add_argument("--work", type=Path, default=BENCH / "work", help="scratch folder")
    parser.add_argument(
        "--databases",
        help="comma-separated: influxdb1, victoriametrics (default both; influxdb1 with --smoke)",
    )
    parser.add_argument("--only", default="", help="comma-separated contender keys")
    parser.add_argument(
        "--modes", help="comma-separated: max, fixed (default both; max with --smoke)"
    )
    parser.add_argument(
        "--profile",
        help="contender key to profile with py-spy in one extra run, or none "
        "(default labdock-default; none with --smoke)",
    )
    parser.add_argument(
        "--busy-retry",
        type=float,
        help="run a max-rate run once more when processes outside it used more than "
        "this many cores on average, and keep the faster of the two (default 0.5; "
        "never with --smoke)",
    )
    parser.add_argument(
        "--rounds",
        type=rounds_count,
        help="max-rate runs of every contender. The figures come from the run with "
        "the median throughput (default 3, or 1 with --smoke)",
    )
    parser.add_argument("--python", type=Path, default=Path(sys.executable))
    parser.add_argument("--node-red", type=Path, default=None, help="npm install folder")
    parser.add_argument("--mqtt2influxdb", type=Path, default=None, help="console script")
    parser.add_argument("--command", default="", help="the command line to record")
    args = parser.parse_args()

    from report import write_results  # imports matplotlib only when needed

    sizes = SMOKE if args.smoke else FULL
    tools = Tools(args.python, args.mqtt2influxdb, args.node_red)
    contenders = all_contenders()
    requested = [key for key in args.only.split(",") if key]
    if args.smoke and not requested:
        requested = ["labdock-default", "floor", "mosquitto-sub"]
    if requested:
        contenders = [c for c in contenders + tuning_contenders() if c.key in requested]
    databases_text = args.databases or ("influxdb1" if args.smoke else "influxdb1,victoriametrics")
    modes_text = args.modes or ("max" if args.smoke else "max,fixed")
    databases = [name for name in databases_text.split(",") if name]
    modes = [mode for mode in modes_text.split(",") if mode]
    busy_retry = args.busy_retry
    if busy_retry is None:
        busy_retry = float("inf") if args.smoke else 0.5
    rounds = args.rounds or (1 if args.smoke else 3)
    started = time.time()
    load_start = os.getloadavg()
    runs: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for database in databases:
        available = []
        for contender in contenders:
            reason = contender.available(tools)
            if reason:
                skipped[contender.key] = reason
            else:
                available.append(contender)
        best: dict[str, float] = {}
        if "max" in modes:
            # Rounds of one run per contender, so that a slow stretch of the
            # machine slows every contender alike. The tables use the median run.
            attempts: dict[str, list[dict[str, Any]]] = {c.key: [] for c in available}
            for round_number in range(rounds):
                if rounds > 1:
                    print(f"round {round_number + 1} of {rounds} on {database}")
                for contender in available:
                    attempts[contender.key].append(
                        max_run(contender, database, sizes, tools, args.work, busy_retry)
                    )
            for contender in available:
                result = median_run(attempts[contender.key])
                runs.append(result)
                if result.get("throughput"):
                    best[contender.key] = result["throughput"]
        if "fixed" in modes:
            for contender in available:
                if contender.key not in best:
                    continue
                rate = max(100.0, round(best[contender.key] / 2, -2))
                count = int(rate * sizes.fixed_seconds)
                runs.append(run_one(contender, database, "fixed", count, rate, sizes,
                                    tools, args.work))  # fmt: skip
    profile = args.profile or ("none" if args.smoke else "labdock-default")
    profile_text = ""
    if profile != "none":
        profiled = [c for c in all_contenders() + tuning_contenders() if c.key == profile]
        if profiled:
            raw = args.work / f"profile-{profile}.raw.txt"
            result = run_one(profiled[0], databases[0], "profile",
                             sizes.count(profiled[0].size), 0.0, sizes, tools, args.work,
                             profile_to=raw)  # fmt: skip
            result["profile_raw"] = str(raw)
            runs.append(result)
            if raw.exists() and result.get("published"):
                profile_text = (
                    f"py-spy at {PROFILE_RATE} Hz, sampling only the thread that holds "
                    f"the GIL, during one extra max-rate run of {result['published']:,} "
                    f"messages on {databases[0]} ({result['throughput']:,} msg/s stored "
                    f"while profiled). Raw stacks: {raw}.\n\n"
                    + summarize(raw, PROFILE_RATE, result["published"])
                )
    stage_costs: dict[str, float] = {}
    if not args.smoke:
        from stage_costs import measure

        stage_costs = {name: round(value, 1) for name, value in measure().items()}
    document = {
        "stage_costs": stage_costs,
        "profile": {"contender": profile, "text": profile_text} if profile_text else None,
        "command": args.command or " ".join(sys.argv),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        "minutes": round((time.time() - started) / 60, 1),
        "load_average_start": [round(value, 2) for value in load_start],
        "load_average_end": [round(value, 2) for value in os.getloadavg()],
        "machine": machine_description(),
        "broker": {
            "max_queued_messages": 0,
            "max_inflight_messages": BROKER_MAX_INFLIGHT,
            "persistence": "on, autosave only at exit",
        },
        "sizes": sizes.__dict__,
        "rounds": rounds,
        "skipped": skipped,
        "runs": runs,
    }
    write_results(document, args.out, smoke=args.smoke)
    print(f"results written to {args.out}")
    failed = [run for run in runs if "error" in run]
    return 1 if failed and args.smoke else 0


if __name__ == "__main__":
    sys.exit(main())

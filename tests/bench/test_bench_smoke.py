"""The benchmark harness at its smallest size, so that `make bench` keeps working.

`bench/run.sh --smoke` starts Mosquitto and InfluxDB 1.x, runs labdock, the
minimal paho loop and mosquitto_sub with a few thousand messages each and
writes the results table. It installs nothing beyond the Debian packages
the other tests use, so it runs in CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from components import require_binary

REPO = Path(__file__).resolve().parents[2]


def test_smoke_run_writes_results(tmp_path: Path) -> None:
    for binary, package in (
        ("mosquitto", "mosquitto"),
        ("mosquitto_sub", "mosquitto-clients"),
        ("influxd", "influxdb"),
    ):
        require_binary(binary, package)
    out = tmp_path / "results"
    completed = subprocess.run(
        [
            "bash",
            "bench/run.sh",
            "--smoke",
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
        ],
        cwd=REPO,
        env={**os.environ, "BENCH_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, (
        completed.stdout[-3000:] + completed.stderr[-3000:]
    )

    document = json.loads((out / "results.json").read_text())
    runs = {run["contender"]: run for run in document["runs"]}
    for key in ("labdock-default", "mosquitto-sub"):
        assert key in runs, f"no {key} run in {sorted(runs)}"
        run = runs[key]
        assert "error" not in run, run.get("error")
        assert run["published"] > 0
        assert run["stored"] == run["published"], f"{key} lost messages: {run}"
        assert run["throughput"] > 0
        assert run["cpu_per_100k"] > 0
        assert run["peak_rss_mb"] > 0

    table = (out / "results.md").read_text()
    assert "| labdock acquire (defaults) |" in table
    assert "| mosquitto_sub (ceiling) |" in table


def test_run_sh_help_installs_nothing() -> None:
    # Without its own branch in run.sh, --help ran the full set-up:
    # pip and npm installs under bench/work/, then the harness.
    completed = subprocess.run(
        ["bash", "bench/run.sh", "--help"],
        cwd=REPO,
        env={**os.environ, "BENCH_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Usage: bench/run.sh" in completed.stdout
    assert "--rounds ROUNDS" in completed.stdout
    assert completed.stderr == ""

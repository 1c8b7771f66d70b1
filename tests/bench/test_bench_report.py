"""Tests of how the benchmark picks one run per contender from several rounds,
and of the target checks in its report."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.append(str(BENCH))


def _load(name: str) -> ModuleType:
    # Loaded under a bench_ name from its file, because tests/acquire has a
    # harness module of its own that an earlier test may have imported.
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


harness = _load("harness")
report = _load("report")


def _run(throughput: int | None, lost: int = 0) -> dict[str, Any]:
    run: dict[str, Any] = {
        "contender": "labdock-default", "label": "labdock acquire (defaults)",
        "role": "labdock", "database": "influxdb1", "mode": "max", "messages": 1000,
        "publish_rate": 9000, "throughput": throughput, "latency_p50_ms": 10.0,
        "latency_p99_ms": 20.0, "peak_rss_mb": 50.0, "cpu_per_100k": 1.0, "lost": lost,
        "duplicates": 0, "other_cpu_seconds": 0.0, "seconds": 1.0,
    }  # fmt: skip
    if throughput is None:
        run["error"] = "the contender exited"
    return run


def test_median_run_picks_middle_throughput() -> None:
    runs = [_run(300), _run(100), _run(200)]
    median = harness.median_run(runs)
    assert median is runs[2]
    assert [r["throughput"] for r in median["rounds"]] == [300, 100, 200]


def test_median_run_even_count_lower_middle() -> None:
    runs = [_run(400), _run(100), _run(300), _run(200)]
    assert harness.median_run(runs)["throughput"] == 200


def test_median_run_skips_failed_rounds() -> None:
    runs = [_run(None), _run(500), _run(100)]
    median = harness.median_run(runs)
    assert median["throughput"] == 100
    assert report._round_range(median) == "100, 500 (1 failed)"


def test_median_run_single_round_no_rounds() -> None:
    run = _run(100)
    assert "rounds" not in harness.median_run([run])


def test_loss_target_counts_every_round() -> None:
    median = harness.median_run([_run(100), _run(300, lost=2), _run(200)])
    checks = report.evaluate_targets([median], "influxdb1")
    loss = next(t for t in checks[0]["targets"] if t["target"] == "0 messages lost")
    assert loss["met"] is False
    assert loss["value"] == "2 lost in 3 runs"


def test_max_table_shows_round_range() -> None:
    median = harness.median_run([_run(1500), _run(1000), _run(2000)])
    lines = report._table([median], "max")
    assert "rounds: lowest, highest" in lines[0]
    assert lines[0].count("|") == lines[1].count("|") == lines[2].count("|")
    assert "| 1,500 | 1,000, 2,000 |" in lines[2]


def _budget_run() -> dict[str, Any]:
    run = _run(25_000)
    run.update(published=100_000, seconds=4.0, cpu_seconds=1.0)
    run.update(
        broker_cpu_seconds=2.0, database_cpu_seconds=2.0, publishers_cpu_seconds=2.0
    )
    return run


def test_cpu_budget_at_own_rate_is_own_cpu() -> None:
    budget = report.cpu_budget(_budget_run(), 25_000, cores=2)
    assert budget is not None
    assert abs(budget - 1.0) < 1e-9


def test_cpu_budget_grows_for_slower_target() -> None:
    # 5 s at 7 of 8 busy core-seconds per 4 s leaves 8.75 - 6 core-seconds.
    budget = report.cpu_budget(_budget_run(), 20_000, cores=2)
    assert budget is not None
    assert abs(budget - 2.75) < 1e-9


def test_cpu_budget_none_when_others_fill_cores() -> None:
    assert report.cpu_budget(_budget_run(), 40_000, cores=2) is None


def _throughput_cell(run: dict[str, Any], peer_throughput: int) -> str:
    peer = _run(peer_throughput)
    peer.update(contender="node-red", label="Node-RED", role="peer")
    checks = report.evaluate_targets([run, peer], "influxdb1")
    target = "stored throughput >= 2.5 x best peer"
    cell: str = next(t for t in checks[0]["targets"] if t["target"] == target)["value"]
    return cell


def test_throughput_target_names_budget() -> None:
    # 100,000 messages at 26,000 msg/s take 3.85 s, and 7/8 of 2 cores in
    # that time leave 0.73 core-seconds beside the other processes' 6.
    cell = _throughput_cell(_budget_run(), 10_400)

    assert cell == (
        "2.4 x Node-RED; 2.5 x would take about 0.73 CPU s/100k (this run: 1.0)"
    )


def test_throughput_target_without_budget() -> None:
    cell = _throughput_cell(_budget_run(), 20_000)

    assert cell == (
        "1.2 x Node-RED; 2.5 x would leave labdock no CPU time (this run: 1.0)"
    )


def test_throughput_target_without_run_times() -> None:
    assert _throughput_cell(_run(25_000), 20_000) == "1.2 x Node-RED"


def test_rounds_option_rejects_zero() -> None:
    # Without the check, 0 would fall back to the default of 3 rounds, and a
    # negative count would leave median_run() no run to pick.
    assert harness.rounds_count("2") == 2
    for text in ("0", "-1"):
        with pytest.raises(argparse.ArgumentTypeError, match="must be 1 or more"):
            harness.rounds_count(text)

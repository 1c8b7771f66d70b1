"""Write results.json, results.md and the plot from the runs of a benchmark."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROLE_ORDER = {"labdock": 0, "peer": 1, "floor": 2, "ceiling": 3}
DATABASE_NAMES = {
    "influxdb1": "InfluxDB 1.x (/write)",
    "victoriametrics": "VictoriaMetrics (/write)",
}


def _cell(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    if isinstance(value, (int, float)):
        return f"{value:,.0f}"
    return str(value)


def _latency(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def _table(runs: list[dict[str, Any]], mode: str) -> list[str]:
    rate_column = "rate asked" if mode == "fixed" else "published/s"
    with_rounds = any("rounds" in run for run in runs)
    lines = [
        f"| contender | messages | {rate_column} | stored msg/s "
        + ("| rounds: lowest, highest " if with_rounds else "")
        + "| p50 | p99 | peak RSS MB | CPU s/100k | lost | dup | other load |",
        "|---|---:|---:|---:|" + ("---:|" if with_rounds else "") + "---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        if "error" in run:
            lines.append(f"| {run['label']} | {run['messages']:,} | – | failed: "
                         f"{run['error'][:80]} |" + " |" * (7 + with_rounds))
            continue
        rate = run["rate_requested"] if mode == "fixed" else run["publish_rate"]
        throughput = _cell(run["throughput"])
        if run.get("timed_out"):
            throughput += " (timed out)"
        if with_rounds:
            throughput += f" | {_round_range(run)}"
        lines.append(
            f"| {run['label']} | {run['messages']:,} | {_cell(rate)} | {throughput} "
            f"| {_latency(run['latency_p50_ms'])} | {_latency(run['latency_p99_ms'])} "
            f"| {_cell(run['peak_rss_mb'], 1)} | {_cell(run['cpu_per_100k'], 2)} "
            f"| {run['lost']:,} | {run['duplicates']:,} "
            f"| {run['other_cpu_seconds'] / max(run['seconds'], 0.1):.2f} |"
        )
    return lines


def _round_range(run: dict[str, Any]) -> str:
    rates = [r["throughput"] for r in run.get("rounds", []) if r.get("throughput")]
    failed = len(run.get("rounds", [])) - len(rates)
    text = f"{min(rates):,.0f}, {max(rates):,.0f}" if rates else "–"
    return text + (f" ({failed} failed)" if failed else "")


def _lost(run: dict[str, Any]) -> int:
    """Return the messages lost in every round of a max-rate run, not only the median one."""
    return sum(r.get("lost") or 0 for r in run.get("rounds", [run]))


def _ordered(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(runs, key=lambda run: ROLE_ORDER.get(run["role"], 9))


# The CPU seconds of a run that are not the contender's own.
OTHER_CPU_KEYS = ("broker_cpu_seconds", "database_cpu_seconds", "publishers_cpu_seconds",
                  "harness_cpu_seconds", "interrupt_cpu_seconds", "other_cpu_seconds")  # fmt: skip


def cpu_budget(run: dict[str, Any], throughput: float, cores: int) -> float | None:
    """Estimate the CPU seconds per 100,000 messages at which `run`'s contender
    would have reached `throughput`.

    The estimate keeps what the run measured: the CPU that the broker, the
    database, the publishers and the harness spent per message, and the
    share of the cores that the run kept busy. What is left of the cores in
    the shorter time is the contender's budget; None when nothing is left.
    """
    if not run.get("published") or not run.get("seconds") or not throughput:
        return None
    others = sum(run.get(key) or 0.0 for key in OTHER_CPU_KEYS)
    busy = (others + run["cpu_seconds"]) / (cores * run["seconds"])
    budget = busy * cores * run["published"] / throughput - others
    return budget / run["published"] * 100_000 if budget > 0 else None


def _budget_text(
    run: dict[str, Any], throughput: float, cores: int, ceiling: dict[str, Any] | None
) -> str:
    """Return the CPU estimate that the throughput target cell appends, or ""."""
    if not run.get("published") or not run.get("seconds"):
        return ""
    budget = cpu_budget(run, throughput, cores)
    if budget is None:
        # The other processes alone would fill the cores in the shorter time.
        text = "; 2.5 x would leave labdock no CPU time"
    else:
        text = f"; 2.5 x would take about {budget:.2f} CPU s/100k"
    text += f" (this run: {run['cpu_per_100k']}"
    if ceiling:
        text += f", {ceiling['label']}: {ceiling['cpu_per_100k']}"
    return text + ")"


def evaluate_targets(
    runs: list[dict[str, Any]], database: str, cores: int = 2
) -> list[dict[str, Any]]:
    """Check each labdock configuration against the targets, on one database."""
    max_runs = [r for r in runs if r["database"] == database and r["mode"] == "max"
                and "error" not in r]  # fmt: skip
    fixed_runs = {r["contender"]: r for r in runs if r["database"] == database
                  and r["mode"] == "fixed" and "error" not in r}  # fmt: skip
    peers = [r for r in max_runs if r["role"] == "peer"]
    others = [r for r in max_runs if r["role"] in ("peer", "floor")]
    ceiling = next((r for r in max_runs if r["role"] == "ceiling"), None)
    best_peer = max(peers, key=lambda r: r["throughput"], default=None)
    checks = []
    for run in (r for r in max_runs if r["role"] == "labdock"):
        items: list[tuple[str, bool | None, str]] = []
        if best_peer:
            ratio = run["throughput"] / max(best_peer["throughput"], 1)
            value = f"{ratio:.1f} x {best_peer['label']}"
            if ratio < 2.5:
                value += _budget_text(run, 2.5 * best_peer["throughput"], cores, ceiling)
            items.append(("stored throughput >= 2.5 x best peer", ratio >= 2.5, value))
        if ceiling:
            ratio = run["throughput"] / max(ceiling["throughput"], 1)
            items.append(("stored throughput >= 50 % of bare subscriber", ratio >= 0.5,
                          f"{ratio:.0%}"))  # fmt: skip
        for label, key in (("CPU s/100k", "cpu_per_100k"), ("peak RSS", "peak_rss_mb")):
            for group, members in (("peers", peers), ("peers and floor", others)):
                if not members:
                    continue
                worst = min(members, key=lambda r: r[key])
                items.append((f"{label} below every other ingester ({group})",
                              run[key] < worst[key],
                              f"{run[key]} vs lowest {worst[key]} ({worst['label']})"))  # fmt: skip
        fixed = fixed_runs.get(run["contender"])
        if fixed and fixed["latency_p99_ms"] is not None:
            items.append(("p99 < 2 s at half its max rate", fixed["latency_p99_ms"] < 2000,
                          f"{_latency(fixed['latency_p99_ms'])} at "
                          f"{fixed['rate_requested']:,.0f} msg/s"))  # fmt: skip
        lost = _lost(run) + (fixed["lost"] if fixed else 0)
        runs_counted = len(run.get("rounds", [run])) + (1 if fixed else 0)
        items.append(("0 messages lost", lost == 0, f"{lost} lost in {runs_counted} runs"))
        checks.append({"contender": run["contender"], "label": run["label"],
                       "database": database,
                       "targets": [{"target": t, "met": m, "value": v} for t, m, v in items]})  # fmt: skip
    return checks


def _header(document: dict[str, Any]) -> list[str]:
    machine = document["machine"]
    broker = document["broker"]
    return [
        "# labdock acquire against other MQTT-to-InfluxDB ingesters",
        "",
        f"Run {document['started']}, {document['minutes']} minutes. Command:",
        "",
        "```",
        document["command"],
        "```",
        "",
        f"Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB, "
        f"Linux {machine['kernel']}, Python {machine['python']}, node {machine['node']}, "
        f"{machine['mosquitto']}, {machine['influxd']}, labdock {machine['labdock_commit']} "
        f"(source {machine.get('labdock_source', 'unknown')}).",
        "",
        f"Load average (1, 5, 15 min) at the start: {document['load_average_start']}, "
        f"at the end: {document['load_average_end']}. The column `other load` is the CPU "
        "cores that processes outside the run used on average while it ran: the machine "
        "is shared, and every core they take is missing from the run.",
        "",
        f"Broker: Mosquitto with max_queued_messages {broker['max_queued_messages']} and "
        f"max_inflight_messages {broker['max_inflight_messages']}, persistence "
        f"{broker['persistence']}. {document['sizes']['publishers']} publisher processes, "
        "QoS 1, 100 device topics.",
        "",
    ] + _rounds_note(document.get("rounds", 1))


def _rounds_note(rounds: int) -> list[str]:
    if rounds < 2:
        return []
    return [
        f"Every contender ran {rounds} times as fast as possible, in {rounds} rounds of "
        "one run each, so that a slow stretch of the shared machine touches all of them. "
        "Each row of a max-rate table is the run with the median stored throughput; "
        "the rounds column gives the lowest and highest of its runs, and `lost` in the "
        "targets counts every run.",
        "",
    ]


def _targets_table(checks: list[dict[str, Any]], name: str) -> list[str]:
    lines = [
        f"### Targets on {name}",
        "",
        "| labdock configuration | target | met | measured |",
        "|---|---|---|---|",
    ]
    for check in checks:
        for item in check["targets"]:
            met = {True: "yes", False: "**no**", None: "–"}[item["met"]]
            lines.append(f"| {check['label']} | {item['target']} | {met} | {item['value']} |")
    lines.append("")
    return lines


def write_markdown(document: dict[str, Any], out: Path, plot: str | None) -> None:
    lines = _header(document)
    runs = document["runs"]
    titles = {"max": "as fast as possible", "fixed": "at half of each contender's max rate"}
    for database in dict.fromkeys(run["database"] for run in runs):
        name = DATABASE_NAMES.get(database, database)
        for mode, title in titles.items():
            selected = _ordered(
                [r for r in runs if r["database"] == database and r["mode"] == mode]
            )
            if selected:
                lines += [f"## {name}, {title}", ""] + _table(selected, mode) + [""]
        checks = evaluate_targets(runs, database, document["machine"]["cores"])
        if checks:
            lines += _targets_table(checks, name)

    notes = {run["label"]: run["note"] for run in runs if run.get("note")}
    if notes:
        lines += ["## Contenders", ""]
        lines += [f"- {label}: {note}" for label, note in notes.items()]
        lines.append("")
    if document.get("skipped"):
        skipped = "; ".join(f"{key} ({reason})" for key, reason in document["skipped"].items())
        lines += [f"Skipped: {skipped}", ""]
    if plot:
        lines += [f"![stored throughput, CPU and memory]({plot})", ""]
    profile = document.get("profile")
    if profile:
        lines += [f"## Where {profile['contender']} spends its time", "", profile["text"], ""]
    if document.get("stage_costs"):
        lines += [
            "## Stage costs alone",
            "",
            "Each stage of labdock's message path timed alone in one thread with the "
            "benchmark's payload (bench/stage_costs.py, best of 3), in µs per message:",
            "",
            "| stage | µs per message |",
            "|---|---:|",
        ]
        lines += [f"| {name} | {value} |" for name, value in document["stage_costs"].items()]
        lines.append("")

    lines += [
        "Figures: bench/README.md explains how each is measured. In short, stored msg/s",
        "is the distinct messages counted in the database divided by the time from the",
        "first publish to the poll that first saw the final count. Latency runs from the",
        "publish time in the payload to the first 100 ms poll that returned the probe",
        "point (for mosquitto_sub, to its receipt time). CPU and RSS are summed over the",
        "contender's processes from /proc. Lost is published minus distinct stored after",
        "the contender stopped.",
        "",
    ]
    (out / "results.md").write_text("\n".join(lines))


def write_plot(document: dict[str, Any], out: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    runs = [r for r in document["runs"] if r["mode"] == "max" and "error" not in r]
    databases = list(dict.fromkeys(r["database"] for r in runs))
    if not runs:
        return None
    figure, axes = plt.subplots(len(databases), 3, figsize=(16, 4.5 * len(databases)),
                                squeeze=False)  # fmt: skip
    colors = {"labdock": "#1f77b4", "peer": "#d62728", "floor": "#7f7f7f", "ceiling": "#2ca02c"}
    for row, database in enumerate(databases):
        selected = _ordered([r for r in runs if r["database"] == database])
        labels = [
            r["label"] + (f"\n({r['lost']:,} lost)" if r["lost"] else "") for r in selected
        ]
        for column, (key, title, log) in enumerate((
            ("throughput", "stored messages/s (log)", True),
            ("cpu_per_100k", "CPU seconds per 100,000 messages (log)", True),
            ("peak_rss_mb", "peak RSS, MB", False),
        )):  # fmt: skip
            axis = axes[row][column]
            values = [max(r[key], 0.01) for r in selected]
            axis.barh(labels, values, color=[colors.get(r["role"], "gray") for r in selected])
            axis.invert_yaxis()
            if log:
                axis.set_xscale("log")
            axis.set_title(f"{DATABASE_NAMES.get(database, database)}: {title}", fontsize=9)
            axis.tick_params(axis="y", labelsize=8)
            if column:
                axis.set_yticklabels([])
            for position, value in enumerate(values):
                axis.text(value, position, f" {value:,.0f}" if value >= 10 else f" {value:.2f}",
                          va="center", fontsize=7)  # fmt: skip
    figure.tight_layout()
    name = "results.png"
    figure.savefig(out / name, dpi=110)
    plt.close(figure)
    return name


def write_results(document: dict[str, Any], out: Path, smoke: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    document["targets"] = [
        check
        for database in dict.fromkeys(run["database"] for run in document["runs"])
        for check in evaluate_targets(document["runs"], database, document["machine"]["cores"])
    ]
    (out / "results.json").write_text(json.dumps(document, indent=1) + "\n")
    plot = write_plot(document, out)
    write_markdown(document, out, plot)

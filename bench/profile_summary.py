"""Sum a py-spy raw profile of `labdock acquire` into time per message by stage.

py-spy `record --format raw` writes one line per distinct stack: frames from
the outermost to the innermost, separated by `;`, then the sample count.
With `--threads` the first frame names the thread. Each sample goes to one
stage by the rules below, so time in the JSON decoder called from the
pipeline counts as decode, not pipeline.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

# (stage, file name part, function name prefix or "" for any). The first
# rule that matches any frame of a stack takes the sample, so the rules go
# from the most specific (a library called from several stages) to the least.
RULES: list[tuple[str, str, str]] = [
    ("metrics (prometheus_client)", "prometheus_client/", ""),
    ("logging (structlog)", "structlog/", ""),
    ("decode: JSON payload to fields", "decoders/", ""),
    ("encode: point to line protocol", "points.py", ""),
    ("spool: append and commit (fsync)", "spool.py", "Spool.append"),
    ("spool: writer take (SELECT)", "spool.py", "Spool.take"),
    ("spool: writer remove (DELETE)", "spool.py", "Spool.remove"),
    ("writer: split lines", "lineprotocol.py", "split_lines"),
    ("writer: gzip", "gzip.py", ""),
    ("writer: HTTP request", "urllib3/", ""),
    ("MQTT: messages -> queue", "mqtt.py", "BrokerConnection._deliver"),
    ("MQTT: parse PUBLISH packets in bulk", "mqtt.py", "_Client._take_publishes"),
    ("paho: on_message -> queue", "mqtt.py", "BrokerConnection._on_message"),
    ("paho: PUBACK (ack, send)", "mqtt.py", "BrokerConnection.acknowledge"),
    ("paho: read and parse packets", "paho/mqtt/", "Client._packet_read"),
    ("paho: write packets", "paho/mqtt/", "Client._packet_write"),
    ("pipeline: topic match, checks", "pipeline.py", ""),
    ("pipeline: topic match, checks", "topics.py", ""),
    ("writer: other", "writer.py", ""),
    ("ingest: redelivery digest", "service.py", "_digest"),
    ("ingest: loop, bookkeeping", "service.py", "Ingest."),
    ("paho: loop, select, other", "paho/mqtt/", ""),
]


def stage_of(frames: list[str]) -> str:
    locations = [frame.partition(" (") for frame in frames]
    for stage, file_part, function_prefix in RULES:
        for function, _, location in locations:
            if file_part in location and function.startswith(function_prefix):
                return stage
    return "other"


def summarize(path: Path, rate: float, messages: int) -> str:
    """Return a Markdown table of time per message by stage and by thread."""
    stages: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1] if frames[0].startswith("thread") else "?"
        if thread.startswith("paho-mqtt-client"):
            thread = "paho network thread"
        threads[thread] += count
        stages[stage_of(frames[1:])] += count
        total += count

    def per_message(samples: int) -> str:
        return f"{samples / rate / messages * 1e6:.1f}"

    lines = [
        f"{total:,} samples at {rate:g} Hz = {total / rate:.1f} s of sampled time for "
        f"{messages:,} messages: {per_message(total)} µs per message.",
        "",
        "| stage | µs per message | share |",
        "|---|---:|---:|",
    ]
    for stage, count in stages.most_common():
        lines.append(f"| {stage} | {per_message(count)} | {count / total:.0%} |")
    lines += ["", "| thread | µs per message | share |", "|---|---:|---:|"]
    for thread, count in threads.most_common():
        lines.append(f"| {thread} | {per_message(count)} | {count / total:.0%} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("raw", type=Path)
    parser.add_argument("--rate", type=float, default=250)
    parser.add_argument("--messages", type=int, required=True)
    args = parser.parse_args()
    print(summarize(args.raw, args.rate, args.messages))


if __name__ == "__main__":
    main()

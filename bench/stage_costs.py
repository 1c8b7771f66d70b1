"""Time each stage of labdock's message path alone, in one thread, per message.

The profile of a live run shows where the time goes while threads compete
for the GIL. These timings show what each stage costs on its own with the
benchmark's payload, so that a proposed change can be checked against a
number.
Prints a Markdown table; `--json` prints the same figures as JSON.
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from floor_ingest import to_line
from publisher import payload_for

from labdock.acquire.config import AcquireConfig
from labdock.acquire.decoders import DecodeContext
from labdock.acquire.lineprotocol import split_lines
from labdock.acquire.pipeline import Pipeline
from labdock.acquire.points import encode_point
from labdock.acquire.spool import Spool

MESSAGES = 20_000
GROUP = 2_000  # messages per spool commit, labdock's default commit_max_messages


def _messages(count: int) -> list[tuple[str, bytes]]:
    sent = time.time_ns() // 1000
    return [
        (f"bench/room{n % 10}/dev{n % 100:03d}/env", payload_for(n, sent))
        for n in range(count)
    ]


def _per_message(function: Callable[[], int], repeat: int = 3) -> float:
    """Return the best of `repeat` runs of `function`, in µs per message it
    reports having handled."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        handled = function()
        best = min(best, (time.perf_counter() - started) / handled * 1e6)
    return best


def measure(count: int = MESSAGES) -> dict[str, float]:
    """Return the µs per message of each stage."""
    config = AcquireConfig.model_validate(
        {"mappings": [{"topic": "bench/{room}/{device}/{measurement}", "format": "json"}]}
    )
    pipeline = Pipeline(config)
    route = pipeline.routes[0]
    messages = _messages(count)
    now = time.time_ns()
    lines = ["\n".join(pipeline.process(t, p, now).lines) for t, p in messages]
    points = []
    for topic, payload in messages:
        values = route.template.match(topic) or {}
        measurement = values.pop("measurement", "env")
        points.append(route.decoder.decode(payload, DecodeContext(topic, measurement, values, now))[0])

    def pipeline_process() -> int:
        for topic, payload in messages:
            pipeline.process(topic, payload, now)
        return count

    def fast_line() -> int:
        for topic, payload in messages:
            pipeline.fast_line(topic, payload, now)
        return count

    def decode_only() -> int:
        for topic, payload in messages:
            route.decoder.decode(payload, DecodeContext(topic, "env", {"room": "r", "device": "d"}, now))
        return count

    def encode_only() -> int:
        for point in points:
            point.time_ns = now
            encode_point(point)
        return count

    def split_only() -> int:
        for body in lines:
            split_lines(body)
        return count

    def gzip_only() -> int:
        for start in range(0, count, 5000):
            gzip.compress(("\n".join(lines[start : start + 5000]) + "\n").encode(), 1)
        return count

    def floor_encode() -> int:
        for topic, payload in messages:
            to_line(topic, payload, now)
        return count

    def newline_check() -> int:
        for body in lines:
            "\n" in body  # noqa: B015 (the expression is what is timed)
        return count

    def flat_decode() -> int:
        for _, payload in messages:
            document = orjson.loads(payload)
            fields = {}
            for key, value in document.items():
                if isinstance(value, bool | str):
                    fields[key] = value
                elif isinstance(value, int | float):
                    fields[key] = float(value)
        return count

    results = {
        "pipeline.fast_line (flat JSON, what the service runs)": _per_message(fast_line),
        "pipeline.process (route, decode, checks, encode)": _per_message(pipeline_process),
        "  JSON decoder alone": _per_message(decode_only),
        "  encode_point alone": _per_message(encode_only),
        "split_lines on a spooled one-line body": _per_message(split_only),
        "gzip level 1 of 5,000-line batches": _per_message(gzip_only),
        "floor loop: json.loads + f-string line": _per_message(floor_encode),
        "reference: `\"\\n\" in body` (a one-line fast path)": _per_message(newline_check),
        "reference: orjson.loads + flat object to fields": _per_message(flat_decode),
    }
    with tempfile.TemporaryDirectory() as directory:
        spool = Spool(Path(directory), 1 << 34)
        entries = [(now, topic, body) for (topic, _), body in zip(messages, lines, strict=True)]

        def spool_append() -> int:
            for start in range(0, count, GROUP):
                spool.append(entries[start : start + GROUP])
            return count

        def spool_take_remove() -> int:
            handled = 0
            while True:
                taken = spool.take(0, 5000, 4_000_000)
                if not taken:
                    return handled
                spool.remove(taken)
                handled += len(taken)

        results[f"spool append, {GROUP:,} per commit (fsync)"] = _per_message(spool_append, 1)
        results["spool take + remove, 5,000 per batch"] = _per_message(spool_take_remove, 1)
        spool.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--messages", type=int, default=MESSAGES)
    args = parser.parse_args()
    results = measure(args.messages)
    if args.json:
        print(json.dumps({name.strip(): round(value, 2) for name, value in results.items()}))
        return
    print("| stage | µs per message |\n|---|---:|")
    for name, value in results.items():
        print(f"| {name} | {value:.1f} |")


if __name__ == "__main__":
    main()

"""Where a run's messages end up, and how the harness counts them there.

Every ingester writes measurement `env` with tags `room` and `device` and the
payload keys as fields, so the same queries count all of them. Warm-up
messages go to measurement `warmup` and are never counted. Probe messages
are `env` points with `room=probe`; their `sent` field is the publish time in
microseconds.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Protocol

from components import InfluxDB1, VictoriaMetrics

DATABASE = "bench"


class Store(Protocol):
    name: str

    def warm_count(self) -> int: ...

    def count(self) -> int: ...

    def final_counts(self) -> tuple[int, int]: ...

    def probes_since(self, watermark_us: int) -> list[int]: ...


class InfluxStore:
    """InfluxDB 1.x: one database per run, counted with InfluxQL."""

    name = "influxdb1"

    def __init__(self, server: InfluxDB1) -> None:
        self.server = server
        server.create_database(DATABASE)

    def _count(self, query: str) -> int:
        rows = self.server.query(DATABASE, query)
        return int(rows[0]["count"]) if rows else 0

    def warm_count(self) -> int:
        return self._count('SELECT count("seq") FROM "warmup"')

    def count(self) -> int:
        return self._count('SELECT count("seq") FROM "env"')

    def final_counts(self) -> tuple[int, int]:
        """Return (stored rows, distinct seq values)."""
        rows = self.count()
        distinct = self._count('SELECT count(distinct("seq")) FROM "env"')
        return rows, distinct

    def probes_since(self, watermark_us: int) -> list[int]:
        rows = self.server.query(
            DATABASE,
            f"SELECT \"sent\" FROM \"env\" WHERE \"room\" = 'probe' "
            f'AND "sent" >= {watermark_us}',
        )
        return [round(row["sent"]) for row in rows]


class VictoriaStore:
    """VictoriaMetrics: written through /write?db=bench, so every series has
    the label db="bench"; metric names are `<measurement>_<field>`."""

    name = "victoriametrics"

    def __init__(self, server: VictoriaMetrics) -> None:
        self.server = server

    def _sum_count(self, metric: str) -> int:
        self.server.flush()
        response = self.server.request(
            "GET",
            "/api/v1/query",
            params={"query": f"sum(count_over_time({metric}[3650d]))"},
            expected=(200,),
        )
        result = json.loads(response.data)["data"]["result"]
        return int(float(result[0]["value"][1])) if result else 0

    def warm_count(self) -> int:
        return self._sum_count("warmup_seq")

    def count(self) -> int:
        return self._sum_count("env_seq")

    def final_counts(self) -> tuple[int, int]:
        values: list[float] = []
        for series in self.server.export('{__name__="env_seq"}'):
            values.extend(series["values"])
        return len(values), len(set(values))

    def probes_since(self, watermark_us: int) -> list[int]:
        self.server.flush()
        # Points carry the ingester's own time stamp, which is never more than
        # a few seconds before `sent` (the second-resolution stamps of some
        # ingesters included), so a 10 s margin finds every new probe.
        response = self.server.request(
            "GET",
            "/api/v1/export",
            params={
                "match[]": '{__name__="env_sent",room="probe"}',
                "start": f"{watermark_us / 1e6 - 10:.3f}",
            },
            expected=(200,),
        )
        sent: list[int] = []
        for line in response.data.splitlines():
            if line.strip():
                sent.extend(round(value) for value in json.loads(line)["values"])
        return [value for value in sent if value >= watermark_us]


_SEQ = re.compile(rb'"seq":(-?\d+)')
_SENT = re.compile(rb'"sent":(\d+)')


class ReceiptFile:
    """The output of `mosquitto_sub -F '%U %t %p'`: one line per message with
    the receipt time, topic and payload. It counts messages received, since
    this contender stores nothing."""

    name = "none (counts)"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self._count = 0
        self._warm = 0

    def _read_new(self) -> list[bytes]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        return lines

    def _update(self) -> None:
        for line in self._read_new():
            if b" bench/warm/" in line:
                self._warm += 1
            elif line:
                self._count += 1

    def warm_count(self) -> int:
        self._update()
        return self._warm

    def count(self) -> int:
        self._update()
        return self._count

    def final_counts(self) -> tuple[int, int]:
        seqs = set()
        rows = 0
        with self.path.open("rb") as handle:
            for line in handle:
                if b" bench/warm/" in line:
                    continue
                match = _SEQ.search(line)
                if match:
                    rows += 1
                    seqs.add(int(match.group(1)))
        return rows, len(seqs)

    def probes_since(self, watermark_us: int) -> list[int]:
        return []

    def probe_latencies(self) -> list[float]:
        """Return receipt time minus publish time, in seconds, of each probe."""
        latencies = []
        with self.path.open("rb") as handle:
            for line in handle:
                if b" bench/probe/" not in line:
                    continue
                received, _, _ = line.partition(b" ")
                match = _SENT.search(line)
                if match:
                    latencies.append(float(received) - int(match.group(1)) / 1e6)
        return latencies

    def last_receipt(self) -> float:
        """Return the receipt time of the last message, in wall-clock seconds."""
        last = 0.0
        with self.path.open("rb") as handle:
            for line in handle:
                if line.strip():
                    last = float(line.partition(b" ")[0])
        return last


def wait_for(condition, timeout: float, what: str, interval: float = 0.2) -> None:  # type: ignore[no-untyped-def]
    """Poll `condition` until it is true; raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout} s")
        time.sleep(interval)

"""Run `labdock acquire` as a real process and feed it from a real broker.

The service runs as a child process, so that tests can SIGKILL it, and
writes to a real database behind a `Backend`, which also reads the stored
points back.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as paho
import urllib3
import yaml

from components import InfluxDB1, VictoriaMetrics, free_port, poll_until

REPO = Path(__file__).resolve().parents[2]


def child_environment() -> dict[str, str]:
    """Return this process's environment with PYTHONPATH made absolute.

    The child runs in its own working directory, where a relative entry
    such as `PYTHONPATH=src` would miss the code under test and import the
    installed labdock instead.
    """
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    pythonpath = os.environ.get("PYTHONPATH")
    if pythonpath:
        entries = [os.path.abspath(entry) for entry in pythonpath.split(os.pathsep)]
        environment["PYTHONPATH"] = os.pathsep.join(entries)
    return environment


class AcquireProcess:
    """`labdock acquire` with a YAML configuration, as a child process."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        config = dict(config)
        config.setdefault("http", {})["listen"] = f"127.0.0.1:{self.http_port}"
        config.setdefault("spool", {}).setdefault("directory", str(workdir / "spool"))
        config.setdefault("log", {"format": "json", "level": "info"})
        self.config = config
        self.config_file = workdir / "acquisition.yaml"
        self.config_file.write_text(yaml.safe_dump(config))
        self.log_file = workdir / "acquire.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.pool = urllib3.HTTPConnectionPool(
            "127.0.0.1", self.http_port, retries=False, timeout=5.0
        )
        self.starts = 0

    def start(self, *, wait_connected: bool = True) -> None:
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "labdock",
                "acquire",
                "--config",
                str(self.config_file),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env=child_environment(),
        )
        log.close()
        self.starts += 1
        if wait_connected:
            poll_until(
                lambda: (
                    self._check_running()
                    and self.metric("labdock_acquire_broker_connected") == 1
                ),
                timeout=20,
                description=f"acquire connected to the broker (log: {self.log_file})",
            )

    def _check_running(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"labdock acquire exited with status {self.process.returncode}:\n"
                + self.log_file.read_text(errors="replace")[-3000:]
            )
        return True

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            response = self.pool.request("GET", path)
        except urllib3.exceptions.HTTPError:
            return 0, b""
        return response.status, response.data

    def ready(self) -> bool:
        return self.get("/readyz")[0] == 200

    def metrics(self) -> dict[str, float]:
        status, body = self.get("/metrics")
        if status != 200:
            return {}
        values: dict[str, float] = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def metric(self, name: str) -> float | None:
        return self.metrics().get(name)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.pool.close()

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_file.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    events.append(json.loads(line))
        return events


@dataclass
class Publisher:
    """Publish messages at QoS 1 from a background thread.

    At most `window` publishes are unacknowledged at once: paho 2.2 loses
    messages when more than 65,535 are outstanding. `rate` (messages per
    second) paces the stream; None publishes as fast as the broker takes.
    """

    url: str
    messages: Sequence[tuple[str, bytes]]
    rate: float | None = None
    window: int = 500
    client_id: str = "labdock-test-publisher"
    sent: int = 0
    acknowledged: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    username: tuple[str, str] | None = None

    def start(self) -> Publisher:
        self._slots = threading.BoundedSemaphore(self.window)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _on_publish(self, *_args: Any) -> None:
        self.acknowledged += 1
        self._slots.release()

    def _run(self) -> None:
        try:
            host, port = self.url.removeprefix("mqtt://").split(":")
            client = paho.Client(
                paho.CallbackAPIVersion.VERSION2,
                client_id=self.client_id,
                protocol=paho.MQTTv311,
                clean_session=False,
            )
            client.max_queued_messages_set(0)
            client.max_inflight_messages_set(self.window)
            client.reconnect_delay_set(1, 2)
            client.on_publish = self._on_publish
            if self.username:
                client.username_pw_set(*self.username)
            client.connect(host, int(port))
            client.loop_start()
            started = time.monotonic()
            for index, (topic, payload) in enumerate(self.messages):
                if self.rate:
                    due = started + index / self.rate
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                self._slots.acquire()
                client.publish(topic, payload, qos=1)
                self.sent += 1
            deadline = time.monotonic() + 120
            while (
                self.acknowledged < len(self.messages) and time.monotonic() < deadline
            ):
                time.sleep(0.05)
            client.disconnect()
            client.loop_stop()
        except BaseException as error:  # reported by wait()
            self.error = error
        finally:
            self.done.set()

    def wait(self, timeout: float = 300) -> None:
        if not self.done.wait(timeout):
            raise TimeoutError(
                f"publisher sent {self.sent}/{len(self.messages)} in {timeout} s"
            )
        if self.error is not None:
            raise self.error
        assert self.acknowledged == len(self.messages), (
            f"the broker acknowledged {self.acknowledged} of {len(self.messages)} publishes"
        )


def sensor_messages(
    count: int, topics: int, *, prefix: str = "lab", start: int = 0
) -> list[tuple[str, bytes]]:
    """Return `count` readings spread over `topics` topics, each with a unique seq."""
    messages = []
    for n in range(start, start + count):
        device = n % topics
        topic = f"{prefix}/room{device % 4}/dev{device:02d}/env"
        payload = {
            "seq": n,
            "temperature": 20 + (n % 100) / 10,
            "door_open": n % 2 == 0,
            "state": "ok",
        }
        messages.append((topic, json.dumps(payload).encode()))
    return messages


SENSOR_MAPPING = {
    "topic": "{prefix}/{room}/{device}/{measurement}",
    "format": "json",
    "options": {"types": {"seq": "int"}},
}


def sensor_mapping(prefix: str) -> dict[str, Any]:
    mapping = dict(SENSOR_MAPPING)
    mapping["topic"] = f"{prefix}/{{room}}/{{device}}/{{measurement}}"
    return mapping


class Backend(Protocol):
    name: str

    def database_config(self) -> dict[str, Any]: ...

    def sequences(self, measurement: str) -> Counter[int]: ...

    def stop(self) -> None: ...

    def start(self) -> None: ...


class InfluxV1Backend:
    """InfluxDB 1.x through the v1 write API."""

    name = "influxdb1-v1"

    def __init__(self, server: InfluxDB1, database: str) -> None:
        self.server = server
        self.database = database
        server.create_database(database)

    def database_config(self) -> dict[str, Any]:
        return {"url": self.server.url, "api": "v1", "database": self.database}

    def sequences(self, measurement: str) -> Counter[int]:
        rows = self.server.query(self.database, f'SELECT "seq" FROM "{measurement}"')
        return Counter(int(row["seq"]) for row in rows)

    def rows(self, measurement: str) -> list[dict[str, Any]]:
        return self.server.query(self.database, f'SELECT * FROM "{measurement}"')

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()


class VictoriaV2Backend:
    """VictoriaMetrics through the v2 write API (org and bucket)."""

    name = "victoriametrics-v2"

    def __init__(self, server: VictoriaMetrics, bucket: str) -> None:
        self.server = server
        self.bucket = bucket

    def database_config(self) -> dict[str, Any]:
        return {
            "url": self.server.url,
            "api": "v2",
            "bucket": self.bucket,
            "org": "lab",
        }

    def sequences(self, measurement: str) -> Counter[int]:
        found: Counter[int] = Counter()
        for series in self.server.export(f'{{__name__="{measurement}_seq"}}'):
            found.update(int(value) for value in series["values"])
        return found

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()


def wait_for_sequences(
    backend: Backend,
    measurement: str,
    expected: Iterable[int],
    *,
    timeout: float = 120,
) -> Counter[int]:
    """Poll until every expected seq is stored; return what is stored.

    On timeout the assertion names how many are missing and a few of them.
    """
    wanted = set(expected)
    deadline = time.monotonic() + timeout
    while True:
        stored = backend.sequences(measurement)
        missing = wanted - set(stored)
        if not missing:
            return stored
        if time.monotonic() > deadline:
            sample = sorted(missing)[:10]
            raise AssertionError(
                f"{len(missing)} of {len(wanted)} messages are missing from "
                f"{backend.name} after {timeout} s, e.g. seq {sample}"
            )
        time.sleep(0.5)


def poll(condition: Callable[[], Any], timeout: float, description: str) -> Any:
    return poll_until(condition, timeout=timeout, interval=0.2, description=description)

"""`labdock demo`: the acquisition service on embedded parts, in one command.

An embedded MQTT broker (amqtt, pure Python) listens on a free loopback
port, and simulated lab sensors publish realistic payloads to it, a few of
them malformed on purpose. The acquisition service writes the points into
an embedded SQLite store, or into a real database when a URL is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import random
import shutil
import socket
import sqlite3
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from labdock.acquire.config import AcquireConfig
from labdock.acquire.service import Service

ROOMS = ("cleanroom", "coldlab", "server-room", "greenhouse")


@dataclass(frozen=True, slots=True)
class Sensor:
    room: str
    device: str
    kind: str  # climate, co2, power or door


def lab_sensors() -> list[Sensor]:
    """Return the simulated sensors: each room has a few kinds."""
    sensors = []
    for number, room in enumerate(ROOMS, start=1):
        sensors.append(Sensor(room, f"th-{number:02d}", "climate"))
        sensors.append(Sensor(room, f"co2-{number:02d}", "co2"))
        if room in ("server-room", "coldlab"):
            sensors.append(Sensor(room, f"pm-{number:02d}", "power"))
        if room in ("cleanroom", "coldlab"):
            sensors.append(Sensor(room, f"door-{number:02d}", "door"))
    return sensors


def reading(sensor: Sensor, step: int, now: float) -> tuple[str, bytes]:
    """Return the topic and payload of one reading of `sensor`."""
    phase = step / 20 + hash(sensor.device) % 7
    base = f"lab/{sensor.room}/{sensor.device}"
    if sensor.kind == "climate":
        setpoint = {"coldlab": 4.0, "server-room": 19.0}.get(sensor.room, 21.0)
        document: dict[str, Any] = {
            "temperature": round(
                setpoint + 0.8 * math.sin(phase) + random.gauss(0, 0.05), 2
            ),
            "humidity": round(45 + 5 * math.cos(phase) + random.gauss(0, 0.3), 1),
            "battery": {"level": max(0, 100 - step // 50), "low": step > 4000},
            "ts": int(now * 1000),
        }
        return f"{base}/climate", json.dumps(document).encode()
    if sensor.kind == "co2":
        document = {
            "co2": int(420 + 150 * abs(math.sin(phase)) + random.randint(0, 20))
        }
        return f"{base}/air", json.dumps(document).encode()
    if sensor.kind == "power":
        document = {
            "power_w": round(850 + 120 * math.sin(phase * 3) + random.gauss(0, 4), 1),
            "energy_wh": 120_000 + step * 13,
            "status": "ok",
        }
        return f"{base}/power", json.dumps(document).encode()
    return f"{base}/door", b"OPEN" if step % 37 < 3 else b"CLOSED"


def malformed(step: int) -> tuple[str, bytes]:
    """Return one of the kinds of bad payload real devices send."""
    kinds = [
        ("lab/greenhouse/th-04/climate", b'{"temperature": 21.5, "humidity": '),
        ("lab/coldlab/co2-02/air", b"\xff\xfe not utf-8"),
        ("lab/cleanroom/th-01/climate", b'{"temperature": NaN}'),
        ("lab/server-room/pm-03/power", b"[1, 2, 3]"),
    ]
    return kinds[step % len(kinds)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """An amqtt broker on its own event loop in a daemon thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="broker", daemon=True)
        self._broker: Any = None
        self.error: BaseException | None = None

    def _run(self) -> None:
        from amqtt.broker import Broker

        asyncio.set_event_loop(self._loop)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {
                    "allow_anonymous": True
                }
            },
        }
        try:
            self._broker = Broker(config, loop=self._loop)
            self._loop.run_until_complete(self._broker.start())
        except BaseException as error:  # reported to the caller of start()
            self.error = error
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        self._started.wait(10)
        if self.error is not None:
            raise RuntimeError(f"the embedded broker failed to start: {self.error}")

    def stop(self) -> None:
        if self._broker is not None:
            future = asyncio.run_coroutine_threadsafe(
                self._broker.shutdown(), self._loop
            )
            # The broker is going away either way; a failed shutdown changes nothing.
            with contextlib.suppress(Exception):
                future.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()


class Simulator:
    """Publish sensor readings at `rate` messages per second for `duration` s."""

    def __init__(self, port: int, rate: float, duration: float, bad_every: int) -> None:
        self.port = port
        self.rate = rate
        self.duration = duration
        self.bad_every = bad_every
        self.published: dict[str, int] = {}
        self.malformed = 0
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sensors", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _messages(self) -> Iterator[tuple[str, bytes, bool]]:
        sensors = lab_sensors()
        step = 0
        while True:
            for sensor in sensors:
                step += 1
                if self.bad_every and step % self.bad_every == 0:
                    topic, payload = malformed(step // self.bad_every)
                    yield topic, payload, True
                topic, payload = reading(sensor, step, time.time())
                yield topic, payload, False

    def _run(self) -> None:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id="labdock-demo-sensors",
            protocol=paho.MQTTv311,
        )
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        interval = 1.0 / self.rate
        started = time.monotonic()
        next_send = started
        for topic, payload, bad in self._messages():
            now = time.monotonic()
            if now - started >= self.duration:
                break
            if next_send > now:
                time.sleep(next_send - now)
            next_send += interval
            client.publish(topic, payload, qos=1).wait_for_publish(5)
            if bad:
                self.malformed += 1
            else:
                self.published[topic] = self.published.get(topic, 0) + 1
        client.disconnect()
        client.loop_stop()
        self.done.set()


def demo_config(
    port: int, workdir: Path, database: dict[str, Any] | None
) -> AcquireConfig:
    """Return the service configuration the demo runs with."""
    return AcquireConfig.model_validate(
        {
            "broker": {
                "url": f"mqtt://127.0.0.1:{port}",
                "protocol": "3.1.1",
                "client_id": "labdock-demo-acquire",
                "max_inflight": 100,
            },
            "mappings": [
                {
                    "topic": "lab/{room}/{device}/climate",
                    "measurement": "climate",
                    "format": "json",
                    "options": {"timestamp": {"path": "ts", "format": "ms"}},
                },
                {
                    "topic": "lab/{room}/{device}/door",
                    "measurement": "door",
                    "format": "value",
                    "options": {"field": "open", "type": "bool"},
                },
                {
                    "topic": "lab/{room}/{device}/{measurement}",
                    "format": "json",
                },
            ],
            "database": database or {"url": f"sqlite:///{workdir / 'points.sqlite'}"},
            "spool": {"directory": str(workdir / "spool")},
            "batch": {"max_delay": 0.5},
            "http": {"listen": f"127.0.0.1:{free_port()}"},
            "shutdown_timeout": 10,
        }
    )


def create_database_v1(url: str, name: str) -> str | None:
    """Create the InfluxDB 1.x database `name` unless it exists.

    CREATE DATABASE leaves an existing database as it is. Returns None on
    success, or a message saying what failed and what to check.
    """
    quoted = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    body = urllib.parse.urlencode({"q": f"CREATE DATABASE {quoted}"}).encode()
    request = urllib.request.Request(
        url.rstrip("/") + "/query", data=body, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            answer = json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", "replace").strip()[:200]
        return (
            f"creating the database {name!r} at {url} failed: HTTP {error.code} "
            f"{text}; check --database-url and that this InfluxDB 1.x accepts "
            "CREATE DATABASE without authentication"
        )
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return (
            f"creating the database {name!r} at {url} failed: {reason}; check "
            "that InfluxDB runs there and --database-url is right"
        )
    for result in answer.get("results", []):
        if "error" in result:
            return (
                f"creating the database {name!r} at {url} failed: "
                f"{result['error']}; choose another --database name"
            )
    return None


def storage_hint(api: str | None, reason: str | None) -> str:
    """Return what to check when the demo stored nothing in a database."""
    last_error = reason or "none recorded"
    fix = "check --database-url, --api and --database"
    if api == "v2":
        fix = "check --database-url, --org and that the bucket exists"
    return f"nothing was stored; the writer's last error: {last_error}; {fix}"


def labdock_command() -> str:
    """Return how to run labdock from the current directory.

    `make demo` runs the venv's Python without the venv on PATH, so a bare
    `labdock` in the printed hints would not be found.
    """
    if shutil.which("labdock"):
        return "labdock"
    script = Path(sys.executable).parent / "labdock"
    if not script.exists():
        return "labdock"
    relative = os.path.relpath(script)
    return relative if not relative.startswith("..") else str(script)


def _counter(service: Service, name: str) -> float:
    value = service.metrics.registry.get_sample_value(name)
    return value or 0.0


def _deadletters(service: Service) -> int:
    total = 0.0
    for metric in service.metrics.deadlettered.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                total += sample.value
    return int(total)


def run_demo(
    *, duration: float, rate: float, workdir: Path, database: dict[str, Any] | None
) -> int:
    """Run the demo and print its progress and summary; return the exit code.

    Raises ValueError for a non-positive `duration` or `rate`.
    """
    from labdock.log import configure_logging

    if not duration > 0 or not rate > 0:
        raise ValueError(
            f"duration {duration!r} s and rate {rate!r}/s must both be above 0"
        )
    if database is not None and database.get("api") == "v1":
        problem = create_database_v1(database["url"], database["database"])
        if problem is not None:
            print(f"labdock demo: {problem}", file=sys.stderr)
            return 1
    if database is not None and database.get("api") == "v2":
        print(
            f"labdock demo: the bucket {database['bucket']!r} must exist in "
            f"{database['url']}; this demo does not create it"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    # Dead letters are part of the progress line; only errors interrupt it.
    configure_logging("error", "console")
    logging.getLogger("amqtt").setLevel(logging.CRITICAL)
    logging.getLogger("transitions").setLevel(logging.CRITICAL)
    port = free_port()
    broker = EmbeddedBroker(port)
    broker.start()
    config = demo_config(port, workdir, database)
    service = Service(config)
    service.start()
    deadline = time.monotonic() + 10
    while not service.connection.connected.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    print(
        f"labdock demo: broker mqtt://127.0.0.1:{port}, {len(lab_sensors())} sensors "
        f"publishing {rate:g} messages/s for {duration:g} s, writing to {config.database.url}"
    )
    simulator = Simulator(port, rate, duration, bad_every=25)
    simulator.start()
    received_before = 0.0
    tty = sys.stdout.isatty()
    while True:
        finished = simulator.done.wait(1.0)
        received = _counter(service, "labdock_acquire_messages_received_total")
        written = _counter(service, "labdock_acquire_points_written_total")
        status = (
            f"{received - received_before:6.0f} msg/s | received {received:7.0f} | "
            f"points written {written:7.0f} | spool {service.spool.messages:5d} | "
            f"dead letters {_deadletters(service):4d}"
        )
        received_before = received
        print(("\r" + status) if tty else status, end="" if tty else "\n", flush=True)
        if finished:
            break
    # Let the last messages arrive and the spool drain before stopping.
    expected = sum(simulator.published.values()) + simulator.malformed
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (
        _counter(service, "labdock_acquire_messages_received_total") < expected
        or service.spool.messages
    ):
        time.sleep(0.1)
    if tty:
        print()
    service.shutdown()
    broker.stop()
    return _summary(config, simulator, service)


def _summary(config: AcquireConfig, simulator: Simulator, service: Service) -> int:
    published = sum(simulator.published.values())
    deadletters = _deadletters(service)
    written = int(_counter(service, "labdock_acquire_points_written_total"))
    print(
        f"\npublished {published} readings and {simulator.malformed} malformed payloads"
    )
    print(f"stored {written} points; {deadletters} dead letters kept with their reason")
    if config.database.api == "sqlite":
        path = config.database.sqlite_path
        connection = sqlite3.connect(path)
        rows = connection.execute(
            "SELECT measurement, tags, COUNT(DISTINCT time_ns), COUNT(*) FROM points "
            "GROUP BY measurement, tags ORDER BY tags, measurement"
        ).fetchall()
        connection.close()
        print(f"\n{'sensor':42} {'measurement':12} {'points':>7} {'values':>7}")
        for measurement, tags, points, values in rows:
            print(f"{tags:42} {measurement:12} {points:7d} {values:7d}")
        print(
            "\nQuery what was stored:\n"
            f"  sqlite3 {path} \"SELECT * FROM points WHERE measurement='climate' "
            'ORDER BY time_ns DESC LIMIT 5"'
        )
    elif written == 0:
        print(
            "\n" + storage_hint(config.database.api, service.writer.unready_reason),
            file=sys.stderr,
        )
    else:
        print(
            f"\nQuery what was stored in {config.database.url} (for example with the influx CLI)."
        )
    print(
        "See the dead letters:\n"
        f"  {labdock_command()} deadletter list --spool-dir {config.spool.directory}"
    )
    return 0 if written == published and service.spool.messages == 0 else 1

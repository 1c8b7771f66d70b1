"""The programs under test: how each is configured, started and stopped.

Every contender subscribes to `bench/#` on the run's broker and, except the
bare subscriber, writes to database `bench` of the run's database server
through the InfluxDB v1 /write API. Topic levels 2-4 become the tags `room`
and `device` and the measurement, and every payload key becomes a field.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
import yaml
from stores import DATABASE, ReceiptFile

from components import free_port

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
TOPIC_FILTER = "bench/#"


@dataclass
class Tools:
    """Interpreters and installs that the contenders run from."""

    python: Path  # the bench venv: labdock, paho, the harness
    mqtt2influxdb: Path | None  # the console script in its own venv
    node_red: Path | None  # the npm install folder holding node_modules/


@dataclass
class Run:
    """The broker, database and tools of one run, as a contender uses them."""

    workdir: Path
    broker_port: int
    database_url: str  # http://127.0.0.1:PORT of InfluxDB or VictoriaMetrics
    tools: Tools

    @property
    def database_port(self) -> int:
        return int(self.database_url.rsplit(":", 1)[1])


def _spawn(command: list[str], workdir: Path, log_name: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / log_name, "ab") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            **kwargs,
        )


@dataclass
class Contender:
    """Base class: one configuration of one program."""

    key: str  # identifier used in file names and results.json
    label: str  # the row name in the results table
    role: str  # "labdock", "peer", "floor" or "ceiling"
    size: str  # "fast", "medium" or "slow": picks the message count of a run
    note: str = ""
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def available(self, tools: Tools) -> str | None:
        """Return why this contender can't run with `tools`, or None."""
        return None

    def start(self, run: Run) -> None:
        raise NotImplementedError

    def store_override(self, run: Run) -> ReceiptFile | None:
        """Return a store of its own when it writes no database."""
        return None

    def pids(self) -> set[int]:
        return {process.pid for process in self.processes}

    def check_alive(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{self.label} exited with status {process.returncode}; see its log "
                    "in the run folder"
                )

    def stop(self, timeout: float = 30.0) -> None:
        """Send SIGTERM to every process, then SIGKILL what is left after `timeout`."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.processes = []


class BareSubscriber(Contender):
    """mosquitto_sub at QoS 1 with a persistent session, writing one line per
    message (receipt time, topic, payload) to a file."""

    def start(self, run: Run) -> None:
        self.output = run.workdir / "received.txt"
        command = [
            "mosquitto_sub", "-h", "127.0.0.1", "-p", str(run.broker_port),
            "-t", TOPIC_FILTER, "-q", "1", "-c", "-i", "bench-mosquitto-sub",
            "-F", "%U %t %p",
        ]  # fmt: skip
        with self.output.open("wb") as out, (run.workdir / "mosquitto_sub.log").open("ab") as log:
            self.processes = [
                subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=log)
            ]

    def store_override(self, run: Run) -> ReceiptFile:
        return ReceiptFile(run.workdir / "received.txt")


class FloorIngest(Contender):
    """bench/floor_ingest.py: paho with automatic acknowledgement and one
    HTTP write per batch."""

    def start(self, run: Run) -> None:
        command = [
            str(run.tools.python), str(BENCH / "floor_ingest.py"),
            "--broker-port", str(run.broker_port),
            "--db-port", str(run.database_port),
        ]  # fmt: skip
        self.processes = [_spawn(command, run.workdir, "floor.log")]


@dataclass
class Labdock(Contender):
    """`labdock acquire` with its durable spool; `replicas` processes share
    one subscription through `broker.share_group` when above 1."""

    overrides: dict[str, Any] = field(default_factory=dict)
    replicas: int = 1
    metrics_ports: list[int] = field(default_factory=list)

    def config(self, run: Run, replica: int) -> dict[str, Any]:
        broker: dict[str, Any] = {
            "url": f"mqtt://127.0.0.1:{run.broker_port}",
            "client_id": f"bench-labdock-{replica}",
        }
        if self.replicas > 1:
            broker["share_group"] = "bench"
        config: dict[str, Any] = {
            "broker": broker,
            "mappings": [{"topic": "bench/{room}/{device}/{measurement}", "format": "json"}],
            "database": {"url": run.database_url, "api": "v1", "database": DATABASE},
            "spool": {"directory": str(run.workdir / f"spool-{replica}")},
            "http": {"listen": f"127.0.0.1:{self.metrics_ports[replica]}"},
            "log": {"format": "json", "level": "info"},
        }
        for section, values in self.overrides.items():
            config.setdefault(section, {}).update(values)
        return config

    def start(self, run: Run) -> None:
        self.metrics_ports = [free_port() for _ in range(self.replicas)]
        self.processes = []
        for replica in range(self.replicas):
            path = run.workdir / f"acquire-{replica}.yaml"
            path.write_text(yaml.safe_dump(self.config(run, replica)))
            command = [str(run.tools.python), "-m", "labdock", "acquire", "--config", str(path)]
            self.processes.append(
                _spawn(command, run.workdir, f"acquire-{replica}.log",
                       env={**os.environ, "PYTHONUNBUFFERED": "1"})
            )
        for port in self.metrics_ports:
            _wait_for_metric(port, "labdock_acquire_broker_connected", self)

    def labdock_metrics(self) -> list[dict[str, float]]:
        return [_read_metrics(port) for port in self.metrics_ports]


def _read_metrics(port: int) -> dict[str, float]:
    try:
        response = urllib3.request("GET", f"http://127.0.0.1:{port}/metrics", timeout=2.0)
    except urllib3.exceptions.HTTPError:
        return {}
    values = {}
    for line in response.data.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def _wait_for_metric(port: int, name: str, contender: Contender, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while _read_metrics(port).get(name) != 1:
        contender.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{contender.label}: {name} did not become 1 in {timeout} s")
        time.sleep(0.1)


@dataclass
class NodeRed(Contender):
    """Node-RED with node-red-contrib-influxdb, in one of two flows:
    `plain` (mqtt in -> function -> influxdb out, one write per message, as
    the contrib node's README shows) or `batch` (mqtt in -> function -> join
    -> influxdb batch)."""

    flow: str = "plain"
    join_count: int = 1000
    join_timeout: float = 1.0

    def available(self, tools: Tools) -> str | None:
        if tools.node_red is None or not (tools.node_red / "node_modules" / "node-red").exists():
            return "Node-RED is not installed (bench/run.sh installs it from npm)"
        return None

    def flows(self, run: Run) -> list[dict[str, Any]]:
        broker = {
            "id": "b1a5e0c0b4e11e01", "type": "mqtt-broker", "name": "bench broker",
            "broker": "127.0.0.1", "port": str(run.broker_port),
            "clientid": f"bench-nodered-{self.flow}", "autoConnect": True,
            "usetls": False, "protocolVersion": "4", "keepalive": "60",
            "cleansession": True,
        }  # fmt: skip
        influx = {
            "id": "b1a5e0c0b4e11e02", "type": "influxdb", "hostname": "127.0.0.1",
            "port": str(run.database_port), "protocol": "http", "database": DATABASE,
            "name": "bench database", "usetls": False, "influxdbVersion": "1.x",
        }  # fmt: skip
        mqtt_in = {
            "id": "b1a5e0c0b4e11e03", "type": "mqtt in", "z": "b1a5e0c0b4e11e00", "topic": TOPIC_FILTER, "qos": "1",
            "datatype": "auto-detect", "broker": "b1a5e0c0b4e11e01", "nl": False, "rap": True,
            "inputs": 0, "wires": [["b1a5e0c0b4e11e04"]],
        }  # fmt: skip
        nodes: list[dict[str, Any]] = [
            {"id": "b1a5e0c0b4e11e00", "type": "tab", "label": "bench"}, broker, influx, mqtt_in,
        ]
        if self.flow == "plain":
            function = (
                "const levels = msg.topic.split('/');\n"
                "msg.measurement = levels[3];\n"
                "msg.payload = [msg.payload, {room: levels[1], device: levels[2]}];\n"
                "return msg;"
            )
            nodes += [
                {"id": "b1a5e0c0b4e11e04", "type": "function", "z": "b1a5e0c0b4e11e00", "name": "to point",
                 "func": function, "outputs": 1, "wires": [["b1a5e0c0b4e11e05"]]},
                {"id": "b1a5e0c0b4e11e05", "type": "influxdb out", "z": "b1a5e0c0b4e11e00",
                 "influxdb": "b1a5e0c0b4e11e02",
                 "measurement": "", "precision": "", "retentionPolicy": "", "wires": []},
            ]  # fmt: skip
        else:
            # Points without a time get the server's time at the write, which
            # is the same for every point of a batch, so points of one series
            # in one batch would overwrite each other. Each point gets a
            # unique microsecond time instead.
            function = (
                "const levels = msg.topic.split('/');\n"
                "let now = Date.now() * 1000;\n"
                "const last = context.get('last') || 0;\n"
                "if (now <= last) { now = last + 1; }\n"
                "context.set('last', now);\n"
                "msg.payload = {measurement: levels[3], fields: msg.payload,\n"
                "  tags: {room: levels[1], device: levels[2]}, timestamp: String(now)};\n"
                "return msg;"
            )
            nodes += [
                {"id": "b1a5e0c0b4e11e04", "type": "function", "z": "b1a5e0c0b4e11e00", "name": "to point",
                 "func": function, "outputs": 1, "wires": [["b1a5e0c0b4e11e06"]]},
                {"id": "b1a5e0c0b4e11e06", "type": "join", "z": "b1a5e0c0b4e11e00",
                 "mode": "custom",
                 "build": "array", "property": "payload", "propertyType": "msg",
                 "key": "topic", "joiner": "\\n", "joinerType": "str",
                 "accumulate": False, "timeout": str(self.join_timeout),
                 "count": str(self.join_count), "reduceRight": False,
                 "wires": [["b1a5e0c0b4e11e07"]]},
                {"id": "b1a5e0c0b4e11e07", "type": "influxdb batch", "z": "b1a5e0c0b4e11e00",
                 "influxdb": "b1a5e0c0b4e11e02",
                 "precision": "u", "retentionPolicy": "", "wires": []},
            ]  # fmt: skip
        return nodes

    def start(self, run: Run) -> None:
        assert run.tools.node_red is not None
        user_dir = run.workdir / "nodered"
        user_dir.mkdir(parents=True, exist_ok=True)
        modules = user_dir / "node_modules"
        if not modules.exists():
            modules.symlink_to(run.tools.node_red / "node_modules")
        (user_dir / "flows.json").write_text(json.dumps(self.flows(run), indent=1))
        self.ui_port = free_port()
        settings = {
            "uiHost": "127.0.0.1",
            "uiPort": self.ui_port,
            "flowFile": "flows.json",
            "credentialSecret": False,
            "userDir": str(user_dir),
            "diagnostics": {"enabled": False, "ui": False},
            "telemetry": {"enabled": False},
            "externalModules": {"palette": {"allowInstall": False}},
            "editorTheme": {"tours": False},
            "logging": {"console": {"level": "warn", "metrics": False, "audit": False}},
        }
        (user_dir / "settings.js").write_text(f"module.exports = {json.dumps(settings, indent=1)};\n")
        command = [
            "node", str(run.tools.node_red / "node_modules" / "node-red" / "red.js"),
            "--settings", str(user_dir / "settings.js"), "--userDir", str(user_dir),
        ]  # fmt: skip
        self.processes = [_spawn(command, run.workdir, "node-red.log")]
        deadline = time.monotonic() + 60
        while True:
            self.check_alive()
            try:
                response = urllib3.request(
                    "GET", f"http://127.0.0.1:{self.ui_port}/flows", timeout=2.0,
                    headers={"Accept": "application/json"},
                )
                if response.status == 200:
                    return
            except urllib3.exceptions.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.label} did not start within 60 s")
            time.sleep(0.2)


class Mqtt2InfluxDB(Contender):
    """mqtt2influxdb 1.x from PyPI with a configuration from its tutorial's
    pattern: one `points` entry, fields from the JSON payload, tags and the
    measurement from topic levels."""

    def available(self, tools: Tools) -> str | None:
        if tools.mqtt2influxdb is None or not tools.mqtt2influxdb.exists():
            return "mqtt2influxdb is not installed (bench/run.sh installs it from PyPI)"
        return None

    def start(self, run: Run) -> None:
        assert run.tools.mqtt2influxdb is not None
        config = {
            "mqtt": {"host": "127.0.0.1", "port": run.broker_port},
            "influxdb": {"host": "127.0.0.1", "port": run.database_port, "database": DATABASE},
            "points": [
                {
                    "measurement": "$.topic[3]",
                    "topic": TOPIC_FILTER,
                    "fields": "$.payload",
                    "tags": {"room": "$.topic[1]", "device": "$.topic[2]"},
                }
            ],
        }
        path = run.workdir / "mqtt2influxdb.yaml"
        path.write_text(yaml.safe_dump(config))
        command = [str(run.tools.mqtt2influxdb), "-c", str(path)]
        self.processes = [_spawn(command, run.workdir, "mqtt2influxdb.log")]


def all_contenders() -> list[Contender]:
    """Return every configuration the full benchmark measures, in table order."""
    return [
        Labdock("labdock-default", "labdock acquire (defaults)", "labdock", "fast",
                note="durable spool, QoS 1, every setting at its default"),
        Labdock("labdock-tuned", "labdock acquire (tuned)", "labdock", "fast",
                note="MQTT 3.1.1 (the broker's 10,000 in-flight limit applies), "
                     "spool commits of up to 10,000 messages",
                overrides=TUNED_LABDOCK),
        Labdock("labdock-shared-2", "labdock acquire x2 ($share)", "labdock", "fast",
                note="two processes in one shared subscription, tuned settings",
                overrides=TUNED_LABDOCK, replicas=2),
        NodeRed("nodered-plain", "Node-RED (plain flow)", "peer", "slow",
                note="mqtt in -> function -> influxdb out: the documented default",
                flow="plain"),
        NodeRed("nodered-batch", "Node-RED (join + batch)", "peer", "medium",
                note="mqtt in -> function -> join (1000 or 1 s) -> influxdb batch",
                flow="batch"),
        Mqtt2InfluxDB("mqtt2influxdb", "mqtt2influxdb 1.5.2", "peer", "slow",
                      note="its only mode: QoS 0 subscription, one write per message"),
        FloorIngest("floor", "minimal paho loop (floor)", "floor", "fast",
                    note="acknowledges before storing, one POST per 5000 lines"),
        BareSubscriber("mosquitto-sub", "mosquitto_sub (ceiling)", "ceiling", "fast",
                       note="QoS 1, persistent session, only counts"),
    ]  # fmt: skip


def tuning_contenders() -> list[Contender]:
    """Return labdock configurations tried while choosing TUNED_LABDOCK; the
    full benchmark runs them only when `--only` names them."""
    return [
        Labdock("labdock-mqtt311", "labdock acquire (MQTT 3.1.1)", "labdock", "fast",
                overrides={"broker": {"protocol": "3.1.1"}}),
        Labdock("labdock-inflight-10k", "labdock acquire (inflight 10k)", "labdock", "fast",
                overrides={"broker": {"max_inflight": 10000},
                           "spool": {"commit_max_messages": 10000}}),
        Labdock("labdock-inflight-5k", "labdock acquire (inflight 5k)", "labdock", "fast",
                overrides={"broker": {"max_inflight": 5000},
                           "spool": {"commit_max_messages": 5000}}),
        Labdock("labdock-batch-20k", "labdock acquire (batch 20k)", "labdock", "fast",
                overrides={"batch": {"max_lines": 20000}}),
        Labdock("labdock-commit-200ms", "labdock acquire (commit 0.2 s)", "labdock", "fast",
                overrides={"spool": {"commit_interval": 0.2}}),
        Labdock("labdock-shared-2-default", "labdock acquire x2 defaults", "labdock", "fast",
                replicas=2),
    ]  # fmt: skip


# The labdock settings that the tuning runs chose; see bench/README.md.
TUNED_LABDOCK: dict[str, Any] = {
    "broker": {"protocol": "3.1.1"},
    "spool": {"commit_max_messages": 10000},
}

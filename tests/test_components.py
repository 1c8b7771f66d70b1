"""Tests of the real-server helpers in components.py and their fixtures."""

from __future__ import annotations

import contextlib
import queue
import re
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from components import (
    INSTALL_COMMAND,
    LOOPBACK,
    HttpError,
    InfluxDB1,
    Mosquitto,
    ServerProcess,
    ServerStartError,
    ServerStopError,
    VictoriaMetrics,
    create_tls_files,
    free_port,
    free_ports,
    poll_until,
    require_binary,
    series_selector,
    wait_for_http,
    wait_for_port,
)

MQTT_TIMEOUT = 10.0


# ---------------------------------------------------------------------------
# A minimal paho 2.x client for checking the broker


@dataclass
class MqttSession:
    client: mqtt.Client
    messages: queue.Queue[mqtt.MQTTMessage]
    subacks: queue.Queue[tuple[int, list[ReasonCode]]]
    session_present: bool

    def subscribe(self, topic: str, qos: int = 1) -> None:
        result, mid = self.client.subscribe(topic, qos=qos)
        assert result == mqtt.MQTT_ERR_SUCCESS
        acknowledged_mid, reason_codes = self.subacks.get(timeout=MQTT_TIMEOUT)
        assert acknowledged_mid == mid
        assert [code.value for code in reason_codes] == [qos]

    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout=MQTT_TIMEOUT)
        assert info.is_published()

    def next_message(self) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=MQTT_TIMEOUT)


@contextlib.contextmanager
def mqtt_session(
    port: int,
    client_id: str,
    *,
    clean_start: bool = True,
    session_expiry: int = 0,
    ca_file: Path | None = None,
) -> Iterator[MqttSession]:
    """Connect an MQTT v5 client, wait for CONNACK and disconnect on exit."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subacks: queue.Queue[tuple[int, list[ReasonCode]]] = queue.Queue()
    connacks: queue.Queue[tuple[bool, ReasonCode]] = queue.Queue()

    def on_connect(
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        connacks.put((flags.session_present, reason_code))

    def on_subscribe(
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        subacks.put((mid, reason_codes))

    def on_message(
        client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage
    ) -> None:
        messages.put(message)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    if ca_file is not None:
        client.tls_set(ca_certs=str(ca_file))
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = session_expiry
    client.connect(LOOPBACK, port, clean_start=clean_start, properties=properties)
    client.loop_start()
    try:
        session_present, reason_code = connacks.get(timeout=MQTT_TIMEOUT)
        assert not reason_code.is_failure, f"CONNACK {reason_code}"
        yield MqttSession(client, messages, subacks, session_present)
    finally:
        client.disconnect()
        client.loop_stop()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


# ---------------------------------------------------------------------------
# Ports, waiting and binaries


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(3)
    assert len(set(ports)) == 3
    for port in [*ports, free_port()]:
        with socket.socket() as sock:
            sock.bind((LOOPBACK, port))


def test_wait_for_port_timeout_shows_log(tmp_path: Path) -> None:
    log_file = tmp_path / "server.log"
    log_file.write_text("first line\nlast words before the hang\n")
    started = time.monotonic()
    with pytest.raises(ServerStartError) as error:
        wait_for_port(free_port(), timeout=0.3, log_file=log_file, name="hung-server")
    assert time.monotonic() - started < 5
    message = str(error.value)
    assert "hung-server timed out after 0.3 s" in message
    assert "last words before the hang" in message


def test_wait_for_port_reports_early_exit(tmp_path: Path) -> None:
    log_file = tmp_path / "server.log"
    with open(log_file, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "print('fatal: invalid config'); raise SystemExit(3)",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        with pytest.raises(ServerStartError) as error:
            wait_for_port(free_port(), timeout=30, process=process, log_file=log_file)
    finally:
        process.kill()
        process.wait()
    message = str(error.value)
    assert "exited with code 3" in message
    assert "fatal: invalid config" in message


def test_wait_for_http_timeout_names_url() -> None:
    url = f"http://{LOOPBACK}:{free_port()}/health"
    with pytest.raises(ServerStartError) as error:
        wait_for_http(url, timeout=0.3)
    assert f"waiting for {url}" in str(error.value)


def test_poll_until_returns_first_truthy_value() -> None:
    values: Iterator[object] = iter([0, None, [], "ready"])
    assert poll_until(lambda: next(values), interval=0.001) == "ready"


def test_poll_until_timeout_shows_last_value() -> None:
    with pytest.raises(
        TimeoutError, match=r"three rows not met within 0.1 s; last value: \[\]"
    ):
        poll_until(lambda: [], timeout=0.1, description="three rows")


def test_require_binary_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as outcome:
        require_binary("labdock-missing-binary", "labdock-missing-package")
    assert "labdock-missing-package" in str(outcome.value)
    assert INSTALL_COMMAND in str(outcome.value)


@pytest.mark.parametrize("value", ["true", "TRUE", "1"])
def test_require_binary_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception) as outcome:
        require_binary("labdock-missing-binary", "labdock-missing-package")
    assert INSTALL_COMMAND in str(outcome.value)


def test_require_binary_skips_when_ci_false(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        require_binary("labdock-missing-binary", "labdock-missing-package")


def test_unique_name_is_short_and_safe(unique_name: str) -> None:
    assert re.fullmatch(r"[a-z][a-z0-9_]*", unique_name)
    assert len(unique_name) <= 23
    assert unique_name.startswith("unique_name_is_s")


def test_series_selector_escapes_quotes() -> None:
    selector = series_selector("env_temperature", site='lab "b"', device="d1")
    assert selector == '{__name__="env_temperature",device="d1",site="lab \\"b\\""}'


class SigtermIgnoringServer(ServerProcess):
    """A Python process that listens on a port and ignores SIGTERM."""

    name = "sigterm-ignoring"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, sys.executable)
        self.port = free_port()

    def _allocate_ports(self) -> None:
        self.port = free_port()

    def _command(self, binary_path: str) -> list[str]:
        script = (
            "import signal, socket, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            f"server = socket.create_server(({LOOPBACK!r}, {self.port}))\n"
            "print('listening and ignoring SIGTERM', flush=True)\n"
            "time.sleep(600)\n"
        )
        return [binary_path, "-c", script]

    def _wait_until_ready(self, timeout: float) -> None:
        self._wait_for_ports([self.port], time.monotonic() + timeout)


def test_stop_kills_server_ignoring_sigterm(tmp_path: Path) -> None:
    server = SigtermIgnoringServer(tmp_path).start()
    try:
        with pytest.raises(ServerStopError) as error:
            server.stop(timeout=0.5)
        assert not server.running
    finally:
        server.kill()
    message = str(error.value)
    assert "did not exit within 0.5 s of SIGTERM" in message
    assert "listening and ignoring SIGTERM" in message


# ---------------------------------------------------------------------------
# Mosquitto


def test_mosquitto_publish_subscribe(mosquitto: Mosquitto, unique_name: str) -> None:
    assert mosquitto.url == f"mqtt://{LOOPBACK}:{mosquitto.port}"
    topic = f"{unique_name}/temperature"
    with mqtt_session(mosquitto.port, f"{unique_name}-sub") as subscriber:
        subscriber.subscribe(f"{unique_name}/#")
        with mqtt_session(mosquitto.port, f"{unique_name}-pub") as publisher:
            publisher.publish(topic, b"21.5")
        message = subscriber.next_message()
    assert message.topic == topic
    assert message.payload == b"21.5"
    assert message.qos == 1


def test_mosquitto_restart_keeps_session_and_retained(
    mosquitto: Mosquitto, unique_name: str
) -> None:
    port = mosquitto.port
    client_id = f"{unique_name}-keeper"
    with mqtt_session(
        port, client_id, clean_start=False, session_expiry=3600
    ) as keeper:
        keeper.subscribe(f"{unique_name}/queued")
    with mqtt_session(port, f"{unique_name}-pub") as publisher:
        publisher.publish(f"{unique_name}/queued", b"sent while offline")
        publisher.publish(f"{unique_name}/retained", b"kept", retain=True)

    mosquitto.restart()

    assert mosquitto.port == port
    assert mosquitto.db_file.exists()
    with mqtt_session(
        port, client_id, clean_start=False, session_expiry=3600
    ) as keeper:
        assert keeper.session_present
        assert keeper.next_message().payload == b"sent while offline"
    with mqtt_session(port, f"{unique_name}-late") as late:
        late.subscribe(f"{unique_name}/retained")
        retained = late.next_message()
    assert retained.payload == b"kept"
    assert retained.retain


def test_mosquitto_stop_saves_database(mosquitto: Mosquitto) -> None:
    assert mosquitto.running
    assert mosquitto.pid is not None
    assert mosquitto.stop() == 0
    assert not mosquitto.running
    assert mosquitto.pid is None
    assert mosquitto.db_file.stat().st_size > 0
    assert "mosquitto version 2" in mosquitto.log_tail(50)


def test_mosquitto_kill_keeps_autosaved_state(
    mosquitto: Mosquitto, unique_name: str
) -> None:
    with mqtt_session(mosquitto.port, f"{unique_name}-pub") as publisher:
        publisher.publish(f"{unique_name}/retained", b"autosaved", retain=True)
    acknowledged_at = time.time()
    # Only an autosave that ran after the PUBACK contains the message.
    poll_until(
        lambda: (
            mosquitto.db_file.exists()
            and mosquitto.db_file.stat().st_mtime > acknowledged_at
        ),
        timeout=mosquitto.autosave_interval + 10,
        description="autosave after the publish",
    )
    mosquitto.kill()
    assert not mosquitto.running

    mosquitto.start()

    with mqtt_session(mosquitto.port, f"{unique_name}-late") as late:
        late.subscribe(f"{unique_name}/retained")
        assert late.next_message().payload == b"autosaved"


def test_mosquitto_tls_publish_subscribe(
    mosquitto_tls: Mosquitto, unique_name: str
) -> None:
    assert mosquitto_tls.tls_url == f"mqtts://{LOOPBACK}:{mosquitto_tls.tls_port}"
    assert mosquitto_tls.tls_port != mosquitto_tls.port
    tls_port = port_of(mosquitto_tls.tls_url)
    ca_file = mosquitto_tls.ca_file
    with mqtt_session(tls_port, f"{unique_name}-sub", ca_file=ca_file) as subscriber:
        subscriber.subscribe(f"{unique_name}/#")
        with mqtt_session(mosquitto_tls.port, f"{unique_name}-pub") as publisher:
            publisher.publish(f"{unique_name}/x", b"over tls")
        assert subscriber.next_message().payload == b"over tls"


def test_mosquitto_tls_rejects_unknown_ca(
    mosquitto_tls: Mosquitto, tmp_path: Path
) -> None:
    other_ca, _, _ = create_tls_files(tmp_path / "other-ca")
    context = ssl.create_default_context(cafile=str(other_ca))
    address = (LOOPBACK, mosquitto_tls.tls_port)
    with (
        socket.create_connection(address, timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname=LOOPBACK)


def test_mosquitto_without_tls_has_no_tls_url(mosquitto: Mosquitto) -> None:
    with pytest.raises(RuntimeError, match="tls=True"):
        _ = mosquitto.tls_url


def test_mosquitto_moves_off_taken_port(mosquitto_binary: str, tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker", binary=mosquitto_binary)
    taken_port = broker.port
    with socket.socket() as blocker:
        blocker.bind((LOOPBACK, taken_port))
        blocker.listen()
        broker.start()
        try:
            assert broker.port != taken_port
            assert broker.running
        finally:
            broker.stop()


def test_mosquitto_fixed_port_conflict_raises(
    mosquitto_binary: str, tmp_path: Path
) -> None:
    with socket.socket() as blocker:
        blocker.bind((LOOPBACK, 0))
        blocker.listen()
        taken_port = blocker.getsockname()[1]
        broker = Mosquitto(
            tmp_path / "broker", port=taken_port, binary=mosquitto_binary
        )
        with pytest.raises(ServerStartError, match="(?i)address already in use"):
            broker.start(timeout=10)
    assert not broker.running


# ---------------------------------------------------------------------------
# InfluxDB 1.x


def test_influxdb_write_query_count(influxdb1: InfluxDB1, unique_name: str) -> None:
    assert influxdb1.url == f"http://{LOOPBACK}:{influxdb1.port}"
    influxdb1.create_database(unique_name)
    influxdb1.write(
        unique_name,
        [
            "env,device=d1 temperature=21.5,humidity=40i 1700000000000000000",
            "env,device=d1 temperature=22.0 1700000001000000000",
            "env,device=d2 temperature=19.0,humidity=35i 1700000000000000000",
        ],
    )

    rows = influxdb1.query(
        unique_name, "SELECT * FROM env WHERE device = 'd1'", epoch="s"
    )

    assert rows == [
        {"time": 1700000000, "device": "d1", "humidity": 40, "temperature": 21.5},
        {"time": 1700000001, "device": "d1", "humidity": None, "temperature": 22.0},
    ]
    assert influxdb1.count(unique_name, "env") == 3
    assert influxdb1.count(unique_name, "env", field="humidity") == 2
    assert influxdb1.count(unique_name, "absent") == 0


def test_influxdb_query_groups_rows_with_tags(
    influxdb1: InfluxDB1, unique_name: str
) -> None:
    influxdb1.create_database(unique_name)
    influxdb1.write(
        unique_name, "env,device=d1 t=1 1\nenv,device=d2 t=2 1\nenv,device=d2 t=3 2"
    )
    rows = influxdb1.query(unique_name, "SELECT COUNT(t) FROM env GROUP BY device")
    assert [(row["device"], row["count"]) for row in rows] == [("d1", 1), ("d2", 2)]


def test_influxdb_statement_error_raises(influxdb1: InfluxDB1) -> None:
    with pytest.raises(HttpError, match="database not found"):
        influxdb1.query("missing", "SELECT * FROM env")


def test_influxdb_write_error_raises(influxdb1: InfluxDB1, unique_name: str) -> None:
    influxdb1.create_database(unique_name)
    with pytest.raises(HttpError) as error:
        influxdb1.write(unique_name, "env,device=d1 temperature= 1")
    assert error.value.status == 400


def test_influxdb_restart_keeps_data(influxdb1: InfluxDB1, unique_name: str) -> None:
    port, rpc_port = influxdb1.port, influxdb1.rpc_port
    influxdb1.create_database(unique_name)
    influxdb1.write(unique_name, "env,device=d1 temperature=21.5 1700000000000000000")

    assert influxdb1.stop() == 0
    influxdb1.start()

    assert (influxdb1.port, influxdb1.rpc_port) == (port, rpc_port)
    assert influxdb1.count(unique_name, "env") == 1


def test_influxdb_kill_keeps_acknowledged_writes(
    influxdb1: InfluxDB1, unique_name: str
) -> None:
    influxdb1.create_database(unique_name)
    influxdb1.write(unique_name, (f"env,device=d{i} value={i} {i}" for i in range(100)))

    influxdb1.kill()
    influxdb1.start()

    assert influxdb1.count(unique_name, "env") == 100


def test_influxdb_auth_rejects_anonymous(
    influxdb1: InfluxDB1, unique_name: str
) -> None:
    influxdb1.create_database(unique_name)
    influxdb1.set_auth(True)

    with pytest.raises(HttpError) as error:
        influxdb1.request("POST", "/query", params={"q": "SHOW DATABASES"})
    assert error.value.status == 401
    influxdb1.write(unique_name, "env value=1 1")
    assert influxdb1.count(unique_name, "env") == 1

    influxdb1.set_auth(False)
    influxdb1.request("POST", "/query", params={"q": "SHOW DATABASES"})


def test_influxdb_auth_survives_restart(influxdb1: InfluxDB1) -> None:
    influxdb1.set_auth(True)
    influxdb1.restart()
    users = influxdb1.query(None, "SHOW USERS")
    assert users == [{"user": influxdb1.username, "admin": True}]


def test_influxdb_moves_off_taken_rpc_port(influxd_binary: str, tmp_path: Path) -> None:
    server = InfluxDB1(tmp_path / "influxdb", binary=influxd_binary)
    taken_port = server.rpc_port
    with socket.socket() as blocker:
        blocker.bind((LOOPBACK, taken_port))
        blocker.listen()
        server.start()
        try:
            assert server.rpc_port != taken_port
            assert server.running
        finally:
            server.stop()


# ---------------------------------------------------------------------------
# VictoriaMetrics


def now_ns() -> int:
    return time.time_ns()


def test_victoriametrics_write_export(
    victoriametrics: VictoriaMetrics, unique_name: str
) -> None:
    assert victoriametrics.url == f"http://{LOOPBACK}:{victoriametrics.port}"
    timestamp = now_ns()
    victoriametrics.write(
        unique_name, f"env,device=d1 temperature=21.5,humidity=40i {timestamp}"
    )

    series = poll_until(
        lambda: victoriametrics.export(f'{{db="{unique_name}"}}'),
        description="exported series",
    )

    by_name = {item["metric"]["__name__"]: item for item in series}
    assert sorted(by_name) == ["env_humidity", "env_temperature"]
    assert by_name["env_temperature"]["metric"] == {
        "__name__": "env_temperature",
        "db": unique_name,
        "device": "d1",
    }
    assert by_name["env_temperature"]["values"] == [21.5]
    assert by_name["env_temperature"]["timestamps"] == [timestamp // 1_000_000]
    assert by_name["env_humidity"]["values"] == [40]


def test_victoriametrics_keeps_old_timestamps(
    victoriametrics: VictoriaMetrics, unique_name: str
) -> None:
    # 2017-07-14: outside the default one-month retention, inside 100 years.
    victoriametrics.write(unique_name, "env value=3 1500000000", precision="s")
    values = poll_until(
        lambda: victoriametrics.series_values("env_value", db=unique_name),
        description="old sample",
    )
    assert values == [3.0]


def test_victoriametrics_restart_keeps_data(
    victoriametrics: VictoriaMetrics, unique_name: str
) -> None:
    port = victoriametrics.port
    start = now_ns()
    victoriametrics.write(
        unique_name,
        [f"env,device=d1 value={i} {start + i * 1_000_000_000}" for i in range(5)],
    )
    poll_until(
        lambda: len(victoriametrics.series_values("env_value", db=unique_name)) == 5,
        description="five samples",
    )

    assert victoriametrics.stop() == 0
    victoriametrics.start()

    assert victoriametrics.port == port
    values = victoriametrics.series_values("env_value", db=unique_name, device="d1")
    assert values == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_victoriametrics_series_values_ambiguous(
    victoriametrics: VictoriaMetrics, unique_name: str
) -> None:
    timestamp = now_ns()
    victoriametrics.write(
        unique_name,
        [f"env,device=d1 value=1 {timestamp}", f"env,device=d2 value=2 {timestamp}"],
    )
    poll_until(
        lambda: (
            len(victoriametrics.export(series_selector("env_value", db=unique_name)))
            == 2
        ),
        description="two series",
    )

    with pytest.raises(ValueError, match="2 series match"):
        victoriametrics.series_values("env_value", db=unique_name)
    assert victoriametrics.series_values("env_value", db=unique_name, device="d2") == [
        2.0
    ]
    assert victoriametrics.series_values("env_value", db=unique_name, device="d3") == []


def test_victoriametrics_fixed_port_conflict_raises(
    victoria_metrics_binary: str, tmp_path: Path
) -> None:
    with socket.socket() as blocker:
        blocker.bind((LOOPBACK, 0))
        blocker.listen()
        taken_port = blocker.getsockname()[1]
        server = VictoriaMetrics(
            tmp_path / "vm", port=taken_port, binary=victoria_metrics_binary
        )
        with pytest.raises(ServerStartError, match="(?i)address already in use"):
            server.start(timeout=10)
    assert not server.running

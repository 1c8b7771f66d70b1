"""Broker features a real deployment relies on: TLS, passwords, sessions, sharing."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import (
    AcquireProcess,
    InfluxV1Backend,
    Publisher,
    poll,
    sensor_mapping,
    sensor_messages,
    wait_for_sequences,
)

from components import InfluxDB1, Mosquitto


def service_config(
    broker: dict[str, Any], backend: InfluxV1Backend, prefix: str
) -> dict[str, Any]:
    return {
        "broker": broker,
        "mappings": [sensor_mapping(prefix)],
        "database": backend.database_config(),
        "batch": {"max_delay": 0.2},
    }


def test_tls_with_ca_file(
    tmp_path: Path, mosquitto_tls: Mosquitto, influxdb1: InfluxDB1, unique_name: str
) -> None:
    backend = InfluxV1Backend(influxdb1, unique_name)
    broker = {
        "url": mosquitto_tls.tls_url.replace("127.0.0.1", "localhost"),
        "ca_file": str(mosquitto_tls.ca_file),
        "client_id": unique_name,
    }
    service = AcquireProcess(
        tmp_path / "acquire", service_config(broker, backend, unique_name)
    )
    service.start()
    try:
        Publisher(
            mosquitto_tls.url, sensor_messages(200, 4, prefix=unique_name)
        ).start().wait()
        wait_for_sequences(backend, "env", range(200), timeout=30)
    finally:
        service.stop()


def test_tls_rejects_unknown_ca(
    tmp_path: Path, mosquitto_tls: Mosquitto, influxdb1: InfluxDB1, unique_name: str
) -> None:
    backend = InfluxV1Backend(influxdb1, unique_name)
    broker = {"url": mosquitto_tls.tls_url, "client_id": unique_name}
    service = AcquireProcess(
        tmp_path / "acquire", service_config(broker, backend, unique_name)
    )
    service.start(wait_connected=False)
    try:
        poll(lambda: service.get("/readyz")[0] == 503, 20, "readiness answering")
        assert service.metric("labdock_acquire_broker_connected") == 0
    finally:
        service.stop()


def test_password_from_file(
    tmp_path: Path, mosquitto_binary: str, influxdb1: InfluxDB1, unique_name: str
) -> None:
    password_file = tmp_path / "mosquitto.passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(password_file), "acquire", "s3cret pass"],
        check=True,
    )
    broker = Mosquitto(
        tmp_path / "broker",
        binary=mosquitto_binary,
        extra_config=f"allow_anonymous false\npassword_file {password_file}",
    )
    broker.start()
    secret = tmp_path / "broker_password"
    secret.write_text("s3cret pass\n")
    backend = InfluxV1Backend(influxdb1, unique_name)
    config = service_config(
        {
            "url": broker.url,
            "client_id": unique_name,
            "username": "acquire",
            "password_file": str(secret),
        },
        backend,
        unique_name,
    )
    service = AcquireProcess(tmp_path / "acquire", config)
    try:
        service.start()
        publisher = Publisher(broker.url, sensor_messages(100, 4, prefix=unique_name))
        publisher.username = ("acquire", "s3cret pass")
        publisher.start().wait()
        wait_for_sequences(backend, "env", range(100), timeout=30)
        assert "s3cret" not in service.log_file.read_text()
    finally:
        service.stop()
        broker.stop()


def test_mqtt311_session_keeps_messages_while_down(
    tmp_path: Path, mosquitto: Mosquitto, influxdb1: InfluxDB1, unique_name: str
) -> None:
    backend = InfluxV1Backend(influxdb1, unique_name)
    broker = {"url": mosquitto.url, "client_id": unique_name, "protocol": "3.1.1"}
    service = AcquireProcess(
        tmp_path / "acquire", service_config(broker, backend, unique_name)
    )
    service.start()
    try:
        Publisher(
            mosquitto.url, sensor_messages(100, 4, prefix=unique_name)
        ).start().wait()
        wait_for_sequences(backend, "env", range(100), timeout=30)
        assert service.terminate() == 0
        later = sensor_messages(500, 4, prefix=unique_name, start=100)
        Publisher(mosquitto.url, later).start().wait()
        service.start()
        stored = wait_for_sequences(backend, "env", range(600), timeout=30)
        assert max(stored.values()) == 1
    finally:
        service.stop()


@pytest.mark.slow
def test_shared_subscription_splits_load(
    tmp_path: Path, mosquitto: Mosquitto, influxdb1: InfluxDB1, unique_name: str
) -> None:
    backend = InfluxV1Backend(influxdb1, unique_name)
    replicas = []
    for number in (1, 2):
        broker = {
            "url": mosquitto.url,
            "client_id": f"{unique_name}-{number}",
            "share_group": "ingest",
        }
        config = service_config(broker, backend, unique_name)
        replicas.append(AcquireProcess(tmp_path / f"replica{number}", config))
    for replica in replicas:
        replica.start()
    try:
        Publisher(
            mosquitto.url, sensor_messages(20_000, 20, prefix=unique_name)
        ).start().wait()
        stored = wait_for_sequences(backend, "env", range(20_000), timeout=60)
        assert max(stored.values()) == 1
        received = [
            r.metric("labdock_acquire_messages_received_total") or 0 for r in replicas
        ]
    finally:
        for replica in replicas:
            replica.stop()
    assert sum(received) == 20_000
    assert min(received) > 5_000, f"the load was not split: {received}"


def test_replica_without_port_never_subscribes(
    tmp_path: Path, mosquitto: Mosquitto, influxdb1: InfluxDB1, unique_name: str
) -> None:
    backend = InfluxV1Backend(influxdb1, unique_name)
    first = AcquireProcess(
        tmp_path / "first",
        service_config(
            {"url": mosquitto.url, "client_id": f"{unique_name}-1", "share_group": "g"},
            backend,
            unique_name,
        ),
    )
    first.start()
    second_config = service_config(
        {"url": mosquitto.url, "client_id": f"{unique_name}-2", "share_group": "g"},
        backend,
        unique_name,
    )
    second = AcquireProcess(tmp_path / "second", second_config)
    # The same health port as the first replica, as two replicas on one host
    # with the default http.listen would have.
    second.config["http"]["listen"] = f"127.0.0.1:{first.http_port}"
    second.config_file.write_text(yaml.safe_dump(second.config))
    try:
        second.start(wait_connected=False)
        assert second.process is not None
        assert second.process.wait(30) == 2
        log = second.log_file.read_text()
        assert "cannot listen on" in log
        assert "broker.subscribe" not in log
        Publisher(
            mosquitto.url, sensor_messages(1_000, 4, prefix=unique_name)
        ).start().wait()
        stored = wait_for_sequences(backend, "env", range(1_000), timeout=30)
        assert len(stored) == 1_000
    finally:
        first.stop()


def test_second_process_on_spool_rejected(
    tmp_path: Path, mosquitto: Mosquitto, influxdb1: InfluxDB1, unique_name: str
) -> None:
    backend = InfluxV1Backend(influxdb1, unique_name)
    config = service_config(
        {"url": mosquitto.url, "client_id": unique_name}, backend, unique_name
    )
    config["spool"] = {"directory": str(tmp_path / "shared-spool")}
    first = AcquireProcess(tmp_path / "first", config)
    first.start()
    second = AcquireProcess(
        tmp_path / "second",
        {**config, "broker": {"url": mosquitto.url, "client_id": f"{unique_name}-b"}},
    )
    try:
        second.start(wait_connected=False)
        assert second.process is not None
        assert second.process.wait(30) == 2
        assert "is in use by another process" in second.log_file.read_text()
    finally:
        first.stop()


def test_retained_message_stored_once(
    tmp_path: Path, mosquitto: Mosquitto, influxdb1: InfluxDB1, unique_name: str
) -> None:
    backend = InfluxV1Backend(influxdb1, unique_name)
    subprocess.run(
        [
            "mosquitto_pub",
            "-p",
            str(mosquitto.port),
            "-r",
            "-q",
            "1",
            "-t",
            f"{unique_name}/room0/dev00/env",
            "-m",
            '{"seq": 7, "temperature": 20.5}',
        ],
        check=True,
    )
    broker = {"url": mosquitto.url, "client_id": unique_name, "protocol": "3.1.1"}
    service = AcquireProcess(
        tmp_path / "acquire", service_config(broker, backend, unique_name)
    )
    try:
        for _ in range(3):
            service.start()
            wait_for_sequences(backend, "env", [7], timeout=30)
            assert service.terminate() == 0
        assert backend.sequences("env")[7] == 1
    finally:
        service.stop()


def test_retained_messages_skipped_when_configured(
    tmp_path: Path, mosquitto: Mosquitto, influxdb1: InfluxDB1, unique_name: str
) -> None:
    backend = InfluxV1Backend(influxdb1, unique_name)
    subprocess.run(
        [
            "mosquitto_pub",
            "-p",
            str(mosquitto.port),
            "-r",
            "-q",
            "1",
            "-t",
            f"{unique_name}/room0/dev00/env",
            "-m",
            '{"seq": 1, "temperature": 20.5}',
        ],
        check=True,
    )
    broker = {"url": mosquitto.url, "client_id": unique_name, "retained": "skip"}
    service = AcquireProcess(
        tmp_path / "acquire", service_config(broker, backend, unique_name)
    )
    service.start()
    try:
        poll(
            lambda: (
                service.metric(
                    'labdock_acquire_values_dropped_total{reason="retained"}'
                )
                == 1
            ),
            20,
            "the retained message counted",
        )
        Publisher(
            mosquitto.url, sensor_messages(10, 1, prefix=unique_name, start=2)
        ).start().wait()
        stored = wait_for_sequences(backend, "env", range(2, 12), timeout=30)
        assert 1 not in stored
    finally:
        service.stop()


def test_unreachable_broker_reports_cause(
    tmp_path: Path, influxdb1: InfluxDB1, unique_name: str
) -> None:
    from components import free_port

    backend = InfluxV1Backend(influxdb1, unique_name)
    broker = {
        "url": f"mqtt://127.0.0.1:{free_port()}",
        "client_id": unique_name,
        "reconnect_min": 1,
        "reconnect_max": 2,
    }
    service = AcquireProcess(
        tmp_path / "acquire", service_config(broker, backend, unique_name)
    )
    service.start(wait_connected=False)
    try:

        def broker_error() -> str:
            status, body = service.get("/readyz")
            if status != 503:
                return ""
            return str(__import__("json").loads(body).get("broker_error") or "")

        error = poll(
            lambda: "refused" in broker_error().lower() and broker_error(),
            20,
            "the refusal in /readyz",
        )
        assert "cannot connect to mqtt://127.0.0.1:" in error
    finally:
        service.stop()


def test_frozen_database_makes_service_unready(
    tmp_path: Path, mosquitto: Mosquitto, influxdb1: InfluxDB1, unique_name: str
) -> None:
    import os
    import signal

    backend = InfluxV1Backend(influxdb1, unique_name)
    config = service_config(
        {"url": mosquitto.url, "client_id": unique_name}, backend, unique_name
    )
    config["database"]["timeout"] = 30
    service = AcquireProcess(tmp_path / "acquire", config)
    service.start()
    assert influxdb1.pid is not None
    try:
        poll(service.ready, 20, "ready")
        os.kill(influxdb1.pid, signal.SIGSTOP)
        Publisher(
            mosquitto.url, sensor_messages(100, 4, prefix=unique_name)
        ).start().wait()
        poll(lambda: not service.ready(), 20, "unready while the database is frozen")
        os.kill(influxdb1.pid, signal.SIGCONT)
        wait_for_sequences(backend, "env", range(100), timeout=60)
        poll(service.ready, 30, "ready again")
    finally:
        os.kill(influxdb1.pid, signal.SIGCONT)
        service.stop()

"""Broker features a real deployment relies on: TLS, passwords, sessions, sharing."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
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

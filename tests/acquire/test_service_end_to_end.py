"""The acquisition service on a real broker and real databases.

Each test runs against InfluxDB 1.x through the v1 API and against
VictoriaMetrics through the v2 API.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import (
    AcquireProcess,
    Backend,
    InfluxV1Backend,
    Publisher,
    VictoriaV2Backend,
    poll,
    sensor_mapping,
    sensor_messages,
    wait_for_sequences,
)

from components import InfluxDB1, Mosquitto, VictoriaMetrics
from labdock.acquire.spool import DeadLetterStore

pytestmark = pytest.mark.slow


@pytest.fixture(params=["influxdb1-v1", "victoriametrics-v2"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, unique_name: str
) -> Iterator[Backend]:
    if request.param == "influxdb1-v1":
        server: Any = request.getfixturevalue("influxdb1")
        assert isinstance(server, InfluxDB1)
        yield InfluxV1Backend(server, unique_name)
    else:
        server = request.getfixturevalue("victoriametrics")
        assert isinstance(server, VictoriaMetrics)
        yield VictoriaV2Backend(server, unique_name)


def make_service(
    tmp_path: Path, mosquitto: Mosquitto, backend: Backend, prefix: str, **extra: Any
) -> AcquireProcess:
    config: dict[str, Any] = {
        "broker": {"url": mosquitto.url, "client_id": f"acquire-{prefix}"},
        "mappings": [sensor_mapping(prefix)],
        "database": backend.database_config(),
        "retry": {"initial": 0.2, "maximum": 2.0},
        "batch": {"max_delay": 0.2},
    }
    config.update(extra)
    return AcquireProcess(tmp_path / "acquire", config)


def test_stores_every_message_with_types(
    tmp_path: Path, mosquitto: Mosquitto, backend: Backend, unique_name: str
) -> None:
    service = make_service(tmp_path, mosquitto, backend, unique_name)
    service.start()
    try:
        messages = sensor_messages(100_000, 20, prefix=unique_name)
        Publisher(mosquitto.url, messages).start().wait()
        stored = wait_for_sequences(backend, "env", range(100_000))
        assert len(stored) == 100_000
        assert max(stored.values()) == 1, "a message was stored twice"
        if isinstance(backend, InfluxV1Backend):
            rows = backend.server.query(
                backend.database, 'SELECT * FROM "env" WHERE "seq" = 12345'
            )
            assert rows[0]["device"] == "dev05"
            assert rows[0]["room"] == "room1"
            assert rows[0]["temperature"] == pytest.approx(24.5)
            assert rows[0]["door_open"] is False
            assert rows[0]["state"] == "ok"
            keys = backend.server.query(backend.database, 'SHOW FIELD KEYS FROM "env"')
            types = {row["fieldKey"]: row["fieldType"] for row in keys}
            assert types == {
                "seq": "integer",
                "temperature": "float",
                "door_open": "boolean",
                "state": "string",
            }
        else:
            series = backend.server.export(
                '{__name__="env_temperature",device="dev05"}'
            )
            assert series[0]["metric"]["room"] == "room1"
    finally:
        service.stop()


def test_sigkill_loses_nothing(
    tmp_path: Path, mosquitto: Mosquitto, backend: Backend, unique_name: str
) -> None:
    service = make_service(tmp_path, mosquitto, backend, unique_name)
    service.start()
    try:
        messages = sensor_messages(50_000, 20, prefix=unique_name)
        publisher = Publisher(mosquitto.url, messages, rate=5_000).start()
        for kill_at in (8_000, 22_000, 36_000):
            poll(
                lambda at=kill_at: publisher.sent >= at,
                60,
                f"{kill_at} messages published",
            )
            service.kill()
            service.start()
        publisher.wait()
        stored = wait_for_sequences(backend, "env", range(50_000))
        assert len(stored) == 50_000
    finally:
        service.stop()


def test_database_outage_is_bridged(
    tmp_path: Path, mosquitto: Mosquitto, backend: Backend, unique_name: str
) -> None:
    service = make_service(tmp_path, mosquitto, backend, unique_name)
    service.start()
    readiness: list[tuple[float, bool]] = []
    watching = threading.Event()

    def watch() -> None:
        while not watching.is_set():
            readiness.append((time.monotonic(), service.ready()))
            time.sleep(0.25)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        messages = sensor_messages(40_000, 20, prefix=unique_name)
        publisher = Publisher(mosquitto.url, messages, rate=1_000).start()
        poll(lambda: publisher.sent >= 5_000, 60, "5,000 messages published")
        backend.stop()
        stopped_at = time.monotonic()
        poll(lambda: not service.ready(), 30, "readiness to go unready")
        time.sleep(max(0.0, 30 - (time.monotonic() - stopped_at)))
        assert (service.metric("labdock_acquire_spool_messages") or 0) > 0
        backend.start()
        publisher.wait()
        stored = wait_for_sequences(backend, "env", range(40_000))
        assert len(stored) == 40_000
        poll(
            lambda: service.metric("labdock_acquire_spool_messages") == 0,
            60,
            "spool drained",
        )
        poll(service.ready, 30, "readiness to come back")
    finally:
        watching.set()
        watcher.join(5)
        service.stop()
    states = [ready for _, ready in readiness]
    assert True in states
    assert False in states
    assert states[-1] is True


def test_broker_restart_loses_nothing(
    tmp_path: Path, mosquitto: Mosquitto, backend: Backend, unique_name: str
) -> None:
    service = make_service(tmp_path, mosquitto, backend, unique_name)
    service.start()
    try:
        messages = sensor_messages(30_000, 20, prefix=unique_name)
        publisher = Publisher(mosquitto.url, messages, rate=3_000).start()
        poll(lambda: publisher.sent >= 10_000, 60, "10,000 messages published")
        mosquitto.restart()
        publisher.wait()
        stored = wait_for_sequences(backend, "env", range(30_000))
        assert len(stored) == 30_000
        assert (service.metric("labdock_acquire_broker_connections_total") or 0) >= 2
    finally:
        service.stop()


BAD_PAYLOADS = [
    (b'{"seq": 1, "temperature": ', "json_decode_error"),
    (b"\xff\xfe\x00garbage", "invalid_utf8"),
    (b"[1, 2, 3]", "json_not_object"),
    (b'{"temperature": NaN}', "no_finite_fields"),
    (b"", "empty_payload"),
]


def test_malformed_payloads_are_deadlettered(
    tmp_path: Path, mosquitto: Mosquitto, backend: Backend, unique_name: str
) -> None:
    service = make_service(tmp_path, mosquitto, backend, unique_name)
    service.start()
    good = sensor_messages(9_000, 20, prefix=unique_name)
    stream: list[tuple[str, bytes]] = []
    expected_reasons: dict[bytes, str] = {}
    bad_index = 0
    for index, message in enumerate(good):
        stream.append(message)
        if index % 9 == 0 and bad_index < 1_000:
            payload, reason = BAD_PAYLOADS[bad_index % len(BAD_PAYLOADS)]
            marked = payload if not payload or payload.startswith(b"\xff") else payload
            stream.append((f"{unique_name}/roomx/bad{bad_index:04d}/env", marked))
            expected_reasons[f"bad{bad_index:04d}".encode()] = reason
            bad_index += 1
    assert bad_index == 1_000
    try:
        Publisher(mosquitto.url, stream).start().wait()
        stored = wait_for_sequences(backend, "env", range(9_000))
        assert len(stored) == 9_000
        poll(
            lambda: (
                sum(
                    value
                    for name, value in service.metrics().items()
                    if name.startswith("labdock_acquire_deadletters_total")
                )
                >= 1_000
            ),
            60,
            "1,000 dead letters counted",
        )
    finally:
        service.stop()
    store = DeadLetterStore(tmp_path / "acquire" / "spool")
    letters = store.list()
    store.close()
    assert len(letters) == 1_000
    for letter in letters:
        device = letter.topic.split("/")[2].encode()
        assert letter.reason == expected_reasons[device], (letter.topic, letter.detail)
        assert letter.detail


def test_readiness_reports_each_check(
    tmp_path: Path, mosquitto: Mosquitto, influxdb1: InfluxDB1, unique_name: str
) -> None:
    backend = InfluxV1Backend(influxdb1, unique_name)
    service = make_service(tmp_path, mosquitto, backend, unique_name)
    service.start()
    try:
        poll(service.ready, 20, "service ready")
        status, body = service.get("/readyz")
        document = json.loads(body)
        assert document["checks"] == {
            "broker": True,
            "spool_writable": True,
            "spool_below_limit": True,
            "database": True,
        }
        assert service.get("/healthz")[0] == 200
        metrics = service.metrics()
        assert metrics["labdock_acquire_broker_connected"] == 1
        assert "labdock_acquire_spool_oldest_age_seconds" in metrics
        mosquitto.stop()
        poll(lambda: not service.ready(), 20, "unready without the broker")
        document = json.loads(service.get("/readyz")[1])
        assert document["checks"]["broker"] is False
        assert document["broker_error"]
        mosquitto.start()
        poll(service.ready, 30, "ready again with the broker")
    finally:
        service.stop()

"""Faults that users of other MQTT-to-InfluxDB tools reported, as tests.

Unless a test states otherwise the mapping is `plant/{device}/{measurement}`:
measurement from the third level, tag `device` from the second, JSON keys
as fields, and `ts` (when declared) as the device time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from harness import AcquireProcess, InfluxV1Backend, Publisher, poll

from components import InfluxDB1, Mosquitto
from labdock.acquire.config import AcquireConfig
from labdock.acquire.pipeline import Pipeline
from labdock.acquire.spool import DeadLetterStore

ARRIVAL = 1_764_000_000_000_000_000


def pipeline(**options: Any) -> Pipeline:
    mapping: dict[str, Any] = {
        "topic": "plant/{device}/{measurement}",
        "options": options,
    }
    return Pipeline(AcquireConfig.model_validate({"mappings": [mapping]}))


MS_TIME = {"timestamp": {"path": "ts", "format": "ms"}}


# Pipeline cases: what a message becomes.


def test_integer_json_number_stays_float_by_default() -> None:
    outcome = pipeline().process("plant/dev01/env", b'{"t":22}', ARRIVAL)
    assert outcome.lines == [f"env,device=dev01 t=22 {ARRIVAL}"]


def test_quoted_numbers_follow_declared_types() -> None:
    payload = b'{"temperature":19.4,"battery":"100.00","rssi":-71}'
    typed = pipeline(types={"battery": "float", "rssi": "float"})
    assert typed.process("plant/dev04/env", payload, ARRIVAL).lines == [
        f"env,device=dev04 battery=100,rssi=-71,temperature=19.4 {ARRIVAL}"
    ]
    untyped = pipeline().process("plant/dev04/env", payload, ARRIVAL)
    assert untyped.lines == [
        f'env,device=dev04 battery="100.00",rssi=-71,temperature=19.4 {ARRIVAL}'
    ]


def test_special_characters_in_tags_and_strings() -> None:
    config = AcquireConfig.model_validate(
        {"mappings": [{"topic": "plant/{line}/{measurement}"}]}
    )
    lines = (
        Pipeline(config)
        .process(
            "plant/Line 1,A=B/env",
            b'{"t":20.5,"note":"say \\"hi\\" \\\\ bye"}',
            ARRIVAL,
        )
        .lines
    )
    assert lines == [
        f'env,line=Line\\ 1\\,A\\=B note="say \\"hi\\" \\\\ bye",t=20.5 {ARRIVAL}'
    ]


def test_empty_tag_value_is_omitted() -> None:
    config = AcquireConfig.model_validate(
        {"mappings": [{"topic": "plant/{line}/{measurement}"}]}
    )
    outcome = Pipeline(config).process("plant//env", b'{"t":1.5}', ARRIVAL)
    assert outcome.lines == [f"env t=1.5 {ARRIVAL}"]


@pytest.mark.parametrize("level", ["ends\\", "two\nlines"])
def test_unencodable_tag_is_deadlettered(level: str) -> None:
    config = AcquireConfig.model_validate(
        {"mappings": [{"topic": "plant/{line}/{measurement}"}]}
    )
    outcome = Pipeline(config).process(f"plant/{level}/env", b'{"t":1.5}', ARRIVAL)
    assert outcome.lines == []
    assert outcome.reason == "encode_error"
    assert outcome.detail


def test_millisecond_device_time_scaled_exactly() -> None:
    outcome = pipeline(**MS_TIME).process(
        "plant/dev01/env", b'{"t":21.5,"ts":1700000000123}', ARRIVAL
    )
    assert outcome.lines == ["env,device=dev01 t=21.5 1700000000123000000"]


def test_millisecond_time_declared_as_seconds_is_rejected() -> None:
    outcome = pipeline(timestamp={"path": "ts", "format": "s"}).process(
        "plant/dev01/env", b'{"t":21.5,"ts":1700000000123}', ARRIVAL
    )
    assert outcome.lines == []
    assert outcome.reason == "timestamp_unit_mismatch"


def test_nanosecond_device_time_not_rounded() -> None:
    outcome = pipeline(timestamp={"path": "ts", "format": "ns"}).process(
        "plant/dev01/env", b'{"ts":1700000000123456789,"t":1.5}', ARRIVAL
    )
    assert outcome.lines == ["env,device=dev01 t=1.5 1700000000123456789"]


def test_nan_field_dropped_and_counted() -> None:
    outcome = pipeline().process("plant/dev01/env", b'{"t":NaN,"h":40.1}', ARRIVAL)
    assert outcome.lines == [f"env,device=dev01 h=40.1 {ARRIVAL}"]
    assert outcome.dropped == {"nonfinite": 1}


def test_all_infinite_message_is_deadlettered() -> None:
    outcome = pipeline().process("plant/dev01/env", b'{"t":Infinity}', ARRIVAL)
    assert outcome.lines == []
    assert outcome.reason == "no_finite_fields"
    assert outcome.dropped == {"nonfinite": 1}


# Service cases: a real broker and a real InfluxDB 1.x.


@pytest.fixture
def influx(influxdb1: InfluxDB1, unique_name: str) -> InfluxV1Backend:
    return InfluxV1Backend(influxdb1, unique_name)


def start_service(
    tmp_path: Path,
    broker_url: str,
    influx: InfluxV1Backend,
    *,
    options: dict[str, Any] | None = None,
    name: str = "acquire",
    **extra: Any,
) -> AcquireProcess:
    config: dict[str, Any] = {
        "broker": {"url": broker_url, "client_id": f"{name}-{influx.database}"},
        "mappings": [
            {"topic": "plant/{device}/{measurement}", "options": options or {}}
        ],
        "database": influx.database_config(),
        "retry": {"initial": 0.2, "maximum": 1.0},
        "batch": {"max_delay": 0.2},
    }
    config.update(extra)
    service = AcquireProcess(tmp_path / name, config)
    service.start()
    return service


def lines_in(influx: InfluxV1Backend, measurement: str = "env") -> list[dict[str, Any]]:
    return influx.server.query(
        influx.database, f'SELECT * FROM "{measurement}"', epoch="ns"
    )


def test_reconnect_without_session_subscribes_again(
    tmp_path: Path, mosquitto: Mosquitto, influx: InfluxV1Backend
) -> None:
    service = start_service(tmp_path, mosquitto.url, influx)
    try:
        Publisher(mosquitto.url, [("plant/dev01/env", b'{"t":21.5}')]).start().wait()
        poll(lambda: len(lines_in(influx)) == 1, 30, "the first reading stored")
        mosquitto.stop()
        mosquitto.db_file.unlink(missing_ok=True)  # the broker loses the session
        time.sleep(10)
        mosquitto.start()
        poll(
            lambda: service.metric("labdock_acquire_broker_connected") == 1,
            60,
            "reconnect",
        )
        Publisher(mosquitto.url, [("plant/dev01/env", b'{"t":21.7}')]).start().wait()
        rows = poll(
            lambda: len(lines_in(influx)) == 2 and lines_in(influx), 30, "both stored"
        )
    finally:
        service.stop()
    assert [row["t"] for row in rows] == [21.5, 21.7]
    events = service.log_events()
    connects = [e for e in events if e["event"] == "broker.connected"]
    assert connects[-1]["session_present"] is False
    assert len([e for e in events if e["event"] == "broker.subscribe"]) >= 2


def test_poison_payloads_do_not_stall(
    tmp_path: Path, mosquitto: Mosquitto, influx: InfluxV1Backend
) -> None:
    messages = []
    for n in range(1_500):
        messages.append(("plant/dev01/status", b"online"))
        if n % 10 == 0:
            messages.append(("plant/dev01/env", b'{"t":20.0}'))
    service = start_service(tmp_path, mosquitto.url, influx)
    try:
        Publisher(mosquitto.url, messages).start().wait()
        poll(lambda: len(lines_in(influx)) == 150, 60, "150 env points")
        poll(
            lambda: (
                service.metric(
                    'labdock_acquire_deadletters_total{reason="json_decode_error",stage="decode"}'
                )
                == 1_500
            ),
            30,
            "1,500 dead letters counted",
        )
        assert service.metric("labdock_acquire_messages_received_total") == 1_650
        assert service.metric("labdock_acquire_messages_decoded_total") == 150
    finally:
        service.stop()
    store = DeadLetterStore(tmp_path / "acquire" / "spool")
    assert store.counts() == {"json_decode_error": 1_500}
    store.close()


def test_outage_beyond_broker_queue_limit(
    tmp_path: Path, mosquitto_binary: str, influx: InfluxV1Backend
) -> None:
    # A broker that keeps at most 1,000 queued messages per session and
    # drops the rest, as EMQX does by default.
    broker = Mosquitto(
        tmp_path / "limited-broker",
        binary=mosquitto_binary,
        extra_config="max_queued_messages 1000",
    )
    broker.start()
    service = start_service(tmp_path, broker.url, influx, options=MS_TIME)
    try:
        influx.stop()
        messages = [
            (
                f"plant/dev0{n % 5 + 1}/env",
                json.dumps({"t": n, "ts": 1_700_000_000_000 + 100 * n}).encode(),
            )
            for n in range(6_000)
        ]
        Publisher(broker.url, messages, rate=600).start().wait()
        influx.start()
        poll(
            lambda: len(lines_in(influx)) == 6_000, 120, "6,000 points after the outage"
        )
    finally:
        service.stop()
        broker.stop()
    rows = influx.server.query(
        influx.database, 'SELECT * FROM "env" WHERE "t" = 417', epoch="ns"
    )
    assert rows == [{"time": 1700000041700000000, "device": "dev03", "t": 417.0}]


def test_full_spool_holds_acknowledgements(
    tmp_path: Path, mosquitto: Mosquitto, influx: InfluxV1Backend
) -> None:
    service = start_service(
        tmp_path, mosquitto.url, influx, options=MS_TIME, spool={"max_bytes": 65_536}
    )
    try:
        influx.stop()
        messages = [
            (
                "plant/dev01/env",
                json.dumps({"t": n, "ts": 1_700_000_000_000 + 100 * n}).encode(),
            )
            for n in range(1, 12_001)
        ]
        publisher = Publisher(mosquitto.url, messages, rate=2_000).start()
        poll(
            lambda: service.metric("labdock_acquire_spool_full") == 1, 60, "spool full"
        )
        document = json.loads(service.get("/readyz")[1])
        assert document["checks"]["spool_below_limit"] is False
        publisher.wait()
        influx.start()
        poll(
            lambda: len(lines_in(influx)) == 12_000,
            180,
            "12,000 points after the outage",
        )
        poll(
            lambda: service.metric("labdock_acquire_spool_full") == 0,
            30,
            "spool accepting",
        )
    finally:
        service.stop()
    rows = lines_in(influx)
    assert rows[0] == {"time": 1700000000100000000, "device": "dev01", "t": 1.0}
    assert rows[-1] == {"time": 1700001200000000000, "device": "dev01", "t": 12000.0}
    assert any(e["event"] == "spool.full" for e in service.log_events())


def test_sigterm_right_after_burst_keeps_tail(
    tmp_path: Path, mosquitto: Mosquitto, influx: InfluxV1Backend
) -> None:
    messages = [
        ("plant/dev01/env", json.dumps({"t": i, "ts": 1_700_000_000_000 + i}).encode())
        for i in range(100)
    ]
    service = start_service(
        tmp_path, mosquitto.url, influx, options=MS_TIME, batch={"max_delay": 1.0}
    )
    try:
        Publisher(mosquitto.url, messages, rate=500).start().wait()
        assert service.terminate() == 0
        if len(lines_in(influx)) < 100:
            service.start()  # the rest is in the spool or still in the broker
        poll(lambda: len(lines_in(influx)) == 100, 30, "all 100 points")
    finally:
        service.stop()
    rows = influx.server.query(
        influx.database, 'SELECT * FROM "env" WHERE "t" = 7', epoch="ns"
    )
    assert rows == [{"time": 1700000000007000000, "device": "dev01", "t": 7.0}]


def test_type_conflict_deadletters_line_and_keeps_flowing(
    tmp_path: Path, mosquitto: Mosquitto, influx: InfluxV1Backend
) -> None:
    influx.server.write(influx.database, "env,device=dev01 t=21.5")
    # number_type auto keeps 22 an integer, as a naive encoder would.
    service = start_service(
        tmp_path, mosquitto.url, influx, options={"number_type": "auto"}
    )
    try:
        messages = [("plant/dev02/env", b'{"t":1.5}'), ("plant/dev01/env", b'{"t":22}')]
        messages += [(f"plant/dev0{n % 3 + 2}/env", b'{"t":2.5}') for n in range(30)]
        Publisher(mosquitto.url, messages).start().wait()
        poll(lambda: len(lines_in(influx)) == 32, 30, "the other 31 points stored")
        poll(
            lambda: (
                service.metric(
                    'labdock_acquire_deadletters_total{reason="rejected",stage="write"}'
                )
                == 1
            ),
            30,
            "one rejected line",
        )
    finally:
        service.stop()
    store = DeadLetterStore(tmp_path / "acquire" / "spool")
    letters = store.list()
    store.close()
    assert len(letters) == 1
    assert letters[0].payload.startswith(b"env,device=dev01 t=22i ")
    assert "field type conflict" in letters[0].detail


def test_skipped_message_is_counted_not_deadlettered() -> None:
    config = AcquireConfig.model_validate(
        {
            "mappings": [
                {
                    "topic": "z2m/{device#}",
                    "measurement": "zigbee",
                    "format": "zigbee2mqtt",
                    "options": {"base_topic": "z2m"},
                }
            ]
        }
    )
    outcome = Pipeline(config).process(
        "z2m/kitchen/availability", b'{"state":"online"}', ARRIVAL
    )
    assert outcome.reason is None
    assert outcome.lines == []
    assert sum(outcome.dropped.values()) >= 1

"""Sparkplug rebirth requests from the service: publishing, failures, a real broker.

The ingest tests use a stub connection, so that a publish can fail on
demand. The broker tests run Mosquitto, and the end-to-end test acts as the
edge node. Its DDATA arrives before any birth, it responds to the rebirth
request with an NBIRTH and a DBIRTH, and its next DDATA is stored in
InfluxDB 1.x.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import Any, cast

import paho.mqtt.client as paho
import pytest
import structlog
from harness import AcquireProcess, InfluxV1Backend, poll
from paho.mqtt.enums import CallbackAPIVersion

from components import InfluxDB1, Mosquitto
from labdock.acquire.config import AcquireConfig, BrokerConfig
from labdock.acquire.decoders._sparkplug_schema import Payload
from labdock.acquire.decoders.sparkplug import BOOLEAN, DOUBLE, INT64, REBIRTH_METRIC
from labdock.acquire.metrics import Metrics
from labdock.acquire.mqtt import BrokerConnection, Message
from labdock.acquire.service import Ingest
from labdock.acquire.spool import DeadLetterStore, Spool

GROUP, NODE, DEVICE = "Lab", "edge-1", "pump-7"
NCMD_TOPIC = f"spBv1.0/{GROUP}/NCMD/{NODE}"


def sparkplug(metrics: list[dict[str, Any]], seq: int | None) -> bytes:
    message = Payload(timestamp=time.time_ns() // 1_000_000)
    if seq is not None:
        message.seq = seq
    for metric in metrics:
        message.metrics.add(**metric)
    return bytes(message.SerializeToString())


NODE_BIRTH = sparkplug([{"name": "bdSeq", "datatype": INT64, "long_value": 0}], seq=0)
DEVICE_BIRTH = sparkplug(
    [{"name": "Flow", "alias": 10, "datatype": DOUBLE, "double_value": 1.5}], seq=1
)


def device_data(value: float, seq: int) -> bytes:
    return sparkplug([{"alias": 10, "double_value": value}], seq=seq)


def check_rebirth_payload(data: bytes, sent_after_ms: int) -> None:
    message = Payload.FromString(data)
    assert sent_after_ms <= message.timestamp <= time.time_ns() // 1_000_000
    assert not message.HasField("seq")
    (metric,) = message.metrics
    assert metric.name == REBIRTH_METRIC
    assert metric.datatype == BOOLEAN
    assert metric.WhichOneof("value") == "boolean_value"
    assert metric.boolean_value is True


# The ingest thread with a stub connection.


class StubConnection:
    """The part of BrokerConnection that Ingest uses, with a settable publish result."""

    def __init__(self, publish_error: str | None) -> None:
        self.queue: deque[Message] = deque()
        self.arrived = threading.Event()
        self.publish_error = publish_error
        self.published: list[tuple[str, bytes]] = []
        self.acknowledged: list[Message] = []

    def acknowledge_many(self, messages: Sequence[Message]) -> list[Message]:
        self.acknowledged.extend(messages)
        return []

    def publish(self, topic: str, payload: bytes) -> str | None:
        self.published.append((topic, payload))
        return self.publish_error


def ingest_config(tmp_path: Path) -> AcquireConfig:
    return AcquireConfig.model_validate(
        {
            "mappings": [
                {
                    "topic": "spBv1.0/#",
                    "measurement": "plc",
                    "format": "sparkplug_b",
                    "options": {"rebirth_request": True},
                }
            ],
            "spool": {"directory": str(tmp_path / "spool"), "commit_interval": 0.05},
        }
    )


def message(kind: str, data: bytes, device: str | None, mid: int) -> Message:
    topic = f"spBv1.0/{GROUP}/{kind}/{NODE}" + (f"/{device}" if device else "")
    return Message(topic, data, mid, 1, False, False, time.time_ns(), 1)


SESSION = [
    message("DDATA", device_data(2.0, seq=5), DEVICE, 1),
    message("NBIRTH", NODE_BIRTH, None, 2),
    message("DBIRTH", DEVICE_BIRTH, DEVICE, 3),
    message("DDATA", device_data(2.5, seq=2), DEVICE, 4),
]


def run_ingest(
    tmp_path: Path, connection: StubConnection, messages: list[Message]
) -> tuple[Metrics, list[MutableMapping[str, Any]]]:
    """Ingest `messages`; return the metrics and the log events."""
    config = ingest_config(tmp_path)
    spool = Spool(config.spool.directory, config.spool.max_bytes)
    metrics = Metrics()
    ingest = Ingest(config, cast(BrokerConnection, connection), spool, metrics)
    with structlog.testing.capture_logs() as events:
        ingest.start()
        connection.queue.extend(messages)
        connection.arrived.set()
        poll(
            lambda: len(connection.acknowledged) == len(messages),
            10,
            "every message acknowledged",
        )
        ingest.stop()
    assert ingest.spool_error is None
    # The NBIRTH carries only bdSeq, which is excluded, so it writes no line.
    entries = spool.take(0, max_lines=100, max_bytes=1 << 20)
    assert [entry.topic for entry in entries] == [messages[2].topic, messages[3].topic]
    spool.close()
    return metrics, events


def rebirth_count(metrics: Metrics, result: str) -> float | None:
    return metrics.registry.get_sample_value(
        "labdock_acquire_sparkplug_rebirth_requests_total",
        {"reason": "no_birth", "result": result},
    )


def test_ingest_publishes_rebirth_request(tmp_path: Path) -> None:
    connection = StubConnection(publish_error=None)
    sent_after_ms = time.time_ns() // 1_000_000
    metrics, events = run_ingest(tmp_path, connection, SESSION)
    ((topic, data),) = connection.published
    assert topic == NCMD_TOPIC
    check_rebirth_payload(data, sent_after_ms)
    assert rebirth_count(metrics, "published") == 1
    assert rebirth_count(metrics, "failed") is None
    (event,) = [e for e in events if e["event"] == "sparkplug.rebirth_requested"]
    assert event["log_level"] == "info"
    assert event["group"] == GROUP
    assert event["edge_node"] == NODE
    assert event["reason"] == "no_birth"
    assert event["topic"] == NCMD_TOPIC


def test_ingest_logs_failed_rebirth_request(tmp_path: Path) -> None:
    connection = StubConnection(publish_error="not connected to the broker")
    metrics, events = run_ingest(tmp_path, connection, SESSION)
    assert len(connection.published) == 1
    assert rebirth_count(metrics, "failed") == 1
    assert rebirth_count(metrics, "published") is None
    (event,) = [e for e in events if e["event"] == "sparkplug.rebirth_request_failed"]
    assert event["log_level"] == "warning"
    assert event["topic"] == NCMD_TOPIC
    assert event["error"] == "not connected to the broker"
    assert event["group"] == GROUP
    assert event["edge_node"] == NODE
    store = DeadLetterStore(tmp_path / "spool")
    assert store.counts() == {"sparkplug_no_birth": 1}
    store.close()


# A real broker.


class EdgeNode:
    """A paho client in the role of a Sparkplug edge node, receiving its NCMDs."""

    def __init__(self, broker: Mosquitto) -> None:
        self.commands: queue.Queue[paho.MQTTMessage] = queue.Queue()
        subscribed = threading.Event()
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id="edge-node",
            protocol=paho.MQTTv311,
        )
        client.on_message = lambda _client, _userdata, message: self.commands.put(
            message
        )
        client.on_subscribe = lambda *_args: subscribed.set()
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        client.subscribe("spBv1.0/+/NCMD/+", qos=1)
        assert subscribed.wait(10), "the broker did not acknowledge the subscription"
        self.client = client

    def publish(self, kind: str, data: bytes, device: str | None = None) -> None:
        topic = f"spBv1.0/{GROUP}/{kind}/{NODE}" + (f"/{device}" if device else "")
        self.client.publish(topic, data, qos=1).wait_for_publish(10)

    def next_command(self, timeout: float = 20) -> paho.MQTTMessage:
        return self.commands.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def edge_node(mosquitto: Mosquitto) -> Iterator[EdgeNode]:
    node = EdgeNode(mosquitto)
    try:
        yield node
    finally:
        node.close()


@pytest.mark.slow
def test_connection_publish_results(mosquitto: Mosquitto, edge_node: EdgeNode) -> None:
    config = BrokerConfig.model_validate(
        {"url": mosquitto.url, "client_id": "labdock-publish-test"}
    )
    connection = BrokerConnection(config, ["labdock-test/#"])
    assert connection.publish(NCMD_TOPIC, b"x") == "not connected to the broker"
    connection.start()
    try:
        assert connection.connected.wait(10)
        error = connection.publish("spBv1.0/+/NCMD/x", b"x")
        assert error is not None
        assert error.startswith("ValueError")
        assert connection.publish(NCMD_TOPIC, b"payload") is None
        received = edge_node.next_command()
        assert received.topic == NCMD_TOPIC
        assert received.payload == b"payload"
        assert received.qos == 0
        assert received.retain is False
    finally:
        connection.stop()


@pytest.mark.slow
def test_rebirth_then_data_stored(
    tmp_path: Path,
    mosquitto: Mosquitto,
    influxdb1: InfluxDB1,
    edge_node: EdgeNode,
    unique_name: str,
) -> None:
    backend = InfluxV1Backend(influxdb1, unique_name)
    service = AcquireProcess(
        tmp_path / "acquire",
        {
            "broker": {"url": mosquitto.url, "client_id": unique_name},
            "mappings": [
                {
                    "topic": "spBv1.0/#",
                    "measurement": "plc",
                    "format": "sparkplug_b",
                    "options": {"rebirth_request": True, "rebirth_interval": 60},
                }
            ],
            "database": backend.database_config(),
            "batch": {"max_delay": 0.2},
        },
    )
    service.start()
    try:
        sent_after_ms = time.time_ns() // 1_000_000
        edge_node.publish("DDATA", device_data(2.0, seq=7), DEVICE)
        edge_node.publish("DDATA", device_data(2.1, seq=8), DEVICE)

        command = edge_node.next_command()
        assert command.topic == NCMD_TOPIC
        assert command.qos == 0
        assert command.retain is False
        check_rebirth_payload(bytes(command.payload), sent_after_ms)

        edge_node.publish("NBIRTH", NODE_BIRTH)
        edge_node.publish("DBIRTH", DEVICE_BIRTH, DEVICE)
        edge_node.publish("DDATA", device_data(2.5, seq=2), DEVICE)
        rows = poll(
            lambda: backend.server.query(
                backend.database, 'SELECT "Flow" FROM "plc" WHERE "Flow" = 2.5'
            ),
            30,
            "the DDATA after the births stored",
        )
        assert rows[0]["Flow"] == 2.5
        metrics = service.metrics()
        assert (
            metrics[
                'labdock_acquire_deadletters_total{reason="sparkplug_no_birth",stage="decode"}'
            ]
            == 2
        )
        # The second DDATA came within rebirth_interval, so it sent no request.
        assert (
            metrics[
                'labdock_acquire_sparkplug_rebirth_requests_total{reason="no_birth",result="published"}'
            ]
            == 1
        )
        assert edge_node.commands.empty()
    finally:
        service.stop()
    events = [
        event
        for event in service.log_events()
        if event.get("event") == "sparkplug.rebirth_requested"
    ]
    assert len(events) == 1
    assert events[0]["level"] == "info"
    assert events[0]["group"] == GROUP
    assert events[0]["edge_node"] == NODE

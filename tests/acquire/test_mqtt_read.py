"""The MQTT client's own reading of PUBLISH packets from its buffer.

`_Client._take_publishes` parses the QoS 0 and 1 PUBLISH packets that sit
whole in the read buffer and leaves everything else to paho. These tests
build packets byte by byte, as a broker sends them, and check what it hands
on and where it stops.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from components import Mosquitto
from labdock.acquire.config import AcquireConfig
from labdock.acquire.mqtt import BrokerConnection, Publish, _Client


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def publish(
    topic: bytes,
    payload: bytes,
    *,
    qos: int = 1,
    mid: int = 7,
    dup: bool = False,
    retain: bool = False,
    properties: bytes | None = None,
) -> bytes:
    """A PUBLISH packet; `properties` (MQTT 5) is the encoded property list."""
    variable = len(topic).to_bytes(2, "big") + topic
    if qos:
        variable += mid.to_bytes(2, "big")
    if properties is not None:
        variable += varint(len(properties)) + properties
    body = variable + payload
    header = 0x30 | (qos << 1)
    if dup:
        header |= 0x08
    if retain:
        header |= 0x01
    return bytes([header]) + varint(len(body)) + body


def client(version: int = paho.MQTTv311) -> tuple[_Client, list[Publish]]:
    delivered: list[Publish] = []
    reader = _Client(CallbackAPIVersion.VERSION2, protocol=version)
    reader.deliver_many = delivered.extend
    return reader, delivered


def feed(reader: _Client, data: bytes) -> int:
    reader._read_data, reader._read_pos = data, 0
    return reader._take_publishes()


@pytest.mark.parametrize("size", [0, 1, 100, 200, 20_000, 3_000_000])
def test_remaining_lengths_of_one_to_four_bytes(size: int) -> None:
    reader, delivered = client()
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    data = publish(b"lab/a", payload) + publish(b"lab/b", b"2", mid=8)
    assert feed(reader, data) == 2
    assert delivered == [
        (b"lab/a", payload, 7, 1, False, False),
        (b"lab/b", b"2", 8, 1, False, False),
    ]
    assert reader._read_pos == len(data)


def test_flags_and_qos_zero() -> None:
    reader, delivered = client()
    data = publish(b"t", b"a", qos=0) + publish(b"t", b"b", dup=True, retain=True)
    assert feed(reader, data) == 2
    assert delivered == [
        (b"t", b"a", 0, 0, False, False),
        (b"t", b"b", 7, 1, True, True),
    ]


def test_mqtt5_properties_are_skipped() -> None:
    reader, delivered = client(paho.MQTTv5)
    user_property = b"\x26" + b"\x00\x01k" + b"\x00\x01v"
    long_properties = user_property * 40  # a two-byte property length
    data = (
        publish(b"t", b"a", properties=b"")
        + publish(b"t", b"b", properties=user_property)
        + publish(b"t", b"c", qos=0, properties=long_properties)
    )
    assert feed(reader, data) == 3
    assert [packet[1] for packet in delivered] == [b"a", b"b", b"c"]


@pytest.mark.parametrize(
    ("second", "why"),
    [
        (publish(b"t", b"q2", qos=2), "QoS 2 needs paho's PUBREC flow"),
        (b"\x90\x03\x00\x01\x01", "a SUBACK"),
        (b"\xd0\x00", "a PINGRESP"),
        (publish(b"", b"alias"), "an empty topic is a topic alias"),
        (b"\x32\x01\x00", "a packet too short for its topic length"),
        (b"\x32\x04\x00\x09ab", "a topic length beyond the packet"),
        (b"\x32\x03\x00\x01t", "a QoS 1 packet without its packet id"),
        (b"\x32\xff\xff\xff\xff\x01", "a length of five bytes"),
    ],
)
def test_stops_where_paho_must_read(second: bytes, why: str) -> None:
    reader, delivered = client()
    first = publish(b"t", b"ok")
    data = first + second + publish(b"t", b"after")
    assert feed(reader, data) == 1, why
    assert delivered == [(b"t", b"ok", 7, 1, False, False)]
    assert reader._read_pos == len(first)


@pytest.mark.parametrize("cut", [1, 2, 3, 5, 20, 303])
def test_partial_packet_left_to_paho(cut: int) -> None:
    reader, delivered = client()
    first = publish(b"t", b"ok")
    data = first + publish(b"t", b"x" * 300)[:cut]
    assert feed(reader, data) == 1
    assert reader._read_pos == len(first)


def test_mqtt5_property_overrun_stops() -> None:
    reader, delivered = client(paho.MQTTv5)
    bad = b"\x32\x06\x00\x01t\x00\x07\x09"  # property length 9 in a 6-byte body
    assert feed(reader, bad) == 0
    assert delivered == []
    assert reader._read_pos == 0


def test_empty_buffer_takes_nothing() -> None:
    reader, delivered = client()
    assert feed(reader, b"") == 0
    assert feed(reader, b"\x32") == 0
    assert delivered == []


def test_arrival_times_strictly_increase() -> None:
    config = AcquireConfig.model_validate({"mappings": [{"topic": "t/{measurement}"}]})
    connection = BrokerConnection(config.broker, ["t"])
    packets: list[Publish] = [(b"t", b"1", 1, 1, False, False)] * 500
    connection._deliver_many(packets)
    connection._deliver_many(packets[:3])
    times = [message.received_ns for message in connection.queue]
    assert len(times) == 503
    assert times == sorted(set(times))
    assert connection.queue[0].topic == "t"


def test_invalid_utf8_topic_is_kept_readable() -> None:
    config = AcquireConfig.model_validate({"mappings": [{"topic": "t/{measurement}"}]})
    connection = BrokerConnection(config.broker, ["t"])
    connection._deliver_many([(b"lab/\xff", b"1", 1, 1, False, False)])
    assert connection.queue[0].topic == "lab/\ufffd"


def test_backlog_stops_reading(tmp_path: Path) -> None:
    """Mosquitto 2.0 sends past the client's receive maximum once
    acknowledgements flow; the client then stops reading instead of
    queueing without bound."""
    broker = Mosquitto(tmp_path / "broker", max_inflight_messages=10000)
    broker.start()
    config = AcquireConfig.model_validate(
        {
            "broker": {"url": broker.url, "client_id": "backlog", "max_inflight": 100},
            "mappings": [{"topic": "t/{measurement}"}],
        }
    )
    connection = BrokerConnection(config.broker, ["t/#"], max_queued=200)
    try:
        connection.start()
        assert connection.connected.wait(10)
        payload = "x" * 2000
        publisher = subprocess.Popen(
            ["mosquitto_pub", "-p", str(broker.port), "-q", "1", "-t", "t/a", "-l"],
            stdin=subprocess.PIPE,
        )
        assert publisher.stdin is not None
        publisher.stdin.write("".join(f"{n} {payload}\n" for n in range(3000)).encode())
        publisher.stdin.close()
        peak = 0
        consumed = 0
        deadline = time.monotonic() + 60
        while consumed < 3000 and time.monotonic() < deadline:
            time.sleep(0.005)
            peak = max(peak, len(connection.queue))
            batch = [
                connection.queue.popleft()
                for _ in range(min(len(connection.queue), 50))
            ]
            connection.acknowledge_many(batch)
            consumed += len(batch)
        publisher.wait(30)
    finally:
        connection.stop()
        broker.stop()
    assert consumed == 3000
    # At most the limit plus one read of 256 KiB (about 130 such messages).
    assert peak <= 200 + 140


def test_long_backlog_keeps_connection(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    config = AcquireConfig.model_validate(
        {
            "broker": {"url": broker.url, "client_id": "slow", "keepalive": 5},
            "mappings": [{"topic": "t/{measurement}"}],
        }
    )
    connection = BrokerConnection(config.broker, ["t/#"], max_queued=20)
    try:
        connection.start()
        assert connection.connected.wait(10)
        subprocess.run(
            ["mosquitto_pub", "-p", str(broker.port), "-q", "1", "-t", "t/a", "-l"],
            input="".join(f"{n}\n" for n in range(300)).encode(),
            check=True,
        )
        time.sleep(13)  # over twice the keepalive, with nothing consumed
        assert connection.connected.is_set()
        assert connection.generation == 1
        consumed = 0
        deadline = time.monotonic() + 30
        while consumed < 300 and time.monotonic() < deadline:
            batch = list(connection.queue)
            connection.queue.clear()
            connection.acknowledge_many(batch)
            consumed += len(batch)
            time.sleep(0.01)
    finally:
        connection.stop()
        broker.stop()
    assert consumed == 300


def test_ack_many_writes_one_puback_per_id() -> None:
    reader, _ = client()
    reader.ack_many([1, 258, 65535])
    packet = reader._out_packet.popleft()
    assert bytes(packet["packet"]) == bytes.fromhex("40020001400201024002ffff")

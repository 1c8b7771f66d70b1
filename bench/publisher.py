"""Publish JSON sensor readings at QoS 1 over a plain socket, as fast as allowed.

One process is one MQTT 3.1.1 connection. It writes PUBLISH packets itself
instead of going through paho, because paho's per-message Python overhead
caps one publisher near 18,000 messages/s on this kind of machine, which is
below what the broker and the fastest subscribers take. At most `--window`
publishes are unacknowledged at once; a publish counts as sent when the
broker's PUBACK arrives.

Each payload carries `seq` (unique across publishers: `index * publishers +
publisher`) and `sent`, the wall-clock time in microseconds when its batch
was encoded, which is at most a few milliseconds before the socket write.
Messages go round-robin over `--topics` device topics
`<prefix>/room<r>/dev<d>/env`. Every `--probe-interval` seconds one message
goes to `<prefix>/probe/dev<d>/env` instead. Its seq and `sent` are printed
as `probe <seq> <sent>` on stdout, so the harness can wait for it in the
database.

On exit it prints one JSON line: `{"done": ..., "sent": N, "acknowledged": N,
"started": t, "finished": t}` with wall-clock times in seconds.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time

PUBACK = 0x40
CONNACK = 0x20


def encode_length(length: int) -> bytes:
    """Encode an MQTT remaining length as its variable-length integer."""
    out = bytearray()
    while True:
        byte = length % 128
        length //= 128
        if length:
            byte |= 0x80
        out.append(byte)
        if not length:
            return bytes(out)


def connect_packet(client_id: str) -> bytes:
    identifier = client_id.encode()
    # Protocol name MQTT, level 4 (3.1.1), clean session, keepalive 0 (off).
    variable = b"\x00\x04MQTT\x04\x02\x00\x00"
    payload = struct.pack("!H", len(identifier)) + identifier
    body = variable + payload
    return b"\x10" + encode_length(len(body)) + body


class Publisher:
    """A QoS 1 publisher on one socket with a bounded in-flight window."""

    def __init__(self, host: str, port: int, client_id: str, window: int) -> None:
        if not 1 <= window < 65535:
            raise ValueError(f"window {window} must be between 1 and 65534")
        self.window = window
        self.sock = socket.create_connection((host, port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(connect_packet(client_id))
        reply = self._read_exactly(4)
        if reply[0] != CONNACK or reply[3] != 0:
            raise ConnectionError(f"broker refused the connection: CONNACK {reply.hex()}")
        self.buffer = b""
        self.next_id = 1
        self.sent = 0
        self.acknowledged = 0

    def _read_exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            data += chunk
        return data

    def publish_many(self, messages: list[tuple[bytes, bytes]]) -> None:
        """Send QoS 1 PUBLISH packets for `(topic, payload)` pairs in one write."""
        packets = []
        packet_id = self.next_id
        for topic, payload in messages:
            length = 2 + len(topic) + 2 + len(payload)
            packets.append(b"\x32")
            packets.append(encode_length(length))
            packets.append(struct.pack("!H", len(topic)))
            packets.append(topic)
            packets.append(struct.pack("!H", packet_id))
            packets.append(payload)
            packet_id = packet_id + 1 if packet_id < 65535 else 1
        self.next_id = packet_id
        self.sock.sendall(b"".join(packets))
        self.sent += len(messages)

    def read_acks(self, block: bool) -> None:
        """Read what the broker sent and count the PUBACKs in it."""
        self.sock.setblocking(block)
        try:
            chunk = self.sock.recv(1 << 16)
        except BlockingIOError:
            return
        finally:
            self.sock.setblocking(True)
        if not chunk:
            raise ConnectionError("broker closed the connection")
        data = self.buffer + chunk
        offset = 0
        size = len(data)
        while offset + 2 <= size:
            kind = data[offset]
            # Remaining length: PUBACKs have 2, anything else is skipped whole.
            multiplier = 1
            length = 0
            position = offset + 1
            complete = False
            while position < size:
                byte = data[position]
                length += (byte & 0x7F) * multiplier
                multiplier *= 128
                position += 1
                if not byte & 0x80:
                    complete = True
                    break
            if not complete or position + length > size:
                break
            if kind == PUBACK:
                self.acknowledged += 1
            offset = position + length
        self.buffer = data[offset:]

    def in_flight(self) -> int:
        return self.sent - self.acknowledged

    def close(self) -> None:
        try:
            self.sock.sendall(b"\xe0\x00")
        finally:
            self.sock.close()


def payload_for(seq: int, sent_us: int) -> bytes:
    """Return a realistic environment-sensor reading as compact JSON."""
    wobble = (seq * 7919) % 1000
    return (
        f'{{"seq":{seq},"sent":{sent_us},"temperature":{18 + wobble / 100:.2f},'
        f'"humidity":{35 + wobble / 40:.1f},"pressure":{1000 + wobble / 50:.2f},'
        f'"co2":{400 + wobble},"battery":{3.3 + wobble / 2000:.3f},'
        f'"rssi":{-40 - wobble % 60},"door_open":{"true" if seq % 2 else "false"},'
        f'"state":"ok"}}'
    ).encode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True, help="messages to publish")
    parser.add_argument("--index", type=int, default=0, help="this publisher's number")
    parser.add_argument("--publishers", type=int, default=1, help="publishers in the run")
    parser.add_argument("--rate", type=float, default=0.0, help="messages/s; 0 = max")
    parser.add_argument("--topics", type=int, default=100, help="device topics")
    parser.add_argument("--prefix", default="bench", help="first topic level")
    parser.add_argument("--window", type=int, default=1000, help="max unacknowledged")
    parser.add_argument("--batch", type=int, default=100, help="max packets per write")
    parser.add_argument(
        "--probe-interval", type=float, default=0.02, help="seconds between probes"
    )
    parser.add_argument(
        "--start-at", type=float, default=0.0, help="wall-clock second to start"
    )
    args = parser.parse_args()

    topics = [
        f"{args.prefix}/room{device % 10}/dev{device:03d}/env".encode()
        for device in range(args.topics)
    ]
    probe_topics = [
        f"{args.prefix}/probe/dev{device:03d}/env".encode() for device in range(args.topics)
    ]
    publisher = Publisher(
        args.host, args.port, f"bench-pub-{args.index}-{time.time_ns()}", args.window
    )
    if args.start_at:
        time.sleep(max(0.0, args.start_at - time.time()))
    started = time.time()
    next_probe = started
    index = 0
    out = sys.stdout
    while index < args.count:
        now = time.time()
        allowed = args.count - index
        if args.rate:
            due = int((now - started) * args.rate) + 1
            allowed = min(allowed, due - index)
        allowed = min(allowed, args.batch, args.window - publisher.in_flight())
        if allowed <= 0:
            if publisher.in_flight() >= args.window:
                publisher.read_acks(block=True)
            else:
                publisher.read_acks(block=False)
                time.sleep(0.001)
            continue
        sent_us = time.time_ns() // 1000
        batch = []
        for offset in range(allowed):
            seq = (index + offset) * args.publishers + args.index
            topic = topics[(index + offset) % args.topics]
            if now >= next_probe:
                # At most one probe per batch; a late probe is not made up for.
                topic = probe_topics[(index + offset) % args.topics]
                next_probe = max(next_probe, now - args.probe_interval) + args.probe_interval
                out.write(f"probe {seq} {sent_us}\n")
            batch.append((topic, payload_for(seq, sent_us)))
        publisher.publish_many(batch)
        index += allowed
        publisher.read_acks(block=False)
    out.flush()
    deadline = time.monotonic() + 120
    while publisher.in_flight() > 0 and time.monotonic() < deadline:
        publisher.read_acks(block=True)
    finished = time.time()
    publisher.close()
    report = {
        "done": True,
        "sent": publisher.sent,
        "acknowledged": publisher.acknowledged,
        "started": started,
        "finished": finished,
    }
    out.write(json.dumps(report) + "\n")
    out.flush()
    return 0 if publisher.acknowledged == publisher.sent else 1


if __name__ == "__main__":
    sys.exit(main())

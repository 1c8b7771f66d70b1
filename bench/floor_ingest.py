"""The floor contender: the least code that moves MQTT readings into InfluxDB.

A paho subscriber at QoS 1 whose messages paho acknowledges as soon as they
arrive, before anything is stored. The network thread turns each JSON
payload into one line of line protocol in memory. The main thread sends the
lines with one HTTP POST to the v1 /write API per batch of up to `--batch`
lines, or after `--delay` seconds. Nothing is buffered on disk, so a crash
or a failed write loses the batch; the benchmark measures what this costs
and saves.
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import threading
import time
from typing import Any

import paho.mqtt.client as paho


def to_line(topic: str, payload: bytes, time_ns: int) -> str:
    """Encode one reading as line protocol: topic levels 2-4 are room, device
    and measurement, JSON numbers become float fields."""
    _, room, device, measurement = topic.split("/", 3)
    values = json.loads(payload)
    fields = []
    for key, value in values.items():
        if isinstance(value, bool):
            fields.append(f"{key}={'true' if value else 'false'}")
        elif isinstance(value, (int, float)):
            fields.append(f"{key}={value}")
        elif isinstance(value, str):
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            fields.append(f'{key}="{escaped}"')
    return f"{measurement},device={device},room={room} {','.join(fields)} {time_ns}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker-port", type=int, required=True)
    parser.add_argument("--db-port", type=int, required=True)
    parser.add_argument("--path", default="/write?db=bench&precision=ns")
    parser.add_argument("--topic", default="bench/#")
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--delay", type=float, default=1.0)
    args = parser.parse_args()

    pending: list[str] = []
    lock = threading.Lock()
    arrived = threading.Condition(lock)
    stopping = threading.Event()

    def on_connect(client: paho.Client, *_: Any) -> None:
        client.subscribe(args.topic, qos=1)

    def on_message(_client: paho.Client, _userdata: Any, message: Any) -> None:
        line = to_line(message.topic, message.payload, time.time_ns())
        with arrived:
            pending.append(line)
            if len(pending) >= args.batch:
                arrived.notify()

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-floor")
    client.on_connect = on_connect
    client.on_message = on_message
    client.connect("127.0.0.1", args.broker_port)
    client.loop_start()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    database = http.client.HTTPConnection("127.0.0.1", args.db_port, timeout=30)
    while True:
        with arrived:
            if len(pending) < args.batch and not stopping.is_set():
                arrived.wait(args.delay)
            batch = pending[: args.batch]
            del pending[: args.batch]
        if batch:
            body = ("\n".join(batch) + "\n").encode()
            database.request("POST", args.path, body)
            reply = database.getresponse()
            reply.read()
            if reply.status != 204:
                print(f"write of {len(batch)} lines failed: HTTP {reply.status}", flush=True)
        elif stopping.is_set():
            break
    client.disconnect()
    client.loop_stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

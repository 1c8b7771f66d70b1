"""The MQTT connection: a persistent QoS 1 session with manual acknowledgement.

paho-mqtt runs the network loop in its own thread; `on_message` only queues
the message, and the ingest thread acknowledges it after the spool commit.
paho was chosen because it is the Eclipse reference client for Python,
speaks MQTT 3.1.1 and 5 and supports manual acknowledgement, which at-least-once
delivery into the spool needs.
"""

from __future__ import annotations

import json
import select
import socket
import ssl
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import paho.mqtt.client as paho
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from labdock.acquire.config import BrokerConfig, read_secret

log = structlog.get_logger("labdock.acquire.mqtt")

# MQTT 5 reason code of a DISCONNECT sent because another client connected
# with the same client id.
SESSION_TAKEN_OVER = 142


# Bytes requested from the socket per read; paho itself requests one byte
# per header byte of every packet.
READ_CHUNK = 256 * 1024
# Packets read per wake-up of paho's loop before it gets to write again.
MAX_PACKETS_PER_READ = 2000
# Seconds between checks while the receiver has too many messages queued.
BACKLOG_WAIT = 0.005
# Decoded topics kept; the cache starts over when full.
_TOPIC_CACHE_SIZE = 10_000
# A PUBACK with remaining length 2: success, no reason code or properties,
# which MQTT 3.1.1 and 5 both accept.
_PUBACK_WORD = (paho.PUBACK << 24) | (2 << 16)


class _Client(paho.Client):
    """paho's client, changed where its per-message cost is highest.

    - Reads are buffered. paho reads a packet with one system call per header
      byte and one for the body, and one packet per wake-up of its loop.
      Here a large read fills a buffer that serves paho's small reads, and a
      wake-up handles every packet in the buffer, up to a limit.
    - `ack_many` queues the PUBACKs of one spool commit as one write,
      instead of one queued packet, wake-up and `send` each.
    - The QoS 0 and 1 PUBLISH packets in the buffer are parsed here, all at
      once, and handed to `deliver_many` in one call; paho reads every
      other packet. A message paho reads goes straight to `deliver`, past
      its matcher of per-topic callbacks, which labdock doesn't use.

    Both use paho's own locks and queue; they rely on its private methods
    `_sock_recv`, `_loop`, `_packet_read`, `_packet_queue`, `_in_packet`,
    `_protocol` and `_last_bytes_received`, as of paho-mqtt
    2.1 and 2.2 (pinned below 3 in pyproject.toml).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_data = b""
        self._read_pos = 0
        self.deliver: Callable[[Any], None] | None = None
        self.deliver_many: Callable[[list[Publish]], None] | None = None
        # True while the receiver has as many messages queued as it accepts.
        self.backlogged: Callable[[], bool] | None = None

    def _handle_on_message(self, message: paho.MQTTMessage) -> None:
        if self.deliver is None:
            super()._handle_on_message(message)
            return
        with self._in_callback_mutex:
            self.deliver(message)

    def reconnect(self) -> MQTTErrorCode:
        self._read_data = b""
        self._read_pos = 0
        return super().reconnect()

    def _sock_recv(self, bufsize: int) -> bytes:
        data, position = self._read_data, self._read_pos
        if position >= len(data):
            data = super()._sock_recv(READ_CHUNK)
            position = 0
            if not data:
                self._read_data, self._read_pos = b"", 0
                return data
        chunk = data[position : position + bufsize]
        self._read_data, self._read_pos = data, position + len(chunk)
        return chunk

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        handled = 0
        while handled < MAX_PACKETS_PER_READ:
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            if self._in_packet["command"] == 0 and self.deliver_many is not None:
                if self.backlogged is not None and self.backlogged():
                    break
                if self._read_pos >= len(self._read_data):
                    try:
                        data = super()._sock_recv(READ_CHUNK)
                    except BlockingIOError:
                        break
                    except OSError as error:
                        log.warning("broker.read_failed", error=str(error))
                        data = b""
                    if not data:
                        return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
                    self._read_data, self._read_pos = data, 0
                parsed = self._take_publishes()
                if parsed:
                    handled += parsed
                    continue
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                break
            handled += 1
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _take_publishes(self) -> int:
        """Deliver the whole QoS 0 and 1 PUBLISH packets at the front of the
        read buffer in one call; return how many.

        This replaces paho's packet-by-packet reading for the packets that
        make up nearly all traffic. It stops at anything else (another
        packet type, QoS 2, a packet not yet read in full, a topic alias or
        a malformed length), which paho then reads as usual.
        """
        data, position = self._read_data, self._read_pos
        end = len(data)
        version5 = self._protocol == paho.MQTTv5
        packets: list[Publish] = []
        while position + 2 <= end:
            header = data[position]
            if header & 0xF0 != paho.PUBLISH or header & 0x06 > 0x02:
                break
            length = data[position + 1]
            start = position + 2
            if length & 0x80:
                length, start = _remaining_length(data, position)
                if length < 0:
                    break
            finish = start + length
            if finish > end or length < 2:
                break
            topic_end = start + 2 + ((data[start] << 8) | data[start + 1])
            if topic_end == start + 2 or topic_end > finish:
                break  # an empty topic (a topic alias), or a malformed packet
            body = topic_end
            mid = 0
            if header & 0x06:
                if body + 2 > finish:
                    break
                mid = (data[body] << 8) | data[body + 1]
                body += 2
            if version5:
                skip, body = _remaining_length(data, body - 1, finish)
                if skip < 0:
                    break
                body += skip
            if body > finish:
                break
            packets.append(
                (
                    data[start + 2 : topic_end],
                    data[body:finish],
                    mid,
                    (header >> 1) & 0x03,
                    bool(header & 0x08),
                    bool(header & 0x01),
                )
            )
            position = finish
        if packets:
            self._read_pos = position
            with self._msgtime_mutex:
                self._last_bytes_received = paho.time_func()
            with self._in_callback_mutex:
                self.deliver_many(packets)  # type: ignore[misc]
        return len(packets)

    def _loop(self, timeout: float = 1.0) -> MQTTErrorCode:
        if self.backlogged is not None and self.backlogged():
            # Leave the socket unread until the receiver catches up, so that
            # TCP flow control slows the broker down. Acknowledgements and
            # pings still go out.
            time.sleep(BACKLOG_WAIT)
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            # Bytes waiting in the socket show that the broker is alive. Without
            # this, a backlog longer than the keepalive (a full spool) would
            # look like a dead connection, since the PINGRESP stays unread.
            if select.select([self._sock], [], [], 0)[0]:
                with self._msgtime_mutex:
                    self._last_bytes_received = paho.time_func()
            if self.want_write():
                rc = self.loop_write()
                if rc:
                    return rc
            return self.loop_misc()
        # select() can't see bytes already in the buffer, so read them first
        # and then let the loop write without waiting.
        if self._read_pos < len(self._read_data) and self._sock is not None:
            rc = self.loop_read()
            if rc:
                return rc
            timeout = 0.0
        return super()._loop(timeout)

    def ack_many(self, mids: list[int]) -> None:
        """Queue PUBACKs for the QoS 1 messages `mids` as one write."""
        if mids:
            # Each PUBACK is four bytes: the header, then the packet id.
            data = struct.pack(f">{len(mids)}I", *[_PUBACK_WORD | mid for mid in mids])
            self._packet_queue(paho.PUBACK, data, 0, 0)


# A PUBLISH packet read by `_Client._take_publishes`: topic (raw bytes),
# payload, packet id, QoS, duplicate flag, retain flag.
Publish = tuple[bytes, bytes, int, int, bool, bool]


def _remaining_length(data: bytes, position: int, end: int = -1) -> tuple[int, int]:
    """Decode the variable-length integer that starts at `position + 1`.

    Returns (value, the position after it), or (-1, 0) when it is cut off
    before `end` (the end of `data` by default) or is longer than the four
    bytes MQTT allows.
    """
    value = 0
    shift = 0
    index = position + 1
    if end < 0:
        end = len(data)
    while index < end and shift <= 21:
        byte = data[index]
        index += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index
        shift += 7
    return -1, 0


class Message(NamedTuple):
    """A received message. `generation` counts connections, so that a
    message is acknowledged only on the connection that delivered it.

    A named tuple, because one is made per message and `tuple.__new__`
    makes it in C.
    """

    topic: str
    payload: bytes
    mid: int
    qos: int
    duplicate: bool
    retained: bool
    received_ns: int
    generation: int


class BrokerConnection:
    """Connect, subscribe on every connection without a session, and queue
    received messages for the ingest thread."""

    def __init__(
        self,
        config: BrokerConfig,
        filters: list[str],
        *,
        on_state: Callable[[bool], None] | None = None,
        state_file: Path | None = None,
        max_queued: int | None = None,
    ) -> None:
        self.config = config
        self.filters = filters
        self.queue: deque[Message] = deque()
        self.arrived = threading.Event()
        self.connected = threading.Event()
        self.generation = 0
        self.last_error: str | None = "not connected yet"
        self.subscriptions = 0  # SUBSCRIBE requests sent, for tests and metrics
        self._on_state = on_state
        self._first_connection = True
        self._stopping = False
        # Subscriptions the broker's session kept from an earlier run, so
        # that an unchanged subscription isn't renewed (which would make
        # MQTT 3.1.1 brokers send every retained message again).
        self._state_file = state_file
        self._connected_at: list[float] = []
        self._last_arrival_ns = 0
        # Topic text by its bytes: devices repeat their topics.
        self._topics: dict[bytes, str] = {}
        version = paho.MQTTv5 if config.protocol == "5" else paho.MQTTv311
        client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            protocol=version,
            clean_session=None if version == paho.MQTTv5 else False,
            manual_ack=True,
            reconnect_on_failure=True,
        )
        client.reconnect_delay_set(
            min_delay=max(1, round(config.reconnect_min)),
            max_delay=max(1, round(config.reconnect_max)),
        )
        client.max_queued_messages_set(0)
        if config.username:
            password = read_secret(config.password_file, "broker.password_file")
            client.username_pw_set(config.username, password)
        if config.tls:
            client.tls_set(
                ca_certs=str(config.ca_file) if config.ca_file else None,
                certfile=str(config.cert_file) if config.cert_file else None,
                keyfile=str(config.key_file) if config.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
            if config.tls_insecure:
                client.tls_insecure_set(True)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.deliver = self._deliver
        client.deliver_many = self._deliver_many
        # A broker should send no more unacknowledged messages than the
        # receive maximum (max_inflight), but Mosquitto 2.0.11 was measured
        # sending tens of thousands more once acknowledgements flow. Reading
        # stops at this many queued messages, which bounds the memory.
        self.max_queued = max_queued or 2 * config.max_inflight
        client.backlogged = self._backlogged
        client.on_subscribe = self._on_subscribe
        self.client = client

    def start(self) -> None:
        properties = None
        if self.config.protocol == "5":
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = self.config.session_expiry
            properties.ReceiveMaximum = self.config.max_inflight
        self.client.connect_async(
            self.config.host,
            self.config.port,
            keepalive=self.config.keepalive,
            clean_start=False
            if self.config.protocol == "5"
            else paho.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect; the broker keeps the session and the unacknowledged messages."""
        self._stopping = True
        if self.connected.is_set():
            self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()

    def acknowledge_many(self, messages: Sequence[Message]) -> list[Message]:
        """Acknowledge `messages` in one write; return those that can't be.

        A message can't be acknowledged once its connection is gone: the
        broker then sends it again.
        """
        generation = self.generation
        if not self.connected.is_set():
            return [m for m in messages if m.qos > 0]
        qos1 = [m.mid for m in messages if m.qos == 1 and m.generation == generation]
        if len(qos1) == len(messages):
            self.client.ack_many(qos1)  # the usual case: all QoS 1, all current
            return []
        stale = [m for m in messages if m.generation != generation and m.qos > 0]
        qos2 = [m for m in messages if m.qos == 2 and m.generation == generation]
        self.client.ack_many(qos1)
        for message in qos2:  # QoS 2 needs paho's own PUBREC flow
            self.client.ack(message.mid, message.qos)
        return stale

    def acknowledge(self, message: Message) -> bool:
        """Send PUBACK for `message` if its connection is still the current one.

        Returns False when the connection changed: the broker then sends the
        message again.
        """
        if message.generation != self.generation or not self.connected.is_set():
            return False
        if message.qos == 0:
            return True
        return self.client.ack(message.mid, message.qos) == paho.MQTT_ERR_SUCCESS

    def publish(self, topic: str, payload: bytes) -> str | None:
        """Queue a QoS 0 message that is not retained, without waiting for it.

        Returns None once paho has queued the message, or the reason it failed.
        QoS 0 has no acknowledgement, so a message lost when the connection
        drops afterwards is not reported.
        """
        if not self.connected.is_set():
            return "not connected to the broker"
        try:
            info = self.client.publish(topic, payload, qos=0, retain=False)
        except (ValueError, OSError) as error:
            return f"{type(error).__name__}: {error}"
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return paho.error_string(info.rc)
        return None

    # paho callbacks, on paho's network thread.

    def _on_connect(
        self, client: paho.Client, _userdata: Any, flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            self.last_error = f"connection refused: {reason}"
            log.error(
                "broker.connect_refused",
                broker=self.config.url,
                client_id=self.config.client_id,
                reason=str(reason),
            )
            return
        self.generation += 1
        session_present = bool(flags.session_present)
        log.info(
            "broker.connected",
            broker=self.config.url,
            client_id=self.config.client_id,
            session_present=session_present,
        )
        # Without a session the broker has no subscription for us. On the
        # first connection the configuration may name new filters, so
        # subscribe then too. Retain handling 1 (MQTT 5) keeps an existing
        # subscription from sending retained messages again.
        if not session_present or (
            self._first_connection and not self._session_has_filters()
        ):
            self._subscribe(client)
        self._first_connection = False
        self.last_error = None
        self._note_connection()
        self.connected.set()
        if self._on_state:
            self._on_state(True)

    def _subscribe(self, client: paho.Client) -> None:
        qos = self.config.qos
        if self.config.protocol == "5":
            options = SubscribeOptions(qos=qos, retainHandling=1)
            topics: list[Any] = [(topic, options) for topic in self.filters]
        else:
            topics = [(topic, qos) for topic in self.filters]
        result, _mid = client.subscribe(topics)
        self.subscriptions += 1
        log.info("broker.subscribe", filters=self.filters, qos=qos, result=int(result))
        self._save_filters()

    def _session_state(self) -> dict[str, Any]:
        return {"client_id": self.config.client_id, "filters": sorted(self.filters)}

    def _session_has_filters(self) -> bool:
        if self._state_file is None:
            return False
        try:
            saved = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return False
        return bool(saved == self._session_state())

    def _save_filters(self) -> None:
        if self._state_file is None:
            return
        try:
            self._state_file.write_text(json.dumps(self._session_state()))
        except OSError as error:
            log.warning(
                "broker.state_not_saved", file=str(self._state_file), error=str(error)
            )

    def _note_connection(self) -> None:
        now = time.monotonic()
        self._connected_at = [t for t in self._connected_at if now - t < 60] + [now]
        if len(self._connected_at) >= 4:
            log.error(
                "broker.connection_flapping",
                client_id=self.config.client_id,
                connections_last_minute=len(self._connected_at),
                fix="another client probably uses the same client id and the broker "
                "disconnects one of them each time; give every replica its own "
                "broker.client_id",
            )

    def _on_subscribe(
        self, _client: paho.Client, _userdata: Any, _mid: int, reasons: Any, _props: Any
    ) -> None:
        for topic, reason in zip(self.filters, reasons, strict=False):
            if reason.is_failure:
                self.last_error = f"subscription to {topic!r} refused: {reason}"
                log.error(
                    "broker.subscribe_refused",
                    filter=topic,
                    reason=str(reason),
                    fix="check the broker's authorization rules for this client",
                )

    def _on_connect_fail(self, _client: paho.Client, _userdata: Any) -> None:
        # paho doesn't pass the error on, so find it with a connection of our own.
        self.last_error = f"cannot connect to {self.config.url}: {self._diagnose()}"
        log.error(
            "broker.connect_failed", broker=self.config.url, error=self.last_error
        )

    def _diagnose(self) -> str:
        try:
            sock = socket.create_connection(
                (self.config.host, self.config.port), timeout=5
            )
        except OSError as error:
            return f"{type(error).__name__}: {error}"
        try:
            if self.config.tls:
                context = ssl.create_default_context(
                    cafile=str(self.config.ca_file) if self.config.ca_file else None
                )
                if self.config.tls_insecure:
                    context.check_hostname = False
                with context.wrap_socket(sock, server_hostname=self.config.host):
                    pass
        except (OSError, ssl.SSLError) as error:
            return f"TLS handshake failed: {error}"
        finally:
            sock.close()
        return "the connection opened on a second try; the broker may be restarting"

    def _on_disconnect(
        self,
        _client: paho.Client,
        _userdata: Any,
        _flags: Any,
        reason: Any,
        _props: Any,
    ) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        if was_connected:
            # A refused connection keeps the refusal as its error.
            self.last_error = f"disconnected: {reason}"
        if getattr(reason, "value", None) == SESSION_TAKEN_OVER:
            log.error(
                "broker.session_taken_over",
                client_id=self.config.client_id,
                fix="another client connected with the same client id; give every "
                "replica its own broker.client_id",
            )
        if was_connected and not self._stopping:
            log.warning(
                "broker.disconnected", broker=self.config.url, reason=str(reason)
            )
        if self._on_state:
            self._on_state(False)

    def _on_message(self, _client: paho.Client, _userdata: Any, message: Any) -> None:
        self._deliver(message)

    def _backlogged(self) -> bool:
        return len(self.queue) >= self.max_queued

    def _arrival_ns(self, count: int) -> int:
        """Return the first of `count` arrival times, one nanosecond apart.

        Each message gets its own time, later than every earlier one, so
        that two messages of one series never share the time of a point
        (which would make the database keep only one of them).
        """
        first = max(time.time_ns(), self._last_arrival_ns + 1)
        self._last_arrival_ns = first + count - 1
        return first

    def _deliver(self, message: Any) -> None:
        # A message that paho read (QoS 2, or one after a topic alias). Its
        # raw topic is kept: a topic that is not UTF-8 then becomes a dead
        # letter instead of stopping the loop.
        self._deliver_many(
            [
                (
                    message._topic,
                    message.payload,
                    message.mid,
                    message.qos,
                    bool(message.dup),
                    bool(message.retain),
                )
            ]
        )

    def _deliver_many(self, packets: list[Publish]) -> None:
        arrival = self._arrival_ns(len(packets))
        generation = self.generation
        topics = self._topics
        messages = []
        make = tuple.__new__
        for raw_topic, payload, mid, qos, duplicate, retained in packets:
            topic = topics.get(raw_topic)
            if topic is None:
                topic = raw_topic.decode("utf-8", "replace")
                if len(topics) >= _TOPIC_CACHE_SIZE:
                    topics.clear()
                topics[raw_topic] = topic
            messages.append(
                make(
                    Message,
                    (
                        topic,
                        payload,
                        mid,
                        qos,
                        duplicate,
                        retained,
                        arrival,
                        generation,
                    ),
                )
            )
            arrival += 1
        self.queue.extend(messages)
        if not self.arrived.is_set():
            self.arrived.set()

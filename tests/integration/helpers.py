# Helpers for the coremq black-box integration tests: MQTT 3.1.1 / 3.1 packets built by
# hand (so tests can check the broker byte for byte and feed it malformed input), a raw
# socket client that reads whole packets with a bounded wait, a small wrapper around
# paho-mqtt for high-level flows, and the shard arithmetic the broker uses to place a
# session. Everything here runs in the pytest process; every wait has a timeout.
import queue
import socket
import struct
import threading
import time

import paho.mqtt.client as paho

HOST = "127.0.0.1"
WAIT_SECONDS = 5.0

# Fixed-header packet types (high nibble of the first byte).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 8, 9, 10, 11
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14

PINGREQ_BYTES = b"\xc0\x00"
PINGRESP_BYTES = b"\xd0\x00"
DISCONNECT_BYTES = b"\xe0\x00"


# ---------------------------------------------------------------- shards

def fnv1a_32(data: bytes) -> int:
    hash_value = 2166136261
    for byte in data:
        hash_value ^= byte
        hash_value = (hash_value * 16777619) & 0xFFFFFFFF
    return hash_value


def shard_of(client_id: str, threads: int) -> int:
    return fnv1a_32(client_id.encode()) % threads


def client_id_on_shard(prefix: str, shard: int, threads: int) -> str:
    """A client id starting with prefix whose session lives on shard (mod threads)."""
    wanted = shard % threads
    for suffix in range(100000):
        client_id = f"{prefix}-{suffix}"
        if shard_of(client_id, threads) == wanted:
            return client_id
    raise AssertionError("no client id found for shard")


# ---------------------------------------------------------------- encoding

def encode_remaining_length(length: int) -> bytes:
    assert 0 <= length <= 268435455
    out = bytearray()
    while True:
        byte = length % 128
        length //= 128
        if length:
            byte |= 0x80
        out.append(byte)
        if not length:
            return bytes(out)


def as_bytes(value) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def encode_string(value) -> bytes:
    data = as_bytes(value)
    return struct.pack("!H", len(data)) + data


def packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + encode_remaining_length(len(body)) + body


def connect_packet(client_id="", clean_session=True, keepalive=60, protocol_name=b"MQTT",
                   protocol_level=4, will=None, username=None, password=None,
                   flags_override=None) -> bytes:
    """CONNECT. will is (topic, payload, qos, retain) or None."""
    flags = 0x02 if clean_session else 0
    payload = encode_string(client_id)
    if will is not None:
        will_topic, will_payload, will_qos, will_retain = will
        flags |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
        payload += encode_string(will_topic) + encode_string(will_payload)
    if username is not None:
        flags |= 0x80
        payload += encode_string(username)
    if password is not None:
        flags |= 0x40
        payload += encode_string(password)
    if flags_override is not None:
        flags = flags_override
    variable_header = encode_string(protocol_name) + bytes([protocol_level, flags])
    variable_header += struct.pack("!H", keepalive)
    return packet(0x10, variable_header + payload)


def connack_bytes(session_present: int, return_code: int) -> bytes:
    return bytes([0x20, 0x02, session_present, return_code])


def subscribe_packet(packet_id: int, filters, first_byte=0x82) -> bytes:
    """filters: list of (topic_filter, requested_qos)."""
    body = struct.pack("!H", packet_id)
    for topic_filter, qos in filters:
        body += encode_string(topic_filter) + bytes([qos])
    return packet(first_byte, body)


def suback_bytes(packet_id: int, return_codes) -> bytes:
    return packet(0x90, struct.pack("!H", packet_id) + bytes(return_codes))


def unsubscribe_packet(packet_id: int, filters, first_byte=0xA2) -> bytes:
    body = struct.pack("!H", packet_id)
    for topic_filter in filters:
        body += encode_string(topic_filter)
    return packet(first_byte, body)


def unsuback_bytes(packet_id: int) -> bytes:
    return bytes([0xB0, 0x02]) + struct.pack("!H", packet_id)


def publish_packet(topic, payload=b"", qos=0, retain=False, dup=False, packet_id=None) -> bytes:
    first_byte = 0x30 | (qos << 1) | (0x01 if retain else 0) | (0x08 if dup else 0)
    body = encode_string(topic)
    if qos > 0:
        assert packet_id is not None
        body += struct.pack("!H", packet_id)
    return packet(first_byte, body + as_bytes(payload))


def ack_bytes(packet_type: int, packet_id: int) -> bytes:
    """PUBACK, PUBREC, PUBREL (flags 0b0010), PUBCOMP or UNSUBACK with packet_id."""
    flags = 0x02 if packet_type == PUBREL else 0
    return bytes([(packet_type << 4) | flags, 0x02]) + struct.pack("!H", packet_id)


def puback_bytes(packet_id):
    return ack_bytes(PUBACK, packet_id)


def pubrec_bytes(packet_id):
    return ack_bytes(PUBREC, packet_id)


def pubrel_bytes(packet_id):
    return ack_bytes(PUBREL, packet_id)


def pubcomp_bytes(packet_id):
    return ack_bytes(PUBCOMP, packet_id)


# ---------------------------------------------------------------- decoding

class Packet:
    """One packet read from the broker: raw holds every byte of it."""

    def __init__(self, raw: bytes, header_length: int):
        self.raw = raw
        self.first_byte = raw[0]
        self.type = raw[0] >> 4
        self.flags = raw[0] & 0x0F
        self.body = raw[header_length:]

    @property
    def packet_id(self) -> int:
        if self.type == PUBLISH:
            topic_length = struct.unpack("!H", self.body[:2])[0]
            assert self.qos > 0
            return struct.unpack("!H", self.body[2 + topic_length:4 + topic_length])[0]
        return struct.unpack("!H", self.body[:2])[0]

    @property
    def qos(self) -> int:
        return (self.flags >> 1) & 0x03

    @property
    def retain(self) -> bool:
        return bool(self.flags & 0x01)

    @property
    def dup(self) -> bool:
        return bool(self.flags & 0x08)

    @property
    def topic(self) -> bytes:
        topic_length = struct.unpack("!H", self.body[:2])[0]
        return self.body[2:2 + topic_length]

    @property
    def payload(self) -> bytes:
        topic_length = struct.unpack("!H", self.body[:2])[0]
        start = 2 + topic_length + (2 if self.qos > 0 else 0)
        return self.body[start:]

    def __repr__(self):
        return f"Packet(type={self.type}, raw={self.raw[:64]!r}{'...' if len(self.raw) > 64 else ''})"


class ConnectionClosed(Exception):
    pass


def try_split_packet(buffer: bytes):
    """Returns (Packet, rest) when buffer starts with a whole packet, else None."""
    if len(buffer) < 2:
        return None
    multiplier, length, index = 1, 0, 1
    while True:
        if index >= len(buffer):
            return None
        byte = buffer[index]
        length += (byte & 0x7F) * multiplier
        multiplier *= 128
        index += 1
        if not byte & 0x80:
            break
        if index > 4:
            raise AssertionError(f"broker sent a malformed remaining length: {buffer[:8]!r}")
    total = index + length
    if len(buffer) < total:
        return None
    return Packet(bytes(buffer[:total]), index), buffer[total:]


# ---------------------------------------------------------------- raw client

class RawClient:
    """A TCP connection that speaks MQTT through bytes the test builds itself."""

    def __init__(self, port: int, receive_buffer_bytes=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer_bytes is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer_bytes)
        self.sock.settimeout(WAIT_SECONDS)
        self.sock.connect((HOST, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.pending = []
        self.closed_by_peer = False

    def send(self, data: bytes):
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        """Reads more bytes; False on timeout; raises ConnectionClosed at EOF/reset."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.closed_by_peer = True
            raise ConnectionClosed()
        self.buffer += data
        return True

    def _next_packet(self, deadline: float):
        """The next packet off the wire, None on timeout; raises ConnectionClosed."""
        while True:
            split = try_split_packet(self.buffer)
            if split is not None:
                result, self.buffer = split
                return result
            if not self._fill(deadline):
                return None

    def receive(self, timeout=WAIT_SECONDS, packet_type=None) -> Packet:
        """The next packet (of packet_type, if given; others are kept for later calls).
        Fails the test if none arrives in time or the broker closes the connection."""
        for index, waiting in enumerate(self.pending):
            if packet_type is None or waiting.type == packet_type:
                del self.pending[index]
                return waiting
        deadline = time.monotonic() + timeout
        while True:
            try:
                result = self._next_packet(deadline)
            except ConnectionClosed:
                raise AssertionError("broker closed the connection while a packet was expected")
            if result is None:
                raise AssertionError(f"no packet from the broker within {timeout} s")
            if packet_type is None or result.type == packet_type:
                return result
            self.pending.append(result)

    def expect(self, expected: bytes, timeout=WAIT_SECONDS) -> Packet:
        """The next packet of expected's type must equal expected byte for byte."""
        received = self.receive(timeout, packet_type=expected[0] >> 4)
        assert received.raw == expected, f"expected {expected!r}, got {received.raw!r}"
        return received

    def expect_no_packet(self, timeout=0.5):
        """Asserts that nothing arrives (and the connection stays open) for timeout seconds."""
        if self.pending:
            raise AssertionError(f"unexpected packet {self.pending[0]!r}")
        deadline = time.monotonic() + timeout
        try:
            result = self._next_packet(deadline)
        except ConnectionClosed:
            raise AssertionError("broker closed the connection unexpectedly")
        if result is not None:
            raise AssertionError(f"unexpected packet {result!r}")

    def expect_closed(self, timeout=WAIT_SECONDS):
        """Waits for EOF (or reset); returns the packets received before it."""
        deadline = time.monotonic() + timeout
        packets, self.pending = self.pending, []
        while True:
            try:
                result = self._next_packet(deadline)
            except ConnectionClosed:
                return packets
            if result is None:
                self.pending = packets      # still readable by a later receive()
                raise AssertionError(f"broker did not close the connection within {timeout} s "
                                     f"(received {packets!r})")
            packets.append(result)

    def is_open(self, timeout=0.2) -> bool:
        try:
            self.expect_no_packet(timeout)
            return True
        except AssertionError:
            return False

    def connect(self, client_id="", clean_session=True, keepalive=60, **kwargs) -> int:
        """CONNECT and expect CONNACK 0; returns the session-present flag."""
        self.send(connect_packet(client_id, clean_session, keepalive, **kwargs))
        connack = self.receive(packet_type=CONNACK)
        assert connack.type == CONNACK and len(connack.body) == 2, connack
        assert connack.body[1] == 0, f"connection refused: {connack.raw!r}"
        assert connack.body[0] in (0, 1)
        return connack.body[0]

    def subscribe(self, filters, packet_id=1):
        """SUBSCRIBE and expect the matching SUBACK; returns its return codes."""
        if isinstance(filters, str):
            filters = [(filters, 0)]
        self.send(subscribe_packet(packet_id, filters))
        suback = self.receive(packet_type=SUBACK)
        assert suback.type == SUBACK and suback.packet_id == packet_id, suback
        return list(suback.body[2:])

    def publish(self, topic, payload=b"", qos=0, retain=False, packet_id=None):
        """PUBLISH and complete its QoS flow as the sender."""
        if qos > 0 and packet_id is None:
            packet_id = 1
        self.send(publish_packet(topic, payload, qos, retain, packet_id=packet_id))
        if qos == 1:
            self.expect(puback_bytes(packet_id))
        elif qos == 2:
            self.expect(pubrec_bytes(packet_id))
            self.send(pubrel_bytes(packet_id))
            self.expect(pubcomp_bytes(packet_id))

    def receive_publish(self, timeout=WAIT_SECONDS, acknowledge=True) -> Packet:
        """The next PUBLISH; with acknowledge, completes its QoS flow as the receiver."""
        received = self.receive(timeout, packet_type=PUBLISH)
        if acknowledge and received.qos == 1:
            self.send(puback_bytes(received.packet_id))
        elif acknowledge and received.qos == 2:
            self.send(pubrec_bytes(received.packet_id))
            self.expect(pubrel_bytes(received.packet_id))
            self.send(pubcomp_bytes(received.packet_id))
        return received

    def ping(self):
        self.send(PINGREQ_BYTES)
        self.expect(PINGRESP_BYTES)

    def disconnect(self):
        try:
            self.send(DISCONNECT_BYTES)
        except OSError:
            pass
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def close_and_wait(self, timeout=WAIT_SECONDS):
        """Ends the connection without DISCONNECT (the broker sees end of stream) and waits
        until the broker has handled that: it closes its side in answer, so once end of
        stream comes back the loss is handled (will, session end). A round trip, not a sleep."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.expect_closed(timeout)
        self.close()

    def disconnect_and_wait(self, disconnect_bytes=DISCONNECT_BYTES, timeout=WAIT_SECONDS):
        """Sends DISCONNECT and waits until the broker, having handled it, closes the
        connection (it does so at once [MQTT-3.14.4-1])."""
        self.send(disconnect_bytes)
        self.expect_closed(timeout)
        self.close()


# ---------------------------------------------------------------- paho client

class Message:
    def __init__(self, topic: str, payload: bytes, qos: int, retain: bool, dup: bool):
        self.topic, self.payload, self.qos, self.retain, self.dup = topic, payload, qos, retain, dup

    def __repr__(self):
        return f"Message({self.topic!r}, {self.payload[:40]!r}, qos={self.qos}, retain={self.retain})"


class PahoClient:
    """paho-mqtt 1.6 client on its own network thread, with bounded waits on top."""

    def __init__(self, port: int, client_id: str, clean_session=True, protocol=paho.MQTTv311,
                 keepalive=60, will=None, transport="tcp", websocket_path="/mqtt"):
        self.port = port
        self.keepalive = keepalive
        # transport="websockets": MQTT over WebSocket to a ws:// listener (test_22_websocket).
        self.client = paho.Client(client_id=client_id, clean_session=clean_session,
                                  protocol=protocol, reconnect_on_failure=False,
                                  transport=transport)
        if transport == "websockets":
            self.client.ws_set_options(path=websocket_path)
        if will is not None:
            topic, payload, qos, retain = will
            self.client.will_set(topic, payload, qos, retain)
        self.messages = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.subscribed = {}
        self.unsubscribed = {}
        self.lock = threading.Lock()
        self.connect_result = None
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_unsubscribe = self._on_unsubscribe
        self.started = False

    def _on_connect(self, client, userdata, flags, return_code):
        self.connect_result = (return_code, flags.get("session present", 0))
        self.connected.set()

    def _on_disconnect(self, client, userdata, return_code):
        self.disconnected.set()

    def _on_message(self, client, userdata, message):
        self.messages.put(Message(message.topic, bytes(message.payload), message.qos,
                                  bool(message.retain), bool(message.dup)))

    def _event_for(self, table, message_id):
        with self.lock:
            return table.setdefault(message_id, [threading.Event(), None])

    def _on_subscribe(self, client, userdata, message_id, granted_qos):
        entry = self._event_for(self.subscribed, message_id)
        entry[1] = list(granted_qos)
        entry[0].set()

    def _on_unsubscribe(self, client, userdata, message_id):
        self._event_for(self.unsubscribed, message_id)[0].set()

    def connect(self, timeout=WAIT_SECONDS):
        """Connects and waits for CONNACK 0; returns the session-present flag."""
        self.client.connect(HOST, self.port, keepalive=self.keepalive)
        self.client.loop_start()
        self.started = True
        assert self.connected.wait(timeout), "no CONNACK within timeout"
        return_code, session_present = self.connect_result
        assert return_code == 0, f"CONNACK return code {return_code}"
        return session_present

    def subscribe(self, topic, qos=0, timeout=WAIT_SECONDS):
        """Subscribes to one filter or a list of (filter, qos); returns granted QoS list."""
        result, message_id = self.client.subscribe(topic, qos)
        assert result == paho.MQTT_ERR_SUCCESS
        entry = self._event_for(self.subscribed, message_id)
        assert entry[0].wait(timeout), "no SUBACK within timeout"
        return entry[1]

    def unsubscribe(self, topic, timeout=WAIT_SECONDS):
        result, message_id = self.client.unsubscribe(topic)
        assert result == paho.MQTT_ERR_SUCCESS
        assert self._event_for(self.unsubscribed, message_id)[0].wait(timeout), "no UNSUBACK"

    def publish(self, topic, payload=b"", qos=0, retain=False, wait=True, timeout=WAIT_SECONDS):
        info = self.client.publish(topic, payload, qos, retain)
        assert info.rc == paho.MQTT_ERR_SUCCESS, f"publish failed: {info.rc}"
        if wait:
            info.wait_for_publish(timeout)
            assert info.is_published(), "publish not acknowledged within timeout"
        return info

    def get(self, timeout=WAIT_SECONDS) -> Message:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout} s") from None

    def get_many(self, count, timeout=WAIT_SECONDS):
        """count messages, all within timeout seconds overall."""
        deadline = time.monotonic() + timeout
        received = []
        while len(received) < count:
            remaining = deadline - time.monotonic()
            try:
                received.append(self.messages.get(timeout=max(remaining, 0.001)))
            except queue.Empty:
                raise AssertionError(
                    f"received {len(received)} of {count} messages within {timeout} s") from None
        return received

    def expect_none(self, timeout=0.5):
        try:
            message = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message {message!r}")

    def drain(self):
        drained = []
        while True:
            try:
                drained.append(self.messages.get_nowait())
            except queue.Empty:
                return drained

    def disconnect(self, timeout=WAIT_SECONDS):
        if not self.started:
            return
        if not self.disconnected.is_set():
            self.client.disconnect()
            self.disconnected.wait(timeout)
        self.client.loop_stop()
        self.started = False

    def close_abruptly(self):
        """Closes the TCP connection without DISCONNECT (the broker sees EOF)."""
        sock = self.client.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.disconnected.wait(WAIT_SECONDS)
        self.client.loop_stop()
        self.started = False


def wait_until(predicate, timeout=WAIT_SECONDS, interval=0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# ---------------------------------------------------------------- child processes

class OutputReader:
    """Collects a child process's stdout lines on a thread so tests can wait for one."""

    def __init__(self, process):
        self.lines = queue.Queue()
        self.seen = []
        self.thread = threading.Thread(target=self._run, args=(process.stdout,), daemon=True)
        self.thread.start()

    def _run(self, stream):
        for line in iter(stream.readline, b""):
            self.lines.put(line.decode(errors="replace").rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, text, timeout=WAIT_SECONDS) -> str:
        """The first line containing text; fails if the process ends or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                raise AssertionError(f"{text!r} not printed within {timeout} s; saw {self.seen}")
            if line is None:
                self.lines.put(None)
                raise AssertionError(f"process ended before printing {text!r}; saw {self.seen}")
            self.seen.append(line)
            if text in line:
                return line

    def rest(self, timeout=WAIT_SECONDS):
        """Every remaining line, once the process has closed its stdout."""
        self.thread.join(timeout)
        lines = []
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return lines
            if line is not None:
                lines.append(line)

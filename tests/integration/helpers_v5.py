# MQTT 5.0 helpers for the coremq black-box integration tests (files test_51_* and on):
# v5 packets with properties built by hand and decoded byte for byte, a raw v5 client on top
# of helpers.RawClient, a paho-mqtt MQTTv5 wrapper, and broker fixtures that understand the
# v5 flags (--receive-maximum, --max-qos, ...) and map them onto mosquitto.conf when the
# suite runs against mosquitto. Test modules import the fixtures by name:
#     from helpers_v5 import module_broker, start_broker  # noqa: F401 (fixtures)
# Everything runs in the pytest process; every wait has a timeout.
import queue
import struct
import threading
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

import conftest
import helpers
from helpers import (CONNACK, DISCONNECT, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK,
                     UNSUBACK, as_bytes, encode_remaining_length, encode_string, packet)

AUTH = 15
WAIT_SECONDS = helpers.WAIT_SECONDS

# ---------------------------------------------------------------- property identifiers

PAYLOAD_FORMAT_INDICATOR = 0x01
MESSAGE_EXPIRY_INTERVAL = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_IDENTIFIER = 0x0B
SESSION_EXPIRY_INTERVAL = 0x11
ASSIGNED_CLIENT_IDENTIFIER = 0x12
SERVER_KEEP_ALIVE = 0x13
AUTHENTICATION_METHOD = 0x15
AUTHENTICATION_DATA = 0x16
REQUEST_PROBLEM_INFORMATION = 0x17
WILL_DELAY_INTERVAL = 0x18
REQUEST_RESPONSE_INFORMATION = 0x19
RESPONSE_INFORMATION = 0x1A
SERVER_REFERENCE = 0x1C
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
RETAIN_AVAILABLE = 0x25
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27
WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
SHARED_SUBSCRIPTION_AVAILABLE = 0x2A

BYTE, TWO_BYTE, FOUR_BYTE, VARIABLE, STRING, BINARY, STRING_PAIR = range(7)
PROPERTY_TYPES = {
    PAYLOAD_FORMAT_INDICATOR: BYTE, MESSAGE_EXPIRY_INTERVAL: FOUR_BYTE, CONTENT_TYPE: STRING,
    RESPONSE_TOPIC: STRING, CORRELATION_DATA: BINARY, SUBSCRIPTION_IDENTIFIER: VARIABLE,
    SESSION_EXPIRY_INTERVAL: FOUR_BYTE, ASSIGNED_CLIENT_IDENTIFIER: STRING,
    SERVER_KEEP_ALIVE: TWO_BYTE, AUTHENTICATION_METHOD: STRING, AUTHENTICATION_DATA: BINARY,
    REQUEST_PROBLEM_INFORMATION: BYTE, WILL_DELAY_INTERVAL: FOUR_BYTE,
    REQUEST_RESPONSE_INFORMATION: BYTE, RESPONSE_INFORMATION: STRING, SERVER_REFERENCE: STRING,
    REASON_STRING: STRING, RECEIVE_MAXIMUM: TWO_BYTE, TOPIC_ALIAS_MAXIMUM: TWO_BYTE,
    TOPIC_ALIAS: TWO_BYTE, MAXIMUM_QOS: BYTE, RETAIN_AVAILABLE: BYTE, USER_PROPERTY: STRING_PAIR,
    MAXIMUM_PACKET_SIZE: FOUR_BYTE, WILDCARD_SUBSCRIPTION_AVAILABLE: BYTE,
    SUBSCRIPTION_IDENTIFIER_AVAILABLE: BYTE, SHARED_SUBSCRIPTION_AVAILABLE: BYTE,
}

# ---------------------------------------------------------------- reason codes

SUCCESS = 0x00
GRANTED_QOS_1 = 0x01
GRANTED_QOS_2 = 0x02
NO_MATCHING_SUBSCRIBERS = 0x10
NO_SUBSCRIPTION_EXISTED = 0x11
CONTINUE_AUTHENTICATION = 0x18
UNSPECIFIED_ERROR = 0x80
MALFORMED_PACKET = 0x81
PROTOCOL_ERROR = 0x82
IMPLEMENTATION_SPECIFIC_ERROR = 0x83
UNSUPPORTED_PROTOCOL_VERSION = 0x84
CLIENT_IDENTIFIER_NOT_VALID = 0x85
NOT_AUTHORIZED = 0x87
BAD_AUTHENTICATION_METHOD = 0x8C
KEEP_ALIVE_TIMEOUT = 0x8D
SESSION_TAKEN_OVER = 0x8E
TOPIC_FILTER_INVALID = 0x8F
TOPIC_NAME_INVALID = 0x90
RECEIVE_MAXIMUM_EXCEEDED = 0x93
TOPIC_ALIAS_INVALID = 0x94
PACKET_TOO_LARGE = 0x95
SERVER_SHUTTING_DOWN = 0x8B
RETAIN_NOT_SUPPORTED = 0x9A
QOS_NOT_SUPPORTED = 0x9B
SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2

# Subscription options byte (SUBSCRIBE payload), MQTT 5.0 section 3.8.3.1.
NO_LOCAL = 0x04
RETAIN_AS_PUBLISHED = 0x08


def subscription_options(qos=0, no_local=False, retain_as_published=False, retain_handling=0):
    return (qos | (NO_LOCAL if no_local else 0) | (RETAIN_AS_PUBLISHED if retain_as_published
                                                    else 0) | (retain_handling << 4))


# ---------------------------------------------------------------- property codec

def encode_variable_integer(value: int) -> bytes:
    return encode_remaining_length(value)


def encode_binary(value) -> bytes:
    data = as_bytes(value)
    return struct.pack("!H", len(data)) + data


def encode_properties(properties) -> bytes:
    """properties: a list of (identifier, value) in wire order; a User Property value is a
    (name, value) pair. Returns the Property Length followed by the properties."""
    body = bytearray()
    for identifier, value in properties or []:
        kind = PROPERTY_TYPES[identifier]
        body += encode_variable_integer(identifier)
        if kind == BYTE:
            body += bytes([value])
        elif kind == TWO_BYTE:
            body += struct.pack("!H", value)
        elif kind == FOUR_BYTE:
            body += struct.pack("!I", value)
        elif kind == VARIABLE:
            body += encode_variable_integer(value)
        elif kind == STRING:
            body += encode_string(value)
        elif kind == BINARY:
            body += encode_binary(value)
        else:
            body += encode_string(value[0]) + encode_string(value[1])
    return encode_variable_integer(len(body)) + bytes(body)


def decode_variable_integer(data: bytes, index: int):
    """(value, next index); fails on a non-minimal or over-long encoding."""
    value, multiplier, start = 0, 1, index
    while True:
        assert index < len(data), f"truncated variable byte integer in {data!r}"
        byte = data[index]
        value += (byte & 0x7F) * multiplier
        multiplier *= 128
        index += 1
        if not byte & 0x80:
            break
        assert index - start < 4, "variable byte integer longer than 4 bytes"
    assert index - start == len(encode_variable_integer(value)), "non-minimal variable integer"
    return value, index


class PropertyList:
    """Properties as read off the wire, in order, duplicates kept."""

    def __init__(self, items):
        self.items = list(items)

    def get(self, identifier, default=None):
        values = self.all(identifier)
        assert len(values) <= 1, f"property 0x{identifier:02x} appears {len(values)} times"
        return values[0] if values else default

    def all(self, identifier):
        return [value for key, value in self.items if key == identifier]

    def __contains__(self, identifier):
        return any(key == identifier for key, _ in self.items)

    def ids(self):
        return [key for key, _ in self.items]

    @property
    def user_properties(self):
        return self.all(USER_PROPERTY)

    def __repr__(self):
        return f"PropertyList({[(hex(key), value) for key, value in self.items]})"


def decode_properties(data: bytes, index: int):
    """(PropertyList, index after the properties)."""
    length, index = decode_variable_integer(data, index)
    end = index + length
    assert end <= len(data), f"property length {length} runs past the packet"
    items = []
    while index < end:
        identifier, index = decode_variable_integer(data, index)
        assert identifier in PROPERTY_TYPES, f"unknown property identifier 0x{identifier:x}"
        kind = PROPERTY_TYPES[identifier]
        if kind == BYTE:
            value, index = data[index], index + 1
        elif kind == TWO_BYTE:
            value, index = struct.unpack("!H", data[index:index + 2])[0], index + 2
        elif kind == FOUR_BYTE:
            value, index = struct.unpack("!I", data[index:index + 4])[0], index + 4
        elif kind == VARIABLE:
            value, index = decode_variable_integer(data, index)
        elif kind in (STRING, BINARY):
            size = struct.unpack("!H", data[index:index + 2])[0]
            value = data[index + 2:index + 2 + size]
            value = value.decode() if kind == STRING else bytes(value)
            index += 2 + size
        else:
            name_size = struct.unpack("!H", data[index:index + 2])[0]
            name = data[index + 2:index + 2 + name_size].decode()
            index += 2 + name_size
            value_size = struct.unpack("!H", data[index:index + 2])[0]
            value = (name, data[index + 2:index + 2 + value_size].decode())
            index += 2 + value_size
        items.append((identifier, value))
    assert index == end, "properties overran their length"
    return PropertyList(items), end


# ---------------------------------------------------------------- v5 packets (client -> server)

def connect5(client_id="", clean_start=True, keepalive=60, properties=None, will=None,
             username=None, password=None, flags_override=None) -> bytes:
    """CONNECT at protocol level 5. will is (topic, payload, qos, retain, will_properties)."""
    flags = 0x02 if clean_start else 0
    payload = encode_string(client_id)
    if will is not None:
        will_topic, will_payload, will_qos, will_retain = will[:4]
        will_properties = will[4] if len(will) > 4 else None
        flags |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
        payload += encode_properties(will_properties) + encode_string(will_topic)
        payload += encode_binary(will_payload)
    if username is not None:
        flags |= 0x80
        payload += encode_string(username)
    if password is not None:
        flags |= 0x40
        payload += encode_binary(password)
    if flags_override is not None:
        flags = flags_override
    variable_header = encode_string(b"MQTT") + bytes([5, flags]) + struct.pack("!H", keepalive)
    return packet(0x10, variable_header + encode_properties(properties) + payload)


def publish5(topic, payload=b"", qos=0, retain=False, dup=False, packet_id=None,
             properties=None) -> bytes:
    first_byte = 0x30 | (qos << 1) | (0x01 if retain else 0) | (0x08 if dup else 0)
    body = encode_string(topic)
    if qos > 0:
        assert packet_id is not None
        body += struct.pack("!H", packet_id)
    return packet(first_byte, body + encode_properties(properties) + as_bytes(payload))


def subscribe5(packet_id, filters, properties=None, first_byte=0x82) -> bytes:
    """filters: list of (topic_filter, options_byte)."""
    body = struct.pack("!H", packet_id) + encode_properties(properties)
    for topic_filter, options in filters:
        body += encode_string(topic_filter) + bytes([options])
    return packet(first_byte, body)


def unsubscribe5(packet_id, filters, properties=None) -> bytes:
    body = struct.pack("!H", packet_id) + encode_properties(properties)
    for topic_filter in filters:
        body += encode_string(topic_filter)
    return packet(0xA2, body)


def ack5(packet_type, packet_id, reason_code=SUCCESS, properties=None) -> bytes:
    """PUBACK/PUBREC/PUBREL/PUBCOMP; the short form when the reason is 0 and no properties."""
    flags = 0x02 if packet_type == PUBREL else 0
    body = struct.pack("!H", packet_id)
    if reason_code != SUCCESS or properties:
        body += bytes([reason_code]) + encode_properties(properties)
    return packet((packet_type << 4) | flags, body)


def disconnect5(reason_code=SUCCESS, properties=None) -> bytes:
    if reason_code == SUCCESS and not properties:
        return b"\xe0\x00"
    return packet(0xE0, bytes([reason_code]) + encode_properties(properties))


def auth5(reason_code, properties=None) -> bytes:
    return packet(0xF0, bytes([reason_code]) + encode_properties(properties))


# ---------------------------------------------------------------- v5 packets (server -> client)

class Connack:
    def __init__(self, raw_packet):
        assert raw_packet.type == CONNACK, raw_packet
        body = raw_packet.body
        self.raw = raw_packet.raw
        self.flags = body[0]
        self.session_present = body[0] & 0x01
        self.reason_code = body[1]
        self.properties, end = decode_properties(body, 2)
        assert end == len(body), f"bytes after the CONNACK properties: {raw_packet!r}"

    def __repr__(self):
        return (f"Connack(sp={self.session_present}, reason=0x{self.reason_code:02x}, "
                f"{self.properties!r})")


class Publish:
    """A v5 PUBLISH from the broker, decoded."""

    def __init__(self, raw_packet):
        assert raw_packet.type == PUBLISH, raw_packet
        self.raw = raw_packet.raw
        self.qos, self.retain, self.dup = raw_packet.qos, raw_packet.retain, raw_packet.dup
        body = raw_packet.body
        topic_length = struct.unpack("!H", body[:2])[0]
        self.topic = body[2:2 + topic_length].decode()
        index = 2 + topic_length
        self.packet_id = None
        if self.qos > 0:
            self.packet_id = struct.unpack("!H", body[index:index + 2])[0]
            index += 2
        self.properties, index = decode_properties(body, index)
        self.payload = bytes(body[index:])

    @property
    def user_properties(self):
        return self.properties.user_properties

    def __repr__(self):
        return (f"Publish({self.topic!r}, {self.payload[:40]!r}, qos={self.qos}, "
                f"retain={self.retain}, id={self.packet_id}, {self.properties!r})")


class Ack:
    """PUBACK/PUBREC/PUBREL/PUBCOMP/SUBACK/UNSUBACK/DISCONNECT/AUTH from the broker, decoded.
    For SUBACK and UNSUBACK, reason_codes lists one code per filter."""

    def __init__(self, raw_packet):
        self.raw = raw_packet.raw
        self.type = raw_packet.type
        body = raw_packet.body
        self.packet_id = None
        self.reason_codes = []
        self.properties = PropertyList([])
        if self.type in (DISCONNECT, AUTH):
            self.reason_code = body[0] if body else SUCCESS
            if len(body) > 1:
                self.properties, end = decode_properties(body, 1)
                assert end == len(body), raw_packet
            return
        self.packet_id = struct.unpack("!H", body[:2])[0]
        if self.type in (SUBACK, UNSUBACK):
            self.properties, index = decode_properties(body, 2)
            self.reason_codes = list(body[index:])
            self.reason_code = self.reason_codes[0] if self.reason_codes else None
            return
        self.reason_code = body[2] if len(body) > 2 else SUCCESS
        if len(body) > 3:
            self.properties, end = decode_properties(body, 3)
            assert end == len(body), raw_packet

    def __repr__(self):
        return (f"Ack(type={self.type}, id={self.packet_id}, reason=0x{self.reason_code or 0:02x},"
                f" codes={self.reason_codes}, {self.properties!r})")


# ---------------------------------------------------------------- raw v5 client

class RawClient5(helpers.RawClient):
    """helpers.RawClient speaking MQTT 5.0: packets with properties, decoded replies."""

    def __init__(self, port, receive_buffer_bytes=None):
        super().__init__(port, receive_buffer_bytes)
        self.next_packet_id = 1
        self.connack = None

    def new_packet_id(self) -> int:
        packet_id = self.next_packet_id
        self.next_packet_id = packet_id % 65535 + 1
        return packet_id

    def connect_raw(self, client_id="", clean_start=True, keepalive=60, **kwargs) -> Connack:
        """Sends CONNECT and returns the decoded CONNACK, whatever its reason code."""
        self.send(connect5(client_id, clean_start, keepalive, **kwargs))
        self.connack = Connack(self.receive(packet_type=CONNACK))
        return self.connack

    def connect5(self, client_id="", clean_start=True, keepalive=60, **kwargs) -> Connack:
        """CONNECT and expect CONNACK with reason code 0x00."""
        connack = self.connect_raw(client_id, clean_start, keepalive, **kwargs)
        assert connack.reason_code == SUCCESS, f"connection refused: {connack!r}"
        assert connack.flags in (0, 1), connack
        return connack

    def subscribe5(self, filters, properties=None, packet_id=None) -> Ack:
        """SUBSCRIBE; filters is a filter string or a list of (filter, options byte).
        Returns the decoded SUBACK."""
        if isinstance(filters, str):
            filters = [(filters, 0)]
        packet_id = packet_id or self.new_packet_id()
        self.send(subscribe5(packet_id, filters, properties))
        suback = Ack(self.receive(packet_type=SUBACK))
        assert suback.packet_id == packet_id, suback
        assert len(suback.reason_codes) == len(filters), suback
        return suback

    def unsubscribe5(self, filters, properties=None) -> Ack:
        if isinstance(filters, str):
            filters = [filters]
        packet_id = self.new_packet_id()
        self.send(unsubscribe5(packet_id, filters, properties))
        unsuback = Ack(self.receive(packet_type=UNSUBACK))
        assert unsuback.packet_id == packet_id, unsuback
        return unsuback

    def publish5(self, topic, payload=b"", qos=0, retain=False, properties=None,
                 packet_id=None):
        """PUBLISH and complete its QoS flow as the sender; returns the PUBACK/PUBREC (None
        for QoS 0)."""
        if qos > 0 and packet_id is None:
            packet_id = self.new_packet_id()
        self.send(publish5(topic, payload, qos, retain, packet_id=packet_id,
                           properties=properties))
        if qos == 0:
            return None
        first = Ack(self.receive(packet_type=PUBACK if qos == 1 else PUBREC))
        assert first.packet_id == packet_id, first
        if qos == 2 and first.reason_code < 0x80:
            self.send(ack5(PUBREL, packet_id))
            complete = Ack(self.receive(packet_type=PUBCOMP))
            assert complete.packet_id == packet_id and complete.reason_code == SUCCESS, complete
        return first

    def receive_publish5(self, timeout=WAIT_SECONDS, acknowledge=True) -> Publish:
        received = Publish(self.receive(timeout, packet_type=PUBLISH))
        if acknowledge:
            self.acknowledge(received)
        return received

    def acknowledge(self, received: Publish):
        if received.qos == 1:
            self.send(ack5(PUBACK, received.packet_id))
        elif received.qos == 2:
            self.send(ack5(PUBREC, received.packet_id))
            pubrel = Ack(self.receive(packet_type=PUBREL))
            assert pubrel.packet_id == received.packet_id, pubrel
            self.send(ack5(PUBCOMP, received.packet_id))

    def expect_disconnect(self, reason_code, timeout=WAIT_SECONDS) -> Ack:
        """The broker must send DISCONNECT with reason_code and then close the connection.
        Packets before the DISCONNECT are ignored."""
        packets = self.expect_closed(timeout)
        disconnects = [Ack(item) for item in packets if item.type == DISCONNECT]
        assert disconnects, f"closed without DISCONNECT (received {packets!r})"
        assert len(disconnects) == 1, disconnects
        assert disconnects[0].reason_code == reason_code, (
            f"DISCONNECT 0x{disconnects[0].reason_code:02x}, expected 0x{reason_code:02x}: "
            f"{disconnects[0]!r}")
        assert packets[-1].type == DISCONNECT, f"packets after DISCONNECT: {packets!r}"
        # A server never sends a Session Expiry Interval on DISCONNECT [MQTT-3.14.2-2].
        assert SESSION_EXPIRY_INTERVAL not in disconnects[0].properties, disconnects[0]
        return disconnects[0]

    def expect_connack_refused(self, reason_code, timeout=WAIT_SECONDS) -> Connack:
        """Reads CONNACK with reason_code (>= 0x80) and then the close."""
        connack = Connack(self.receive(timeout, packet_type=CONNACK))
        assert connack.reason_code == reason_code, connack
        assert connack.session_present == 0, connack
        rest = self.expect_closed(timeout)
        assert rest == [], f"packets after a refusing CONNACK: {rest!r}"
        return connack

    def disconnect5(self, reason_code=SUCCESS, properties=None, wait_closed=False):
        """DISCONNECT; with wait_closed, waits until the broker has handled it (it closes
        the connection in answer) instead of closing at once."""
        if wait_closed:
            self.disconnect_and_wait(disconnect5(reason_code, properties))
            return
        try:
            self.send(disconnect5(reason_code, properties))
        except OSError:
            pass
        self.close()


def raw5(clients, client_id=None, broker=None, receive_buffer_bytes=None, **connect_kwargs):
    """A RawClient5 that the clients fixture closes; with client_id it is connected
    (CONNACK 0 read, kept in .connack)."""
    client = RawClient5((broker or clients.broker).port, receive_buffer_bytes)
    clients.raw_clients.append(client)
    if client_id is not None:
        client.connect5(client_id, **connect_kwargs)
    return client


# ---------------------------------------------------------------- paho MQTTv5 client

class Message5:
    def __init__(self, message):
        self.topic = message.topic
        self.payload = bytes(message.payload)
        self.qos = message.qos
        self.retain = bool(message.retain)
        properties = getattr(message, "properties", None)
        self.properties = properties
        self.user_properties = list(getattr(properties, "UserProperty", []) or [])

    def prop(self, name, default=None):
        return getattr(self.properties, name, default) if self.properties else default

    def __repr__(self):
        return f"Message5({self.topic!r}, {self.payload[:40]!r}, qos={self.qos})"


def paho_properties(packet_type, **values):
    """paho Properties for packet_type (a PacketTypes name, e.g. "PUBLISH") from keyword
    arguments named as paho names them (MessageExpiryInterval=5, UserProperty=[...])."""
    properties = Properties(getattr(PacketTypes, packet_type))
    for name, value in values.items():
        setattr(properties, name, value)
    return properties


class PahoClient5(helpers.PahoClient):
    """paho-mqtt 1.6 with protocol=MQTTv5; keeps the CONNACK properties and the reason codes
    of SUBACK/UNSUBACK, and every message with its properties."""

    def __init__(self, port, client_id, clean_start=True, keepalive=60, will=None,
                 connect_properties=None):
        self.port = port
        self.keepalive = keepalive
        self.clean_start = clean_start
        self.connect_properties = connect_properties
        self.client = paho.Client(client_id=client_id, protocol=paho.MQTTv5,
                                  reconnect_on_failure=False)
        if will is not None:
            topic, payload, qos, retain = will[:4]
            will_properties = will[4] if len(will) > 4 else None
            self.client.will_set(topic, payload, qos, retain, properties=will_properties)
        self.messages = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.subscribed = {}
        self.unsubscribed = {}
        self.lock = threading.Lock()
        self.connect_result = None
        self.connack_properties = None
        self.disconnect_reason = None
        self.client.on_connect = self._on_connect5
        self.client.on_disconnect = self._on_disconnect5
        self.client.on_message = self._on_message5
        self.client.on_subscribe = self._on_subscribe5
        self.client.on_unsubscribe = self._on_unsubscribe5
        self.started = False

    def _on_connect5(self, client, userdata, flags, reason_code, properties=None):
        self.connect_result = (reason_code.value if hasattr(reason_code, "value") else reason_code,
                               flags.get("session present", 0))
        self.connack_properties = properties
        self.connected.set()

    def _on_disconnect5(self, client, userdata, reason_code, properties=None):
        self.disconnect_reason = getattr(reason_code, "value", reason_code)
        self.disconnected.set()

    def _on_message5(self, client, userdata, message):
        self.messages.put(Message5(message))

    def _on_subscribe5(self, client, userdata, message_id, reason_codes, properties=None):
        entry = self._event_for(self.subscribed, message_id)
        entry[1] = [code.value for code in reason_codes]
        entry[0].set()

    def _on_unsubscribe5(self, client, userdata, message_id, properties=None,
                         reason_codes=None):
        entry = self._event_for(self.unsubscribed, message_id)
        codes = reason_codes if isinstance(reason_codes, list) else [reason_codes]
        entry[1] = [getattr(code, "value", code) for code in codes if code is not None]
        entry[0].set()

    def connect(self, timeout=WAIT_SECONDS):
        """Connects and waits for CONNACK 0; returns the session-present flag."""
        self.client.connect(helpers.HOST, self.port, keepalive=self.keepalive,
                            clean_start=self.clean_start, properties=self.connect_properties)
        self.client.loop_start()
        self.started = True
        assert self.connected.wait(timeout), "no CONNACK within timeout"
        reason_code, session_present = self.connect_result
        assert reason_code == 0, f"CONNACK reason code {reason_code}"
        return session_present

    def subscribe5(self, topic_filter, qos=0, timeout=WAIT_SECONDS, properties=None, **options):
        """One filter with SubscribeOptions(qos, noLocal=..., retainAsPublished=...,
        retainHandling=...); returns the SUBACK reason codes."""
        result, message_id = self.client.subscribe(
            topic_filter, options=SubscribeOptions(qos=qos, **options), properties=properties)
        assert result == paho.MQTT_ERR_SUCCESS
        entry = self._event_for(self.subscribed, message_id)
        assert entry[0].wait(timeout), "no SUBACK within timeout"
        return entry[1]

    def subscribe(self, topic, qos=0, timeout=WAIT_SECONDS):
        return self.subscribe5(topic, qos, timeout)

    def unsubscribe(self, topic, timeout=WAIT_SECONDS):
        result, message_id = self.client.unsubscribe(topic)
        assert result == paho.MQTT_ERR_SUCCESS
        entry = self._event_for(self.unsubscribed, message_id)
        assert entry[0].wait(timeout), "no UNSUBACK"
        return entry[1]

    def publish5(self, topic, payload=b"", qos=0, retain=False, properties=None, wait=True,
                 timeout=WAIT_SECONDS):
        info = self.client.publish(topic, payload, qos, retain, properties=properties)
        assert info.rc == paho.MQTT_ERR_SUCCESS, f"publish failed: {info.rc}"
        if wait and qos > 0:
            info.wait_for_publish(timeout)
            assert info.is_published(), "publish not acknowledged within timeout"
        return info

    def publish(self, topic, payload=b"", qos=0, retain=False, wait=True, timeout=WAIT_SECONDS):
        return self.publish5(topic, payload, qos, retain, wait=wait, timeout=timeout)


def paho5(clients, client_id, connect=True, broker=None, **kwargs) -> PahoClient5:
    """A PahoClient5 that the clients fixture disconnects afterwards."""
    client = PahoClient5((broker or clients.broker).port, client_id, **kwargs)
    clients.paho_clients.append(client)
    if connect:
        client.connect()
    return client


# ---------------------------------------------------------------- brokers with v5 flags

# How each v5 coremq flag maps onto mosquitto.conf; None means mosquitto has no equivalent
# (the test skips there). mosquitto announces max_inflight_messages as its Receive Maximum,
# max_topic_alias as its Topic Alias Maximum and max_keepalive as a Server Keep Alive for
# clients asking for more.
MOSQUITTO_V5_OPTION_NAMES = {
    "receive_maximum": "max_inflight_messages",
    "max_qos": "max_qos",
    "retain_available": "retain_available",
    "topic_alias_maximum": "max_topic_alias",
    "server_keep_alive": "max_keepalive",
    "wildcard_subscriptions": None,
    "subscription_identifiers": None,
    "shared_subscriptions": None,
    "max_session_expiry": None,
    "response_information_prefix": None,
    "max_keepalive": "max_keepalive",
    "max_topic_levels": None,
    "max_topic_alias_broker": None,  # mosquitto 2.1 only
}


def flag_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class BrokerV5(conftest.Broker):
    """conftest.Broker that also knows the MQTT 5 flags."""

    def __init__(self, directory, threads, options):
        super().__init__(directory, threads, {name: flag_value(value)
                                              for name, value in options.items()})

    def _mosquitto_command(self):
        mosquitto_options = {}
        v5_lines = []
        for name, value in self.options.items():
            if name in MOSQUITTO_V5_OPTION_NAMES:
                mosquitto_name = MOSQUITTO_V5_OPTION_NAMES[name]
                if mosquitto_name is None:
                    pytest.skip(f"mosquitto has no equivalent of --{name.replace('_', '-')}")
                v5_lines.append(f"{mosquitto_name} {value}")
            else:
                mosquitto_options[name] = value
        saved, self.options = self.options, mosquitto_options
        try:
            command = super()._mosquitto_command()
        finally:
            self.options = saved
        config_path = self.directory / "mosquitto.conf"
        config_path.write_text(config_path.read_text() + "".join(f"{line}\n" for line in v5_lines))
        return command


@pytest.fixture(scope="module")
def module_broker(request, threads, tmp_path_factory):
    """Overrides conftest's module_broker: BROKER_OPTIONS may hold v5 flags."""
    options = getattr(request.module, "BROKER_OPTIONS", {})
    broker = BrokerV5(tmp_path_factory.mktemp(f"broker5-t{threads}"), threads, options)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def start_broker(threads, tmp_path):
    """Overrides conftest's start_broker: start_broker(max_qos=1, receive_maximum=10)."""
    started = []

    def start(**options):
        broker = BrokerV5(tmp_path / f"broker{len(started)}", threads, options)
        started.append(broker)
        return broker.start()

    yield start
    for broker in started:
        broker.stop()


# ---------------------------------------------------------------- small utilities

def until(predicate, timeout=WAIT_SECONDS, interval=0.02):
    return helpers.wait_until(predicate, timeout, interval)


def sleep_past(deadline: float):
    remaining = deadline - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)

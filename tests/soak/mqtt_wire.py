# MQTT 3.1.1 and MQTT 5 packets for the soak test, built and parsed by hand so that the test
# can cut a packet in half, stop a QoS 2 flow between two steps, and speak both protocol
# levels without a client library. Only what the soak test sends and receives is here: no
# wills, no retained messages, no properties beyond Session Expiry Interval. Pure functions;
# used from the soak test's single asyncio thread.
import struct

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 8, 9, 10, 11
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14

PROTOCOL_311 = 4
PROTOCOL_5 = 5

PINGREQ_BYTES = b"\xc0\x00"
DISCONNECT_BYTES = b"\xe0\x00"  # valid at both levels (MQTT 5: reason 0x00 may be omitted)

PROPERTY_SESSION_EXPIRY_INTERVAL = 0x11


class MalformedPacket(Exception):
    """The broker sent bytes that do not parse as the packet they claim to be."""


def encode_varint(value: int) -> bytes:
    assert 0 <= value <= 268435455
    out = bytearray()
    while True:
        byte = value % 128
        value //= 128
        if value:
            byte |= 0x80
        out.append(byte)
        if not value:
            return bytes(out)


def decode_varint(data, offset: int):
    """(value, offset after it), or (None, offset) when data ends inside the integer."""
    value = 0
    for index in range(4):
        if offset + index >= len(data):
            return None, offset
        byte = data[offset + index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value, offset + index + 1
    raise MalformedPacket("variable byte integer longer than 4 bytes")


def encode_string(value) -> bytes:
    data = value.encode() if isinstance(value, str) else bytes(value)
    return struct.pack("!H", len(data)) + data


def packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + encode_varint(len(body)) + body


def connect(client_id: str, clean: bool, keepalive_s: int, version: int,
            session_expiry_s: int = 0) -> bytes:
    variable_header = encode_string("MQTT") + bytes([version, 0x02 if clean else 0])
    variable_header += struct.pack("!H", keepalive_s)
    if version == PROTOCOL_5:
        properties = b""
        if session_expiry_s:
            properties = bytes([PROPERTY_SESSION_EXPIRY_INTERVAL]) + struct.pack("!I",
                                                                               session_expiry_s)
        variable_header += encode_varint(len(properties)) + properties
    return packet(0x10, variable_header + encode_string(client_id))


def publish(topic: str, payload: bytes, qos: int, packet_id: int, version: int,
            dup: bool = False) -> bytes:
    body = encode_string(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    if version == PROTOCOL_5:
        body += b"\x00"
    return packet(0x30 | (qos << 1) | (0x08 if dup else 0), body + payload)


def ack(packet_type: int, packet_id: int) -> bytes:
    """PUBACK, PUBREC, PUBREL or PUBCOMP in the short form both levels accept."""
    flags = 0x02 if packet_type == PUBREL else 0
    return bytes([(packet_type << 4) | flags, 0x02]) + struct.pack("!H", packet_id)


def subscribe(packet_id: int, filters, version: int) -> bytes:
    """filters: list of (topic_filter, qos)."""
    body = struct.pack("!H", packet_id)
    if version == PROTOCOL_5:
        body += b"\x00"
    for topic_filter, qos in filters:
        body += encode_string(topic_filter) + bytes([qos])
    return packet(0x82, body)


def unsubscribe(packet_id: int, filters, version: int) -> bytes:
    body = struct.pack("!H", packet_id)
    if version == PROTOCOL_5:
        body += b"\x00"
    for topic_filter in filters:
        body += encode_string(topic_filter)
    return packet(0xA2, body)


def split_packets(buffer: bytearray, max_packet_bytes: int):
    """Takes every whole packet off the front of buffer: list of (first_byte, body)."""
    packets = []
    offset = 0
    while len(buffer) - offset >= 2:
        length, body_start = decode_varint(buffer, offset + 1)
        if length is None:
            break
        if length > max_packet_bytes:
            raise MalformedPacket(f"packet of {length} bytes")
        if len(buffer) - body_start < length:
            break
        packets.append((buffer[offset], bytes(buffer[body_start:body_start + length])))
        offset = body_start + length
    if offset:
        del buffer[:offset]
    return packets


def skip_properties(body: bytes, offset: int) -> int:
    length, offset = decode_varint(body, offset)
    if length is None or offset + length > len(body):
        raise MalformedPacket("properties run past the packet")
    return offset + length


def parse_publish(first_byte: int, body: bytes, version: int):
    """(topic, packet_id or 0, qos, dup, payload)."""
    qos = (first_byte >> 1) & 0x03
    if qos == 3 or len(body) < 2:
        raise MalformedPacket(f"PUBLISH with qos {qos} / {len(body)} bytes")
    topic_length = struct.unpack_from("!H", body, 0)[0]
    offset = 2 + topic_length
    if offset > len(body):
        raise MalformedPacket("PUBLISH topic runs past the packet")
    topic = body[2:offset].decode()
    packet_id = 0
    if qos:
        if offset + 2 > len(body):
            raise MalformedPacket("PUBLISH without packet id")
        packet_id = struct.unpack_from("!H", body, offset)[0]
        offset += 2
    if version == PROTOCOL_5:
        offset = skip_properties(body, offset)
    return topic, packet_id, qos, bool(first_byte & 0x08), body[offset:]


def parse_connack(body: bytes):
    """(session_present, return/reason code)."""
    if len(body) < 2:
        raise MalformedPacket("short CONNACK")
    return body[0] & 0x01, body[1]


def parse_suback(body: bytes, version: int):
    """(packet_id, list of return/reason codes)."""
    if len(body) < 3:
        raise MalformedPacket("short SUBACK")
    packet_id = struct.unpack_from("!H", body, 0)[0]
    offset = skip_properties(body, 2) if version == PROTOCOL_5 else 2
    return packet_id, list(body[offset:])


def parse_packet_id(body: bytes) -> int:
    if len(body) < 2:
        raise MalformedPacket("acknowledgement without packet id")
    return struct.unpack_from("!H", body, 0)[0]


def parse_ack_reason(body: bytes) -> int:
    """MQTT 5 acknowledgement reason code (0 when omitted, as 3.1.1 always is)."""
    return body[2] if len(body) > 2 else 0


# ---------------------------------------------------------------- topics and shards

def topic_matches(topic_filter: str, topic: str) -> bool:
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


def fnv1a_32(data: bytes) -> int:
    hash_value = 2166136261
    for byte in data:
        hash_value ^= byte
        hash_value = (hash_value * 16777619) & 0xFFFFFFFF
    return hash_value


def shard_of(client_id: str, shards: int) -> int:
    return fnv1a_32(client_id.encode()) % shards


def client_id_on_shard(prefix: str, shard: int, shards: int) -> str:
    """A client id starting with prefix whose session lives on shard (mod shards)."""
    for suffix in range(100000):
        client_id = f"{prefix}-{suffix}"
        if shard_of(client_id, shards) == shard % shards:
            return client_id
    raise AssertionError("no client id found for shard")

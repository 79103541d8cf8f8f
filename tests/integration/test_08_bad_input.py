# 08 bad input: every malformed or forbidden packet closes just the connection that sent
# it, while clients already connected keep publishing and receiving. Each case is sent by
# a raw socket after a valid CONNECT unless its name says "before_connect".
import random
import struct

import pytest

import helpers
from conftest import is_mosquitto
from helpers import encode_string, packet, publish_packet, subscribe_packet


def bad_topic_publish(topic_bytes, qos=0):
    body = struct.pack("!H", len(topic_bytes)) + topic_bytes
    if qos:
        body += b"\x00\x01"
    return packet(0x30 | (qos << 1), body + b"payload")


BAD_AFTER_CONNECT = {
    "remaining_length_5_bytes": b"\x30\xff\xff\xff\xff\x01" + b"\x00" * 16,
    "publish_wildcard_plus": publish_packet("a/+/b", b"x"),
    "publish_wildcard_hash": publish_packet("a/#", b"x"),
    "publish_wildcard_alone": publish_packet("+", b"x", qos=1, packet_id=1),
    "publish_empty_topic": publish_packet("", b"x"),
    "publish_invalid_utf8": bad_topic_publish(b"a/\xff\xfe"),
    "publish_overlong_utf8": bad_topic_publish(b"a/\xc0\xaf"),
    "publish_utf16_surrogate": bad_topic_publish(b"a/\xed\xa0\x80"),
    "publish_nul_in_topic": bad_topic_publish(b"a\x00b", qos=1),
    "publish_qos3": packet(0x36, encode_string("a/b") + b"\x00\x01x"),
    "publish_qos1_packet_id_0": publish_packet("a/b", b"x", qos=1, packet_id=0),
    "publish_topic_longer_than_packet": packet(0x30, b"\x00\x64abc"),
    "packet_type_0": b"\x00\x00",
    "packet_type_15": b"\xf0\x00",
    "subscribe_bad_fixed_flags": subscribe_packet(1, [("a/b", 0)], first_byte=0x80),
    "subscribe_no_filters": packet(0x82, b"\x00\x01"),
    "subscribe_qos3": subscribe_packet(1, [("a/b", 3)]),
    "subscribe_reserved_option_bits": subscribe_packet(1, [("a/b", 0x04)]),
    "subscribe_invalid_utf8": packet(0x82, b"\x00\x01\x00\x02\xff\xfe\x00"),
    "unsubscribe_bad_fixed_flags": helpers.unsubscribe_packet(1, ["a/b"], first_byte=0xA0),
    "unsubscribe_no_filters": packet(0xA2, b"\x00\x01"),
    "pubrel_bad_fixed_flags": b"\x60\x02\x00\x01",
    "client_sends_connack": helpers.connack_bytes(0, 0),
    "client_sends_suback": helpers.suback_bytes(1, [0]),
    "client_sends_unsuback": helpers.unsuback_bytes(1),
    "client_sends_pingresp": helpers.PINGRESP_BYTES,
}

# Server-to-client packets that mosquitto 2.0.11 silently ignores when a client sends them.
MOSQUITTO_IGNORES = {"client_sends_suback", "client_sends_unsuback", "client_sends_pingresp"}

BAD_BEFORE_CONNECT = {
    "before_connect_remaining_length_5_bytes": b"\x10\xff\xff\xff\xff\x01",
    "before_connect_type_0": b"\x00\x00",
    "before_connect_truncated_client_id": packet(
        0x10, encode_string("MQTT") + b"\x04\x02\x00\x3c" + b"\x00\x50abc"),
    "before_connect_garbage_http": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
}


def observers(clients, names):
    topic = names.topic("alive")
    subscriber = clients.raw(names.sub())
    subscriber.subscribe([(topic, 1)])
    publisher = clients.raw(names.pub())
    return topic, subscriber, publisher


def assert_still_working(topic, subscriber, publisher, payload=b"still here"):
    publisher.publish(topic, payload, qos=1, packet_id=7)
    assert subscriber.receive_publish().payload == payload


@pytest.mark.parametrize("case", sorted(BAD_AFTER_CONNECT))
def test_bad_packet_closes_only_its_connection(broker, clients, names, case):
    if case in MOSQUITTO_IGNORES and is_mosquitto():
        pytest.skip("mosquitto: ignores a server-to-client packet sent by a client")
    topic, subscriber, publisher = observers(clients, names)
    bad = clients.raw(names.client("bad", 0))
    bad.send(BAD_AFTER_CONNECT[case])
    packets = bad.expect_closed()
    assert all(p.type != helpers.SUBACK for p in packets), packets
    assert_still_working(topic, subscriber, publisher)


@pytest.mark.parametrize("case", sorted(BAD_BEFORE_CONNECT))
def test_bad_first_packet_closes_only_its_connection(broker, clients, names, case):
    topic, subscriber, publisher = observers(clients, names)
    bad = clients.raw()
    bad.send(BAD_BEFORE_CONNECT[case])
    packets = bad.expect_closed()
    assert all(p.raw != helpers.connack_bytes(0, 0) for p in packets), packets
    assert_still_working(topic, subscriber, publisher)


def test_bad_publish_is_not_delivered(broker, clients, names):
    # A PUBLISH whose topic is invalid must not reach a subscriber to '#' under the root.
    subscriber = clients.raw(names.sub())
    subscriber.subscribe([(names.topic("#"), 0)])
    bad = clients.raw(names.client("bad", 0))
    bad.send(bad_topic_publish(names.topic("x\x00y").encode()) +
             publish_packet(names.topic("after"), b"after the bad one"))
    bad.expect_closed()
    publisher = clients.raw(names.pub())
    publisher.publish(names.topic("marker"), b"marker")
    assert subscriber.receive_publish().payload == b"marker"
    subscriber.expect_no_packet(0.2)


def test_huge_declared_length_closed_without_waiting_for_body(start_broker, clients, names):
    broker = start_broker(max_packet_size=65536)
    bad = clients.raw(names.client("bad", 0), broker=broker)
    bad.send(b"\x30\xff\xff\xff\x7f")        # 268435455 bytes announced, none sent
    bad.expect_closed(timeout=3)
    client = clients.raw(names.sub(), broker=broker)
    client.ping()


def test_many_garbage_clients_leave_broker_serving(broker, clients, names):
    topic, subscriber, publisher = observers(clients, names)
    generator = random.Random(1883)
    for index in range(30):
        bad = clients.raw()
        if index % 2:
            bad.send(helpers.connect_packet(names.client(f"garbage{index}", index)))
        bad.send(bytes(generator.randrange(256) for _ in range(generator.randrange(1, 300))))
        bad.close()
    assert_still_working(topic, subscriber, publisher)
    for index in range(10):
        assert_still_working(topic, subscriber, publisher, b"again %d" % index)


def test_client_closing_mid_packet_leaves_broker_serving(broker, clients, names):
    topic, subscriber, publisher = observers(clients, names)
    for cut in (1, 2, 5, 10):
        bad = clients.raw(names.client(f"cut{cut}", cut))
        bad.send(publish_packet(names.topic("cut"), b"x" * 100, qos=1, packet_id=1)[:cut])
        bad.close()
    assert_still_working(topic, subscriber, publisher)

# 01 connect: the CONNECT / CONNACK exchange, byte for byte (MQTT 3.1.1 section 3.1 and 3.2,
# and the 3.1 "MQIsdp" variant), and every way a connection must be refused or closed.
import time

import pytest

import helpers
from conftest import is_mosquitto
from helpers import connack_bytes, connect_packet


def roundtrip(client, topic):
    """Subscribes and publishes to itself: proves the connection is fully usable."""
    assert client.subscribe([(topic, 1)], packet_id=77) == [1]
    client.publish(topic, b"self", qos=1, packet_id=78)
    received = client.receive_publish()
    assert (received.topic, received.payload) == (topic.encode(), b"self")


def test_connack_accepted_exact_bytes(broker, clients, names):
    client = clients.raw()
    client.send(connect_packet(names.sub(), clean_session=True))
    client.expect(connack_bytes(0, 0))
    roundtrip(client, names.topic("a"))


def test_session_present_flag(broker, clients, names):
    client_id = names.sub()
    # No session yet: session present 0 even with clean session 0.
    first = clients.raw()
    first.send(connect_packet(client_id, clean_session=False))
    first.expect(connack_bytes(0, 0))
    first.disconnect()
    # The session was kept: session present 1.
    second = clients.raw()
    second.send(connect_packet(client_id, clean_session=False))
    second.expect(connack_bytes(1, 0))
    second.disconnect()
    # Clean session 1 always answers 0 and discards the session ...
    third = clients.raw()
    third.send(connect_packet(client_id, clean_session=True))
    third.expect(connack_bytes(0, 0))
    third.disconnect()
    # ... so a later clean session 0 starts afresh.
    fourth = clients.raw()
    fourth.send(connect_packet(client_id, clean_session=False))
    fourth.expect(connack_bytes(0, 0))
    fourth.disconnect()


def test_mqtt31_accepted(broker, clients, names):
    client = clients.raw()
    client.send(connect_packet(names.sub(), protocol_name=b"MQIsdp", protocol_level=3))
    client.expect(connack_bytes(0, 0))
    roundtrip(client, names.topic("v31"))


def test_mqtt31_and_311_clients_interoperate(broker, clients, names):
    topic = names.topic("mixed")
    subscriber = clients.raw()
    subscriber.connect(names.sub(), protocol_name=b"MQIsdp", protocol_level=3)
    assert subscriber.subscribe([(topic, 2)]) == [2]
    publisher = clients.raw(names.pub())
    publisher.publish(topic, b"from 3.1.1", qos=2, packet_id=5)
    received = subscriber.receive_publish()
    assert (received.qos, received.payload) == (2, b"from 3.1.1")


@pytest.mark.parametrize("level", [6, 2, 0])
def test_unsupported_protocol_level_refused(broker, clients, names, level):
    client = clients.raw()
    client.send(connect_packet(names.sub(), protocol_level=level))
    client.expect(connack_bytes(0, 0x01))
    assert client.expect_closed() == []


@pytest.mark.parametrize("name", [b"MQTX", b"mqtt", b"MQIsdp4", b""])
def test_bad_protocol_name_closes(broker, clients, names, name):
    client = clients.raw()
    client.send(connect_packet(names.sub(), protocol_name=name, protocol_level=4))
    packets = client.expect_closed()
    assert all(p.raw != connack_bytes(0, 0) for p in packets), packets


def test_mqtt31_name_with_level_4_closes(broker, clients, names):
    client = clients.raw()
    client.send(connect_packet(names.sub(), protocol_name=b"MQIsdp", protocol_level=4))
    packets = client.expect_closed()
    assert all(p.raw != connack_bytes(0, 0) for p in packets), packets


def test_empty_client_id_with_clean_session_is_assigned(broker, clients, names):
    client = clients.raw()
    client.send(connect_packet("", clean_session=True))
    client.expect(connack_bytes(0, 0))
    roundtrip(client, names.topic("anon"))
    # Two anonymous clients get different ids: neither takes the other over.
    other = clients.raw()
    other.send(connect_packet("", clean_session=True))
    other.expect(connack_bytes(0, 0))
    client.ping()
    other.ping()


def test_empty_client_id_without_clean_session_rejected(broker, clients):
    client = clients.raw()
    client.send(connect_packet("", clean_session=False))
    client.expect(connack_bytes(0, 0x02))
    assert client.expect_closed() == []


def test_long_client_id_accepted(broker, clients, names):
    client = clients.raw()
    client.send(connect_packet(names.sub("x" * 100)))
    client.expect(connack_bytes(0, 0))


def test_username_and_password_accepted(broker, clients, names):
    client = clients.raw()
    client.send(connect_packet(names.sub(), username="user", password=b"\x00\xffsecret"))
    client.expect(connack_bytes(0, 0))
    client.ping()


@pytest.mark.parametrize("flags,why", [
    (0x03, "reserved bit set"),
    (0x02 | 0x40, "password flag without user name flag"),
    (0x02 | 0x08, "will QoS without will flag"),
    (0x02 | 0x20, "will retain without will flag"),
    (0x02 | 0x04 | 0x18, "will QoS 3"),
])
def test_invalid_connect_flags_close(broker, clients, names, flags, why):
    client = clients.raw()
    client.send(connect_packet(names.sub(), will=("w", b"x", 0, False), password=b"p"
                               if flags & 0x40 else None, flags_override=flags)
                if flags & 0x04 else
                connect_packet(names.sub(), flags_override=flags))
    packets = client.expect_closed()
    assert all(p.raw != connack_bytes(0, 0) for p in packets), (why, packets)


def test_second_connect_closes(broker, clients, names):
    client = clients.raw(names.sub())
    client.send(connect_packet(names.sub("again")))
    assert client.expect_closed() == []


@pytest.mark.parametrize("first", [
    helpers.PINGREQ_BYTES,
    helpers.publish_packet("a/b", b"x"),
    helpers.subscribe_packet(1, [("a/b", 0)]),
    helpers.DISCONNECT_BYTES,
    helpers.connack_bytes(0, 0),
], ids=["pingreq", "publish", "subscribe", "disconnect", "connack"])
def test_packet_before_connect_closes(broker, clients, first):
    client = clients.raw()
    client.send(first)
    assert client.expect_closed() == []


def test_connect_split_into_single_bytes(broker, clients, names):
    client = clients.raw()
    for byte in connect_packet(names.sub(), keepalive=30):
        client.send(bytes([byte]))
        time.sleep(0.002)
    client.expect(connack_bytes(0, 0))
    client.ping()


def test_connect_and_more_packets_in_one_write(broker, clients, names):
    topic = names.topic("batch")
    client = clients.raw()
    client.send(connect_packet(names.sub()) + helpers.subscribe_packet(3, [(topic, 0)]) +
                helpers.publish_packet(topic, b"together") + helpers.PINGREQ_BYTES)
    client.expect(connack_bytes(0, 0))
    client.expect(helpers.suback_bytes(3, [0]))
    # The PUBLISH reaches the subscription made just before it in the same write.
    received = [client.receive(), client.receive()]
    assert sorted(p.type for p in received) == [helpers.PUBLISH, helpers.PINGRESP]
    publish = next(p for p in received if p.type == helpers.PUBLISH)
    assert publish.payload == b"together"


@pytest.mark.coremq_only("no flag bounds the time to CONNECT")
def test_no_connect_within_timeout_closes(start_broker, clients):
    broker = start_broker(connect_timeout=1)
    silent = clients.raw(broker=broker)
    partial = clients.raw(broker=broker)
    partial.send(connect_packet("partial")[:5])
    started = time.monotonic()
    assert silent.expect_closed(timeout=6) == []
    assert partial.expect_closed(timeout=6) == []
    # 1 s plus a 250 ms tick; the rest is slack for a loaded machine.
    assert time.monotonic() - started < 5.5
    # A client that does connect in time is unaffected, even past the timeout.
    client = clients.raw("in-time", broker=broker)
    time.sleep(1.5)
    client.ping()

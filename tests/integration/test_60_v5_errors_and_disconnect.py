# 60 v5 errors and server DISCONNECT: a v5 client learns why it is being closed: 0x81
# malformed packet, 0x82 protocol error, 0x95 packet too large, 0x8D keep-alive timeout, 0x8E
# session taken over, 0x8B server shutting down, 0x9B QoS not supported, 0x9A retain not
# supported, 0x90 topic name invalid; the connection closes after the DISCONNECT and nothing
# follows it. PUBACK/PUBREC reason codes, PUBCOMP 0x92 for an unknown packet id, and no
# DISCONNECT before CONNACK (MQTT 5.0 3.14, 4.13, 3.4.2.1, 3.5.2.1, 3.7.2.1).
import signal
import struct

import pytest

import helpers
from conftest import is_mosquitto, keepalive_close_seconds_max
from helpers import encode_string, packet
from helpers_v5 import module_broker, start_broker  # noqa: F401 (fixtures)
from helpers_v5 import (DISCONNECT, KEEP_ALIVE_TIMEOUT, MALFORMED_PACKET, PACKET_TOO_LARGE,
                        PROTOCOL_ERROR, PUBCOMP, PUBREL, QOS_NOT_SUPPORTED,
                        RETAIN_NOT_SUPPORTED, SERVER_SHUTTING_DOWN, SESSION_EXPIRY_INTERVAL,
                        SESSION_TAKEN_OVER, TOPIC_NAME_INVALID, Ack, ack5, connect5,
                        disconnect5, publish5, raw5)

PACKET_SIZE_MAX = 4096
BROKER_OPTIONS = {"max_packet_size": PACKET_SIZE_MAX}


# ---------------------------------------------------------------- malformed / protocol errors

def test_property_length_past_packet_is_malformed(broker, clients, names):
    client = raw5(clients, names.pub())
    body = encode_string(names.topic()) + b"\x7f" + b"\x01\x01"   # says 127, has 2
    client.send(packet(0x30, body))
    client.expect_disconnect(MALFORMED_PACKET)


def test_unknown_property_is_malformed(broker, clients, names):
    client = raw5(clients, names.pub())
    body = encode_string(names.topic()) + b"\x02\x7e\x00" + b"payload"
    client.send(packet(0x30, body))
    client.expect_disconnect(MALFORMED_PACKET)


def test_qos_3_is_malformed(broker, clients, names):
    client = raw5(clients, names.pub())
    client.send(packet(0x36, encode_string(names.topic()) + b"\x00\x01\x00"))
    client.expect_disconnect(MALFORMED_PACKET)


@pytest.mark.coremq_only("mosquitto 2.0.11 closes without DISCONNECT on a bad PUBREL flag")
def test_reserved_flags_are_malformed(broker, clients, names):
    client = raw5(clients, names.pub())
    client.send(b"\x60\x02\x00\x01")            # PUBREL must have flags 0b0010
    client.expect_disconnect(MALFORMED_PACKET)


@pytest.mark.coremq_only("mosquitto 2.0.11 closes on a second CONNECT without DISCONNECT")
def test_second_connect_is_protocol_error(broker, clients, names):
    client = raw5(clients, names.pub())
    client.send(connect5(names.pub()))
    client.expect_disconnect(PROTOCOL_ERROR)


@pytest.mark.coremq_only("mosquitto 2.0.11 closes on a duplicated property without DISCONNECT")
def test_duplicate_publish_property_is_protocol_error(broker, clients, names):
    client = raw5(clients, names.pub())
    client.send(publish5(names.topic(), b"x", properties=[(0x03, "a"), (0x03, "b")]))
    client.expect_disconnect(PROTOCOL_ERROR)


@pytest.mark.parametrize("topic_suffix", ["+", "#", "a/+/b"])
def test_wildcard_in_topic_name(broker, clients, names, topic_suffix):
    subscriber = raw5(clients, names.sub())
    subscriber.subscribe5([(names.topic("#"), 0)])
    client = raw5(clients, names.pub())
    client.send(publish5(names.topic(topic_suffix), b"x", qos=1, packet_id=1))
    packets = client.expect_closed()
    disconnects = [Ack(item) for item in packets if item.type == DISCONNECT]
    # A wildcard makes the name malformed rather than merely refused; any of the three
    # codes describes it.
    assert len(disconnects) == 1, packets
    assert disconnects[0].reason_code in (MALFORMED_PACKET, PROTOCOL_ERROR, TOPIC_NAME_INVALID)
    subscriber.expect_no_packet(0.2)


@pytest.mark.parametrize("topic", [b"a/\xff\xfe", b"a/\xc0\xaf", b"a/\xed\xa0\x80", b"a\x00b"],
                         ids=["invalid", "overlong", "surrogate", "nul"])
def test_ill_formed_utf8_topic(broker, clients, names, topic):
    """Ill-formed UTF-8 and U+0000 make a packet malformed [MQTT-1.5.4-1, MQTT-1.5.4-2]."""
    subscriber = raw5(clients, names.sub())
    subscriber.subscribe5([("#", 0)])
    client = raw5(clients, names.pub())
    client.send(packet(0x30, struct.pack("!H", len(topic)) + topic + b"\x00x"))
    packets = client.expect_closed()
    disconnects = [Ack(item) for item in packets if item.type == DISCONNECT]
    if is_mosquitto() and not disconnects:
        pytest.skip("mosquitto 2.0.11 closes on ill-formed UTF-8 without DISCONNECT")
    assert [item.reason_code for item in disconnects] == [MALFORMED_PACKET], packets
    subscriber.expect_no_packet(0.2)


def test_non_minimal_property_length_is_malformed(broker, clients, names):
    """Variable Byte Integers use the fewest bytes [MQTT-1.5.5-1]: 0x80 0x00 for 0 is
    malformed."""
    client = raw5(clients, names.pub())
    client.send(packet(0x30, encode_string(names.topic()) + b"\x80\x00" + b"x"))
    packets = client.expect_closed()
    disconnects = [Ack(item) for item in packets if item.type == DISCONNECT]
    assert all(item.reason_code == MALFORMED_PACKET for item in disconnects), packets


def test_packet_too_large(broker, clients, names):
    client = raw5(clients, names.pub())
    client.send(publish5(names.topic(), b"x" * (2 * PACKET_SIZE_MAX)))
    client.expect_disconnect(PACKET_TOO_LARGE)


def test_nothing_but_close_before_connack(broker, clients, names):
    """No DISCONNECT before a CONNACK [MQTT-3.14.0-1]: a first packet that is not CONNECT
    is just closed."""
    client = raw5(clients)
    client.send(publish5(names.topic(), b"x"))
    assert client.expect_closed() == []


# ---------------------------------------------------------------- connection lifetime

def test_keepalive_timeout(broker, clients, names):
    client = raw5(clients, names.pub(), keepalive=1)
    packets = client.expect_closed(timeout=keepalive_close_seconds_max(1) + 1)
    disconnects = [Ack(item) for item in packets if item.type == DISCONNECT]
    if is_mosquitto() and not disconnects:
        pytest.skip("mosquitto 2.0.11 closes a silent client without DISCONNECT")
    assert [item.reason_code for item in disconnects] == [KEEP_ALIVE_TIMEOUT], packets


@pytest.mark.coremq_only("mosquitto 2.0.11 closes a taken-over connection without DISCONNECT")
def test_session_taken_over(broker, clients, names):
    client_id = names.sub()
    old = raw5(clients, client_id, properties=[(SESSION_EXPIRY_INTERVAL, 60)])
    new = raw5(clients, client_id, clean_start=False, properties=[(SESSION_EXPIRY_INTERVAL, 0)])
    assert new.connack.session_present == 1
    old.expect_disconnect(SESSION_TAKEN_OVER)
    new.ping()


@pytest.mark.coremq_only("mosquitto 2.0.11 closes a taken-over connection without DISCONNECT")
def test_session_taken_over_from_other_protocol_version(broker, clients, names):
    client_id = names.sub()
    old = raw5(clients, client_id)
    clients.raw(client_id)                          # a 3.1.1 client with the same id
    old.expect_disconnect(SESSION_TAKEN_OVER)


@pytest.mark.coremq_only("mosquitto 2.0.11 closes at SIGTERM without DISCONNECT")
def test_sigterm_sends_server_shutting_down(start_broker, clients, names):
    broker = start_broker()
    v5_clients = [raw5(clients, names.client(f"c{shard}", shard), broker=broker)
                  for shard in range(4)]
    v311 = clients.raw(names.client("old", 1), broker=broker)
    broker.process.send_signal(signal.SIGTERM)
    for client in v5_clients:
        client.expect_disconnect(SERVER_SHUTTING_DOWN, timeout=10)
    # 3.1.1 has no server DISCONNECT: that connection just closes.
    assert all(item.type != DISCONNECT for item in v311.expect_closed(timeout=10))
    broker.process.wait(10)


@pytest.mark.coremq_only("mosquitto 2.0.11 drops the will after any client DISCONNECT")
def test_client_disconnect_with_error_reason_keeps_will(broker, clients, names):
    will_topic = names.topic("will")
    watcher = raw5(clients, names.client("watch", 3))
    watcher.subscribe5([(will_topic, 0)])
    client = raw5(clients, names.pub(), will=(will_topic, b"gone wrong", 0, False))
    client.disconnect5(reason_code=0x80)           # unspecified error: the will is sent
    assert watcher.receive_publish5().payload == b"gone wrong"


# ---------------------------------------------------------------- QoS / retain not supported

def test_publish_above_maximum_qos(start_broker, clients, names):
    broker = start_broker(max_qos=1)
    subscriber = raw5(clients, names.sub(), broker=broker)
    subscriber.subscribe5([(names.topic(), 2)])
    client = raw5(clients, names.pub(), broker=broker)
    client.publish5(names.topic(), b"qos 1 is fine", qos=1)
    assert subscriber.receive_publish5().qos == 1
    client.send(publish5(names.topic(), b"qos 2 is not", qos=2, packet_id=9))
    client.expect_disconnect(QOS_NOT_SUPPORTED)
    subscriber.expect_no_packet(0.2)


def test_retain_when_not_available(start_broker, clients, names):
    broker = start_broker(retain_available=False)
    client = raw5(clients, names.pub(), broker=broker)
    client.publish5(names.topic(), b"plain", qos=1)
    client.send(publish5(names.topic(), b"retained", qos=1, retain=True, packet_id=2))
    client.expect_disconnect(RETAIN_NOT_SUPPORTED)
    late = raw5(clients, names.sub(), broker=broker)
    late.subscribe5([(names.topic(), 1)])
    late.expect_no_packet(0.2)


# ---------------------------------------------------------------- acknowledgement reason codes

@pytest.mark.parametrize("qos", [1, 2])
def test_ack_reason_without_subscribers(broker, clients, names, qos):
    client = raw5(clients, names.pub())
    ack = client.publish5(names.topic("nobody"), b"x", qos=qos)
    assert ack.reason_code in (0x00, 0x10), ack       # 0x10: no matching subscribers


@pytest.mark.parametrize("qos", [1, 2])
def test_ack_reason_with_subscriber(broker, clients, names, qos):
    topic = names.topic()
    subscriber = raw5(clients, names.sub())
    subscriber.subscribe5([(topic, qos)])
    ack = raw5(clients, names.pub()).publish5(topic, b"x", qos=qos)
    assert ack.reason_code == 0x00, ack
    subscriber.receive_publish5()


def test_pubrel_for_unknown_packet_id(broker, clients, names):
    client = raw5(clients, names.pub())
    client.send(ack5(PUBREL, 777))
    pubcomp = Ack(client.receive(packet_type=PUBCOMP))
    # 0x92 (Packet Identifier not found) says more, 0x00 is allowed too.
    assert pubcomp.packet_id == 777 and pubcomp.reason_code in (0x00, 0x92), pubcomp


def test_error_ack_from_subscriber_discards_message(broker, clients, names):
    """A subscriber answering PUBREC 0x80 ends that delivery: no PUBREL, no resend, and the
    next message flows [MQTT-4.3.3-4, MQTT-4.4.0-2]."""
    topic = names.topic()
    subscriber = raw5(clients, names.sub())
    subscriber.subscribe5([(topic, 2)])
    publisher = raw5(clients, names.pub())
    publisher.publish5(topic, b"refused", qos=2)
    refused = subscriber.receive_publish5(acknowledge=False)
    subscriber.send(ack5(helpers.PUBREC, refused.packet_id, reason_code=0x80))
    publisher.publish5(topic, b"next", qos=2)
    assert subscriber.receive_publish5().payload == b"next"
    subscriber.expect_no_packet(0.3)


def test_disconnect_with_invalid_reason_code(broker, clients, names):
    client = raw5(clients, names.pub())
    client.send(packet(0xE0, b"\x03\x00"))          # 0x03 is no DISCONNECT reason code
    packets = client.expect_closed()
    assert all(Ack(item).reason_code >= 0x80 for item in packets if item.type == DISCONNECT)


def test_client_disconnect_packet_with_properties(broker, clients, names):
    """A client DISCONNECT may carry a Reason String and User Properties."""
    client = raw5(clients, names.pub())
    client.send(disconnect5(0x00, properties=[(0x1F, "bye"), (0x26, ("k", "v"))]))
    assert client.expect_closed() == []


def test_disconnect_long_form_success(broker, clients, names):
    client = raw5(clients, names.pub())
    client.send(struct.pack("!BBB", 0xE0, 1, 0))   # reason code byte only, no properties
    assert client.expect_closed() == []

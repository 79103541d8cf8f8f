# 51 v5 connect: a protocol level 5 CONNECT gets a v5 CONNACK with reason code 0x00 and the
# properties that announce the broker's limits (Receive Maximum, Maximum QoS only when below
# 2, Retain Available, Maximum Packet Size, Topic Alias Maximum, the three "available"
# flags), an Assigned Client Identifier for an empty client id, a Server Keep Alive when the
# broker overrides the client's, and refusals with v5 reason codes (MQTT 5.0 3.1, 3.2).
import struct

import pytest

import helpers
from conftest import is_mosquitto, keepalive_close_seconds_max
from helpers import encode_string, packet
from helpers_v5 import module_broker, start_broker  # noqa: F401 (fixtures)
from helpers_v5 import (ASSIGNED_CLIENT_IDENTIFIER, AUTHENTICATION_METHOD, CONNACK,
                        MAXIMUM_PACKET_SIZE, MAXIMUM_QOS, PROTOCOL_ERROR, QOS_NOT_SUPPORTED,
                        RECEIVE_MAXIMUM, REQUEST_PROBLEM_INFORMATION, RETAIN_AVAILABLE,
                        RETAIN_NOT_SUPPORTED, SERVER_KEEP_ALIVE, SESSION_EXPIRY_INTERVAL,
                        SHARED_SUBSCRIPTION_AVAILABLE, SUBSCRIPTION_IDENTIFIER_AVAILABLE,
                        TOPIC_ALIAS_MAXIMUM, WILDCARD_SUBSCRIPTION_AVAILABLE, Connack,
                        connect5, encode_properties, paho5, raw5)


def test_connack_v5_success(broker, clients, names):
    client = raw5(clients)
    connack = client.connect5(names.sub())
    assert connack.raw[0] == 0x20                      # reserved flags 0
    assert connack.flags == 0 and connack.reason_code == 0
    assert ASSIGNED_CLIENT_IDENTIFIER not in connack.properties
    assert AUTHENTICATION_METHOD not in connack.properties
    client.ping()


def test_connack_defaults(broker, clients, names):
    """With default flags: QoS 2 and retain are supported, so Maximum QoS is absent and
    Retain Available absent or 1; Topic Alias Maximum 10; wildcard, subscription id and
    shared subscriptions available (absent or 1)."""
    properties = raw5(clients, names.sub()).connack.properties
    assert MAXIMUM_QOS not in properties
    assert properties.get(RETAIN_AVAILABLE, 1) == 1
    assert properties.get(TOPIC_ALIAS_MAXIMUM) == 10
    assert properties.get(RECEIVE_MAXIMUM, 65535) >= 1
    for identifier in (WILDCARD_SUBSCRIPTION_AVAILABLE, SUBSCRIPTION_IDENTIFIER_AVAILABLE,
                       SHARED_SUBSCRIPTION_AVAILABLE):
        assert properties.get(identifier, 1) == 1, properties
    assert SERVER_KEEP_ALIVE not in properties


def test_connack_announces_configured_limits(start_broker, clients, names):
    broker = start_broker(receive_maximum=10, max_qos=1, retain_available=False,
                          max_packet_size=4096, topic_alias_maximum=7)
    properties = raw5(clients, names.sub(), broker=broker).connack.properties
    assert properties.get(RECEIVE_MAXIMUM) == 10
    assert properties.get(MAXIMUM_QOS) == 1
    assert properties.get(RETAIN_AVAILABLE) == 0
    assert properties.get(MAXIMUM_PACKET_SIZE) == 4096
    assert properties.get(TOPIC_ALIAS_MAXIMUM) == 7


def test_connack_maximum_qos_0(start_broker, clients, names):
    broker = start_broker(max_qos=0)
    client = raw5(clients, names.sub(), broker=broker)
    assert client.connack.properties.get(MAXIMUM_QOS) == 0
    # A broker without QoS 1/2 still accepts SUBSCRIBE at QoS 0, 1 and 2 [MQTT-3.2.2-10].
    suback = client.subscribe5([(names.topic("a"), 0), (names.topic("b"), 1),
                                (names.topic("c"), 2)])
    assert suback.reason_codes == [0, 0, 0]


@pytest.mark.coremq_only("mosquitto cannot turn off wildcard, subscription id or shared "
                         "subscription support")
def test_connack_announces_disabled_features(start_broker, clients, names):
    broker = start_broker(wildcard_subscriptions=False, subscription_identifiers=False,
                          shared_subscriptions=False)
    properties = raw5(clients, names.sub(), broker=broker).connack.properties
    assert properties.get(WILDCARD_SUBSCRIPTION_AVAILABLE) == 0
    assert properties.get(SUBSCRIPTION_IDENTIFIER_AVAILABLE) == 0
    assert properties.get(SHARED_SUBSCRIPTION_AVAILABLE) == 0


def test_assigned_client_identifier(broker, clients, names):
    first = raw5(clients)
    first_id = first.connect5("").properties.get(ASSIGNED_CLIENT_IDENTIFIER)
    second = raw5(clients)
    second_id = second.connect5("").properties.get(ASSIGNED_CLIENT_IDENTIFIER)
    assert first_id and second_id and first_id != second_id
    # The assigned id works like any other: the client subscribes and receives.
    topic = names.topic("assigned")
    first.subscribe5([(topic, 1)])
    raw5(clients, names.pub()).publish5(topic, b"to-assigned", qos=1)
    assert first.receive_publish5().payload == b"to-assigned"
    assert first.is_open() and second.is_open()


def test_paho_sees_assigned_client_identifier(broker, clients):
    client = paho5(clients, "")
    assert client.connack_properties.AssignedClientIdentifier


def test_server_keep_alive_overrides_client(start_broker, clients, names):
    # mosquitto's max_keepalive is at least 10 s; too slow to wait out here.
    server_keep_alive = 10 if is_mosquitto() else 2
    broker = start_broker(server_keep_alive=server_keep_alive)
    client = raw5(clients, broker=broker)
    connack = client.connect5(names.sub(), keepalive=100)
    assert connack.properties.get(SERVER_KEEP_ALIVE) == server_keep_alive
    if is_mosquitto():
        return
    # The broker holds the client to the keep-alive it announced [MQTT-3.2.2-21].
    packets = client.expect_closed(timeout=keepalive_close_seconds_max(2) + 1)
    assert all(item.type == helpers.DISCONNECT for item in packets), packets


def test_no_server_keep_alive_when_client_value_kept(broker, clients, names):
    connack = raw5(clients, names.sub(), keepalive=30).connack
    assert SERVER_KEEP_ALIVE not in connack.properties


@pytest.mark.coremq_only("mosquitto has no cap on the Session Expiry Interval")
def test_session_expiry_capped_by_broker(start_broker, clients, names):
    broker = start_broker(max_session_expiry=5)
    connack = raw5(clients, names.sub(), broker=broker,
                   properties=[(SESSION_EXPIRY_INTERVAL, 100)]).connack
    assert connack.properties.get(SESSION_EXPIRY_INTERVAL) == 5


def test_will_qos_above_maximum_refused(start_broker, clients, names):
    broker = start_broker(max_qos=1)
    client = raw5(clients, broker=broker)
    client.send(connect5(names.pub(), will=(names.topic("w"), b"w", 2, False)))
    client.expect_connack_refused(QOS_NOT_SUPPORTED)


def test_will_retain_refused_without_retain(start_broker, clients, names):
    broker = start_broker(retain_available=False)
    client = raw5(clients, broker=broker)
    client.send(connect5(names.pub(), will=(names.topic("w"), b"w", 0, True)))
    client.expect_connack_refused(RETAIN_NOT_SUPPORTED)


@pytest.mark.parametrize("properties", [
    [(SESSION_EXPIRY_INTERVAL, 1), (SESSION_EXPIRY_INTERVAL, 2)],   # duplicated property
    [(RECEIVE_MAXIMUM, 0)],                                         # Receive Maximum 0
    [(MAXIMUM_PACKET_SIZE, 0)],                                     # Maximum Packet Size 0
    [(REQUEST_PROBLEM_INFORMATION, 2)],                             # neither 0 nor 1
], ids=["duplicate", "receive-maximum-0", "max-packet-size-0", "problem-information-2"])
def test_bad_connect_properties_refused(broker, clients, names, properties):
    client = raw5(clients)
    client.send(connect5(names.pub(), properties=properties))
    packets = client.expect_closed()
    connacks = [Connack(item) for item in packets if item.type == CONNACK]
    assert all(connack.reason_code >= 0x80 for connack in connacks), connacks
    if connacks and not is_mosquitto():
        assert connacks[0].reason_code in (PROTOCOL_ERROR, 0x81), connacks


def test_connect_reserved_flag_closes(broker, clients, names):
    """The reserved CONNECT flag bit 0 must be 0 [MQTT-3.1.2-3]: malformed, closed, and no
    successful CONNACK."""
    client = raw5(clients)
    client.send(connect5(names.pub(), flags_override=0x03))
    packets = client.expect_closed()
    assert all(Connack(item).reason_code >= 0x80 for item in packets if item.type == CONNACK)


def test_connect_property_length_past_packet_closes(broker, clients, names):
    body = encode_string(b"MQTT") + bytes([5, 0x02]) + struct.pack("!H", 60)
    body += b"\x20\x11\x00\x00" + encode_string(names.pub())      # property length 32, 3 bytes
    client = raw5(clients)
    client.send(packet(0x10, body))
    packets = client.expect_closed()
    assert all(Connack(item).reason_code >= 0x80 for item in packets if item.type == CONNACK)


def test_v5_publisher_v311_subscriber(broker, clients, names):
    topic = names.topic("mixed")
    subscriber = clients.raw(names.sub())
    subscriber.subscribe([(topic, 1)])
    publisher = raw5(clients, names.pub())
    publisher.publish5(topic, b"from-v5", qos=1,
                       properties=[(0x26, ("k", "v")), (0x03, "text/plain")])
    received = subscriber.receive_publish()
    # A 3.1.1 subscriber gets a 3.1.1 PUBLISH: topic, packet id, payload, no properties.
    assert received.raw == helpers.publish_packet(topic, b"from-v5", qos=1,
                                                  packet_id=received.packet_id)


def test_v311_publisher_v5_subscriber(broker, clients, names):
    topic = names.topic("mixed")
    subscriber = raw5(clients, names.sub())
    subscriber.subscribe5([(topic, 2)])
    clients.raw(names.pub()).publish(topic, b"from-v311", qos=2)
    received = subscriber.receive_publish5()
    assert (received.topic, received.payload, received.qos) == (topic, b"from-v311", 2)
    assert received.properties.items == []


def test_empty_properties_encoded_as_zero_length(broker, clients, names):
    """A CONNACK without properties still carries a Property Length [MQTT-2.2.2-1]; a
    CONNECT with an explicit empty property list is accepted."""
    client = raw5(clients)
    client.send(connect5(names.sub(), properties=[]))
    connack = Connack(client.receive(packet_type=CONNACK))
    assert connack.reason_code == 0
    assert encode_properties([]) == b"\x00"

# 57 v5 subscription options: No Local, Retain As Published, Retain Handling 0/1/2,
# Subscription Identifiers (every matching id delivered), the granted QoS as a ceiling,
# SUBACK and UNSUBACK reason codes, malformed options, and the features a flag turns off
# (MQTT 5.0 3.8, 3.9, 3.10, 3.11, 3.3.4).
import pytest

from helpers_v5 import module_broker, start_broker  # noqa: F401 (fixtures)
from helpers_v5 import (MALFORMED_PACKET, NO_SUBSCRIPTION_EXISTED, PROTOCOL_ERROR,
                        SHARED_SUBSCRIPTIONS_NOT_SUPPORTED, SUBSCRIPTION_IDENTIFIER,
                        SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED, TOPIC_FILTER_INVALID,
                        WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED, Ack, paho5, paho_properties, publish5,
                        raw5,
                        subscribe5, subscription_options)


def receive_until_marker(subscriber, publisher, marker_topic):
    """The PUBLISH packets subscriber gets before a marker that publisher sends now
    (subscriber must already be subscribed to marker_topic). One publisher's messages reach
    a subscriber in order, so every copy of what it published before is in: a round trip
    instead of waiting for a quiet spell."""
    publisher.publish5(marker_topic, b"marker", qos=1)
    received = []
    while True:
        item = subscriber.receive_publish5()
        if item.topic == marker_topic:
            return received
        received.append(item)


def options(**kwargs):
    return subscription_options(**kwargs)


# ---------------------------------------------------------------- No Local

def test_no_local_skips_own_messages(broker, clients, names):
    topic = names.topic()
    client = raw5(clients, names.sub())
    client.subscribe5([(topic, options(qos=1, no_local=True))])
    other = raw5(clients, names.pub())
    other.subscribe5([(topic, options(qos=1))])
    client.publish5(topic, b"own", qos=1)
    assert other.receive_publish5().payload == b"own"      # others still get it
    other.publish5(topic, b"from other", qos=1)
    assert client.receive_publish5().payload == b"from other"
    other.receive_publish5()                                # other has No Local 0
    client.expect_no_packet(0.2)


def test_no_local_applies_per_subscription(broker, clients, names):
    """Overlapping subscriptions, only one with No Local: the message still arrives."""
    client = raw5(clients, names.sub())
    client.subscribe5([(names.topic("a"), options(qos=1, no_local=True)),
                       (names.topic("+"), options(qos=1))])
    client.publish5(names.topic("a"), b"own", qos=1)
    assert client.receive_publish5().payload == b"own"
    client.expect_no_packet(0.2)


# ---------------------------------------------------------------- Retain As Published

@pytest.mark.parametrize("retain_as_published", [False, True], ids=["rap0", "rap1"])
def test_retain_as_published(broker, clients, names, retain_as_published):
    topic = names.topic()
    subscriber = raw5(clients, names.sub())
    subscriber.subscribe5([(topic, options(qos=1, retain_as_published=retain_as_published))])
    publisher = raw5(clients, names.pub())
    publisher.publish5(topic, b"retained", qos=1, retain=True)
    publisher.publish5(topic, b"plain", qos=1)
    live = subscriber.receive_publish5()
    assert (live.payload, live.retain) == (b"retained", retain_as_published)
    assert subscriber.receive_publish5().retain is False
    # A retained message sent because of the subscription always has RETAIN 1.
    late = raw5(clients, names.client("late", 3))
    late.subscribe5([(topic, options(qos=1, retain_as_published=retain_as_published))])
    assert late.receive_publish5().retain is True
    publisher.publish5(topic, b"", qos=1, retain=True)


# ---------------------------------------------------------------- Retain Handling

def retained_topic(clients, names):
    topic = names.topic("kept")
    raw5(clients, names.pub()).publish5(topic, b"kept", qos=1, retain=True)
    return topic


def clear_retained(clients, names, topic):
    raw5(clients, names.client("clear", 0)).publish5(topic, b"", qos=1, retain=True)


def test_retain_handling_0_sends_on_every_subscribe(broker, clients, names):
    topic = retained_topic(clients, names)
    subscriber = raw5(clients, names.sub())
    for _ in range(2):
        subscriber.subscribe5([(topic, options(qos=1, retain_handling=0))])
        received = subscriber.receive_publish5()
        assert (received.payload, received.retain) == (b"kept", True)
    subscriber.expect_no_packet(0.2)
    clear_retained(clients, names, topic)


def test_retain_handling_1_sends_only_for_new_subscription(broker, clients, names):
    topic = retained_topic(clients, names)
    subscriber = raw5(clients, names.sub())
    subscriber.subscribe5([(topic, options(qos=1, retain_handling=1))])
    assert subscriber.receive_publish5().payload == b"kept"
    subscriber.subscribe5([(topic, options(qos=1, retain_handling=1))])
    subscriber.expect_no_packet(0.3)
    clear_retained(clients, names, topic)


def test_retain_handling_2_never_sends(broker, clients, names):
    topic = retained_topic(clients, names)
    subscriber = raw5(clients, names.sub())
    subscriber.subscribe5([(topic, options(qos=1, retain_handling=2))])
    subscriber.expect_no_packet(0.3)
    # New messages still flow.
    raw5(clients, names.client("live", 2)).publish5(topic, b"live", qos=1)
    assert subscriber.receive_publish5().payload == b"live"
    clear_retained(clients, names, topic)


def test_retain_handling_3_is_protocol_error(broker, clients, names):
    client = raw5(clients, names.sub())
    client.send(subscribe5(1, [(names.topic(), 0x30)]))
    packets = client.expect_closed()
    assert [item.type for item in packets] in ([], [14]), packets
    if packets:
        assert Ack(packets[0]).reason_code in (PROTOCOL_ERROR, MALFORMED_PACKET)


def test_reserved_option_bits_are_malformed(broker, clients, names):
    """Bits 6 and 7 of the options byte are reserved [MQTT-3.8.3-5]."""
    client = raw5(clients, names.sub())
    client.send(subscribe5(1, [(names.topic(), 0x41)]))
    client.expect_disconnect(MALFORMED_PACKET)


# ---------------------------------------------------------------- Subscription Identifiers

def test_subscription_identifiers_all_delivered(broker, clients, names):
    subscriber = raw5(clients, names.sub())
    subscriber.subscribe5([(names.topic("a/+"), options(qos=1))],
                          properties=[(SUBSCRIPTION_IDENTIFIER, 1)])
    subscriber.subscribe5([(names.topic("a/#"), options(qos=1))],
                          properties=[(SUBSCRIPTION_IDENTIFIER, 200000)])
    subscriber.subscribe5([(names.topic("+/b"), options(qos=1))])        # no identifier
    subscriber.subscribe5([(names.topic("marker"), options(qos=1))])
    publisher = raw5(clients, names.pub())
    publisher.publish5(names.topic("a/b"), b"overlap", qos=1)
    copies = receive_until_marker(subscriber, publisher, names.topic("marker"))
    identifiers = sorted(identifier for item in copies
                         for identifier in item.properties.all(SUBSCRIPTION_IDENTIFIER))
    assert identifiers == [1, 200000], copies


def test_subscription_identifier_replaced_by_resubscribe(broker, clients, names):
    topic = names.topic()
    subscriber = raw5(clients, names.sub())
    subscriber.subscribe5([(topic, options(qos=1))], properties=[(SUBSCRIPTION_IDENTIFIER, 7)])
    subscriber.subscribe5([(topic, options(qos=1))], properties=[(SUBSCRIPTION_IDENTIFIER, 8)])
    publisher = raw5(clients, names.pub())
    publisher.publish5(topic, b"a", qos=1)
    assert subscriber.receive_publish5().properties.all(SUBSCRIPTION_IDENTIFIER) == [8]
    subscriber.subscribe5([(topic, options(qos=1))])                    # identifier removed
    publisher.publish5(topic, b"b", qos=1)
    assert SUBSCRIPTION_IDENTIFIER not in subscriber.receive_publish5().properties


def test_subscription_identifier_on_retained(broker, clients, names):
    topic = retained_topic(clients, names)
    subscriber = raw5(clients, names.sub())
    subscriber.subscribe5([(topic, options(qos=1))], properties=[(SUBSCRIPTION_IDENTIFIER, 42)])
    received = subscriber.receive_publish5()
    assert received.properties.all(SUBSCRIPTION_IDENTIFIER) == [42]
    clear_retained(clients, names, topic)


def test_subscription_identifier_zero_is_protocol_error(broker, clients, names):
    client = raw5(clients, names.sub())
    client.send(subscribe5(1, [(names.topic(), 0)], properties=[(SUBSCRIPTION_IDENTIFIER, 0)]))
    packets = client.expect_closed()
    assert all(item.type == 14 for item in packets), packets


@pytest.mark.coremq_only("mosquitto 2.0.11 accepts a Subscription Identifier from a client")
def test_publish_with_subscription_identifier_is_protocol_error(broker, clients, names):
    """A client must not send a Subscription Identifier in PUBLISH [MQTT-3.3.4-6]."""
    client = raw5(clients, names.pub())
    client.send(publish5(names.topic(), b"x", qos=1, packet_id=1,
                         properties=[(SUBSCRIPTION_IDENTIFIER, 3)]))
    client.expect_disconnect(PROTOCOL_ERROR)


def test_paho_sees_subscription_identifier(broker, clients, names):
    topic = names.topic()
    subscriber = paho5(clients, names.sub())
    subscriber.subscribe5(topic, 1, properties=paho_properties("SUBSCRIBE",
                                                               SubscriptionIdentifier=99))
    paho5(clients, names.pub()).publish5(topic, b"x", qos=1)
    assert subscriber.get().prop("SubscriptionIdentifier") == [99]


# ---------------------------------------------------------------- QoS

@pytest.mark.parametrize("granted, published, delivered",
                         [(0, 2, 0), (1, 2, 1), (2, 1, 1), (1, 0, 0), (2, 2, 2)])
def test_granted_qos_is_a_ceiling(broker, clients, names, granted, published, delivered):
    topic = names.topic()
    subscriber = raw5(clients, names.sub())
    assert subscriber.subscribe5([(topic, options(qos=granted))]).reason_codes == [granted]
    raw5(clients, names.pub()).publish5(topic, b"x", qos=published)
    assert subscriber.receive_publish5().qos == delivered


def test_overlapping_subscriptions_respect_highest_qos(broker, clients, names):
    subscriber = raw5(clients, names.sub())
    subscriber.subscribe5([(names.topic("+"), options(qos=0)),
                           (names.topic("#"), options(qos=2))])
    subscriber.subscribe5([(names.topic("marker/m"), options(qos=1))])
    publisher = raw5(clients, names.pub())
    publisher.publish5(names.topic("x"), b"x", qos=2)
    qos_levels = [item.qos for item in
                  receive_until_marker(subscriber, publisher, names.topic("marker/m"))]
    assert max(qos_levels) == 2, qos_levels


# ---------------------------------------------------------------- SUBACK / UNSUBACK codes

def test_suback_codes_in_order(broker, clients, names):
    client = raw5(clients, names.sub())
    suback = client.subscribe5([(names.topic("a"), options(qos=2)),
                                (names.topic("b"), options(qos=0)),
                                (names.topic("c"), options(qos=1))])
    assert suback.reason_codes == [2, 0, 1]


@pytest.mark.coremq_only("mosquitto 2.0.11 disconnects instead of answering SUBACK 0x8F")
@pytest.mark.parametrize("topic_filter", ["a/#/b", "a+", "#/", ""])
def test_suback_topic_filter_invalid(broker, clients, names, topic_filter):
    client = raw5(clients, names.sub())
    suback = client.subscribe5([(names.topic("ok"), options(qos=1)),
                                (topic_filter, options(qos=1))])
    assert suback.reason_codes == [1, TOPIC_FILTER_INVALID]
    client.ping()


def test_unsuback_codes(broker, clients, names):
    client = raw5(clients, names.sub())
    client.subscribe5([(names.topic("a"), 0), (names.topic("+"), 0)])
    unsuback = client.unsubscribe5([names.topic("a"), names.topic("b"), names.topic("+")])
    assert unsuback.reason_codes == [0x00, NO_SUBSCRIPTION_EXISTED, 0x00]
    unsuback = client.unsubscribe5([names.topic("a")])
    assert unsuback.reason_codes == [NO_SUBSCRIPTION_EXISTED]


def test_paho_unsuback_codes(broker, clients, names):
    client = paho5(clients, names.sub())
    client.subscribe5(names.topic("a"), 1)
    assert client.unsubscribe([names.topic("a"), names.topic("none")]) == [
        0x00, NO_SUBSCRIPTION_EXISTED]


@pytest.mark.coremq_only("mosquitto cannot turn off wildcard subscriptions")
def test_wildcards_disabled(start_broker, clients, names):
    broker = start_broker(wildcard_subscriptions=False)
    client = raw5(clients, names.sub(), broker=broker)
    suback = client.subscribe5([(names.topic("+"), 1), (names.topic("#"), 1),
                                (names.topic("plain"), 1)])
    assert suback.reason_codes == [WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
                                   WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED, 1]


@pytest.mark.coremq_only("mosquitto cannot turn off shared subscriptions")
def test_shared_subscriptions_disabled(start_broker, clients, names):
    broker = start_broker(shared_subscriptions=False)
    client = raw5(clients, names.sub(), broker=broker)
    suback = client.subscribe5([(f"$share/g/{names.topic()}", 1), (names.topic(), 1)])
    assert suback.reason_codes == [SHARED_SUBSCRIPTIONS_NOT_SUPPORTED, 1]


@pytest.mark.coremq_only("mosquitto cannot turn off subscription identifiers")
def test_subscription_identifiers_disabled(start_broker, clients, names):
    broker = start_broker(subscription_identifiers=False)
    client = raw5(clients, names.sub(), broker=broker)
    client.send(subscribe5(1, [(names.topic(), 1)], properties=[(SUBSCRIPTION_IDENTIFIER, 5)]))
    # Either DISCONNECT 0xA1 and a close, or a SUBACK refusing the filter with 0xA1.
    try:
        packets = client.expect_closed(timeout=1.5)
    except AssertionError:
        suback = Ack(client.receive(packet_type=9))
        assert suback.reason_codes == [SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED], suback
        return
    disconnects = [Ack(item) for item in packets if item.type == 14]
    assert [item.reason_code for item in disconnects] == [
        SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED], packets

# 56 v5 topic aliases: inbound, a client maps an alias to a topic and then publishes with an
# empty topic name; alias 0 or above the broker's Topic Alias Maximum is DISCONNECT 0x94 and
# an unknown alias with an empty topic 0x82; mappings do not outlive the connection.
# Outbound, the broker never sends an alias to a client that did not announce a Topic Alias
# Maximum, never one above it, and (coremq) replaces a repeated topic by its alias
# (MQTT 5.0 3.3.2.3.4, 3.1.2.11.5, 3.2.2.3.8). paho-mqtt 1.6 does not resolve aliases it
# receives, so the outbound cases read the packets raw.
import pytest

from helpers_v5 import module_broker, start_broker  # noqa: F401 (fixtures)
from helpers_v5 import (PROTOCOL_ERROR, TOPIC_ALIAS, TOPIC_ALIAS_INVALID, TOPIC_ALIAS_MAXIMUM,
                        publish5, raw5)

ALIAS_MAXIMUM = 5
BROKER_OPTIONS = {"topic_alias_maximum": ALIAS_MAXIMUM}


def subscriber_on(clients, names, topic_filter, alias_maximum=None, label="sub"):
    properties = [(TOPIC_ALIAS_MAXIMUM, alias_maximum)] if alias_maximum is not None else None
    client = raw5(clients, names.client(label, 1), properties=properties)
    client.subscribe5([(topic_filter, 1)])
    return client


def test_broker_announces_alias_maximum(broker, clients, names):
    connack = raw5(clients, names.pub()).connack
    assert connack.properties.get(TOPIC_ALIAS_MAXIMUM) == ALIAS_MAXIMUM


def test_inbound_alias_then_empty_topic(broker, clients, names):
    topic = names.topic("aliased")
    subscriber = subscriber_on(clients, names, topic)
    publisher = raw5(clients, names.pub())
    publisher.publish5(topic, b"sets alias", qos=1, properties=[(TOPIC_ALIAS, 1)])
    publisher.publish5("", b"uses alias", qos=1, properties=[(TOPIC_ALIAS, 1)])
    publisher.publish5("", b"uses alias again", qos=0, properties=[(TOPIC_ALIAS, 1)])
    for payload in (b"sets alias", b"uses alias", b"uses alias again"):
        received = subscriber.receive_publish5()
        # The subscriber announced no Topic Alias Maximum: full topic, no alias.
        assert (received.topic, received.payload) == (topic, payload)
        assert TOPIC_ALIAS not in received.properties


def test_inbound_alias_remapped(broker, clients, names):
    subscriber = subscriber_on(clients, names, names.topic("#"))
    publisher = raw5(clients, names.pub())
    publisher.publish5(names.topic("first"), b"1", qos=1, properties=[(TOPIC_ALIAS, 2)])
    publisher.publish5(names.topic("second"), b"2", qos=1, properties=[(TOPIC_ALIAS, 2)])
    publisher.publish5("", b"3", qos=1, properties=[(TOPIC_ALIAS, 2)])
    publisher.publish5(names.topic("third"), b"4", qos=1, properties=[(TOPIC_ALIAS, 5)])
    publisher.publish5("", b"5", qos=1, properties=[(TOPIC_ALIAS, 5)])
    received = [subscriber.receive_publish5() for _ in range(5)]
    assert [(item.topic, item.payload) for item in received] == [
        (names.topic("first"), b"1"), (names.topic("second"), b"2"),
        (names.topic("second"), b"3"), (names.topic("third"), b"4"),
        (names.topic("third"), b"5")]


@pytest.mark.parametrize("alias", [
    pytest.param(0, marks=pytest.mark.coremq_only("mosquitto 2.0.11 answers alias 0 with 0x81")),
    ALIAS_MAXIMUM + 1], ids=["zero", "above-maximum"])
def test_inbound_alias_out_of_range(broker, clients, names, alias):
    topic = names.topic()
    subscriber = subscriber_on(clients, names, topic)
    publisher = raw5(clients, names.pub())
    publisher.send(publish5(topic, b"bad alias", qos=1, packet_id=1,
                            properties=[(TOPIC_ALIAS, alias)]))
    publisher.expect_disconnect(TOPIC_ALIAS_INVALID)
    subscriber.expect_no_packet(0.2)


def test_inbound_unknown_alias_with_empty_topic(broker, clients, names):
    publisher = raw5(clients, names.pub())
    publisher.send(publish5("", b"unknown alias", qos=1, packet_id=1,
                            properties=[(TOPIC_ALIAS, 3)]))
    publisher.expect_disconnect(PROTOCOL_ERROR)


def test_empty_topic_without_alias(broker, clients, names):
    publisher = raw5(clients, names.pub())
    publisher.send(publish5("", b"no topic", qos=1, packet_id=1))
    publisher.expect_disconnect(PROTOCOL_ERROR)


def test_alias_not_carried_to_next_connection(broker, clients, names):
    client_id = names.pub()
    first = raw5(clients, client_id)
    first.publish5(names.topic(), b"maps", qos=1, properties=[(TOPIC_ALIAS, 1)])
    first.disconnect5()
    second = raw5(clients, client_id)
    second.send(publish5("", b"stale alias", qos=1, packet_id=1, properties=[(TOPIC_ALIAS, 1)]))
    second.expect_disconnect(PROTOCOL_ERROR)


def test_aliases_are_per_connection(broker, clients, names):
    """Two publishers map alias 1 to different topics at the same time."""
    subscriber = subscriber_on(clients, names, names.topic("#"))
    one = raw5(clients, names.client("one", 2))
    two = raw5(clients, names.client("two", 3))
    one.publish5(names.topic("one"), b"a", qos=1, properties=[(TOPIC_ALIAS, 1)])
    two.publish5(names.topic("two"), b"b", qos=1, properties=[(TOPIC_ALIAS, 1)])
    one.publish5("", b"c", qos=1, properties=[(TOPIC_ALIAS, 1)])
    two.publish5("", b"d", qos=1, properties=[(TOPIC_ALIAS, 1)])
    received = {(item.topic, item.payload) for item in
                (subscriber.receive_publish5() for _ in range(4))}
    assert received == {(names.topic("one"), b"a"), (names.topic("two"), b"b"),
                        (names.topic("one"), b"c"), (names.topic("two"), b"d")}


def test_outbound_no_alias_without_client_maximum(broker, clients, names):
    topic = names.topic()
    subscriber = subscriber_on(clients, names, topic, alias_maximum=0)
    publisher = raw5(clients, names.pub())
    for index in range(3):
        publisher.publish5(topic, b"%d" % index, qos=1)
    for index in range(3):
        received = subscriber.receive_publish5()
        assert received.topic == topic and TOPIC_ALIAS not in received.properties


def resolve_aliases(packets, alias_maximum):
    """Topic names as a client resolves them; checks every alias is within range."""
    mapping, topics = {}, []
    for item in packets:
        alias = item.properties.get(TOPIC_ALIAS)
        if alias is not None:
            assert 1 <= alias <= alias_maximum, item
            if item.topic:
                mapping[alias] = item.topic
            else:
                assert alias in mapping, f"alias {alias} used before it was set: {item!r}"
        else:
            assert item.topic, item
        topics.append(item.topic or mapping[alias])
    return topics


def test_outbound_aliases_within_client_maximum(broker, clients, names):
    subscriber = subscriber_on(clients, names, names.topic("#"), alias_maximum=2)
    publisher = raw5(clients, names.pub())
    sent = [names.topic(f"t{index % 4}") for index in range(12)]
    for index, topic in enumerate(sent):
        publisher.publish5(topic, b"%d" % index, qos=1)
    received = [subscriber.receive_publish5() for _ in sent]
    assert resolve_aliases(received, 2) == sent
    assert [item.payload for item in received] == [b"%d" % index for index in range(12)]


@pytest.mark.coremq_only("mosquitto 2.0.11 never sends topic aliases to clients")
def test_outbound_alias_replaces_repeated_topic(broker, clients, names):
    topic = names.topic("repeated")
    subscriber = subscriber_on(clients, names, topic, alias_maximum=3)
    publisher = raw5(clients, names.pub())
    publisher.publish5(topic, b"first", qos=1)
    publisher.publish5(topic, b"second", qos=1)
    first = subscriber.receive_publish5()
    second = subscriber.receive_publish5()
    alias = first.properties.get(TOPIC_ALIAS)
    assert first.topic == topic and 1 <= alias <= 3, first
    assert second.topic == "" and second.properties.get(TOPIC_ALIAS) == alias, second
    assert second.payload == b"second"


def test_v311_subscriber_gets_full_topic(broker, clients, names):
    topic = names.topic("v311")
    subscriber = clients.raw(names.sub())
    subscriber.subscribe([(topic, 0)])
    publisher = raw5(clients, names.pub())
    publisher.publish5(topic, b"a", properties=[(TOPIC_ALIAS, 1)])
    publisher.publish5("", b"b", properties=[(TOPIC_ALIAS, 1)])
    assert [(item.topic, item.payload) for item in
            (subscriber.receive_publish() for _ in range(2))] == [(topic.encode(), b"a"),
                                                                  (topic.encode(), b"b")]

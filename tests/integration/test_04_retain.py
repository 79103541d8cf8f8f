# 04 retain: retained messages are stored, replaced and cleared, sent on SUBSCRIBE with the
# RETAIN flag 1 at min(QoS), found through wildcard filters, and seen from every shard;
# live forwards carry RETAIN 0.
import pytest

import helpers
from helpers import publish_packet


def test_retained_delivered_on_subscribe_with_retain_flag(broker, clients, names):
    topic = names.topic("r")
    publisher = clients.raw(names.pub())
    publisher.publish(topic, b"kept", qos=1, retain=True, packet_id=1)
    subscriber = clients.raw(names.sub())
    subscriber.subscribe([(topic, 0)])
    received = subscriber.receive_publish()
    assert received.raw == publish_packet(topic, b"kept", qos=0, retain=True)


def test_live_forward_has_retain_0(broker, clients, names):
    topic = names.topic("live")
    subscriber = clients.raw(names.sub())
    subscriber.subscribe([(topic, 0)])
    publisher = clients.raw(names.pub())
    publisher.publish(topic, b"now", retain=True)
    publisher.ping()  # the broker has handled the QoS 0 PUBLISH (no ack to wait for)
    assert subscriber.receive_publish().raw == publish_packet(topic, b"now", retain=False)
    # A later subscriber still gets it as retained.
    late = clients.raw(names.client("late", 3))
    late.subscribe([(topic, 0)])
    assert late.receive_publish().raw == publish_packet(topic, b"now", retain=True)


def test_retained_replaced(broker, clients, names):
    topic = names.topic("replace")
    publisher = clients.raw(names.pub())
    publisher.publish(topic, b"old", qos=1, retain=True, packet_id=1)
    publisher.publish(topic, b"new", qos=1, retain=True, packet_id=2)
    subscriber = clients.raw(names.sub())
    subscriber.subscribe([(topic, 1)])
    received = subscriber.receive_publish()
    assert (received.payload, received.retain) == (b"new", True)
    subscriber.expect_no_packet(0.3)


def test_retained_cleared_by_empty_payload(broker, clients, names):
    topic = names.topic("clear")
    live = clients.raw(names.client("live", 3))
    live.subscribe([(topic, 0)])
    publisher = clients.raw(names.pub())
    publisher.publish(topic, b"stored", qos=1, retain=True, packet_id=1)
    publisher.publish(topic, b"", qos=1, retain=True, packet_id=2)
    # The empty message still goes to current subscribers, as a normal message.
    assert live.receive_publish().payload == b"stored"
    assert live.receive_publish().raw == publish_packet(topic, b"", retain=False)
    subscriber = clients.raw(names.sub())
    subscriber.subscribe([(topic, 1)])
    subscriber.expect_no_packet(0.5)


def test_non_retained_publish_leaves_retained_alone(broker, clients, names):
    topic = names.topic("keep")
    publisher = clients.raw(names.pub())
    publisher.publish(topic, b"retained", retain=True)
    publisher.ping()  # the broker has handled the QoS 0 PUBLISH (no ack to wait for)
    publisher.publish(topic, b"plain", retain=False)
    subscriber = clients.raw(names.sub())
    subscriber.subscribe([(topic, 0)])
    assert subscriber.receive_publish().payload == b"retained"
    subscriber.expect_no_packet(0.3)


@pytest.mark.parametrize("publish_qos,subscribe_qos", [(2, 1), (0, 2), (1, 1), (2, 2), (1, 0)])
def test_retained_delivered_at_minimum_qos(broker, clients, names, publish_qos, subscribe_qos):
    topic = names.topic("minqos")
    publisher = clients.raw(names.pub())
    publisher.publish(topic, b"r", qos=publish_qos, retain=True, packet_id=5)
    publisher.ping()  # handled, whatever the QoS
    subscriber = clients.raw(names.sub())
    subscriber.subscribe([(topic, subscribe_qos)])
    received = subscriber.receive_publish()
    assert (received.qos, received.retain, received.payload) == (
        min(publish_qos, subscribe_qos), True, b"r")


def test_retained_matched_by_wildcards(broker, clients, names):
    publisher = clients.raw(names.pub())
    for suffix in ("a/1", "a/2", "b/1", "a/1/deep"):
        publisher.publish(names.topic(suffix), suffix.encode(), retain=True)
        publisher.ping()  # the broker has handled the QoS 0 PUBLISH (no ack to wait for)
    plus = clients.raw(names.sub("plus"))
    plus.subscribe([(names.topic("a/+"), 0)])
    got = sorted(plus.receive_publish().payload for _ in range(2))
    assert got == [b"a/1", b"a/2"]
    plus.expect_no_packet(0.3)
    hash_all = clients.raw(names.sub("hash"))
    hash_all.subscribe([(names.topic("#"), 0)])
    got = sorted(hash_all.receive_publish().payload for _ in range(4))
    assert got == [b"a/1", b"a/1/deep", b"a/2", b"b/1"]
    hash_all.expect_no_packet(0.3)


def test_retained_visible_from_every_shard(broker, clients, names):
    topic = names.topic("everywhere")
    publisher = clients.raw(names.pub())
    publisher.publish(topic, b"all shards", qos=2, retain=True, packet_id=9)
    for shard in range(4):
        subscriber = clients.raw(names.client(f"s{shard}", shard))
        subscriber.subscribe([(names.topic("+"), 2)])
        received = subscriber.receive_publish()
        assert (received.payload, received.retain, received.qos) == (b"all shards", True, 2)


def test_retained_update_seen_from_every_shard(broker, clients, names):
    topic = names.topic("update")
    publisher = clients.raw(names.pub())
    publisher.publish(topic, b"v1", qos=1, retain=True, packet_id=1)
    publisher.publish(topic, b"v2", qos=1, retain=True, packet_id=2)
    publisher.publish(names.topic("other"), b"", qos=1, retain=True, packet_id=3)
    for shard in range(4):
        subscriber = clients.raw(names.client(f"s{shard}", shard))
        subscriber.subscribe([(names.topic("#"), 1)])
        assert subscriber.receive_publish().payload == b"v2"
        subscriber.expect_no_packet(0.2)


def test_resubscribe_resends_retained(broker, clients, names):
    topic = names.topic("again")
    publisher = clients.raw(names.pub())
    publisher.publish(topic, b"again", retain=True)
    publisher.ping()  # the broker has handled the QoS 0 PUBLISH (no ack to wait for)
    subscriber = clients.raw(names.sub())
    subscriber.subscribe([(topic, 0)], packet_id=1)
    assert subscriber.receive_publish().retain
    subscriber.subscribe([(topic, 1)], packet_id=2)
    received = subscriber.receive_publish()
    assert (received.payload, received.retain, received.qos) == (b"again", True, 0)


def test_retained_with_paho_and_many_topics(broker, clients, names):
    publisher = clients.paho(names.pub())
    for index in range(50):
        publisher.publish(names.topic(f"many/{index}"), b"%d" % index, qos=1, retain=True)
    subscriber = clients.paho(names.sub())
    subscriber.subscribe(names.topic("many/#"), 1)
    messages = subscriber.get_many(50)
    assert all(m.retain for m in messages)
    assert sorted(int(m.payload) for m in messages) == list(range(50))
    subscriber.expect_none(0.2)

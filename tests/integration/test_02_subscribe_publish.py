# 02 subscribe/publish: SUBSCRIBE/SUBACK and UNSUBSCRIBE/UNSUBACK byte for byte, topic
# filter matching (+, #, $-topics), overlapping subscriptions, PINGREQ, fan-out and the
# order of one publisher's messages. The offline/online queue bound is raised so that the
# order tests (which publish faster than paho consumes) measure order, not the bound. Subscribers sit on shard 1 and publishers on shard 2
# so that in the t4 runs every message crosses shards.
import pytest

import helpers
from helpers import subscribe_packet, suback_bytes, unsubscribe_packet, unsuback_bytes

BROKER_OPTIONS = {"max_queued_messages": 10000}


def test_suback_exact_bytes(broker, clients, names):
    client = clients.raw(names.sub())
    client.send(subscribe_packet(0x1234, [(names.topic("q0"), 0), (names.topic("q1"), 1),
                                          (names.topic("q2/#"), 2)]))
    client.expect(suback_bytes(0x1234, [0, 1, 2]))


@pytest.mark.coremq_only("mosquitto disconnects a client that subscribes to an invalid filter")
def test_invalid_filters_get_0x80_and_valid_ones_are_granted(broker, clients, names):
    good_exact, good_wild = names.topic("ok/1"), names.topic("ok2/#")
    subscriber = clients.raw(names.sub())
    subscriber.send(subscribe_packet(9, [(names.topic("a/#/b"), 1), (good_exact, 1),
                                         (names.topic("a+"), 2), (good_wild, 2),
                                         (names.topic("#a"), 0), (names.topic("a/b#"), 0)]))
    subscriber.expect(suback_bytes(9, [0x80, 1, 0x80, 2, 0x80, 0x80]))
    publisher = clients.raw(names.pub())
    publisher.publish(good_exact, b"one", qos=1, packet_id=1)
    publisher.publish(names.topic("ok2/x"), b"two", qos=2, packet_id=2)
    first, second = subscriber.receive_publish(), subscriber.receive_publish()
    assert (first.payload, first.qos, second.payload, second.qos) == (b"one", 1, b"two", 2)


# (filter, topic, matches); both are placed under the test's own topic root.
MATCH_CASES = [
    ("a/b", "a/b", True),
    ("a/b", "a/b/c", False),
    ("a/b", "a/B", False),
    ("a/b", "a/b/", False),
    ("a/+", "a/b", True),
    ("a/+", "a/", True),
    ("a/+", "a/b/c", False),
    ("a/+/c", "a/b/c", True),
    ("a/+/c", "a//c", True),
    ("a/+/c", "a/b/d/c", False),
    ("+/+/+", "a/b/c", True),
    ("a/#", "a", True),
    ("a/#", "a/b/c/d", True),
    ("a/#", "ab/c", False),
    ("a/+/#", "a/b", True),
    ("a/+/#", "a", False),
    ("a/\u00e9/+", "a/\u00e9/\u4e2d", True),
]


@pytest.mark.parametrize("topic_filter,topic,matches", MATCH_CASES)
def test_topic_filter_matching(broker, clients, names, topic_filter, topic, matches):
    subscriber = clients.paho(names.sub())
    subscriber.subscribe([(names.topic(topic_filter), 0), (names.topic("marker"), 0)])
    publisher = clients.paho(names.pub())
    publisher.publish(names.topic(topic), b"probe")
    # One publisher's messages arrive in order: once the marker is in, so is the probe.
    publisher.publish(names.topic("marker"), b"marker")
    received = [m.topic for m in subscriber.get_many(2 if matches else 1)]
    assert received == ([names.topic(topic)] if matches else []) + [names.topic("marker")]
    subscriber.expect_none(0.1)


def test_single_level_wildcard_alone_and_leading_empty_level(broker, clients, names):
    root = names.topic()
    subscriber = clients.paho(names.sub())
    subscriber.subscribe([(f"+/{root}/x", 0), (f"{root}/+", 0)])
    publisher = clients.paho(names.pub())
    publisher.publish(f"/{root}/x", b"leading empty level")   # "" matches '+'
    publisher.publish(f"{root}/done", b"marker")
    assert [m.payload for m in subscriber.get_many(2)] == [b"leading empty level", b"marker"]


def test_dollar_topics_not_matched_by_leading_wildcards(broker, clients, names):
    dollar_topic = f"$it{names.tag}/x"
    plain_marker = names.topic("marker")
    wildcard = clients.paho(names.sub("wild"))
    wildcard.subscribe([("#", 0), ("+/x", 0), (f"+/{names.tag}/+", 0)])
    explicit = clients.paho(names.sub("explicit"))
    explicit.subscribe([(f"$it{names.tag}/#", 0), (f"$it{names.tag}/+", 0)])
    publisher = clients.paho(names.pub())
    publisher.publish(dollar_topic, b"dollar", qos=1)
    publisher.publish(plain_marker, b"marker", qos=1)
    seen = []
    while True:
        message = wildcard.get()
        seen.append(message.topic)
        if message.topic == plain_marker:
            break
    assert not [topic for topic in seen if topic.startswith("$")], seen
    # A filter that starts with the $ level itself does match, once per message.
    assert explicit.get().payload == b"dollar"
    explicit.expect_none(0.2)


def test_qos0_publish_reaches_subscriber(broker, clients, names):
    topic = names.topic("qos0")
    subscriber = clients.paho(names.sub())
    assert subscriber.subscribe(topic, 0) == [0]
    publisher = clients.paho(names.pub())
    publisher.publish(topic, b"hello")
    message = subscriber.get()
    assert (message.topic, message.payload, message.qos, message.retain) == (
        topic, b"hello", 0, False)


def test_publish_to_own_subscription(broker, clients, names):
    topic = names.topic("self")
    client = clients.paho(names.sub())
    client.subscribe(topic, 1)
    client.publish(topic, b"echo", qos=1)
    assert client.get().payload == b"echo"


def test_unsubscribe_stops_delivery(broker, clients, names):
    topic, marker = names.topic("gone"), names.topic("marker")
    subscriber = clients.raw(names.sub())
    assert subscriber.subscribe([(topic, 1), (marker, 1)]) == [1, 1]
    subscriber.send(unsubscribe_packet(0x0102, [topic]))
    subscriber.expect(unsuback_bytes(0x0102))
    publisher = clients.raw(names.pub())
    publisher.publish(topic, b"not delivered", qos=1, packet_id=1)
    publisher.publish(marker, b"marker", qos=1, packet_id=2)
    assert subscriber.receive_publish().payload == b"marker"
    subscriber.expect_no_packet(0.2)


def test_unsubscribe_unknown_and_several_filters(broker, clients, names):
    subscriber = clients.raw(names.sub())
    subscriber.subscribe([(names.topic("a"), 0)])
    subscriber.send(unsubscribe_packet(7, [names.topic("never"), names.topic("a"), "x/#"]))
    subscriber.expect(unsuback_bytes(7))
    subscriber.ping()


def test_unsubscribe_with_wildcard_filter_is_literal(broker, clients, names):
    # Unsubscribing "root/+" removes that exact filter only, not "root/a".
    subscriber = clients.raw(names.sub())
    subscriber.subscribe([(names.topic("a"), 0), (names.topic("+"), 0)])
    subscriber.send(unsubscribe_packet(8, [names.topic("+")]))
    subscriber.expect(unsuback_bytes(8))
    publisher = clients.raw(names.pub())
    publisher.publish(names.topic("a"), b"exact")
    publisher.publish(names.topic("b"), b"was wildcard")
    assert subscriber.receive_publish().payload == b"exact"
    subscriber.expect_no_packet(0.3)


def test_pingreq_gets_pingresp(broker, clients, names):
    client = clients.raw(names.sub())
    for _ in range(3):
        client.send(helpers.PINGREQ_BYTES)
        client.expect(helpers.PINGRESP_BYTES)


@pytest.mark.coremq_only("mosquitto 2.0.11 sends one copy at the QoS of some matching "
                         "subscription, not the highest (MQTT-3.3.5-1)")
def test_overlapping_subscriptions_deliver_once_at_highest_qos(broker, clients, names):
    topic = names.topic("x/y")
    subscriber = clients.raw(names.sub())
    assert subscriber.subscribe([(names.topic("x/#"), 0), (names.topic("+/y"), 2),
                                 (names.topic("#"), 1), (topic, 0)]) == [0, 2, 1, 0]
    subscriber.subscribe([(names.topic("marker"), 0)], packet_id=2)
    publisher = clients.raw(names.pub())
    publisher.publish(topic, b"once", qos=2, packet_id=3)
    publisher.publish(names.topic("marker"), b"marker")
    copies = []
    while True:
        received = subscriber.receive_publish()
        if received.payload == b"marker":
            break
        copies.append(received)
    # 3.1.1 section 3.3.5 would allow one extra copy per matching subscription; coremq
    # promises exactly one.
    assert [c.qos for c in copies] == [2], copies


def test_resubscribe_replaces_qos(broker, clients, names):
    topic = names.topic("re")
    subscriber = clients.raw(names.sub())
    assert subscriber.subscribe([(topic, 2)], packet_id=1) == [2]
    assert subscriber.subscribe([(topic, 0)], packet_id=2) == [0]
    publisher = clients.raw(names.pub())
    publisher.publish(topic, b"downgraded", qos=2, packet_id=1)
    received = subscriber.receive_publish()
    assert (received.qos, received.payload) == (0, b"downgraded")
    subscriber.expect_no_packet(0.3)


def test_fan_out_to_subscribers_on_every_shard(broker, clients, names):
    topic = names.topic("fan")
    subscribers = []
    for shard in range(8):
        subscriber = clients.paho(names.client(f"fan{shard}", shard))
        subscriber.subscribe(topic, shard % 3)
        subscribers.append(subscriber)
    publisher = clients.paho(names.pub())
    for index in range(20):
        publisher.publish(topic, b"%d" % index, qos=2, wait=False)
    for shard, subscriber in enumerate(subscribers):
        messages = subscriber.get_many(20)
        assert [m.payload for m in messages] == [b"%d" % i for i in range(20)]
        assert {m.qos for m in messages} == {shard % 3}


def test_payloads_empty_binary_and_large_are_intact(broker, clients, names):
    topic = names.topic("payload")
    subscriber = clients.paho(names.sub())
    subscriber.subscribe(topic, 1)
    publisher = clients.paho(names.pub())
    payloads = [b"", bytes(range(256)), bytes(i * 7 % 251 for i in range(200000))]
    for payload in payloads:
        publisher.publish(topic, payload, qos=1)
    assert [m.payload for m in subscriber.get_many(3)] == payloads


def test_topic_with_multibyte_utf8_delivered_exactly(broker, clients, names):
    topic = names.topic("\u00fcber/\u4e2d\u6587/\U0001F600")
    subscriber = clients.raw(names.sub())
    subscriber.subscribe([(topic, 0)])
    publisher = clients.raw(names.pub())
    publisher.publish(topic, b"utf8")
    received = subscriber.receive_publish()
    assert received.raw == helpers.publish_packet(topic, b"utf8")


def test_one_publisher_order_preserved_across_shards(broker, clients, names):
    count = 2000
    topic = names.topic("order")
    subscriber = clients.paho(names.sub())
    subscriber.subscribe(topic, 1)
    publisher = clients.paho(names.pub())
    infos = [publisher.publish(topic, b"%d" % index, qos=1, wait=False) for index in range(count)]
    messages = subscriber.get_many(count, timeout=20)
    assert [int(m.payload) for m in messages] == list(range(count))
    assert helpers.wait_until(lambda: all(info.is_published() for info in infos))
    subscriber.expect_none(0.2)


def test_several_publishers_each_keep_their_order(broker, clients, names):
    topic = names.topic("order/+")
    subscriber = clients.paho(names.sub())
    subscriber.subscribe(topic, 2)
    publishers = [clients.paho(names.client(f"pub{shard}", shard)) for shard in range(4)]
    for index in range(100):
        for number, publisher in enumerate(publishers):
            publisher.publish(names.topic(f"order/{number}"), b"%d" % index, qos=1, wait=False)
    messages = subscriber.get_many(400, timeout=30)
    for number in range(4):
        mine = [int(m.payload) for m in messages if m.topic == names.topic(f"order/{number}")]
        assert mine == list(range(100))

# 38 large payloads: a payload of at least --payload-reference-min bytes goes to a plain-TCP
# subscriber straight from its message (one gathered sendmsg of headers and payloads), and a
# large PUBLISH assembled from many receive buffers becomes its message without another copy.
# Whatever the path, a client must get every byte of every payload, in order, with the small
# messages between them: to subscribers on both sides of a shard boundary, to one that reads
# so slowly the broker's sends come back short, to an MQTT 5 client, and from a retained
# message. /metrics shows the by-reference and in-place paths were taken (so these tests fail
# without them), and not with --payload-reference-min=0. io_uring completes a TCP send only once
# all of it went (it retries a partial one itself), so a subscriber that does not read makes the
# broker's sends wait in the kernel; a short completion (an interrupted send) is not something a
# client can cause on demand, and its handling is checked by review.
import random

import pytest

from helpers import publish_packet
from helpers_http import metric, metrics
from helpers_v5 import (CONTENT_TYPE, SUBSCRIPTION_IDENTIFIER, TOPIC_ALIAS_MAXIMUM, USER_PROPERTY, raw5,
                        subscription_options)

pytestmark = pytest.mark.coremq_only("--payload-reference-min and its counters are coremq's")

# Around the default threshold (1024) and well past a receive buffer (2 KiB) and a socket
# buffer: the big ones arrive in many reads and leave in many short sends.
SIZES = [10, 1023, 1024, 5000, 100, 70000, 64, 300000, 2048, 1]


def payload_of(index: int, size: int) -> bytes:
    """Distinct bytes per message, so a payload shifted, cut or swapped shows."""
    return random.Random(index).randbytes(size)


def counter(broker, name: str) -> float:
    return metric(metrics(broker), f"coremq_{name}_total")


@pytest.mark.parametrize("qos", [0, 1])
def test_large_and_small_payloads_arrive_whole_and_in_order(start_broker, clients, names, qos):
    broker = start_broker(http_listener=":0")
    topic = names.topic("mixed")
    # One subscriber on the publisher's shard, one on another (at --threads=4).
    subscribers = [clients.raw(names.client("near", 2), broker=broker),
                   clients.raw(names.client("far", 1), broker=broker)]
    for subscriber in subscribers:
        subscriber.subscribe([(topic, qos)])
    publisher = clients.raw(names.pub(), broker=broker)
    messages = [payload_of(index, SIZES[index % len(SIZES)]) for index in range(40)]
    # In one write: PUBLISHes back to back, the large ones straddling receive buffers.
    publisher.send(b"".join(publish_packet(topic, payload, qos=qos, packet_id=index + 1 if qos else None)
                            for index, payload in enumerate(messages)))
    for subscriber in subscribers:
        received = [subscriber.receive_publish(timeout=20).payload for _ in messages]
        assert [len(payload) for payload in received] == [len(payload) for payload in messages]
        assert received == messages
        subscriber.expect_no_packet(0.2)
    # 2 subscribers x 20 payloads of >= 1024 bytes each went by reference.
    assert counter(broker, "payloads_sent_by_reference") >= 40
    assert counter(broker, "payloads_received_in_place") > 0


def test_a_subscriber_that_reads_slowly_gets_every_byte(start_broker, clients, names):
    # A small socket buffer and a subscriber that reads only once everything is staged: the
    # broker's gathered sends wait in the kernel while more is staged behind them.
    broker = start_broker(http_listener=":0")
    topic = names.topic("slow")
    subscriber = clients.raw(names.sub(), broker=broker, receive_buffer_bytes=4096)
    subscriber.subscribe([(topic, 0)])
    publisher = clients.raw(names.pub(), broker=broker)
    messages = [payload_of(1000 + index, 200_000 if index % 3 else 300) for index in range(30)]
    for payload in messages:
        publisher.send(publish_packet(topic, payload))
    publisher.ping()  # every PUBLISH before the PINGREQ was handled, so all of it is staged
    received = [subscriber.receive_publish(timeout=30).payload for _ in messages]
    assert received == messages
    assert counter(broker, "payloads_sent_by_reference") >= 20
    assert metric(metrics(broker), "coremq_messages_dropped_total", reason="slow_consumer") == 0


def test_mqtt5_subscribers_get_properties_alias_and_payload(start_broker, clients, names):
    # MQTT 5 headers differ per subscriber (topic alias, subscription identifier) while the
    # payload is the one message's bytes for both.
    broker = start_broker(http_listener=":0")
    topic = names.topic("v5")
    subscribers = []
    for index, label in enumerate(("alias", "plain")):
        alias_maximum = [(TOPIC_ALIAS_MAXIMUM, 10)] if label == "alias" else None
        subscriber = raw5(clients, names.client(label, 1), broker=broker, properties=alias_maximum)
        subscriber.subscribe5([(topic, subscription_options(qos=1))],
                              properties=[(SUBSCRIPTION_IDENTIFIER, index + 1)])
        subscribers.append(subscriber)
    publisher = raw5(clients, names.pub(), broker=broker)
    payloads = [payload_of(70 + index, 250_000) for index in range(3)]
    for payload in payloads:
        publisher.publish5(topic, payload, qos=1, properties=[(CONTENT_TYPE, "application/octet-stream"),
                                                              (USER_PROPERTY, ("part", "one"))])
    for index, subscriber in enumerate(subscribers):
        for payload in payloads:
            received = subscriber.receive_publish5(timeout=20)
            assert received.payload == payload
            assert received.user_properties == [("part", "one")]
            assert received.properties.get(CONTENT_TYPE) == "application/octet-stream"
            assert received.properties.get(SUBSCRIPTION_IDENTIFIER) == index + 1
    assert counter(broker, "payloads_sent_by_reference") >= 6


def test_retained_large_message_assembled_in_place_survives_the_next_packets(start_broker, clients, names):
    broker = start_broker(http_listener=":0")
    topic = names.topic("retained")
    publisher = clients.raw(names.pub(), broker=broker)
    payload = payload_of(42, 500_000)
    packet = publish_packet(topic, payload, retain=True)
    # In small writes, so the broker assembles it from many reads, then a small PUBLISH that
    # must not land in (or free) the retained message's buffer.
    for start in range(0, len(packet), 1400):
        publisher.send(packet[start:start + 1400])
    publisher.send(publish_packet(names.topic("other"), b"after"))
    publisher.ping()
    assert counter(broker, "payloads_received_in_place") >= 1
    for label in ("first", "second"):
        subscriber = clients.raw(names.client(label, 1), broker=broker)
        subscriber.subscribe([(topic, 0)])
        received = subscriber.receive_publish(timeout=20)
        assert received.retain and received.payload == payload


def test_payload_reference_min_zero_copies_every_payload(start_broker, clients, names):
    broker = start_broker(http_listener=":0", payload_reference_min=0)
    topic = names.topic("copied")
    subscriber = clients.raw(names.sub(), broker=broker)
    subscriber.subscribe([(topic, 0)])
    publisher = clients.raw(names.pub(), broker=broker)
    messages = [payload_of(index, 100_000) for index in range(5)]
    publisher.send(b"".join(publish_packet(topic, payload) for payload in messages))
    assert [subscriber.receive_publish(timeout=20).payload for _ in messages] == messages
    assert counter(broker, "payloads_sent_by_reference") == 0
    assert counter(broker, "payloads_received_in_place") == 0


def test_a_large_payload_staged_behind_a_short_plain_send_keeps_its_place(start_broker, clients, names):
    # Small messages fill the subscriber's socket, so the broker's plain send of them stays in
    # the kernel; large payloads are staged by reference meanwhile and must follow all of it.
    broker = start_broker(http_listener=":0")
    topic = names.topic("behind")
    subscriber = clients.raw(names.sub(), broker=broker, receive_buffer_bytes=4096)
    subscriber.subscribe([(topic, 0)])
    publisher = clients.raw(names.pub(), broker=broker)
    small = [payload_of(5000 + index, 300) for index in range(20000)]
    publisher.send(b"".join(publish_packet(topic, payload) for payload in small))
    publisher.ping()
    large = [payload_of(6000 + index, 100_000) for index in range(5)]
    publisher.send(b"".join(publish_packet(topic, payload) for payload in large))
    publisher.ping()
    received = [subscriber.receive_publish(timeout=60).payload for _ in small + large]
    assert received == small + large
    assert counter(broker, "payloads_sent_by_reference") >= 5

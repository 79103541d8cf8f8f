# 55 v5 flow control: the broker never has more QoS 1/2 PUBLISH packets unacknowledged at a
# client than the client's Receive Maximum and keeps answering other packets meanwhile; a
# client that exceeds the broker's Receive Maximum is disconnected with 0x93; a message
# larger than the client's Maximum Packet Size is not sent to it (MQTT 5.0 3.3.4, 4.9,
# 3.1.2.11.4).
import pytest

from helpers_v5 import module_broker, start_broker  # noqa: F401 (fixtures)
from helpers_v5 import (MAXIMUM_PACKET_SIZE, PUBACK, PUBCOMP, PUBREC, PUBREL,
                        RECEIVE_MAXIMUM, RECEIVE_MAXIMUM_EXCEEDED, Ack, ack5, publish5, raw5)


def slow_subscriber(clients, names, topic, qos, receive_maximum=2):
    client = raw5(clients, names.sub(), properties=[(RECEIVE_MAXIMUM, receive_maximum)])
    client.subscribe5([(topic, qos)])
    return client


def test_receive_maximum_holds_back_qos1(broker, clients, names):
    topic = names.topic()
    subscriber = slow_subscriber(clients, names, topic, 1)
    publisher = raw5(clients, names.pub())
    for index in range(6):
        publisher.publish5(topic, f"m{index}".encode(), qos=1)
    held = [subscriber.receive_publish5(acknowledge=False) for _ in range(2)]
    assert [item.payload for item in held] == [b"m0", b"m1"]
    subscriber.expect_no_packet(0.5)
    # Packets other than PUBLISH are not held back by a full quota [MQTT-3.3.4-10].
    subscriber.ping()
    assert subscriber.subscribe5([(names.topic("other"), 0)]).reason_codes == [0]
    for item in held:
        subscriber.send(ack5(PUBACK, item.packet_id))
    assert [subscriber.receive_publish5().payload for _ in range(4)] == [
        b"m2", b"m3", b"m4", b"m5"]
    subscriber.expect_no_packet(0.2)


@pytest.mark.coremq_only("mosquitto 2.0.11 answers the first PUBACK after a full quota with "
                         "two PUBLISH packets, one more than the Receive Maximum")
def test_receive_maximum_one_publish_per_ack(broker, clients, names):
    topic = names.topic()
    subscriber = slow_subscriber(clients, names, topic, 1)
    publisher = raw5(clients, names.pub())
    for index in range(5):
        publisher.publish5(topic, f"m{index}".encode(), qos=1)
    held = [subscriber.receive_publish5(acknowledge=False) for _ in range(2)]
    subscriber.expect_no_packet(0.3)
    for index in range(3):
        subscriber.send(ack5(PUBACK, held[0].packet_id))
        following = subscriber.receive_publish5(acknowledge=False)
        assert following.payload == f"m{index + 2}".encode()
        subscriber.expect_no_packet(0.3)
        held = [held[1], following]


def test_receive_maximum_counts_qos2_until_pubcomp(broker, clients, names):
    topic = names.topic()
    subscriber = slow_subscriber(clients, names, topic, 2, receive_maximum=1)
    publisher = raw5(clients, names.pub())
    for index in range(3):
        publisher.publish5(topic, f"m{index}".encode(), qos=2)
    first = subscriber.receive_publish5(acknowledge=False)
    subscriber.send(ack5(PUBREC, first.packet_id))
    pubrel = Ack(subscriber.receive(packet_type=PUBREL))
    assert pubrel.packet_id == first.packet_id
    subscriber.expect_no_packet(0.4)                  # PUBREC alone does not free the slot
    subscriber.send(ack5(PUBCOMP, first.packet_id))
    assert subscriber.receive_publish5().payload == b"m1"
    assert subscriber.receive_publish5().payload == b"m2"


def test_receive_maximum_with_many_publishers(broker, clients, names):
    """Publishers on every shard; the client's quota of 3 still holds across them."""
    topic = names.topic()
    subscriber = slow_subscriber(clients, names, topic, 1, receive_maximum=3)
    for shard in range(4):
        raw5(clients, names.client(f"pub{shard}", shard)).publish5(topic, b"%d" % shard, qos=1)
    held = [subscriber.receive_publish5(acknowledge=False) for _ in range(3)]
    subscriber.expect_no_packet(0.5)
    for item in held:
        subscriber.send(ack5(PUBACK, item.packet_id))
    last = subscriber.receive_publish5()
    assert sorted([item.payload for item in held] + [last.payload]) == [b"0", b"1", b"2", b"3"]


@pytest.mark.coremq_only("mosquitto 2.0.11 accepts more QoS 2 PUBLISH packets than its "
                         "Receive Maximum")
def test_client_exceeding_receive_maximum_disconnected(start_broker, clients, names):
    broker = start_broker(receive_maximum=2)
    client = raw5(clients, names.pub(), broker=broker)
    assert client.connack.properties.get(RECEIVE_MAXIMUM) == 2
    # QoS 2 PUBLISH packets stay unacknowledged until PUBREL; the third is one too many.
    for packet_id in (1, 2, 3):
        client.send(publish5(names.topic(), b"x", qos=2, packet_id=packet_id))
    client.expect_disconnect(RECEIVE_MAXIMUM_EXCEEDED)


def test_message_over_client_maximum_packet_size_skipped(broker, clients, names):
    topic = names.topic()
    small = raw5(clients, names.client("small", 1), properties=[(MAXIMUM_PACKET_SIZE, 256)])
    small.subscribe5([(topic, 1)])
    large = raw5(clients, names.client("large", 3))
    large.subscribe5([(topic, 1)])
    publisher = raw5(clients, names.pub())
    publisher.publish5(topic, b"L" * 1000, qos=1)
    publisher.publish5(topic, b"fits", qos=1)
    assert small.receive_publish5().payload == b"fits"   # the large one was skipped
    assert [large.receive_publish5().payload for _ in range(2)] == [b"L" * 1000, b"fits"]
    small.expect_no_packet(0.2)


def test_maximum_packet_size_counts_properties(broker, clients, names):
    """The limit is on the whole packet, properties included: a payload that fits alone but
    not with its user properties is not sent [MQTT-3.1.2-24]."""
    topic = names.topic()
    limit = 200
    small = raw5(clients, names.sub(), properties=[(MAXIMUM_PACKET_SIZE, limit)])
    small.subscribe5([(topic, 0)])
    publisher = raw5(clients, names.pub())
    payload = b"p" * (limit - 40 - len(topic))
    publisher.publish5(topic, payload, properties=[(0x26, ("k" * 30, "v" * 30))])
    publisher.publish5(topic, payload)
    received = small.receive_publish5()
    assert received.payload == payload and received.user_properties == []
    assert len(received.raw) <= limit
    small.expect_no_packet(0.2)

# 09 limits: --max-packet-size closes a connection that sends a larger packet,
# --max-connections closes connections past the bound at once while the others keep
# working, and --max-client-output-bytes keeps a client that does not read from holding
# the broker's memory. (--max-inflight is in 03, --max-queued-messages in 05.)
import time

import pytest

import helpers
from helpers import encode_remaining_length, encode_string, publish_packet

PACKET_SIZE_MAX = 4096
BROKER_OPTIONS = {"max_packet_size": PACKET_SIZE_MAX}


def publish_of_total_size(topic, total_bytes):
    """A QoS 0 PUBLISH whose every byte, fixed header included, adds up to total_bytes."""
    variable = encode_string(topic)
    for header_length in (2, 3, 4):
        body_length = total_bytes - header_length
        if 1 + len(encode_remaining_length(body_length)) == header_length:
            result = publish_packet(topic, b"p" * (body_length - len(variable)))
            assert len(result) == total_bytes
            return result
    raise AssertionError("no such packet size")


def test_packet_over_max_size_closes_connection(broker, clients, names):
    topic = names.topic("big")
    subscriber = clients.raw(names.sub())
    subscriber.subscribe([(topic, 0)])
    big = clients.raw(names.pub("big"))
    big.send(publish_packet(topic, b"x" * (2 * PACKET_SIZE_MAX)))
    big.expect_closed()
    small = clients.raw(names.pub("small"))
    small.publish(topic, b"y" * (PACKET_SIZE_MAX // 2))
    assert subscriber.receive_publish().payload == b"y" * (PACKET_SIZE_MAX // 2)
    subscriber.expect_no_packet(0.2)


def test_subscribe_over_max_size_closes_connection(broker, clients, names):
    client = clients.raw(names.sub())
    filters = [(names.topic(f"f{index:04d}"), 0) for index in range(400)]
    client.send(helpers.subscribe_packet(1, filters))
    assert all(p.type != helpers.SUBACK for p in client.expect_closed())


@pytest.mark.coremq_only("mosquitto counts remaining length + 1, not the whole packet")
def test_max_packet_size_counts_the_whole_packet(broker, clients, names):
    topic = names.topic("edge")
    subscriber = clients.raw(names.sub())
    subscriber.subscribe([(topic, 0)])
    publisher = clients.raw(names.pub())
    exact = publish_of_total_size(topic, PACKET_SIZE_MAX)
    publisher.send(exact)
    assert subscriber.receive_publish().raw == exact
    publisher.send(publish_of_total_size(topic, PACKET_SIZE_MAX + 1))
    publisher.expect_closed()
    subscriber.expect_no_packet(0.2)


def test_max_connections(start_broker, clients, names):
    connections_max = 4
    broker = start_broker(max_connections=connections_max)
    topic = names.topic("limit")
    subscriber = clients.raw(names.sub(), broker=broker)
    subscriber.subscribe([(topic, 1)])
    publisher = clients.raw(names.pub(), broker=broker)
    others = [clients.raw(names.client(f"c{index}", index), broker=broker)
              for index in range(connections_max - 2)]
    # Past the bound, each new connection (whichever shard accepts it) is closed at once.
    for index in range(6):
        extra = clients.raw(broker=broker)
        extra.send(helpers.connect_packet(names.client(f"extra{index}", index)))
        packets = extra.expect_closed(timeout=3)
        assert all(p.raw != helpers.connack_bytes(0, 0) for p in packets), packets
    publisher.publish(topic, b"still served", qos=1, packet_id=1)
    assert subscriber.receive_publish().payload == b"still served"
    for other in others:
        other.ping()
    # A freed slot can be used again.
    others[0].disconnect()

    def a_new_connection_is_accepted():
        candidate = clients.raw(broker=broker)
        candidate.send(helpers.connect_packet(names.client("late", 0)))
        try:
            return candidate.receive(timeout=1).raw == helpers.connack_bytes(0, 0)
        except AssertionError:
            return False

    assert helpers.wait_until(a_new_connection_is_accepted, timeout=5, interval=0.2)


@pytest.mark.coremq_only("mosquitto has no per-connection output bound flag")
def test_slow_consumer_does_not_stall_others(start_broker, clients, names):
    # Room for several batches: a fast subscriber whose reading thread is descheduled for a
    # moment on a loaded machine must not be taken for a slow one (its QoS 0 would drop).
    output_max = 262144
    broker = start_broker(max_client_output_bytes=output_max, max_queued_messages=100)
    topic = names.topic("flood")
    # A subscriber that never reads, with a tiny socket buffer.
    slow = clients.raw(names.sub("slow"), broker=broker, receive_buffer_bytes=4096)
    slow.subscribe([(topic, 0)])
    fast = clients.paho(names.client("fast", 3), broker=broker)
    fast.subscribe(topic, 0)
    publisher = clients.raw(names.pub(), broker=broker)
    payload = b"z" * 1000
    count, batch = 12000, 40                 # 12 MB: more than any socket buffers hold
    # Batches smaller than the output bound, each read by the fast subscriber before the
    # next is sent: only the subscriber that does not read can fall behind.
    for start in range(0, count, batch):
        publisher.send(b"".join(publish_packet(topic, payload) for _ in range(batch)))
        assert len(fast.get_many(batch, timeout=10)) == batch
    # The slow one got less than everything: dropped QoS 0 messages, or was closed.
    slow_total = 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            slow.receive(timeout=0.5)
            slow_total += 1
        except AssertionError:
            break
    assert slow_total < count
    publisher.ping()

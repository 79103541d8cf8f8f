# 15 cross-shard promises: what a SUBACK and the PUBACK of a retained PUBLISH promise holds
# across shards. A client that has its SUBACK gets every message published afterwards on any
# shard; a retained message acknowledged to its publisher is sent to any SUBSCRIBE made after
# that on any shard. The subscriber and the publisher live on different shards (on --threads=4);
# a flood of forwarded messages sent just before the SUBSCRIBE (or the retained PUBLISH) in the
# same TCP segment fills the small cross-shard ring, so the interest or retained update is
# still staged on the sending shard when the answer would have gone out without a barrier.
#
# Each round synchronises on round trips only: a miss shows as a PINGRESP arriving where the
# PUBLISH should have come first (the shard drains its peers' items before its sockets, and a
# message forwarded before the publisher's PUBACK is in the subscriber shard's ring before the
# subscriber's PINGREQ is read).
import helpers
from helpers import PINGREQ_BYTES, PUBLISH, publish_packet, puback_bytes, subscribe_packet

# The smallest ring the flag allows: a few dozen forwarded messages fill it.
BROKER_OPTIONS = {"cross_shard_queue_capacity": 64}
ROUNDS = 200
FLOOD_MESSAGES = 150


def flood_bytes(topic: str) -> bytes:
    return b"".join(publish_packet(topic, b"f") for _ in range(FLOOD_MESSAGES))


def publish_or_pingresp(client) -> bool:
    """PINGREQ; True if a PUBLISH came before the PINGRESP."""
    client.send(PINGREQ_BYTES)
    packet = client.receive()
    if packet.type == PUBLISH:
        client.receive(packet_type=helpers.PINGRESP)
        return True
    assert packet.raw == helpers.PINGRESP_BYTES, packet
    return False


def flood_sink(clients, names, shard):
    """A subscriber of the flood topic on the publisher's shard, which never reads: the flood
    is forwarded there (QoS 0 past its output bound is dropped, as for any slow reader)."""
    sink = clients.raw(names.client("sink", shard))
    sink.subscribe([(names.topic("flood/#"), 0)])
    return sink


def test_message_published_elsewhere_right_after_suback_arrives(broker, clients, names, threads):
    subscriber = clients.raw(names.sub())
    publisher = clients.raw(names.pub())
    flood_sink(clients, names, 2)
    flood = flood_bytes(names.topic("flood/x"))
    missed = []
    for round_number in range(ROUNDS):
        topic = names.topic(f"s{round_number}")
        packet_id = round_number % 60000 + 1
        # The flood goes out from the subscriber's shard ahead of the interest-add.
        subscriber.send(flood + subscribe_packet(packet_id, [(topic, 0)]))
        suback = subscriber.receive(packet_type=helpers.SUBACK)
        assert suback.packet_id == packet_id
        publisher.send(publish_packet(topic, b"m", qos=1, packet_id=packet_id))
        publisher.expect(puback_bytes(packet_id))
        if not publish_or_pingresp(subscriber):
            missed.append(round_number)
    assert not missed, f"{len(missed)} of {ROUNDS} rounds missed the message published after the SUBACK"


def test_retained_acknowledged_elsewhere_is_sent_to_a_later_subscribe(broker, clients, names, threads):
    publisher = clients.raw(names.pub())
    subscriber = clients.raw(names.sub())
    flood_sink(clients, names, 1)
    flood = flood_bytes(names.topic("flood/x"))
    missed = []
    for round_number in range(ROUNDS):
        topic = names.topic(f"r{round_number}")
        packet_id = round_number % 60000 + 1
        # The flood goes out from the publisher's shard ahead of the retained update.
        publisher.send(flood + publish_packet(topic, b"kept", qos=1, retain=True, packet_id=packet_id))
        publisher.expect(puback_bytes(packet_id))
        subscriber.send(subscribe_packet(packet_id, [(topic, 0)]))
        suback = subscriber.receive(packet_type=helpers.SUBACK)
        assert suback.packet_id == packet_id
        if not publish_or_pingresp(subscriber):
            missed.append(round_number)
    assert not missed, f"{len(missed)} of {ROUNDS} rounds did not get the acknowledged retained message"


def test_plain_subscribe_then_publish_elsewhere(broker, clients, names, threads):
    """The same promise with nothing else in flight: the common case."""
    subscriber = clients.raw(names.sub())
    publisher = clients.raw(names.pub())
    missed = []
    for round_number in range(ROUNDS):
        topic = names.topic(f"p{round_number}")
        packet_id = round_number % 60000 + 1
        subscriber.send(subscribe_packet(packet_id, [(topic, 0)]))
        subscriber.receive(packet_type=helpers.SUBACK)
        publisher.send(publish_packet(topic, b"m", qos=1, packet_id=packet_id))
        publisher.expect(puback_bytes(packet_id))
        if not publish_or_pingresp(subscriber):
            missed.append(round_number)
    assert not missed, f"{len(missed)} of {ROUNDS} rounds missed the message published after the SUBACK"

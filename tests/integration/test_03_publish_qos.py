# 03 publish QoS: the QoS 1 and QoS 2 flows in both directions byte for byte (PUBACK,
# PUBREC, PUBREL, PUBCOMP), delivery at min(publish QoS, subscription QoS), duplicate
# detection for inbound QoS 2, packet identifiers and the in-flight window.
import pytest

import helpers
from helpers import (publish_packet, puback_bytes, pubcomp_bytes, pubrec_bytes,
                     pubrel_bytes)


def test_qos1_inbound_puback_exact_bytes(broker, clients, names):
    publisher = clients.raw(names.pub())
    publisher.send(publish_packet(names.topic("q1"), b"x", qos=1, packet_id=0x0107))
    publisher.expect(b"\x40\x02\x01\x07")


def test_qos2_inbound_flow_exact_bytes(broker, clients, names):
    publisher = clients.raw(names.pub())
    publisher.send(publish_packet(names.topic("q2"), b"x", qos=2, packet_id=0xFFFF))
    publisher.expect(b"\x50\x02\xff\xff")
    publisher.send(b"\x62\x02\xff\xff")
    publisher.expect(b"\x70\x02\xff\xff")


def test_qos2_inbound_duplicate_is_delivered_once(broker, clients, names):
    topic, marker = names.topic("dup"), names.topic("marker")
    subscriber = clients.raw(names.sub())
    subscriber.subscribe([(topic, 2), (marker, 0)])
    publisher = clients.raw(names.pub())
    publisher.send(publish_packet(topic, b"once", qos=2, packet_id=10))
    publisher.expect(pubrec_bytes(10))
    # The PUBREC "got lost": the client re-sends the same packet id with DUP set.
    publisher.send(publish_packet(topic, b"once", qos=2, packet_id=10, dup=True))
    publisher.expect(pubrec_bytes(10))
    publisher.send(pubrel_bytes(10))
    publisher.expect(pubcomp_bytes(10))
    publisher.send(pubrel_bytes(10))          # a repeated PUBREL is answered again
    publisher.expect(pubcomp_bytes(10))
    publisher.publish(marker, b"marker")
    assert subscriber.receive_publish().payload == b"once"
    assert subscriber.receive_publish().payload == b"marker"
    subscriber.expect_no_packet(0.2)


def test_qos2_packet_id_reusable_after_pubcomp(broker, clients, names):
    topic = names.topic("reuse")
    subscriber = clients.raw(names.sub())
    subscriber.subscribe([(topic, 2)])
    publisher = clients.raw(names.pub())
    publisher.publish(topic, b"first", qos=2, packet_id=3)
    publisher.publish(topic, b"second", qos=2, packet_id=3)
    assert subscriber.receive_publish().payload == b"first"
    assert subscriber.receive_publish().payload == b"second"


def test_pubrel_for_unknown_packet_id_gets_pubcomp(broker, clients, names):
    publisher = clients.raw(names.pub())
    publisher.send(pubrel_bytes(4242))
    publisher.expect(pubcomp_bytes(4242))


def test_several_qos2_in_flight_inbound_interleaved(broker, clients, names):
    topic = names.topic("interleave")
    subscriber = clients.raw(names.sub())
    subscriber.subscribe([(topic, 2)])
    publisher = clients.raw(names.pub())
    for packet_id in (1, 2, 3):
        publisher.send(publish_packet(topic, b"%d" % packet_id, qos=2, packet_id=packet_id))
    for packet_id in (1, 2, 3):
        publisher.expect(pubrec_bytes(packet_id))
    for packet_id in (3, 1, 2):
        publisher.send(pubrel_bytes(packet_id))
        publisher.expect(pubcomp_bytes(packet_id))
    payloads = sorted(subscriber.receive_publish().payload for _ in range(3))
    assert payloads == [b"1", b"2", b"3"]
    subscriber.expect_no_packet(0.2)


def test_qos1_outbound_exact_bytes(broker, clients, names):
    topic = names.topic("out1")
    subscriber = clients.raw(names.sub())
    subscriber.subscribe([(topic, 1)])
    publisher = clients.raw(names.pub())
    publisher.publish(topic, b"payload", qos=1, packet_id=99)
    received = subscriber.receive(packet_type=helpers.PUBLISH)
    assert received.packet_id != 0
    assert received.raw == publish_packet(topic, b"payload", qos=1, packet_id=received.packet_id)
    subscriber.send(puback_bytes(received.packet_id))
    subscriber.expect_no_packet(0.3)   # acknowledged: no resend on a live connection


def test_qos2_outbound_exact_bytes(broker, clients, names):
    topic = names.topic("out2")
    subscriber = clients.raw(names.sub())
    subscriber.subscribe([(topic, 2)])
    publisher = clients.raw(names.pub())
    publisher.publish(topic, b"payload", qos=2, packet_id=98)
    received = subscriber.receive(packet_type=helpers.PUBLISH)
    packet_id = received.packet_id
    assert packet_id != 0
    assert received.raw == publish_packet(topic, b"payload", qos=2, packet_id=packet_id)
    subscriber.send(pubrec_bytes(packet_id))
    subscriber.expect(pubrel_bytes(packet_id))
    subscriber.send(pubcomp_bytes(packet_id))
    subscriber.expect_no_packet(0.3)


@pytest.mark.parametrize("publish_qos", [0, 1, 2])
@pytest.mark.parametrize("subscribe_qos", [0, 1, 2])
def test_delivered_at_minimum_qos(broker, clients, names, publish_qos, subscribe_qos):
    topic = names.topic("min")
    subscriber = clients.raw(names.sub())
    assert subscriber.subscribe([(topic, subscribe_qos)]) == [subscribe_qos]
    publisher = clients.raw(names.pub())
    publisher.publish(topic, b"m", qos=publish_qos, packet_id=11)
    received = subscriber.receive_publish()
    assert received.qos == min(publish_qos, subscribe_qos)
    assert received.payload == b"m" and not received.retain and not received.dup
    if received.qos == 0:
        assert received.raw == publish_packet(topic, b"m")


def test_outbound_packet_ids_distinct_while_unacknowledged(broker, clients, names):
    topic = names.topic("ids")
    subscriber = clients.raw(names.sub())
    subscriber.subscribe([(topic, 2)])
    publisher = clients.paho(names.pub())
    for index in range(10):
        publisher.publish(topic, b"%d" % index, qos=1 + index % 2)
    received = [subscriber.receive_publish(acknowledge=False) for _ in range(10)]
    packet_ids = [p.packet_id for p in received]
    assert 0 not in packet_ids and len(set(packet_ids)) == 10, packet_ids
    assert [p.payload for p in received] == [b"%d" % i for i in range(10)]
    # Acknowledge in reverse order; the broker accepts any order.
    for packet in reversed(received):
        if packet.qos == 1:
            subscriber.send(puback_bytes(packet.packet_id))
        else:
            subscriber.send(pubrec_bytes(packet.packet_id))
            subscriber.expect(pubrel_bytes(packet.packet_id))
            subscriber.send(pubcomp_bytes(packet.packet_id))
    subscriber.ping()
    subscriber.expect_no_packet(0.2)


def test_inflight_window_bounds_unacknowledged_messages(start_broker, clients, names):
    broker = start_broker(max_inflight=3)
    topic = names.topic("window")
    subscriber = clients.raw(names.sub(), broker=broker)
    subscriber.subscribe([(topic, 1)])
    publisher = clients.paho(names.pub(), broker=broker)
    for index in range(10):
        publisher.publish(topic, b"%d" % index, qos=1)
    first = [subscriber.receive_publish(acknowledge=False) for _ in range(3)]
    subscriber.expect_no_packet(0.5)   # the window is full
    received = list(first)
    while len(received) < 10:
        subscriber.send(puback_bytes(received[len(received) - 3].packet_id))
        received.append(subscriber.receive_publish(acknowledge=False))
    for packet in received[-3:]:
        subscriber.send(puback_bytes(packet.packet_id))
    assert [p.payload for p in received] == [b"%d" % i for i in range(10)]
    subscriber.expect_no_packet(0.2)


@pytest.mark.coremq_only("mosquitto 2.0.11 loses the QoS 1 messages queued behind a full "
                         "in-flight window when QoS 2 messages are interleaved")
def test_mixed_qos_stream_keeps_order_per_qos(broker, clients, names):
    topic = names.topic("mixed")
    subscriber = clients.paho(names.sub())
    subscriber.subscribe(topic, 2)
    # A raw publisher puts all 300 on the wire first, in a known order, then finishes
    # every acknowledgement flow.
    publisher = clients.raw(names.pub())
    publisher.send(b"".join(publish_packet(topic, b"%d" % i, qos=i % 3, packet_id=i + 1)
                            for i in range(300)))
    for index in range(300):
        if index % 3 == 1:
            publisher.expect(puback_bytes(index + 1))
        elif index % 3 == 2:
            publisher.expect(pubrec_bytes(index + 1))
            publisher.send(pubrel_bytes(index + 1))
            publisher.expect(pubcomp_bytes(index + 1))
    messages = subscriber.get_many(300, timeout=20)
    # A QoS 2 message may be forwarded only once its PUBREL arrives, so order is kept
    # within each QoS level, not across levels.
    for qos in range(3):
        assert [int(m.payload) for m in messages if m.qos == qos] == list(range(qos, 300, 3))
    subscriber.expect_none(0.1)

# 13 protocol rules (MQTT 3.1 and 3.1.1) found missing by review (issue 8): --max-keepalive
# refuses a longer keep-alive with CONNACK 0x02 as mosquitto does, MQTT 3.1 never gets Session
# Present, an acknowledgement of the wrong kind closes the connection, and topics deeper than
# --max-topic-levels are refused. (The MQTT 5 side is in 63.)
import os
import subprocess

import pytest

import conftest
from conftest import skip_on_mosquitto
from helpers import (CONNACK, PUBCOMP, PUBREC, connack_bytes, connect_packet, publish_packet,
                     pubrec_bytes, suback_bytes, subscribe_packet)

IDENTIFIER_REJECTED = 0x02


def test_keepalive_over_max_keepalive_is_refused(start_broker, clients, names):
    broker = start_broker(max_keepalive=30)
    for index, keepalive in enumerate((31, 65535, 0)):
        client = clients.raw(broker=broker)
        client.send(connect_packet(names.client(f"ka{keepalive}", index), keepalive=keepalive))
        client.expect(connack_bytes(0, IDENTIFIER_REJECTED))
        assert client.expect_closed() == []
    within = clients.raw(names.client("within", 3), broker=broker, keepalive=30)
    within.ping()


def test_keepalive_zero_is_allowed_without_a_cap(broker, clients, names):
    skip_on_mosquitto("mosquitto 2.0.12+ refuses keep-alive 0 even at its default max_keepalive")
    clients.raw(names.sub(), keepalive=0).ping()


def test_mqtt31_never_gets_session_present(broker, clients, names):
    client_id = names.sub()[:23]
    topic = names.topic()
    first = clients.raw()
    first.send(connect_packet(client_id, clean_session=False, protocol_name=b"MQIsdp",
                              protocol_level=3))
    first.expect(connack_bytes(0, 0))
    assert first.subscribe([(topic, 1)]) == [1]
    first.disconnect()
    clients.raw(names.pub()).publish(topic, b"queued", qos=1)
    again = clients.raw()
    again.send(connect_packet(client_id, clean_session=False, protocol_name=b"MQIsdp",
                              protocol_level=3))
    connack = again.receive(packet_type=CONNACK)
    assert connack.raw == connack_bytes(0, 0), connack  # 3.1: the byte is reserved
    assert again.receive_publish().payload == b"queued"  # and yet the session was resumed


def test_pubrec_or_pubcomp_for_a_qos1_message_closes(broker, clients, names):
    topic = names.topic()
    publisher = clients.raw(names.pub())
    for index, wrong in enumerate((PUBREC, PUBCOMP)):
        subscriber = clients.raw(names.client(f"sub{index}", index))
        assert subscriber.subscribe([(topic, 2)]) == [2]
        publisher.publish(topic, b"q1", qos=1, packet_id=index + 1)
        received = subscriber.receive_publish(acknowledge=False)
        assert received.qos == 1
        subscriber.send(bytes([wrong << 4, 0x02]) + received.packet_id.to_bytes(2, "big"))
        assert subscriber.expect_closed() == [], "no PUBREL (nor anything) for a QoS 1 message"
        subscriber.close()


def test_puback_for_a_qos2_message_closes(broker, clients, names):
    topic = names.topic()
    subscriber = clients.raw(names.sub())
    assert subscriber.subscribe([(topic, 2)]) == [2]
    clients.raw(names.pub()).publish(topic, b"q2", qos=2)
    received = subscriber.receive_publish(acknowledge=False)
    assert received.qos == 2
    subscriber.send(bytes([0x40, 0x02]) + received.packet_id.to_bytes(2, "big"))
    assert subscriber.expect_closed() == []


def test_acknowledgements_for_unknown_ids_are_tolerated(broker, clients, names):
    client = clients.raw(names.sub())
    client.send(bytes([0x40, 0x02, 0x12, 0x34]) + bytes([0x70, 0x02, 0x12, 0x34]))
    client.send(pubrec_bytes(0x1234))
    client.expect(bytes([0x62, 0x02, 0x12, 0x34]))
    client.ping()


def test_topics_deeper_than_max_topic_levels_are_refused(start_broker, clients, names):
    skip_on_mosquitto("mosquitto's bound is fixed (TOPIC_HIERARCHY_LIMIT)")
    broker = start_broker(max_topic_levels=4)
    client = clients.raw(names.sub(), broker=broker)
    client.send(subscribe_packet(1, [("a/b/c/d", 0), ("a/+/c/d/#", 0), ("$share/g/a/b/c/d/e", 0)]))
    client.expect(suback_bytes(1, [0, 0x80, 0x80]))
    client.send(publish_packet("x/b/c/d", b"ok"))
    client.ping()
    client.send(publish_packet("a/b/c/d/", b"five levels"))
    assert client.expect_closed() == []
    will = clients.raw(broker=broker)
    will.send(connect_packet(names.pub(), will=("w/x/y/z/deep", b"gone", 0, False)))
    assert will.expect_closed() == []


def test_default_topic_depth_is_mosquittos(broker, clients, names):
    client = clients.raw(names.sub())
    deepest = "/" * 200  # 201 levels: what mosquitto still takes
    assert client.subscribe([(deepest, 0), (deepest + "/", 0)]) == [0, 0x80]
    client.send(publish_packet(deepest[:-1] + "x", b"ok"))
    client.ping()
    client.send(publish_packet(deepest + "/", b"one level too deep"))
    assert client.expect_closed() == []


def test_flags_that_contradict_are_refused_at_start():
    skip_on_mosquitto("coremq flags")
    if not os.access(conftest.COREMQ_BINARY, os.X_OK):
        pytest.skip(f"no coremq binary at {conftest.COREMQ_BINARY}")
    for arguments, message in (
            (["--server-keep-alive=40", "--max-keepalive=30"],
             "--server-keep-alive=40 is over --max-keepalive=30"),
            (["--max-keepalive=0"], "--max-keepalive=0 is out of range"),
            (["--max-topic-levels=0"], "--max-topic-levels=0 is out of range"),
            (["--max-topic-alias-broker=65536"], "--max-topic-alias-broker=65536 is out of range")):
        result = subprocess.run([conftest.COREMQ_BINARY, "--port=0", *arguments], capture_output=True,
                                text=True, timeout=10, stdin=subprocess.DEVNULL)
        assert result.returncode == 2, (arguments, result)
        assert message in result.stderr, (arguments, result.stderr)

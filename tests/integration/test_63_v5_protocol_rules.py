# 63 v5 protocol rules found missing by review (issue 8): a session's expiry timer belongs to
# that session only, --max-keepalive becomes a Server Keep Alive, acknowledgements of the wrong
# kind are a Protocol Error, the client's Maximum Packet Size holds for every packet, topics
# deeper than --max-topic-levels are refused, assigned client ids are random, and the broker
# uses at most --max-topic-alias-broker topic aliases towards a client.
import time

from conftest import skip_on_mosquitto
from helpers import PUBREC, PUBREL, SUBACK
from helpers_v5 import module_broker, start_broker  # noqa: F401 (fixtures)
from helpers_v5 import (ASSIGNED_CLIENT_IDENTIFIER, MAXIMUM_PACKET_SIZE, PROTOCOL_ERROR,
                        SERVER_KEEP_ALIVE, SESSION_EXPIRY_INTERVAL, TOPIC_ALIAS,
                        TOPIC_ALIAS_MAXIMUM, TOPIC_FILTER_INVALID, TOPIC_NAME_INVALID, ack5,
                        connect5, raw5, sleep_past, subscribe5)


def expiry(seconds):
    return [(SESSION_EXPIRY_INTERVAL, seconds)]


# ---------------------------------------------------------------- defect 1: timer identity

def test_older_sessions_expiry_does_not_end_a_newer_session(broker, clients, names):
    """Issue 8's scenario, with room for a loaded machine: the first session of the id is
    due to expire at T+4; a second session of the same id (clean start) disconnects at about
    T+1 with a Session Expiry Interval of 8, so it is due at T+9. At T+6.5, 2.5 s past the
    old deadline and 2.5 s before the new one, it must still be there. (Before the fix it
    expired at the first session's deadline.)"""
    client_id = names.sub()
    topic = names.topic()
    first = raw5(clients, client_id, properties=expiry(4))
    start = time.monotonic()
    first.disconnect5()
    second = raw5(clients, client_id, clean_start=True, properties=expiry(1))
    assert second.connack.session_present == 0
    second.subscribe5([(topic, 1)])
    second.disconnect5(properties=expiry(8))
    assert time.monotonic() - start < 2.0, "the machine is too slow for this test's margins"

    sleep_past(start + 6.5)
    raw5(clients, names.pub()).publish5(topic, b"kept", qos=1)
    again = raw5(clients, client_id, clean_start=False, properties=expiry(0))
    assert again.connack.session_present == 1, "the session ended at the older session's deadline"
    assert again.receive_publish5().payload == b"kept"


# ---------------------------------------------------------------- defect 12: --max-keepalive

def test_max_keepalive_becomes_server_keep_alive(start_broker, clients, names):
    broker = start_broker(max_keepalive=30)
    over = raw5(clients, names.client("over", 1), broker=broker, keepalive=100)
    assert over.connack.properties.get(SERVER_KEEP_ALIVE) == 30
    none = raw5(clients, names.client("none", 2), broker=broker, keepalive=0)
    assert none.connack.properties.get(SERVER_KEEP_ALIVE) == 30
    within = raw5(clients, names.client("within", 3), broker=broker, keepalive=30)
    assert SERVER_KEEP_ALIVE not in within.connack.properties


def test_max_keepalive_is_enforced(start_broker, clients, names):
    skip_on_mosquitto("needs a cap of 2 s; mosquitto asks for at least 10")
    broker = start_broker(max_keepalive=2)
    client = raw5(clients, names.client("silent", 1), broker=broker, keepalive=0)
    assert client.connack.properties.get(SERVER_KEEP_ALIVE) == 2
    started = time.monotonic()
    client.expect_closed(timeout=3 * 1.5 + 3)
    assert time.monotonic() - started >= 2.0


def test_server_keep_alive_wins_under_the_cap(start_broker, clients, names):
    skip_on_mosquitto("--server-keep-alive has no mosquitto equivalent besides max_keepalive")
    broker = start_broker(max_keepalive=30, server_keep_alive=20)
    for index, asked in enumerate((0, 10, 100)):
        client = raw5(clients, names.client(f"ska{asked}", index), broker=broker, keepalive=asked)
        assert client.connack.properties.get(SERVER_KEEP_ALIVE) == 20


# ---------------------------------------------------------------- defect 13: wrong acks

def test_pubrec_for_a_qos1_message_is_a_protocol_error(broker, clients, names):
    topic = names.topic()
    subscriber = raw5(clients, names.sub())
    subscriber.subscribe5([(topic, 2)])
    raw5(clients, names.pub()).publish5(topic, b"q1", qos=1)
    received = subscriber.receive_publish5(acknowledge=False)
    assert received.qos == 1
    subscriber.send(ack5(PUBREC, received.packet_id))
    subscriber.expect_disconnect(PROTOCOL_ERROR)


def test_pubrec_for_an_unknown_id_is_answered_with_0x92(broker, clients, names):
    client = raw5(clients, names.sub())
    client.send(ack5(PUBREC, 4321))
    pubrel = client.receive(packet_type=PUBREL)
    assert pubrel.raw == bytes([0x62, 0x03, 0x10, 0xE1, 0x92]), pubrel
    client.ping()


# ---------------------------------------------------------------- defect 15: Maximum Packet Size

def test_connack_that_does_not_fit_the_client_is_not_sent(broker, clients, names):
    skip_on_mosquitto("mosquitto 2.0.11 sends the CONNACK")
    client = raw5(clients)
    client.send(connect5(names.sub(), properties=[(MAXIMUM_PACKET_SIZE, 2)]))
    assert client.expect_closed() == []


def test_suback_that_does_not_fit_the_client_closes(broker, clients, names):
    client = raw5(clients, names.sub(), properties=[(MAXIMUM_PACKET_SIZE, 24)])
    filters = [(names.topic(str(index)), 0) for index in range(30)]
    client.send(subscribe5(1, filters))
    packets = client.expect_closed()
    assert all(packet.type != SUBACK for packet in packets), packets


# ---------------------------------------------------------------- defect 16: --max-topic-levels

def test_deep_topics_are_refused(start_broker, clients, names):
    skip_on_mosquitto("mosquitto's bound is fixed (TOPIC_HIERARCHY_LIMIT)")
    broker = start_broker(max_topic_levels=4)
    client = raw5(clients, names.sub(), broker=broker)
    suback = client.subscribe5([("a/b/c/d", 0), ("a/b/c/d/e", 0), ("$share/g/a/b/c/d/e", 0)])
    assert suback.reason_codes == [0, TOPIC_FILTER_INVALID, TOPIC_FILTER_INVALID], suback
    client.publish5("a/b/c/d/e", b"deep")
    client.expect_disconnect(TOPIC_NAME_INVALID)
    refused = raw5(clients, broker=broker)
    refused.send(connect5(names.pub(), will=("w/x/y/z/deep", b"gone", 0, False)))
    refused.expect_connack_refused(TOPIC_NAME_INVALID)


def test_default_topic_depth_is_mosquittos(broker, clients, names):
    client = raw5(clients, names.sub())
    deepest = "/" * 200  # 201 levels: what mosquitto still takes
    suback = client.subscribe5([(deepest, 0), (deepest + "/", 0)])
    assert suback.reason_codes == [0, TOPIC_FILTER_INVALID], suback


# ---------------------------------------------------------------- defect 17: assigned ids

def test_assigned_client_ids_are_random_and_resumable(broker, clients, names):
    skip_on_mosquitto("mosquitto's ids are auto-<uuid>")
    ids = []
    for _ in range(8):
        client = raw5(clients, "", properties=expiry(60))
        assigned = client.connack.properties.get(ASSIGNED_CLIENT_IDENTIFIER)
        assert assigned.startswith("coremq-") and len(assigned) == 39, assigned
        int(assigned[7:], 16)
        ids.append(assigned)
        client.disconnect5()
    assert len(set(ids)) == len(ids)
    # Nothing shared but the prefix: no counter, no shard number.
    suffixes = [assigned[7:] for assigned in ids]
    assert len({suffix[:8] for suffix in suffixes}) == len(suffixes), suffixes
    # Each id names the session it was given for, on whichever shard accepted it.
    for assigned in ids:
        again = raw5(clients, assigned, clean_start=False, properties=expiry(0))
        assert again.connack.session_present == 1, assigned


# ---------------------------------------------------------------- defect 10: --max-topic-alias-broker

def test_broker_uses_at_most_max_topic_alias_broker_aliases(start_broker, clients, names):
    skip_on_mosquitto("max_topic_alias_broker is mosquitto 2.1 only")
    broker = start_broker(max_topic_alias_broker=2)
    subscriber = raw5(clients, names.sub(), broker=broker, properties=[(TOPIC_ALIAS_MAXIMUM, 100)])
    prefix = names.topic()
    subscriber.subscribe5([(prefix + "/#", 0)])
    publisher = raw5(clients, names.pub(), broker=broker)
    for suffix in ("1", "2", "3", "1", "3"):
        publisher.publish5(f"{prefix}/{suffix}", suffix.encode())
    received = [subscriber.receive_publish5() for _ in range(5)]
    seen = [(publish.topic, publish.properties.get(TOPIC_ALIAS)) for publish in received]
    assert seen == [(f"{prefix}/1", 1), (f"{prefix}/2", 2), (f"{prefix}/3", None), ("", 1),
                    (f"{prefix}/3", None)], seen

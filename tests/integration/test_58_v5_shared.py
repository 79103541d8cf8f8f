# 58 v5 shared subscriptions: each message published to a "$share/{group}/{filter}" goes to
# exactly one member of each group, with members on different shards; every group and every
# plain subscriber gets every message; QoS 1 messages a member leaves unacknowledged when its
# session ends go to another member; no retained messages on a shared subscribe; malformed
# share names are refused with 0x8F (MQTT 5.0 4.8.2).
import collections

import pytest

from helpers_v5 import module_broker, start_broker  # noqa: F401 (fixtures)
from helpers_v5 import (PROTOCOL_ERROR, SESSION_EXPIRY_INTERVAL, TOPIC_FILTER_INVALID, paho5,
                        publish5, raw5, subscribe5, subscription_options)

MESSAGE_COUNT = 300


def shared(group, topic_filter):
    return f"$share/{group}/{topic_filter}"


def members(clients, names, group_filter, count, qos=1, label="member"):
    """count paho members of a shared subscription, member i on shard i."""
    result = []
    for index in range(count):
        member = paho5(clients, names.client(f"{label}{index}", index))
        assert member.subscribe5(group_filter, qos) == [qos]
        result.append(member)
    return result


def publish_numbered(clients, names, topic, count=MESSAGE_COUNT, qos=1):
    publisher = raw5(clients, names.client("publisher", 3))
    for index in range(count):
        publisher.publish5(topic, b"%d" % index, qos=qos)
    return [b"%d" % index for index in range(count)]


def drain_all(group, expected_total):
    """Messages from all members until expected_total arrived; then checks that no more
    come. Returns one list of payloads per member."""
    received = [[] for _ in group]
    deadline_messages = expected_total
    collected = 0
    while collected < deadline_messages:
        progressed = False
        for index, member in enumerate(group):
            for message in member.drain():
                received[index].append(message.payload)
                collected += 1
                progressed = True
        if not progressed:
            # Wait on the member with the fewest messages so far, bounded.
            slowest = min(range(len(group)), key=lambda item: len(received[item]))
            try:
                received[slowest].append(group[slowest].get(timeout=0.2).payload)
                collected += 1
            except AssertionError:
                if all(member.messages.empty() for member in group):
                    waited = getattr(drain_all, "_idle", 0) + 1
                    drain_all._idle = waited
                    if waited > 25:
                        break
    drain_all._idle = 0
    for member in group:
        member.expect_none(0.2)
    return received


def test_each_message_to_exactly_one_member(broker, clients, names):
    topic = names.topic("work")
    group = members(clients, names, shared("g", topic), 3)
    sent = publish_numbered(clients, names, topic)
    received = drain_all(group, len(sent))
    everything = [payload for member in received for payload in member]
    counts = collections.Counter(everything)
    assert sorted(counts) == sorted(sent), f"missing {set(sent) - set(counts)}"
    assert max(counts.values()) == 1, [item for item, count in counts.items() if count > 1]
    assert all(member for member in received), [len(member) for member in received]


def test_two_groups_and_a_plain_subscriber(broker, clients, names):
    topic = names.topic("work")
    group_a = members(clients, names, shared("a", topic), 2, label="a")
    group_b = members(clients, names, shared("b", names.topic("+")), 2, label="b")
    plain = paho5(clients, names.client("plain", 2))
    plain.subscribe5(topic, 1)
    sent = publish_numbered(clients, names, topic, count=100)
    for group in (group_a, group_b):
        received = drain_all(group, len(sent))
        everything = sorted(payload for member in received for payload in member)
        assert everything == sorted(sent)
    assert sorted(message.payload for message in plain.get_many(len(sent))) == sorted(sent)
    plain.expect_none(0.2)


@pytest.mark.coremq_only("mosquitto 2.0.11 drops the QoS 1 messages a leaving member held")
def test_member_leaving_hands_over_unacknowledged(broker, clients, names):
    """A raw member that never acknowledges and whose session ends with the connection:
    the QoS 1 messages it held go to the other member."""
    topic = names.topic("handover")
    group_filter = shared("h", topic)
    silent = raw5(clients, names.client("silent", 0), properties=[(SESSION_EXPIRY_INTERVAL, 0)])
    silent.subscribe5([(group_filter, 1)])
    steady = paho5(clients, names.client("steady", 1))
    steady.subscribe5(group_filter, 1)
    sent = publish_numbered(clients, names, topic, count=20)
    held = []
    try:
        while True:
            held.append(silent.receive_publish5(timeout=0.5, acknowledge=False).payload)
    except AssertionError:
        pass
    assert held, "the silent member got no message to hold"
    silent.close()
    received = [message.payload for message in steady.get_many(len(sent), timeout=10)]
    assert sorted(received) == sorted(sent)


def test_member_unsubscribing_stops_its_share(broker, clients, names):
    topic = names.topic("leave")
    group = members(clients, names, shared("u", topic), 2)
    group[0].unsubscribe(shared("u", topic))
    sent = publish_numbered(clients, names, topic, count=20)
    assert sorted(message.payload for message in group[1].get_many(len(sent))) == sorted(sent)
    group[0].expect_none(0.2)


@pytest.mark.coremq_only("mosquitto 2.0.11 sends retained messages on a shared subscribe")
def test_no_retained_messages_on_shared_subscribe(broker, clients, names):
    topic = names.topic("retained")
    raw5(clients, names.pub()).publish5(topic, b"kept", qos=1, retain=True)
    member = raw5(clients, names.sub())
    assert member.subscribe5([(shared("r", topic), 1)]).reason_codes == [1]
    member.expect_no_packet(0.3)
    raw5(clients, names.client("clear", 0)).publish5(topic, b"", qos=1, retain=True)


def test_shared_granted_qos_is_a_ceiling(broker, clients, names):
    topic = names.topic("qos")
    member = raw5(clients, names.sub())
    assert member.subscribe5([(shared("q", topic), 1)]).reason_codes == [1]
    raw5(clients, names.pub()).publish5(topic, b"x", qos=2)
    assert member.receive_publish5().qos == 1


def test_same_client_in_group_and_plain(broker, clients, names):
    """A plain subscription and a shared one of the same session are separate: the session
    gets its plain copy and, as the group's only member, the group's copy."""
    topic = names.topic("both")
    client = raw5(clients, names.sub())
    client.subscribe5([(topic, 1), (shared("s", topic), 1)])
    raw5(clients, names.pub()).publish5(topic, b"x", qos=1)
    assert [client.receive_publish5().payload for _ in range(2)] == [b"x", b"x"]
    client.expect_no_packet(0.2)


@pytest.mark.coremq_only("mosquitto 2.0.11 disconnects instead of answering SUBACK 0x8F")
@pytest.mark.parametrize("topic_filter", ["$share/a", "$share//t", "$share/a+/t", "$share/a#/t",
                                          "$share/a/"])
def test_invalid_share_names(broker, clients, names, topic_filter):
    client = raw5(clients, names.sub())
    suback = client.subscribe5([(topic_filter, 1)])
    assert suback.reason_codes == [TOPIC_FILTER_INVALID]
    client.ping()


@pytest.mark.coremq_only("mosquitto 2.0.11 accepts No Local on a shared subscription")
def test_no_local_on_shared_is_protocol_error(broker, clients, names):
    client = raw5(clients, names.sub())
    client.send(subscribe5(1, [(shared("n", names.topic()),
                                subscription_options(qos=1, no_local=True))]))
    client.expect_disconnect(PROTOCOL_ERROR)


def test_shared_subscription_survives_reconnect(broker, clients, names):
    topic = names.topic("persistent")
    client_id = names.sub()
    member = raw5(clients, client_id, properties=[(SESSION_EXPIRY_INTERVAL, 300)])
    member.subscribe5([(shared("p", topic), 1)])
    member.disconnect5()
    raw5(clients, names.pub()).publish5(topic, b"while away", qos=1)
    again = raw5(clients, client_id, clean_start=False, properties=[(SESSION_EXPIRY_INTERVAL, 0)])
    assert again.connack.session_present == 1
    assert again.receive_publish5().payload == b"while away"


def test_publish_to_share_topic_name_refused(broker, clients, names):
    """A Topic Name has no wildcards; "$share/..." as a PUBLISH topic is just a $ topic and
    reaches no shared group."""
    topic = names.topic("x")
    member = raw5(clients, names.sub())
    member.subscribe5([(shared("z", topic), 1)])
    publisher = raw5(clients, names.pub())
    publisher.send(publish5(shared("z", topic), b"odd", qos=0))
    member.expect_no_packet(0.3)

# 54 v5 message expiry: a message whose Message Expiry Interval passes while it waits for an
# offline session is not delivered; one that is delivered carries the interval minus the
# time it waited; retained messages expire too (MQTT 5.0 3.3.2.3.3).
import time

from helpers_v5 import module_broker, start_broker  # noqa: F401 (fixtures)
from helpers_v5 import (MESSAGE_EXPIRY_INTERVAL, SESSION_EXPIRY_INTERVAL, paho5,
                        paho_properties, raw5)
from helpers_v5 import disconnect5 as disconnect_packet

EXPIRY_SLACK_SECONDS = 1.2


def offline_subscriber(clients, client_id, topic_filter):
    client = raw5(clients, client_id, properties=[(SESSION_EXPIRY_INTERVAL, 300)])
    client.subscribe5([(topic_filter, 1)])
    client.send(disconnect_packet())
    # The broker closes the socket once it has handled the DISCONNECT: from then on the
    # session is offline, and what is published next waits in its queue. (Without this a
    # message could reach the session on another shard before the DISCONNECT does, and go
    # out as an in-flight message, which a resumed session must resend, expired or not.)
    client.expect_closed()


def resume(clients, client_id):
    client = raw5(clients, client_id, clean_start=False,
                  properties=[(SESSION_EXPIRY_INTERVAL, 0)])
    assert client.connack.session_present == 1
    return client


def test_messages_expire(broker, clients, names):
    """One wait covers an offline session with three queued messages, expiry 1 s (dropped),
    expiry 60 s (delivered with at most 59 s left) and none (delivered without one), and two
    retained messages, expiry 1 s (gone) and 60 s (sent with at most 59 s left)."""
    topic = names.topic("live")
    client_id = names.sub()
    offline_subscriber(clients, client_id, topic)
    publisher = raw5(clients, names.pub())
    publisher.publish5(topic, b"short", qos=1, properties=[(MESSAGE_EXPIRY_INTERVAL, 1)])
    publisher.publish5(topic, b"long", qos=1, properties=[(MESSAGE_EXPIRY_INTERVAL, 60)])
    publisher.publish5(topic, b"forever", qos=1)
    publisher.publish5(names.topic("kept/short"), b"short", qos=1, retain=True,
                       properties=[(MESSAGE_EXPIRY_INTERVAL, 1)])
    publisher.publish5(names.topic("kept/long"), b"long", qos=1, retain=True,
                       properties=[(MESSAGE_EXPIRY_INTERVAL, 60)])
    time.sleep(1 + EXPIRY_SLACK_SECONDS)

    client = resume(clients, client_id)
    long = client.receive_publish5()
    assert long.payload == b"long"
    assert 0 < long.properties.get(MESSAGE_EXPIRY_INTERVAL) <= 59, long
    forever = client.receive_publish5()
    assert forever.payload == b"forever"
    assert MESSAGE_EXPIRY_INTERVAL not in forever.properties
    client.expect_no_packet(0.2)

    subscriber = raw5(clients, names.client("retained", 3))
    subscriber.subscribe5([(names.topic("kept/#"), 1)])
    received = subscriber.receive_publish5()
    assert (received.payload, received.retain) == (b"long", True)
    assert 0 < received.properties.get(MESSAGE_EXPIRY_INTERVAL) <= 59
    subscriber.expect_no_packet(0.2)
    for suffix in ("short", "long"):
        publisher.publish5(names.topic(f"kept/{suffix}"), b"", qos=1, retain=True)


def test_online_delivery_keeps_interval(broker, clients, names):
    topic = names.topic()
    subscriber = raw5(clients, names.sub())
    subscriber.subscribe5([(topic, 2)])
    raw5(clients, names.pub()).publish5(topic, b"fresh", qos=2,
                                        properties=[(MESSAGE_EXPIRY_INTERVAL, 30)])
    received = subscriber.receive_publish5()
    assert 29 <= received.properties.get(MESSAGE_EXPIRY_INTERVAL) <= 30


def test_paho_sees_message_expiry(broker, clients, names):
    topic = names.topic()
    subscriber = paho5(clients, names.sub())
    subscriber.subscribe5(topic, 1)
    paho5(clients, names.pub()).publish5(
        topic, b"x", qos=1, properties=paho_properties("PUBLISH", MessageExpiryInterval=45))
    message = subscriber.get()
    assert 44 <= message.prop("MessageExpiryInterval") <= 45

# 52 v5 session expiry: Clean Start and the Session Expiry Interval decide how long a session
# outlives its connection: 0 (or absent) ends it at disconnect, N keeps it N seconds and then
# frees it, 0xFFFFFFFF keeps it for good, and a DISCONNECT may change the interval, except
# from 0 to non-zero, which is a Protocol Error (MQTT 5.0 3.1.2.4, 3.1.2.11.2, 3.14.2.2.2).
import time

import pytest

from helpers_v5 import module_broker, start_broker  # noqa: F401 (fixtures)
from helpers_v5 import (PROTOCOL_ERROR, SESSION_EXPIRY_INTERVAL, disconnect5, paho5,
                        paho_properties, raw5)

NEVER = 0xFFFFFFFF
# Brokers check expiry on a timer; a session with an interval of 1 s is gone this long after
# its connection closed.
EXPIRY_SLACK_SECONDS = 2.5


def expiry(seconds):
    return [(SESSION_EXPIRY_INTERVAL, seconds)]


def subscribe_and_leave(clients, client_id, topic, seconds, disconnect_properties=None):
    """A v5 session subscribed to topic at QoS 1 that then disconnects normally; returns
    once the broker has handled the DISCONNECT (it closed the connection)."""
    client = raw5(clients, client_id, properties=expiry(seconds) if seconds is not None else None)
    assert client.connack.session_present == 0
    client.subscribe5([(topic, 1)])
    client.disconnect5(properties=disconnect_properties, wait_closed=True)
    return client


def test_clean_start_1_discards_session(broker, clients, names):
    topic = names.topic()
    client_id = names.sub()
    subscribe_and_leave(clients, client_id, topic, 300)
    client = raw5(clients, client_id, clean_start=True, properties=expiry(300))
    assert client.connack.session_present == 0
    raw5(clients, names.pub()).publish5(topic, b"after clean start", qos=1)
    client.expect_no_packet(0.3)


def test_clean_start_0_resumes_session_across_shards(broker, clients, names):
    topic = names.topic()
    client_id = names.sub()
    subscribe_and_leave(clients, client_id, topic, 300)
    publisher = raw5(clients, names.pub())
    for index in range(3):
        publisher.publish5(topic, f"queued {index}".encode(), qos=1)
    client = raw5(clients, client_id, clean_start=False, properties=expiry(300))
    assert client.connack.session_present == 1
    assert [client.receive_publish5().payload for _ in range(3)] == [
        b"queued 0", b"queued 1", b"queued 2"]
    client.disconnect5(properties=expiry(0))


def test_clean_start_0_without_session_starts_new(broker, clients, names):
    client = raw5(clients, names.sub(), clean_start=False, properties=expiry(10))
    assert client.connack.session_present == 0
    client.disconnect5(properties=expiry(0))


def test_expiry_absent_ends_session_at_disconnect(broker, clients, names):
    client_id = names.sub()
    subscribe_and_leave(clients, client_id, names.topic(), None)
    assert raw5(clients, client_id, clean_start=False).connack.session_present == 0


def test_expiry_0_ends_session_at_network_close(broker, clients, names):
    client_id = names.sub()
    client = raw5(clients, client_id, properties=expiry(0))
    client.subscribe5([(names.topic(), 1)])
    client.close_and_wait()                           # no DISCONNECT; the loss is handled
    assert raw5(clients, client_id, clean_start=False).connack.session_present == 0


def test_expiry_timers(broker, clients, names):
    """Four sessions share one wait: interval 1 s (freed, its queued message with it),
    0xFFFFFFFF (kept), 300 s shortened to 1 s by DISCONNECT (freed) and 1 s lengthened to
    300 s by DISCONNECT (kept)."""
    topic = names.topic()
    freed = names.client("freed", 1)
    subscribe_and_leave(clients, freed, topic, 1)
    resumed = raw5(clients, freed, clean_start=False, properties=expiry(1))
    assert resumed.connack.session_present == 1        # kept while the interval runs
    resumed.close_and_wait()                           # the interval runs from here
    never = names.client("never", 3)
    subscribe_and_leave(clients, never, topic, NEVER)
    shortened = names.client("shortened", 1)
    subscribe_and_leave(clients, shortened, names.topic("other"), 300,
                        disconnect_properties=expiry(1))
    lengthened = names.client("lengthened", 3)
    subscribe_and_leave(clients, lengthened, names.topic("other"), 1,
                        disconnect_properties=expiry(300))
    raw5(clients, names.pub()).publish5(topic, b"queued", qos=1)
    time.sleep(1 + EXPIRY_SLACK_SECONDS)
    again = raw5(clients, freed, clean_start=False, properties=expiry(0))
    assert again.connack.session_present == 0
    again.expect_no_packet(0.2)
    again = raw5(clients, never, clean_start=False, properties=expiry(0))
    assert again.connack.session_present == 1
    assert again.receive_publish5().payload == b"queued"
    assert raw5(clients, shortened, clean_start=False).connack.session_present == 0
    again = raw5(clients, lengthened, clean_start=False, properties=expiry(0))
    assert again.connack.session_present == 1


def test_disconnect_sets_expiry_to_zero(broker, clients, names):
    client_id = names.sub()
    subscribe_and_leave(clients, client_id, names.topic(), 300,
                        disconnect_properties=expiry(0))
    assert raw5(clients, client_id, clean_start=False).connack.session_present == 0


def test_disconnect_zero_to_nonzero_is_protocol_error(broker, clients, names):
    client_id = names.sub()
    client = raw5(clients, client_id)                 # interval absent = 0
    client.subscribe5([(names.topic(), 1)])
    client.send(disconnect5(properties=expiry(60)))
    client.expect_disconnect(PROTOCOL_ERROR)
    assert raw5(clients, client_id, clean_start=False).connack.session_present == 0


def test_paho_persistent_session(broker, clients, names):
    topic = names.topic()
    client_id = names.sub()
    properties = paho_properties("CONNECT", SessionExpiryInterval=300)
    subscriber = paho5(clients, client_id, clean_start=True, connect_properties=properties)
    assert subscriber.subscribe5(topic, 2) == [2]
    subscriber.disconnect()
    paho5(clients, names.pub()).publish5(topic, b"while away", qos=2)
    again = paho5(clients, client_id, clean_start=False, connect_properties=properties)
    assert again.connect_result == (0, 1)
    message = again.get()
    assert (message.topic, message.payload, message.qos) == (topic, b"while away", 2)


@pytest.mark.coremq_only("mosquitto has no cap on the Session Expiry Interval")
def test_capped_expiry_frees_session(start_broker, clients, names):
    broker = start_broker(max_session_expiry=1)
    client_id = names.sub()
    client = raw5(clients, client_id, broker=broker, properties=expiry(NEVER))
    assert client.connack.properties.get(SESSION_EXPIRY_INTERVAL) == 1
    client.disconnect5()
    time.sleep(1 + EXPIRY_SLACK_SECONDS)
    again = raw5(clients, client_id, broker=broker, clean_start=False)
    assert again.connack.session_present == 0

# 53 v5 will delay: the Will Delay Interval holds a will back after the connection is lost; a
# reconnection within the delay cancels it, otherwise it is published when the delay ends or
# when the session ends, whichever is first; DISCONNECT 0x04 asks for the will and 0x00
# drops it; the will's properties reach subscribers unaltered (MQTT 5.0 3.1.2.5, 3.1.3.2).
import time

from helpers_v5 import module_broker, start_broker  # noqa: F401 (fixtures)
from helpers_v5 import (CONTENT_TYPE, CORRELATION_DATA, MESSAGE_EXPIRY_INTERVAL,
                        PAYLOAD_FORMAT_INDICATOR, RESPONSE_TOPIC, SESSION_EXPIRY_INTERVAL,
                        USER_PROPERTY, WILL_DELAY_INTERVAL, paho5, paho_properties, raw5)

# Timers fire on a tick; a will due at t is published by t + this.
TIMER_SLACK_SECONDS = 1.6


def watch(clients, names, topic):
    watcher = raw5(clients, names.client("watch", 3))
    watcher.subscribe5([(topic, 1)])
    return watcher


def will_client(clients, client_id, topic, payload, delay, session_expiry, will_properties=()):
    will = (topic, payload, 1, False, [(WILL_DELAY_INTERVAL, delay), *will_properties])
    return raw5(clients, client_id, will=will,
                properties=[(SESSION_EXPIRY_INTERVAL, session_expiry)])


def test_wills_held_back_and_published(broker, clients, names):
    """Three wills timed at once: a delay of 1 s with a 60 s session (published after the
    delay), a delay of 30 s with a 1 s session (published when the session ends) and a paho
    will with a delay of 1 s and a Content Type."""
    watcher = watch(clients, names, names.topic("#"))
    will_client(clients, names.pub("delayed"), names.topic("delayed"), b"delayed", 1, 60)
    will_client(clients, names.client("ended", 0), names.topic("ended"), b"session ended", 30, 1)
    will_properties = paho_properties("WILLMESSAGE", WillDelayInterval=1,
                                      ContentType="application/json")
    paho_client = paho5(clients, names.pub("paho"),
                        will=(names.topic("paho"), b'{"lost": true}', 1, False, will_properties),
                        connect_properties=paho_properties("CONNECT", SessionExpiryInterval=10))
    for client in clients.raw_clients[1:]:
        client.close()
    paho_client.close_abruptly()
    closed_at = time.monotonic()
    watcher.expect_no_packet(0.7)
    received = {}
    for _ in range(3):
        will = watcher.receive_publish5(timeout=1 + TIMER_SLACK_SECONDS + 2.5)
        received[will.topic] = will
    # Slack beyond the timer's for a loaded 2-CPU machine.
    assert time.monotonic() - closed_at <= 1 + TIMER_SLACK_SECONDS + 2.0
    assert received[names.topic("delayed")].payload == b"delayed"
    assert received[names.topic("ended")].payload == b"session ended"
    paho_will = received[names.topic("paho")]
    assert paho_will.payload == b'{"lost": true}'
    assert paho_will.properties.get(CONTENT_TYPE) == "application/json"


def test_wills_not_published(broker, clients, names):
    """Two wills timed at once that must never appear: one whose client reconnects within
    the delay [MQTT-3.1.3-9] and one whose client sends DISCONNECT 0x00 [MQTT-3.1.2-10]."""
    watcher = watch(clients, names, names.topic("#"))
    reconnecting = names.pub("reconnecting")
    lost = will_client(clients, reconnecting, names.topic("cancelled"), b"cancelled", 2, 60)
    normal = will_client(clients, names.client("normal", 0), names.topic("normal"),
                         b"discarded", 1, 1)
    closed_at = time.monotonic()
    # Both ends handled by the broker (each closed in answer) before the reconnection.
    lost.close_and_wait()
    normal.disconnect5(wait_closed=True)
    again = raw5(clients, reconnecting, clean_start=False,
                 properties=[(SESSION_EXPIRY_INTERVAL, 0)])
    assert again.connack.session_present == 1
    watcher.expect_no_packet(max(0.1, closed_at + 2 + TIMER_SLACK_SECONDS - time.monotonic()))


def test_will_with_zero_delay_and_no_session_is_immediate(broker, clients, names):
    topic = names.topic("will")
    watcher = watch(clients, names, topic)
    will_client(clients, names.pub(), topic, b"now", 0, 0).close()
    assert watcher.receive_publish5(timeout=1).payload == b"now"


def test_will_properties_forwarded(broker, clients, names):
    topic = names.topic("will")
    watcher = watch(clients, names, topic)
    user_properties = [("b", "2"), ("a", "1"), ("b", "3")]
    will_properties = [(PAYLOAD_FORMAT_INDICATOR, 1), (MESSAGE_EXPIRY_INTERVAL, 120),
                       (CONTENT_TYPE, "text/plain"), (RESPONSE_TOPIC, names.topic("reply")),
                       (CORRELATION_DATA, b"\x00\x01corr"),
                       *[(USER_PROPERTY, pair) for pair in user_properties]]
    will_client(clients, names.pub(), topic, b"with properties", 0, 0, will_properties).close()
    received = watcher.receive_publish5()
    properties = received.properties
    assert received.payload == b"with properties"
    assert properties.get(PAYLOAD_FORMAT_INDICATOR) == 1
    assert 0 < properties.get(MESSAGE_EXPIRY_INTERVAL) <= 120
    assert properties.get(CONTENT_TYPE) == "text/plain"
    assert properties.get(RESPONSE_TOPIC) == names.topic("reply")
    assert properties.get(CORRELATION_DATA) == b"\x00\x01corr"
    assert properties.user_properties == user_properties      # order kept [MQTT-3.1.3-10]
    assert WILL_DELAY_INTERVAL not in properties


def test_disconnect_with_will_message_publishes_will(broker, clients, names):
    topic = names.topic("will")
    watcher = watch(clients, names, topic)
    client = will_client(clients, names.pub(), topic, b"asked for", 0, 0)
    client.disconnect5(reason_code=0x04)
    assert watcher.receive_publish5().payload == b"asked for"

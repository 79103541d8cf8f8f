# 10 keepalive: a client silent for 1.5x its keep-alive is closed; PINGREQ or any other
# packet keeps it open; keep-alive 0 turns the check off.
import time

import helpers
from conftest import keepalive_close_seconds_max


def time_until_closed(client, timeout):
    started = time.monotonic()
    client.expect_closed(timeout=timeout)
    return time.monotonic() - started


def test_silent_clients_closed_after_one_and_a_half_keepalives(broker, clients, names):
    one = clients.raw(names.client("ka1", 1), keepalive=1)
    one_connected = time.monotonic()
    two = clients.raw(names.client("ka2", 2), keepalive=2)
    two_connected = time.monotonic()
    one.expect_closed(timeout=keepalive_close_seconds_max(1) + 1)
    one_elapsed = time.monotonic() - one_connected
    two.expect_closed(timeout=keepalive_close_seconds_max(2) + 1)
    two_elapsed = time.monotonic() - two_connected
    assert 1.0 <= one_elapsed <= keepalive_close_seconds_max(1), one_elapsed
    assert 2.0 <= two_elapsed <= keepalive_close_seconds_max(2), two_elapsed


def test_pingreq_and_other_packets_keep_connection_open(broker, clients, names):
    pinger = clients.raw(names.client("ping", 1), keepalive=1)
    publisher = clients.raw(names.client("pub", 2), keepalive=1)
    no_keepalive = clients.raw(names.client("zero", 3), keepalive=0)
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        pinger.send(helpers.PINGREQ_BYTES)
        publisher.send(helpers.publish_packet(names.topic("tick"), b"tick"))
        pinger.expect(helpers.PINGRESP_BYTES)
        time.sleep(0.5)
    pinger.ping()
    publisher.ping()
    assert no_keepalive.is_open()
    no_keepalive.ping()


def test_paho_client_with_short_keepalive_stays_connected(broker, clients, names):
    topic = names.topic("ka")
    subscriber = clients.paho(names.sub(), keepalive=1)
    subscriber.subscribe(topic, 1)
    time.sleep(3)
    assert not subscriber.disconnected.is_set()
    publisher = clients.paho(names.pub())
    publisher.publish(topic, b"still connected", qos=1)
    assert subscriber.get().payload == b"still connected"


def test_keepalive_counts_from_the_last_packet(broker, clients, names):
    client = clients.raw(names.sub(), keepalive=1)
    for _ in range(3):
        time.sleep(0.6)
        client.ping()
    elapsed = time_until_closed(client, keepalive_close_seconds_max(1) + 1)
    assert 1.0 <= elapsed <= keepalive_close_seconds_max(1), elapsed

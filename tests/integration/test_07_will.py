# 07 will: the will message is published when a connection ends without DISCONNECT (the
# socket closes, the process dies, keep-alive runs out, a protocol error), never after
# DISCONNECT, with its QoS and retain flag honoured.
import signal
import time

import pytest

import helpers
from conftest import keepalive_close_seconds_max
from helpers import publish_packet


def watch(clients, names, topic, qos=2):
    watcher = clients.raw(names.client("watch", 3))
    watcher.subscribe([(topic, qos)])
    return watcher


def test_will_on_abrupt_socket_close(broker, clients, names):
    will_topic = names.topic("will")
    watcher = watch(clients, names, will_topic, qos=1)
    client = clients.raw(names.pub(), will=(will_topic, b"lost", 1, False))
    client.close()
    received = watcher.receive_publish(acknowledge=False)
    assert received.raw == publish_packet(will_topic, b"lost", qos=1,
                                          packet_id=received.packet_id)
    watcher.send(helpers.puback_bytes(received.packet_id))


def test_will_on_killed_mosquitto_sub(broker, clients, names):
    will_topic = names.topic("will")
    watcher = watch(clients, names, will_topic)
    process = clients.process(["stdbuf", "-oL", "mosquitto_sub", "-h", helpers.HOST, "-p", str(broker.port),
                               "-i", names.sub(), "-t", names.topic("any"), "-d",
                               "--will-topic", will_topic, "--will-payload", "killed",
                               "--will-qos", "1"])
    helpers.OutputReader(process).wait_for("SUBACK")
    process.send_signal(signal.SIGKILL)
    process.wait(helpers.WAIT_SECONDS)
    received = watcher.receive_publish()
    assert (received.payload, received.qos, received.retain) == (b"killed", 1, False)


def test_will_on_paho_connection_loss(broker, clients, names):
    will_topic = names.topic("will")
    watcher = watch(clients, names, will_topic)
    client = clients.paho(names.pub(), will=(will_topic, b"paho will", 2, False))
    client.close_abruptly()
    received = watcher.receive_publish()
    assert (received.payload, received.qos) == (b"paho will", 2)


def test_will_on_keepalive_timeout(broker, clients, names):
    will_topic = names.topic("will")
    watcher = watch(clients, names, will_topic)
    client = clients.raw(names.pub(), keepalive=1, will=(will_topic, b"silent", 0, False))
    started = time.monotonic()
    received = watcher.receive_publish(timeout=keepalive_close_seconds_max(1) + 1)
    elapsed = time.monotonic() - started
    assert received.payload == b"silent"
    assert 1.0 <= elapsed <= keepalive_close_seconds_max(1), elapsed
    client.expect_closed(timeout=1)


def test_will_on_protocol_error(broker, clients, names):
    will_topic = names.topic("will")
    watcher = watch(clients, names, will_topic)
    client = clients.raw(names.pub(), will=(will_topic, b"broken", 2, False))
    client.send(b"\x00\x00")                 # packet type 0 is reserved
    client.expect_closed()
    received = watcher.receive_publish()
    assert (received.payload, received.qos) == (b"broken", 2)


@pytest.mark.coremq_only("mosquitto 2.0.11 drops the will of a client closed for a second CONNECT")
def test_will_on_second_connect(broker, clients, names):
    will_topic = names.topic("will")
    watcher = watch(clients, names, will_topic)
    client = clients.raw(names.pub(), will=(will_topic, b"twice", 0, False))
    client.send(helpers.connect_packet(names.pub("again")))
    client.expect_closed()
    assert watcher.receive_publish().payload == b"twice"


def test_no_will_after_disconnect(broker, clients, names):
    will_topic = names.topic("will")
    watcher = watch(clients, names, will_topic)
    client = clients.raw(names.pub(), will=(will_topic, b"must not appear", 0, False))
    client.send(helpers.DISCONNECT_BYTES)
    client.expect_closed()
    # Another client's message on the same topic arrives alone.
    other = clients.raw(names.client("other", 0))
    other.publish(will_topic, b"marker")
    assert watcher.receive_publish().payload == b"marker"
    watcher.expect_no_packet(0.5)


def test_no_will_after_paho_disconnect(broker, clients, names):
    will_topic = names.topic("will")
    watcher = watch(clients, names, will_topic)
    client = clients.paho(names.pub(), will=(will_topic, b"must not appear", 1, False))
    client.disconnect()
    watcher.expect_no_packet(0.7)


def test_will_retain_flag_honoured(broker, clients, names):
    will_topic = names.topic("will")
    watcher = watch(clients, names, will_topic)
    client = clients.raw(names.pub(), will=(will_topic, b"retained will", 1, True))
    client.close()
    live = watcher.receive_publish()
    assert (live.payload, live.retain) == (b"retained will", False)
    late = clients.raw(names.sub("late"))
    late.subscribe([(will_topic, 2)])
    stored = late.receive_publish()
    assert (stored.payload, stored.retain, stored.qos) == (b"retained will", True, 1)


def test_will_without_retain_is_not_stored(broker, clients, names):
    will_topic = names.topic("will")
    watcher = watch(clients, names, will_topic)
    client = clients.raw(names.pub(), will=(will_topic, b"not stored", 0, False))
    client.close()
    assert watcher.receive_publish().payload == b"not stored"
    late = clients.raw(names.sub("late"))
    late.subscribe([(will_topic, 0)])
    late.expect_no_packet(0.4)


def test_will_qos_downgraded_to_subscription(broker, clients, names):
    will_topic = names.topic("will")
    watcher = watch(clients, names, will_topic, qos=0)
    client = clients.raw(names.pub(), will=(will_topic, b"downgraded", 2, False))
    client.close()
    received = watcher.receive_publish()
    assert received.raw == publish_packet(will_topic, b"downgraded", qos=0)


def test_will_of_mqtt31_client_with_empty_payload(broker, clients, names):
    will_topic = names.topic("will")
    watcher = watch(clients, names, will_topic)
    client = clients.raw()
    client.connect(names.pub(), protocol_name=b"MQIsdp", protocol_level=3,
                   will=(will_topic, b"", 1, False))
    client.close()
    received = watcher.receive_publish()
    assert (received.topic, received.payload, received.qos) == (will_topic.encode(), b"", 1)


def test_will_reaches_subscribers_on_every_shard(broker, clients, names):
    will_topic = names.topic("will")
    watchers = []
    for shard in range(4):
        watcher = clients.raw(names.client(f"w{shard}", shard))
        watcher.subscribe([(names.topic("+"), 1)])
        watchers.append(watcher)
    client = clients.raw(names.pub(), will=(will_topic, b"everyone", 1, False))
    client.close()
    for watcher in watchers:
        assert watcher.receive_publish().payload == b"everyone"

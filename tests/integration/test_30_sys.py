# 30 $SYS: the retained $SYS/broker/... topics (Mosquitto's names, mosquitto(8)) are published
# every --sys-interval seconds and report what clients did; `#` does not match them
# (MQTT-4.7.2-1); a client's PUBLISH into $SYS is refused as Mosquitto refuses it (dropped;
# MQTT 5 PUBACK 0x87; the connection stays).
import threading
import time

import pytest

import helpers
from helpers_v5 import NOT_AUTHORIZED, raw5

pytestmark = pytest.mark.coremq_only("coremq's $SYS publisher (the harness runs mosquitto with sys_interval 0)")

SYS_WAIT_SECONDS = 20.0  # a few 1 s updates on a loaded 2-CPU machine


class SysView:
    """A paho subscriber to $SYS/#: the latest payload of each $SYS topic."""

    def __init__(self, clients, broker, client_id):
        self.client = clients.paho(client_id, broker=broker)
        self.values = {}
        self.lock = threading.Lock()
        assert self.client.subscribe("$SYS/#", qos=0) == [0]

    def _take(self):
        for message in self.client.drain():
            assert message.topic.startswith("$SYS/broker/"), message
            self.values[message.topic] = message.payload.decode()

    def number(self, name, default=-1):
        value = self.values.get("$SYS/broker/" + name)
        return default if value is None else float(value.split()[0])

    def wait_for(self, predicate, what):
        deadline = time.monotonic() + SYS_WAIT_SECONDS
        while time.monotonic() < deadline:
            self._take()
            if predicate(self):
                return
            time.sleep(0.05)
        raise AssertionError(f"$SYS never showed {what} within {SYS_WAIT_SECONDS} s: {sorted(self.values.items())}")

    def next_update(self):
        """Waits until the uptime moved on: one more update has gone out entirely (the uptime
        goes first, but the broker publishes a whole update in one go from one thread)."""
        self._take()
        start = self.number("uptime")
        self.wait_for(lambda view: view.number("uptime") > start + 1, "two more updates")


def test_sys_topics_report_what_clients_did(start_broker, clients, names):
    broker = clients.broker = start_broker(sys_interval=1)
    view = SysView(clients, broker, names.client("sys", 0))
    # One update is many messages: wait for the last topics of the first one to arrive too.
    view.wait_for(lambda v: "$SYS/broker/version" in v.values and "$SYS/broker/uptime" in v.values,
                  "the version and the uptime")
    assert view.values["$SYS/broker/version"].startswith("coremq ")
    assert view.values["$SYS/broker/uptime"].endswith(" seconds")

    # N clients on every shard, one of them with a session kept while offline; M publishes.
    connected = [clients.raw(names.client(f"c{i}", i)) for i in range(4)]
    persistent = clients.raw(names.client("kept", 1), clean_session=False)
    publisher = connected[0]
    retained_topics = [names.topic(f"retained/{i}") for i in range(3)]
    for topic in retained_topics:
        publisher.publish(topic, b"r", qos=1, retain=True)
    for i in range(20):
        publisher.publish(names.topic("plain"), b"x" * 100, qos=1, packet_id=i + 1)
    subscriber = connected[1]
    subscriber.subscribe([(names.topic("#"), 0)])
    persistent.close_and_wait()  # offline, session kept

    clients_expected = len(connected) + 1 + 1  # the raw clients, the persistent one, the $SYS view
    view.next_update()
    view.wait_for(lambda v: v.number("clients/connected") == clients_expected - 1
                  and v.number("clients/total") == clients_expected
                  and v.number("clients/disconnected") == 1
                  and v.number("publish/messages/received") == 23
                  and v.number("subscriptions/count") == 2, "the clients and publishes")
    sys_topics = [topic for topic in view.values if topic.startswith("$SYS/")]
    # Every $SYS topic is retained too (as in Mosquitto), so it counts.
    view.wait_for(lambda v: v.number("retained messages/count") == len(retained_topics) + len(sys_topics),
                  "the retained messages")
    assert view.number("clients/maximum") >= clients_expected
    assert view.number("clients/expired") == 0
    # Every packet: CONNECTs, PUBLISHes, SUBSCRIBEs, DISCONNECT, PINGREQs (not the $SYS
    # publisher's own); bytes at least the payloads.
    assert view.number("messages/received") >= clients_expected + 23 + 2
    assert view.number("messages/sent") >= clients_expected + 23 + 2
    assert view.number("bytes/received") >= 20 * 100
    assert view.number("bytes/sent") > 0
    assert view.number("publish/messages/sent") >= 0
    assert view.number("load/publish/received/1min") > 0
    assert view.number("load/connections/1min") > 0
    assert view.number("load/sockets/1min") > 0
    assert view.number("load/bytes/received/15min") > 0
    for window in ("1min", "5min", "15min"):
        for name in ("messages/received", "messages/sent", "publish/dropped", "publish/received",
                     "publish/sent", "bytes/received", "bytes/sent", "sockets", "connections"):
            assert f"$SYS/broker/load/{name}/{window}" in view.values, (name, window)

    # Two clients leave: connected goes down, the maximum stays.
    maximum = view.number("clients/maximum")
    for client in connected[2:]:
        client.disconnect_and_wait()
    view.wait_for(lambda v: v.number("clients/connected") == clients_expected - 3
                  and v.number("clients/total") == clients_expected - 2, "two clients gone")
    assert view.number("clients/maximum") == maximum


def test_sys_values_are_retained_for_a_late_subscriber(start_broker, clients, names):
    broker = clients.broker = start_broker(sys_interval=1)
    first = SysView(clients, broker, names.client("first", 0))
    first.wait_for(lambda v: "$SYS/broker/clients/connected" in v.values, "an update")
    late = clients.raw(names.client("late", 1))
    late.subscribe([("$SYS/broker/version", 0)])
    received = late.receive_publish()
    assert received.retain and received.payload.startswith(b"coremq ")


def test_hash_subscribers_do_not_get_sys(start_broker, clients, names):
    broker = clients.broker = start_broker(sys_interval=1)
    everything = clients.paho(names.client("all", 1), broker=broker)
    assert everything.subscribe([("#", 0), ("+/broker/#", 0), ("+/+/uptime", 0)]) == [0, 0, 0]
    view = SysView(clients, broker, names.client("sys", 2))
    view.next_update()  # updates went out while `everything` was subscribed
    # Ordered behind anything of $SYS the broker would have sent it: a message of its own.
    marker = names.topic("marker")
    clients.raw(names.pub()).publish(marker, b"m", qos=1)
    topics = [message.topic for message in everything.get_many(1)]
    topics += [message.topic for message in everything.drain()]
    assert marker in topics
    assert not [topic for topic in topics if topic.startswith("$")], topics


def test_client_publish_into_sys_is_refused(start_broker, clients, names):
    broker = clients.broker = start_broker(sys_interval=1)
    view = SysView(clients, broker, names.client("sys", 0))
    view.wait_for(lambda v: "$SYS/broker/version" in v.values, "the version")
    version = view.values["$SYS/broker/version"]

    # 3.1.1: the QoS 1 flow ends normally (no reason code in 3.1.1), the message is dropped.
    writer = clients.raw(names.client("w311", 1))
    writer.publish("$SYS/broker/version", b"forged", qos=1, retain=True)
    writer.publish("$SYS/x", b"forged", qos=0, retain=True)
    writer.ping()  # still connected
    # MQTT 5: PUBACK Not authorized (0x87), as Mosquitto 2.0 answers.
    writer5 = raw5(clients, names.client("w5", 2), broker=broker)
    ack = writer5.publish5("$SYS/broker/uptime", b"forged", qos=1, retain=True)
    assert ack.reason_code == NOT_AUTHORIZED, ack
    # A will on $SYS is not published either.
    willing = clients.raw(names.client("will", 3), will=("$SYS/broker/will", b"forged", 0, True))
    willing.close_and_wait()

    view.next_update()
    late = clients.paho(names.client("late", 1), broker=broker)
    late.subscribe("$SYS/#")
    # One retained message per $SYS topic the view has seen (and nothing of the writers').
    retained = {message.topic: message.payload for message in late.get_many(len(view.values))}
    # Later updates (the uptime, at least) may follow; none carries what the writers sent.
    retained.update({message.topic: message.payload for message in late.drain()})
    assert retained.get("$SYS/broker/version") == version.encode()
    assert "$SYS/x" not in retained and "$SYS/broker/will" not in retained
    assert b"forged" not in retained.values()
    assert not [value for value in view.values.values() if value == "forged"]
    assert "$SYS is written only by the broker" in broker.log()


def test_sys_interval_zero_publishes_nothing(start_broker, clients, names):
    broker = clients.broker = start_broker(sys_interval=0)
    subscriber = clients.paho(names.client("sys", 0), broker=broker)
    subscriber.subscribe("$SYS/#")
    clients.raw(names.pub()).ping()
    # Absence needs a wait: over two intervals of the default 10 s would be too long; nothing
    # publishes $SYS at all with 0, so a couple of seconds show a broken off switch.
    subscriber.expect_none(timeout=2.0)
    assert "$coremq-sys" not in broker.log()


def test_without_retained_messages_sys_is_published_plain(start_broker, clients, names):
    """--retain-available=false: a retained PUBLISH would be a protocol error, so the $SYS
    publisher sends plain messages and keeps its one session."""
    broker = clients.broker = start_broker(sys_interval=1, retain_available="false")
    view = SysView(clients, broker, names.client("sys", 0))
    view.next_update()
    assert "$SYS/broker/uptime" in view.values
    assert broker.log().count('client connected client_id="$coremq-sys"') == 1, broker.log_tail()

# Bridges (docs/BRIDGING.md) against a real remote: Debian's mosquitto, started here on a free
# loopback port with a generated config, and coremq bridged to it with --bridge (and to another
# coremq, and mosquitto bridged to coremq with try_private; with --persistence=rocksdb, a durable
# bridge through kill -9 of coremq itself). Each test synchronises on message
# round trips (a SUBACK, the notification topic's retained "1", a message echo), never on sleep.
import os
import re
import random
import subprocess
import threading
import time

import paho.mqtt.client as paho
import pytest

import helpers
from conftest import free_port, is_mosquitto
from helpers_v5 import PahoClient5, paho_properties

pytestmark = pytest.mark.coremq_only("coremq's bridges")

MOSQUITTO_BINARY = "/usr/sbin/mosquitto"
WAIT = 15


class Mosquitto:
    """One mosquitto on a fixed loopback port; restartable on the same port."""

    def __init__(self, directory, extra=""):
        if not os.access(MOSQUITTO_BINARY, os.X_OK):
            pytest.skip("needs Debian's mosquitto")
        self.port = free_port()
        self.directory = directory
        self.extra = extra
        self.process = None
        self.starts = 0
        self.start()

    def start(self):
        self.starts += 1
        self.log_path = self.directory / f"mosquitto{self.starts}.log"
        config = self.directory / "mosquitto.conf"
        config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                          "log_dest stderr\nlog_type all\n" + self.extra)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([MOSQUITTO_BINARY, "-c", str(config)], stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if not helpers.wait_until(lambda: " running" in self.log_path.read_text(errors="replace"), timeout=10):
            self.stop()
            raise AssertionError(f"mosquitto did not start:\n{self.log_path.read_text()}")

    def kill(self):
        self.process.kill()
        self.process.wait(10)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def mosquitto(tmp_path):
    started = []

    def start(extra=""):
        broker = Mosquitto(tmp_path / f"mosquitto{len(started)}", extra)
        started.append(broker)
        return broker

    (tmp_path / "mosquitto0").mkdir()
    (tmp_path / "mosquitto1").mkdir()
    yield start
    for broker in started:
        broker.stop()


def client(port, name, protocol=paho.MQTTv311, clean=True):
    c = helpers.PahoClient(port, name, clean_session=clean, protocol=protocol)
    c.connect()
    return c


def wait_bridge_up(port, topic, protocol=paho.MQTTv311):
    """The bridge's notification topic carries a retained "1" once it is connected."""
    watcher = client(port, "watch-" + topic.replace("/", "-").replace("$", ""), protocol)
    watcher.subscribe(topic, 1)
    deadline_messages = []
    for _ in range(50):
        message = watcher.get(timeout=WAIT)
        deadline_messages.append(message.payload)
        if message.payload == b"1":
            watcher.disconnect()
            return
    raise AssertionError(f"bridge never connected: {deadline_messages}")


@pytest.mark.parametrize("version", ["mqttv311", "mqttv50"])
def test_out_and_in_at_every_qos_with_prefixes(start_broker, mosquitto, version):
    remote = mosquitto()
    local = start_broker(bridge=f"b1,address=127.0.0.1:{remote.port},bridge_protocol_version={version},"
                         "remote_clientid=edge1,restart_timeout=1,"
                         "topic=# out 2 up/ site1/,topic=# in 2 down/ cmd/")
    wait_bridge_up(local.port, "$SYS/broker/connection/edge1/state")
    remote_sub = client(remote.port, "remote-sub")
    remote_sub.subscribe("site1/#", 2)
    local_sub = client(local.port, "local-sub")
    local_sub.subscribe("down/#", 2)
    local_pub = client(local.port, "local-pub")
    remote_pub = client(remote.port, "remote-pub")
    for qos in (0, 1, 2):
        # QoS 0 may only be lost in a queue overflow, which this is far from.
        local_pub.publish(f"up/a/q{qos}", f"out{qos}".encode(), qos)
        got = remote_sub.get(timeout=WAIT)
        assert (got.topic, got.payload, got.qos) == (f"site1/a/q{qos}", f"out{qos}".encode(), qos)
        remote_pub.publish(f"cmd/b/q{qos}", f"in{qos}".encode(), qos)
        got = local_sub.get(timeout=WAIT)
        assert (got.topic, got.payload, got.qos) == (f"down/b/q{qos}", f"in{qos}".encode(), qos)
    # Topics outside the mapping do not cross.
    local_pub.publish("other/x", b"no", 1)
    remote_pub.publish("other/y", b"no", 1)
    remote_sub.expect_none(0.5)
    local_sub.expect_none(0.5)
    assert "bridge b1: connecting -> connected" in local.log()
    for c in (remote_sub, local_sub, local_pub, remote_pub):
        c.disconnect()


@pytest.mark.serial("the remote gives up its port and takes it again")
def test_remote_killed_and_restarted_mid_stream_loses_nothing(start_broker, mosquitto):
    remote = mosquitto()
    local = start_broker(bridge=f"b2,address=127.0.0.1:{remote.port},remote_clientid=edge2,"
                         "restart_timeout=2,topic=data/# out 1")
    wait_bridge_up(local.port, "$SYS/broker/connection/edge2/state")
    remote_sub = client(remote.port, "remote-sub2")
    remote_sub.subscribe("data/#", 1)
    publisher = client(local.port, "local-pub2")
    total = 200
    received = []
    for i in range(total):
        if i == 80:
            # Mid-stream: wait for a prefix to arrive, then kill the remote.
            received += [m.payload for m in remote_sub.get_many(40, timeout=WAIT)]
            remote.kill()
            remote_sub.close_abruptly()
        publisher.publish("data/seq", str(i).encode(), 1)  # acknowledged by coremq
    remote.start()
    remote_sub = client(remote.port, "remote-sub2b")
    remote_sub.subscribe("data/#", 1)
    # Everything from the first message not yet seen on, in order (QoS 1 may repeat some).
    seen = [int(p) for p in received]
    deadline_count = 0
    while (not seen or seen[-1] != total - 1) and deadline_count < 5 * total:
        message = remote_sub.get(timeout=WAIT + 10)
        seen.append(int(message.payload))
        deadline_count += 1
    first_seen = []
    for value in seen:
        if value not in first_seen:
            first_seen.append(value)
    # Messages the remote had taken before the kill may have gone only to the old subscriber's
    # dead connection; from the first one the remote never acknowledged on, all arrive in order.
    missing = [i for i in range(total) if i not in first_seen]
    assert all(i < 80 for i in missing), f"lost after the kill: {missing}"
    tail = [v for v in first_seen if v >= 80]
    assert tail == list(range(80, total)), "out of order"
    assert "bridge b2: connected -> waiting" in local.log()
    remote_sub.disconnect()
    publisher.disconnect()


def first_occurrences(values):
    seen = set()
    ordered = []
    for value in values:
        if value not in seen:
            seen.add(value)
            ordered.append(value)
    return ordered


def collect_until(subscriber, wanted, limit):
    """Payloads (ints) from subscriber until every value in `wanted` came (at most `limit`)."""
    values = []
    while not wanted.issubset(values) and len(values) < limit:
        try:
            values.append(int(subscriber.get(timeout=WAIT + 10).payload))
        except AssertionError:
            missing = sorted(wanted - set(values))
            raise AssertionError(f"{len(missing)} of {len(wanted)} never came (of {len(values)} received): "
                                 f"{missing[:20]}") from None
    return values


@pytest.mark.serial("the remote gives up its port and takes it again")
def test_durable_bridge_queue_survives_kill_9_of_the_bridging_broker(store_broker, mosquitto):
    """--persistence: QoS 1 messages acknowledged to their publisher while the remote is down wait
    in the bridge's persistent local session; coremq is killed with kill -9, the remote and then
    coremq come back, and every message reaches the remote subscriber, in order."""
    remote = mosquitto()
    local = store_broker(bridge=f"bd1,address=127.0.0.1:{remote.port},remote_clientid=edgebd1,"
                         "restart_timeout=1,topic=data/# out 1")
    wait_bridge_up(local.port, "$SYS/broker/connection/edgebd1/state")
    remote.stop()
    publisher = helpers.RawClient(local.port)
    publisher.connect("durable-pub1")
    total = 300
    for i in range(total):
        publisher.publish("data/seq", str(i).encode(), qos=1, packet_id=i % 65535 + 1)  # waits for PUBACK
    publisher.close()
    local.kill()
    remote.start()
    remote_sub = client(remote.port, "remote-sub-bd1")
    remote_sub.subscribe("data/#", 1)
    local.restart()
    assert re.search(r"1 persistent sessions? with 3\d\d queued or in-flight messages", local.log()), local.log_tail()
    values = collect_until(remote_sub, set(range(total)), 3 * total)
    assert first_occurrences(values) == list(range(total)), "lost or out of order"
    duplicates = len(values) - total
    # None expected here (nothing was in flight to the remote at the kill); QoS 1 allows some.
    assert duplicates <= total, f"{duplicates} duplicates"
    remote_sub.expect_none(0.5)
    assert "bridge bd1: connecting -> connected" in local.log()
    remote_sub.disconnect()


def test_durable_bridge_drops_subscriptions_of_topic_lines_removed_since_the_last_run(store_broker, mosquitto):
    """The bridge's local session outlives coremq: after a restart with other topic lines, the
    old line's filter is unsubscribed (logged), and what only it matched is not forwarded."""
    remote = mosquitto()
    remote_sub = client(remote.port, "remote-sub-bd3")
    remote_sub.subscribe("#", 1)
    spec = f"bd3,address=127.0.0.1:{remote.port},remote_clientid=edgebd3,restart_timeout=1,notifications=false,"
    local = store_broker(bridge=spec + "topic=old/# out 1")
    publisher = client(local.port, "pub-bd3")
    publisher.publish("old/x", b"first", 1)
    assert remote_sub.get(timeout=WAIT).payload == b"first"
    publisher.disconnect()
    local.options["bridge"] = spec + "topic=new/# out 1"
    local.restart()
    assert "1 local subscriptions of the last run are no longer configured" in local.log()
    publisher = client(local.port, "pub-bd3b")
    publisher.publish("old/x", b"not forwarded", 1)
    publisher.publish("new/x", b"second", 1)
    message = remote_sub.get(timeout=WAIT)
    assert (message.topic, message.payload) == ("new/x", b"second")
    remote_sub.expect_none(0.5)
    publisher.disconnect()
    remote_sub.disconnect()


@pytest.mark.parametrize("qos", [1, 2])
def test_durable_bridge_kill_9_mid_stream_at_random_moments_loses_nothing(store_broker, mosquitto, qos):
    """--persistence, the remote up: a publisher streams QoS 1 (2) messages through the bridge
    while coremq is killed (-9) at a random moment, a few rounds; every message whose PUBACK
    (PUBREC) came back reaches the remote subscriber, first occurrences in publish order;
    duplicates counted, none at QoS 2: the bridge's remote session is persistent (cleansession
    false) and a resend carries the packet id the remote holds, so the remote drops it."""
    # A burst after each restart must not overflow the remote's queue for its subscriber
    # (Mosquitto drops past max_queued_messages, 1000 by default).
    remote = mosquitto("max_queued_messages 100000\n")
    remote_sub = client(remote.port, f"remote-sub-bd2-{qos}")
    remote_sub.subscribe("data/#", qos)
    local = store_broker(bridge=f"bd2,address=127.0.0.1:{remote.port},remote_clientid=edgebd2,"
                         f"restart_timeout=1,topic=data/# out {qos}")
    rng = random.Random(32 + qos)
    acknowledged = []
    next_value = 0
    started = time.monotonic()
    for round_index in range(4):
        stop = threading.Event()
        acked_this_round = []
        first = next_value

        def stream():
            client_ = helpers.RawClient(local.port)
            try:
                client_.connect(f"durable-pub2-{round_index}")
                for value in range(first, first + 5000):
                    if stop.is_set():
                        return
                    packet_id = value % 65535 + 1
                    if qos == 1:
                        client_.publish("data/seq", str(value).encode(), qos=1, packet_id=packet_id)
                        acked_this_round.append(value)
                    else:
                        client_.send(helpers.publish_packet("data/seq", str(value).encode(), 2, packet_id=packet_id))
                        client_.expect(helpers.pubrec_bytes(packet_id))
                        acked_this_round.append(value)  # PUBREC: the broker owns the message
                        client_.send(helpers.pubrel_bytes(packet_id))
                        client_.expect(helpers.pubcomp_bytes(packet_id))
            except (AssertionError, OSError, helpers.ConnectionClosed):
                return  # killed mid-flow
            finally:
                client_.close()

        worker = threading.Thread(target=stream)
        worker.start()
        time.sleep(rng.uniform(0.1, 0.6))
        local.kill()
        stop.set()
        worker.join(10)
        assert not worker.is_alive()
        acknowledged.extend(acked_this_round)
        # The next round starts above anything this one may have sent unacknowledged.
        next_value = first + 5000
        local.restart()
    assert len(acknowledged) > 20, "too few acknowledged messages to mean anything"
    values = collect_until(remote_sub, set(acknowledged), 4 * 5000 + 3 * len(acknowledged))
    # Then what still comes (unacknowledged messages of the last round, duplicates) until 1 s of quiet.
    while len(values) < 4 * 5000 + 3 * len(acknowledged):
        try:
            values.append(int(remote_sub.get(timeout=1.0).payload))
        except AssertionError:
            break
    order = first_occurrences(values)
    assert order == sorted(order), "out of publish order"
    duplicates = len(values) - len(order)
    assert set(acknowledged) <= set(order)
    print(f"QoS {qos}: {len(acknowledged)} acknowledged, {len(order)} arrived, {duplicates} duplicates")
    if qos == 2:
        assert duplicates == 0, f"{duplicates} QoS 2 messages arrived twice"
    assert time.monotonic() - started < 90
    remote_sub.disconnect()


@pytest.mark.parametrize("qos", [1, 2])
def test_durable_bridge_inbound_kill_9_at_random_moments_loses_nothing(store_broker, mosquitto, qos):
    """--persistence, inbound: a publisher streams QoS 1 (2) messages into the remote, whose
    subscriber is coremq's bridge, while coremq is killed (-9) at random moments, a few rounds; an
    offline persistent subscriber of coremq then gets every message the remote acknowledged to the
    publisher. The bridge acknowledges a message to the remote only once it is durable in coremq,
    and the remote keeps for the bridge's persistent session what was not acknowledged."""
    remote = mosquitto("max_queued_messages 100000\n")
    local = store_broker(bridge=f"bi2,address=127.0.0.1:{remote.port},remote_clientid=edgebi2,"
                         f"restart_timeout=1,topic=feed/# in {qos}")
    keeper_id = f"keeper-bi2-{qos}"
    keeper = helpers.RawClient(local.port)
    keeper.connect(keeper_id, clean_session=False)
    assert keeper.subscribe([("feed/#", qos)]) == [qos]
    keeper.disconnect_and_wait()
    wait_bridge_up(local.port, "$SYS/broker/connection/edgebi2/state")
    rng = random.Random(320 + qos)
    acknowledged = []
    started = time.monotonic()
    for round_index in range(4):
        stop = threading.Event()
        acked_this_round = []

        def stream():
            publisher = helpers.RawClient(remote.port)
            try:
                publisher.connect(f"inbound-pub-{qos}-{round_index}")
                for index in range(5000):
                    if stop.is_set():
                        return
                    value = round_index * 5000 + index
                    # Waits for the remote's PUBACK (PUBCOMP).
                    publisher.publish("feed/seq", str(value).encode(), qos=qos, packet_id=index % 65535 + 1)
                    acked_this_round.append(value)
            except (AssertionError, OSError, helpers.ConnectionClosed):
                return
            finally:
                publisher.close()

        worker = threading.Thread(target=stream)
        worker.start()
        time.sleep(rng.uniform(0.1, 0.6))
        local.kill()
        stop.set()
        worker.join(30)
        assert not worker.is_alive()
        acknowledged.extend(acked_this_round)
        local.restart()
    assert len(acknowledged) > 20, "too few acknowledged messages to mean anything"
    keeper = helpers.RawClient(local.port)
    assert keeper.connect(keeper_id, clean_session=False) == 1
    received = []
    wanted = set(acknowledged)
    while not wanted.issubset(received) and len(received) < 3 * len(acknowledged):
        try:
            received.append(int(keeper.receive_publish(timeout=WAIT + 10).payload))
        except AssertionError:
            break  # nothing more: the assertion below says what is missing
    missing = wanted - set(received)
    assert not missing, (f"{len(missing)} of {len(wanted)} messages the remote acknowledged were lost, e.g. "
                         f"{sorted(missing)[:10]}; {len(received)} received")
    print(f"QoS {qos} inbound: {len(acknowledged)} acknowledged by the remote, {len(received)} received")
    assert time.monotonic() - started < 120
    keeper.disconnect()


@pytest.mark.parametrize("version", ["mqttv311", "mqttv50"])
def test_two_coremqs_bridged_both_ways_do_not_echo(start_broker, version):
    remote = start_broker()
    local = start_broker(bridge=f"b3,address=127.0.0.1:{remote.port},bridge_protocol_version={version},"
                         "remote_clientid=edge3,topic=# both 1")
    wait_bridge_up(local.port, "$SYS/broker/connection/edge3/state")
    local_sub = client(local.port, "ls")
    local_sub.subscribe("t/#", 1)
    remote_sub = client(remote.port, "rs")
    remote_sub.subscribe("t/#", 1)
    local_pub = client(local.port, "lp")
    remote_pub = client(remote.port, "rp")
    local_pub.publish("t/1", b"from-local", 1)
    remote_pub.publish("t/2", b"from-remote", 1)
    for sub in (local_sub, remote_sub):
        payloads = sorted(m.payload for m in sub.get_many(2, timeout=WAIT))
        assert payloads == [b"from-local", b"from-remote"]
    # No echo: nothing more arrives (a loop would repeat them at once).
    local_sub.expect_none(1.0)
    remote_sub.expect_none(1.0)
    for c in (local_sub, remote_sub, local_pub, remote_pub):
        c.disconnect()


# Every MQTT 5 PUBLISH property a message carries from its publisher to its subscribers (the
# Topic Alias and Subscription Identifiers belong to one connection, so they are not here).
CROSSING_PROPERTIES = dict(PayloadFormatIndicator=1, ContentType="text/plain; charset=utf-8",
                           ResponseTopic="reply/to/me", CorrelationData=b"\x00\x01corr\xff",
                           MessageExpiryInterval=600,
                           UserProperty=[("k1", "v1"), ("k2", "v2"), ("k1", "again")])


def assert_properties_crossed(message, topic, payload):
    assert (message.topic, message.payload, message.qos) == (topic, payload, 1)
    assert message.prop("PayloadFormatIndicator") == 1
    assert message.prop("ContentType") == "text/plain; charset=utf-8"
    assert message.prop("ResponseTopic") == "reply/to/me"
    assert message.prop("CorrelationData") == b"\x00\x01corr\xff"
    # The time left: what the publisher set minus what the hops took (seconds at most here).
    expiry = message.prop("MessageExpiryInterval")
    assert expiry is not None and 540 <= expiry <= 600, expiry
    assert message.user_properties == [("k1", "v1"), ("k2", "v2"), ("k1", "again")]


def client5(port, name):
    c = PahoClient5(port, name)
    c.connect()
    return c


@pytest.mark.parametrize("remote_kind", ["mosquitto", "coremq"])
def test_mqtt5_bridge_carries_message_properties_both_ways(start_broker, mosquitto, remote_kind):
    remote = mosquitto() if remote_kind == "mosquitto" else start_broker()
    local = start_broker(bridge=f"b5,address=127.0.0.1:{remote.port},bridge_protocol_version=mqttv50,"
                         "remote_clientid=edge5,topic=p/# out 1 up/ site/,topic=p/# in 1 down/ cmd/")
    wait_bridge_up(local.port, "$SYS/broker/connection/edge5/state")
    remote_sub = client5(remote.port, "remote-sub5")
    remote_sub.subscribe("site/#", 1)
    local_sub = client5(local.port, "local-sub5")
    local_sub.subscribe("down/#", 1)
    local_pub = client5(local.port, "local-pub5")
    remote_pub = client5(remote.port, "remote-pub5")
    properties = paho_properties("PUBLISH", **CROSSING_PROPERTIES)
    local_pub.publish5("up/p/out", b"outbound", 1, properties=properties)
    assert_properties_crossed(remote_sub.get(timeout=WAIT), "site/p/out", b"outbound")
    remote_pub.publish5("cmd/p/in", b"inbound", 1, properties=properties)
    assert_properties_crossed(local_sub.get(timeout=WAIT), "down/p/in", b"inbound")
    # A message without properties arrives without them (none made up on the way).
    local_pub.publish5("up/p/plain", b"plain", 1)
    plain = remote_sub.get(timeout=WAIT)
    assert plain.payload == b"plain" and plain.user_properties == []
    assert plain.prop("MessageExpiryInterval") is None and plain.prop("ContentType") is None
    for c in (remote_sub, local_sub, local_pub, remote_pub):
        c.disconnect()


def test_mosquitto_bridge_to_coremq_with_try_private(broker, mosquitto):
    remote = mosquitto(f"connection tocoremq\naddress 127.0.0.1:{broker.port}\ntopic # both 1\n"
                       "try_private true\nremote_clientid mosq-bridge\ncleansession true\n")
    # Mosquitto publishes its notification "1" on coremq once connected.
    wait_bridge_up(broker.port, "$SYS/broker/connection/mosq-bridge/state")
    coremq_sub = client(broker.port, "cs")
    coremq_sub.subscribe("m/#", 1)
    mosquitto_sub = client(remote.port, "ms")
    mosquitto_sub.subscribe("m/#", 1)
    client(remote.port, "mp").publish("m/1", b"from-mosquitto", 1)
    client(broker.port, "cp").publish("m/2", b"from-coremq", 1)
    for sub in (coremq_sub, mosquitto_sub):
        payloads = sorted(m.payload for m in sub.get_many(2, timeout=WAIT))
        assert payloads == [b"from-coremq", b"from-mosquitto"]
    coremq_sub.expect_none(1.0)
    mosquitto_sub.expect_none(1.0)
    coremq_sub.disconnect()
    mosquitto_sub.disconnect()


def openssl(directory, *arguments):
    result = subprocess.run(["openssl", *arguments], cwd=directory, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"openssl {' '.join(arguments)}:\n{result.stderr}"


def make_pki(directory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, with `openssl`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ext.cnf").write_text("[server]\nsubjectAltName = IP:127.0.0.1\n"
                                       "[client]\nextendedKeyUsage = clientAuth\n")
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(directory, "req", "-x509", *new_key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "30",
            "-subj", "/CN=bridge test CA")
    for name, extension in (("server", "server"), ("client", "client")):
        openssl(directory, "req", "-new", *new_key, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}")
        openssl(directory, "x509", "-req", "-in", f"{name}.csr", "-out", f"{name}.crt", "-CA", "ca.crt",
                "-CAkey", "ca.key", "-CAcreateserial", "-days", "30", "-extfile", "ext.cnf",
                "-extensions", extension)
    return directory


def test_tls_bridge_with_a_client_certificate(start_broker, mosquitto, tmp_path):
    pki = make_pki(tmp_path / "pki")
    plain_port = free_port()
    remote = mosquitto(f"cafile {pki / 'ca.crt'}\ncertfile {pki / 'server.crt'}\nkeyfile {pki / 'server.key'}\n"
                       "require_certificate true\n"
                       f"listener {plain_port} 127.0.0.1\n"
                       # Run as root, mosquitto drops to its own user before reading the files.
                       + ("user root\n" if os.geteuid() == 0 else ""))
    local = start_broker(bridge=f"tls,address=127.0.0.1:{remote.port},remote_clientid=edge-tls,"
                         f"bridge_cafile={pki / 'ca.crt'},bridge_certfile={pki / 'client.crt'},"
                         f"bridge_keyfile={pki / 'client.key'},topic=# both 1 l/ r/")
    wait_bridge_up(local.port, "$SYS/broker/connection/edge-tls/state")
    remote_sub = client(plain_port, "remote-sub-tls")  # the remote's plain listener
    remote_sub.subscribe("r/up", 1)
    local_sub = client(local.port, "local-sub-tls")
    local_sub.subscribe("l/down", 1)
    client(local.port, "local-pub-tls").publish("l/up", b"over tls out", 1)
    got = remote_sub.get(timeout=WAIT)
    assert (got.topic, got.payload) == ("r/up", b"over tls out")
    client(plain_port, "remote-pub-tls").publish("r/down", b"over tls in", 1)
    got = local_sub.get(timeout=WAIT)
    assert (got.topic, got.payload) == ("l/down", b"over tls in")
    remote_sub.disconnect()
    local_sub.disconnect()


def test_tls_bridge_refuses_a_remote_its_ca_did_not_sign(start_broker, mosquitto, tmp_path):
    pki = make_pki(tmp_path / "pki")
    other = make_pki(tmp_path / "other")
    remote = mosquitto(f"cafile {pki / 'ca.crt'}\ncertfile {pki / 'server.crt'}\nkeyfile {pki / 'server.key'}\n"
                       + ("user root\n" if os.geteuid() == 0 else ""))
    local = start_broker(bridge=f"bad,address=127.0.0.1:{remote.port},remote_clientid=edge-bad,"
                         f"bridge_cafile={other / 'ca.crt'},restart_timeout=1,topic=# out 1")
    assert helpers.wait_until(lambda: "certificate verify failed" in local.log(), timeout=WAIT), local.log_tail()
    assert "connecting -> connected" not in local.log()


def test_a_mosquitto_bridge_section_runs_unchanged_from_the_config_file(start_broker, mosquitto, tmp_path):
    remote = mosquitto()
    config = tmp_path / "coremq.conf"
    # As in mosquitto.conf(5)'s bridge section, options coremq ignores included.
    config.write_text(f"""\
connection bridge-to-remote
address 127.0.0.1:{remote.port}
topic sensors/# out 1 "" site7/
topic commands/# in 1 "" site7/
bridge_protocol_version mqttv311
try_private true
cleansession false
remote_clientid site7
keepalive_interval 60
notifications true
restart_timeout 1 5
start_type automatic
round_robin false
bridge_attempt_unsubscribe true
""")
    local = start_broker(config=str(config))
    assert "round_robin is not supported and is ignored" in local.log()
    wait_bridge_up(local.port, "$SYS/broker/connection/site7/state")
    remote_sub = client(remote.port, "remote-sub-conf")
    remote_sub.subscribe("site7/#", 1)
    local_sub = client(local.port, "local-sub-conf")
    local_sub.subscribe("commands/#", 1)
    client(local.port, "local-pub-conf").publish("sensors/t1", b"21.5", 1)
    got = remote_sub.get(timeout=WAIT)
    assert (got.topic, got.payload) == ("site7/sensors/t1", b"21.5")
    client(remote.port, "remote-pub-conf").publish("site7/commands/reboot", b"now", 1)
    got = local_sub.get(timeout=WAIT)
    assert (got.topic, got.payload) == ("commands/reboot", b"now")
    # The remote also sees the bridge's state, retained.
    watcher = client(remote.port, "remote-watch-conf")
    watcher.subscribe("$SYS/broker/connection/site7/state", 1)
    assert watcher.get(timeout=WAIT).payload == b"1"
    for c in (remote_sub, local_sub, watcher):
        c.disconnect()

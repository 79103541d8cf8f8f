# Bridges (docs/BRIDGING.md) against a real remote: Debian's mosquitto, started here on a free
# loopback port with a generated config, and coremq bridged to it with --bridge (and to another
# coremq, and mosquitto bridged to coremq with try_private). Each test synchronises on message
# round trips (a SUBACK, the notification topic's retained "1", a message echo), never on sleep.
import os
import subprocess

import paho.mqtt.client as paho
import pytest

import helpers
from conftest import free_port, is_mosquitto

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

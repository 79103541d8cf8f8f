# 19 listeners: several listeners in one broker (--listener, repeated, or a config file's
# `listener` sections), every shard serving every one of them, a message published through one
# reaching subscribers on another; the loopback default (127.0.0.1 and ::1 on one port);
# Mosquitto 2's anonymous policy (a listener bound beyond loopback refuses clients without a
# username, CONNACK 0x05 / 0x87, until --allow-anonymous or allow_anonymous=true opens it; the
# policy follows the bound address, so connecting through 127.0.0.1 to a 0.0.0.0 listener tests
# it without leaving loopback); a listener's port already in use failing the start; and bad
# specs exiting 2 with a message naming the spec and the key.
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest

import conftest
import helpers
from helpers import connack_bytes, connect_packet
from helpers_v5 import connect5

pytestmark = pytest.mark.coremq_only("coremq's --listener flag and start-up lines")

START_SECONDS = 10
NOT_AUTHORIZED_311 = 0x05
NOT_AUTHORIZED_5 = 0x87
LISTENING = re.compile(r"listening on (mqtts?|wss?)://(\[[^\]]+\]|[^:\s]+):(\d+) \(anonymous (allowed|refused)\)")


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


class RawClient6(helpers.RawClient):
    """A RawClient connected to ::1 instead of 127.0.0.1."""

    def __init__(self, port: int):  # pylint: disable=super-init-not-called
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.sock.settimeout(helpers.WAIT_SECONDS)
        self.sock.connect(("::1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.pending = []
        self.closed_by_peer = False


class ListenerBroker:
    """A coremq started with the given arguments (no --bind/--port of its own), ready once it
    logged `coremq started`; `listening` holds (scheme, address, port, anonymous) per line."""

    def __init__(self, directory: Path, threads: int, arguments, config_text=None):
        directory.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / "broker.log"
        command = [conftest.COREMQ_BINARY, f"--threads={threads}", "--pin-threads=false", *arguments]
        if config_text is not None:
            config_path = directory / "coremq.conf"
            config_path.write_text(config_text)
            command += ["-c", str(config_path)]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        ready = helpers.wait_until(lambda: "coremq started" in self.log() or self.process.poll() is not None,
                                   timeout=START_SECONDS)
        assert ready and self.process.poll() is None, f"broker did not start:\n{self.log()}"
        self.listening = [(scheme, address.strip("[]"), int(port), anonymous == "allowed")
                          for scheme, address, port, anonymous in LISTENING.findall(self.log())]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ports(self, address):
        return [port for _, bound, port, _ in self.listening if bound == address]

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(conftest.STOP_SECONDS)
        log = self.log()
        assert self.process.returncode == 0, f"broker exited with {self.process.returncode}:\n{log}"
        for word in conftest.BAD_LOG_WORDS:
            assert word not in log, log


@pytest.fixture
def start_listeners(threads, tmp_path):
    started = []

    def start(*arguments, config_text=None):
        broker = ListenerBroker(tmp_path / f"broker{len(started)}", threads, arguments, config_text)
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.stop()


@pytest.fixture
def raw_clients():
    """raw_clients(port, ipv6=False) -> a RawClient closed at teardown."""
    made = []

    def make(port, ipv6=False):
        client = RawClient6(port) if ipv6 else helpers.RawClient(port)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def run_to_exit(arguments, config_text=None, tmp_path=None):
    command = [conftest.COREMQ_BINARY, "--threads=1", "--pin-threads=false", *arguments]
    if config_text is not None:
        path = tmp_path / "bad.conf"
        path.write_text(config_text)
        command += ["-c", str(path)]
    result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    return result.returncode, result.stdout + result.stderr


def publish_reaches(publisher, subscriber, topic, payload):
    publisher.publish(topic, payload, qos=1, packet_id=7)
    received = subscriber.receive_publish()
    assert (received.topic, received.payload) == (topic.encode(), payload)


def test_two_listeners_serve_one_broker(start_listeners, raw_clients, names):
    broker = start_listeners("--listener=mqtt://127.0.0.1:0", "--listener=mqtt://127.0.0.1:0")
    ports = broker.ports("127.0.0.1")
    assert len(ports) == 2 and ports[0] != ports[1], broker.log()
    topic = names.topic("across")
    # Subscriber and publisher through different listeners, on different shards, both ways.
    first_subscriber = raw_clients(ports[0])
    first_subscriber.connect(names.sub("first"))
    first_subscriber.subscribe([(topic, 1)])
    second_subscriber = raw_clients(ports[1])
    second_subscriber.connect(names.client("second", 3))
    second_subscriber.subscribe([(topic, 1)])
    publisher = raw_clients(ports[1])
    publisher.connect(names.pub())
    publish_reaches(publisher, first_subscriber, topic, b"from the second listener")
    assert second_subscriber.receive_publish().payload == b"from the second listener"
    other_publisher = raw_clients(ports[0])
    other_publisher.connect(names.pub("other"))
    publish_reaches(other_publisher, second_subscriber, topic, b"from the first listener")
    assert first_subscriber.receive_publish().payload == b"from the first listener"


def test_default_listens_on_ipv4_and_ipv6_loopback(start_listeners, raw_clients, names):
    if not ipv6_loopback_available():
        pytest.skip("no IPv6 loopback (::1) on this machine")
    broker = start_listeners("--port=0")
    assert broker.ports("127.0.0.1") == broker.ports("::1"), broker.log()
    port = broker.ports("127.0.0.1")[0]
    assert all(anonymous for _, _, _, anonymous in broker.listening)
    topic = names.topic("v6")
    subscriber = raw_clients(port, ipv6=True)
    subscriber.connect(names.sub())
    subscriber.subscribe([(topic, 1)])
    publisher = raw_clients(port)
    publisher.connect(names.pub())
    publish_reaches(publisher, subscriber, topic, b"from IPv4 to IPv6")


def test_listener_beyond_loopback_refuses_anonymous_clients(start_listeners, raw_clients, names):
    broker = start_listeners("--bind=0.0.0.0", "--port=0")
    port = broker.ports("0.0.0.0")[0]
    assert "refuses clients without a username" in broker.log()
    assert "--allow-anonymous" in broker.log()
    refused = raw_clients(port)
    refused.send(connect_packet(names.client("anonymous", 0)))
    refused.expect(connack_bytes(0, NOT_AUTHORIZED_311))
    refused.expect_closed()
    refused5 = raw_clients(port)
    refused5.send(connect5(names.client("anonymous5", 1)))
    connack = refused5.receive()
    assert connack.raw[0] == 0x20 and connack.raw[3] == NOT_AUTHORIZED_5, connack
    refused5.expect_closed()
    # A username is not anonymous (checking passwords is another listener option's business).
    named = raw_clients(port)
    named.send(connect_packet(names.client("named", 2), username="alice"))
    named.expect(connack_bytes(0, 0))
    named.ping()


@pytest.mark.parametrize("arguments", [["--bind=0.0.0.0", "--port=0", "--allow-anonymous"],
                                       ["--listener=mqtt://0.0.0.0:0,allow_anonymous=true"]],
                         ids=["flag", "spec"])
def test_allow_anonymous_opens_the_listener(start_listeners, raw_clients, names, arguments):
    broker = start_listeners(*arguments)
    assert "refuses clients without a username" not in broker.log()
    client = raw_clients(broker.ports("0.0.0.0")[0])
    client.connect(names.client("opened", 0))
    client.ping()


def test_config_file_with_two_listener_sections(start_listeners, raw_clients, names, coremq_passwd, tmp_path):
    loopback_port, network_port = conftest.free_port(), conftest.free_port()
    # A file's listener refuses anonymous clients by default, and without a password file every
    # client, as in Mosquitto 2: the loopback section opens, the network one checks passwords.
    password_file = tmp_path / "passwords"
    subprocess.run([coremq_passwd, "-c", "-b", str(password_file), "bob", "bob's pw"], check=True, timeout=30,
                   stdin=subprocess.DEVNULL, capture_output=True)
    config = (f"per_listener_settings true\n"
              f"listener {loopback_port} 127.0.0.1\n"
              f"allow_anonymous true\n"
              f"listener {network_port} 0.0.0.0\n"
              f"password_file {password_file}\n"
              f"max_keepalive 60\n")
    broker = start_listeners(config_text=config)
    assert broker.ports("127.0.0.1") == [loopback_port], broker.log()
    assert broker.ports("0.0.0.0") == [network_port], broker.log()
    topic = names.topic("file")
    subscriber = raw_clients(loopback_port)
    subscriber.connect(names.sub())
    subscriber.subscribe([(topic, 1)])
    # One client owned by each shard: with several shards most are accepted by another shard and
    # handed to their owner, and the listener they came through must go along.
    for shard in range(names.threads):
        anonymous = raw_clients(network_port)
        anonymous.send(connect_packet(names.client("anonymous", shard)))
        anonymous.expect(connack_bytes(0, NOT_AUTHORIZED_311))
        anonymous.expect_closed()
        allowed = raw_clients(loopback_port)
        allowed.connect(names.client("allowed", shard))
    publisher = raw_clients(network_port)
    publisher.send(connect_packet(names.pub(), username="bob", password="bob's pw"))
    publisher.expect(connack_bytes(0, 0))
    publish_reaches(publisher, subscriber, topic, b"from the file's second listener")


def test_listener_on_a_port_in_use_fails_the_start(start_listeners, threads, tmp_path):
    first = start_listeners("--listener=mqtt://127.0.0.1:0")
    port = first.ports("127.0.0.1")[0]
    second = subprocess.run([conftest.COREMQ_BINARY, f"--threads={threads}", "--pin-threads=false",
                             "--listener=mqtt://127.0.0.1:0", f"--listener=mqtt://127.0.0.1:{port}"],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    assert second.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in second.stderr and "already in use" in second.stderr, \
        second.stderr


@pytest.mark.parametrize("spec, message", [
    ("tcp://127.0.0.1:1883", "unknown scheme 'tcp'"),
    ("mqtt://127.0.0.1", "has no :PORT"),
    ("mqtt://::1:1883", "'::1' is not an address"),
    ("mqtt://localhost:99999", "port '99999' is not a number"),
    ("mqtt://127.0.0.1:0,colour=blue", "unknown key 'colour'"),
    ("mqtt://127.0.0.1:0,allow_anonymous=sometimes", "allow_anonymous: 'sometimes' is not true or false"),
    ("mqtt://127.0.0.1:0,certfile=/etc/server.pem", "certfile is a TLS option"),
    ("mqtts://127.0.0.1:0,certfile=/etc/server.pem", "needs certfile and keyfile (keyfile is missing)"),
])
def test_bad_spec_exits_2_naming_spec_and_key(spec, message):
    code, output = run_to_exit(["--listener=mqtt://127.0.0.1:0", f"--listener={spec}"])
    assert code == 2, output
    assert f"coremq: --listener={spec}: " in output and message in output, output


def test_bad_listener_section_exits_2_naming_its_line(tmp_path):
    code, output = run_to_exit([], config_text=f"listener {conftest.free_port()} 127.0.0.1\n"
                                               "certfile /etc/server.pem\n", tmp_path=tmp_path)
    assert code == 2, output
    assert "bad.conf:1: error: listener: a TLS listener needs certfile and keyfile" in output, output


def test_allow_anonymous_without_a_default_listener_exits_2():
    code, output = run_to_exit(["--listener=mqtt://127.0.0.1:0", "--allow-anonymous"])
    assert code == 2, output
    assert "--allow-anonymous opens the listener --bind/--port make" in output, output

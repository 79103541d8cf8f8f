# 26 reload: SIGHUP reads every listener's password and TLS files again. Connected clients stay
# connected (a PINGREQ round trip after the reload proves it) and keep working; new connections
# see the new files (a removed user is refused, an added one accepted, a TLS client gets the new
# server certificate). A file that fails to load keeps the previous one and the log names it. A
# publisher and a subscriber keep exchanging QoS 1 messages through every reload, none lost.
import re
import signal
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

import conftest
import helpers
from helpers import connack_bytes, connect_packet

pytestmark = pytest.mark.coremq_only("coremq's SIGHUP reload")

NOT_AUTHORIZED_311 = 0x05


def run(*command):
    subprocess.run(command, check=True, capture_output=True)


def make_ca(directory):
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(directory / "ca.key"), "-out", str(directory / "ca.crt"), "-days", "2",
        "-subj", "/CN=coremq reload test CA")


def make_server_certificate(directory, name):
    """A server certificate for 127.0.0.1 signed by the test CA: NAME.crt, NAME.key."""
    extensions = directory / "server.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(directory / f"{name}.key"), "-out", str(directory / f"{name}.csr"), "-subj", f"/CN={name}")
    run("openssl", "x509", "-req", "-in", str(directory / f"{name}.csr"), "-CA", str(directory / "ca.crt"),
        "-CAkey", str(directory / "ca.key"), "-CAcreateserial", "-out", str(directory / f"{name}.crt"),
        "-days", "2", "-extfile", str(extensions))


def install(directory, name):
    """Makes NAME the certificate the broker's files point at (server.crt, server.key)."""
    (directory / "server.crt").write_bytes((directory / f"{name}.crt").read_bytes())
    (directory / "server.key").write_bytes((directory / f"{name}.key").read_bytes())


def write_passwords(path, users):
    path.unlink(missing_ok=True)
    for index, (user, password) in enumerate(users.items()):
        flags = ["-c"] if index == 0 else []
        run(passwd_tool(), *flags, "-b", str(path), user, password)


def passwd_tool():
    tool = Path(conftest.COREMQ_BINARY).resolve().parents[2] / "tools" / "coremq-passwd"
    if not tool.exists():
        pytest.skip(f"no coremq-passwd at {tool}")
    return str(tool)


class ReloadBroker:
    """coremq with a plain listener with a password file (first: the ready line's port) and a TLS
    listener, both on ephemeral loopback ports."""

    def __init__(self, directory, threads, password_file):
        self.log_path = directory / "broker.log"
        tls = directory
        command = [conftest.COREMQ_BINARY, f"--threads={threads}", "--pin-threads=false",
                   f"--listener=mqtt://127.0.0.1:0,password_file={password_file}",
                   f"--listener=mqtts://127.0.0.1:0,certfile={tls / 'server.crt'},keyfile={tls / 'server.key'},"
                   "allow_anonymous=true"]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        ready = helpers.wait_until(lambda: "coremq started" in self.log() or self.process.poll() is not None,
                                   timeout=conftest.START_SECONDS)
        assert ready and self.process.poll() is None, f"broker did not start:\n{self.log()}"
        self.port = int(re.search(r"listening on mqtt://127\.0\.0\.1:(\d+)", self.log()).group(1))
        self.tls_port = int(re.search(r"listening on mqtts://127\.0\.0\.1:(\d+)", self.log()).group(1))

    def log(self):
        return self.log_path.read_text(errors="replace")

    def reload(self, expect):
        """SIGHUP, then waits for the reload's line matching `expect` (a regex) past those before."""
        before = len(re.findall(expect, self.log()))
        self.process.send_signal(signal.SIGHUP)
        assert helpers.wait_until(lambda: len(re.findall(expect, self.log())) > before,
                                  timeout=conftest.START_SECONDS), f"no {expect!r} after SIGHUP:\n{self.log()}"

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(conftest.STOP_SECONDS)
        log = self.log()
        assert self.process.returncode == 0, log
        for word in conftest.BAD_LOG_WORDS:
            assert word not in log, log


@pytest.fixture
def setup(threads, tmp_path):
    make_ca(tmp_path)
    make_server_certificate(tmp_path, "first")
    make_server_certificate(tmp_path, "second")
    install(tmp_path, "first")
    passwords = tmp_path / "passwords"
    write_passwords(passwords, {"alice": "alice-secret"})
    broker = ReloadBroker(tmp_path, threads, passwords)
    yield broker, tmp_path, passwords
    broker.stop()


def connack_code(port, user, password, client_id="reload-probe"):
    client = helpers.RawClient(port)
    try:
        client.send(connect_packet(client_id, username=user, password=password))
        connack = client.receive(packet_type=helpers.CONNACK)
        return connack.body[1]
    finally:
        client.close()


def tls_certificate_subject(port, ca):
    """The CN of the certificate the TLS listener serves now (a full handshake)."""
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=helpers.WAIT_SECONDS) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return dict(item[0] for item in tls.getpeercert()["subject"])["commonName"]


class TlsClient:
    """A raw MQTT client over TLS: CONNECT, PINGREQ round trips."""

    def __init__(self, port, ca, client_id):
        context = ssl.create_default_context(cafile=str(ca))
        raw = socket.create_connection(("127.0.0.1", port), timeout=helpers.WAIT_SECONDS)
        self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        self.sock.sendall(connect_packet(client_id))
        assert self._read(4) == connack_bytes(0, 0)

    def _read(self, count):
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise helpers.ConnectionClosed()
            data += chunk
        return data

    def ping(self):
        self.sock.sendall(helpers.PINGREQ_BYTES)
        assert self._read(2) == helpers.PINGRESP_BYTES

    def close(self):
        self.sock.close()


def test_password_file_reload_keeps_connected_clients_and_applies_to_new_ones(setup, names):
    broker, _, passwords = setup
    alice = helpers.RawClient(broker.port)
    alice.connect(names.client("alice", 0), username="alice", password="alice-secret")
    write_passwords(passwords, {"bob": "bob-secret"})
    broker.reload(r"reload: password file \S+ reloaded")
    alice.ping()  # still connected, still served
    assert connack_code(broker.port, "alice", "alice-secret") == NOT_AUTHORIZED_311
    assert connack_code(broker.port, "bob", "bob-secret") == 0
    alice.close()


def test_password_file_that_fails_keeps_the_previous_one(setup):
    broker, _, passwords = setup
    passwords.write_bytes(b"alice:$7$101$x\0broken\n")  # a NUL byte: the file is refused
    broker.reload(r"reload: password file \S+: .*the previous file stays in use")
    assert re.search(rf"{re.escape(str(passwords))}:1: error", broker.log()), broker.log()
    assert connack_code(broker.port, "alice", "alice-secret") == 0


def test_certificate_reload_serves_new_connections_and_keeps_established_ones(setup, names):
    broker, directory, _ = setup
    ca = directory / "ca.crt"
    assert tls_certificate_subject(broker.tls_port, ca) == "first"
    established = TlsClient(broker.tls_port, ca, names.client("tls", 0))
    install(directory, "second")
    broker.reload(r"reload: TLS files of listener 1 \(port \d+\) reloaded")
    established.ping()  # the old session is untouched
    # Each shard applies the new context at its next turn: a new handshake may still land on
    # one that has not turned yet, so the check allows a few connections.
    assert helpers.wait_until(lambda: tls_certificate_subject(broker.tls_port, ca) == "second"), \
        "new connections still get the old certificate"
    for _ in range(8):  # every shard (SO_REUSEPORT spreads connections) serves the new one
        assert tls_certificate_subject(broker.tls_port, ca) == "second"
    established.ping()
    established.close()


def test_bad_certificate_keeps_the_previous_one(setup):
    broker, directory, _ = setup
    ca = directory / "ca.crt"
    # A key that does not match the certificate.
    (directory / "server.key").write_bytes((directory / "second.key").read_bytes())
    broker.reload(r"reload: TLS files of listener 1 .*the previous certificates stay in use")
    assert "does not match" in broker.log()
    assert tls_certificate_subject(broker.tls_port, ca) == "first"


def test_messages_flow_through_reloads(setup, names):
    broker, directory, passwords = setup
    subscriber = helpers.RawClient(broker.port)
    subscriber.connect(names.client("sub", 0), username="alice", password="alice-secret")
    topic = names.topic("reload")
    subscriber.subscribe([(topic, 1)])
    publisher = helpers.RawClient(broker.port)
    publisher.connect(names.client("pub", 1), username="alice", password="alice-secret")
    count = 300
    done = threading.Event()

    def reload_a_few_times():
        for round_number in range(3):
            install(directory, "second" if round_number % 2 == 0 else "first")
            broker.reload(r"reload: TLS files of listener 1 \(port \d+\) reloaded")
        done.set()

    reloader = threading.Thread(target=reload_a_few_times)
    reloader.start()
    received = []
    for number in range(count):
        publisher.publish(topic, str(number).encode(), qos=1, packet_id=number % 60000 + 1)
        received.append(subscriber.receive_publish().payload)
    reloader.join(timeout=30)
    assert done.is_set()
    assert received == [str(number).encode() for number in range(count)]
    subscriber.close()
    publisher.close()


class AclBroker:
    """coremq with one listener whose ACL file the test rewrites and reloads."""

    def __init__(self, directory, threads, acl_file):
        self.log_path = directory / "acl-broker.log"
        command = [conftest.COREMQ_BINARY, f"--threads={threads}", "--pin-threads=false",
                   f"--listener=mqtt://127.0.0.1:0,acl_file={acl_file}"]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        ready = helpers.wait_until(lambda: "coremq started" in self.log() or self.process.poll() is not None,
                                   timeout=conftest.START_SECONDS)
        assert ready and self.process.poll() is None, f"broker did not start:\n{self.log()}"
        self.port = int(re.search(r"listening on mqtt://127\.0\.0\.1:(\d+)", self.log()).group(1))

    log = ReloadBroker.log
    reload = ReloadBroker.reload
    stop = ReloadBroker.stop


def test_acl_reload_applies_to_sessions_that_connect_after_it(threads, tmp_path, names):
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite open/#\n")
    broker = AclBroker(tmp_path, threads, acl)
    try:
        before = helpers.RawClient(broker.port)  # compiles the first file
        before.connect(names.client("before", 0))
        acl.write_text("topic readwrite open/#\ntopic readwrite closed/#\n")
        broker.reload(r"reload: ACL file \S+ reloaded")
        subscriber = helpers.RawClient(broker.port)
        subscriber.connect(names.client("sub", 1))
        assert subscriber.subscribe([("closed/#", 1), ("open/#", 1)]) == [1, 1]
        after = helpers.RawClient(broker.port)
        after.connect(names.client("after", 0))
        after.publish("closed/new", b"allowed now", qos=1)
        assert subscriber.receive_publish().topic == b"closed/new"
        # The connection made before the reload keeps the rules it compiled: its closed/ message
        # is dropped, so its next one (allowed by both files) is what arrives.
        before.publish("closed/old", b"still refused", qos=1)
        before.publish("open/fence", b"fence", qos=1)
        assert subscriber.receive_publish().topic == b"open/fence"
        before.ping()
        # A file that fails keeps the one in use.
        acl.write_text("topic readwrite closed/#\nbogus line\n")
        broker.reload(r"reload: ACL file .*the previous file stays in use")
        assert re.search(rf"{re.escape(str(acl))}:2", broker.log()), broker.log()
        late = helpers.RawClient(broker.port)
        late.connect(names.client("late", 0))
        late.publish("closed/late", b"allowed by the file still in use", qos=1)
        assert subscriber.receive_publish().topic == b"closed/late"
        for client in (before, subscriber, after, late):
            client.close()
    finally:
        broker.stop()

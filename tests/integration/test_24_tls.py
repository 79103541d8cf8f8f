# 24 TLS: mqtts:// and wss:// listeners with real clients. The test makes its own certificates
# with the `openssl` command in a temporary directory (a CA, a server certificate for 127.0.0.1
# and localhost, client certificates that are valid, expired, revoked by a CRL, without a CN, or
# issued by a second CA; and a $7$ password file), so nothing committed can expire. It checks
# mosquitto_pub/mosquitto_sub with --cafile and with client certificates at QoS 0/1/2 across
# shards; the refusals of require_certificate (no certificate, wrong CA, expired, revoked) with
# the reason in the broker log; use_identity_as_username and use_subject_as_username under
# allow_anonymous=false; paho-mqtt over TLS and over wss (with a client certificate too);
# tls_version=tlsv1.3 refusing a TLS 1.2 client; ciphers and ciphersuites; the end of the
# handshake and the first packets in one write (handed to the owner shard together); packets
# behind a CONNECT waiting for its password check; ticket resumption on any shard keeping the
# certificate username; malformed handshakes closed with their reason and stalled ones closed by
# --connect-timeout, while an established client keeps working; close_notify both ways (a
# client's, and the broker's at SIGTERM); a broker whose certificate, key, CA file or CRL is
# missing or mismatched failing its start naming the file; and Debian's mosquitto given the same
# files accepting and refusing the same client certificates as coremq. Every test runs at
# --threads=1 and --threads=4 (t1/t4).
import base64
import hashlib
import os
import random
import signal
import socket
import ssl
import struct
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import helpers
from conftest import COREMQ_BINARY, STOP_SECONDS, Broker, free_port
from helpers import connack_bytes, connect_packet

pytestmark = pytest.mark.coremq_only("coremq's --listener specs (the mosquitto comparison runs both itself)")

MOSQUITTO = "/usr/sbin/mosquitto"
NOT_AUTHORIZED_311 = 0x05
MESSAGE_FORMAT = "MSG %q %t %p"
# The verifier's words for each refused client certificate, as the broker logs them.
REFUSAL_REASONS = {
    "none": "peer did not return a certificate",
    "wrong_ca": "unable to get local issuer certificate",
    "expired": "certificate has expired",
    "revoked": "certificate revoked",
}


# ------------------------------------------------------------------ certificates

OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
x509_extensions = ca_ext
[dn]
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ca]
default_ca = test_ca
[test_ca]
dir = .
database = index.txt
serial = serial
crlnumber = crlnumber
new_certs_dir = issued
certificate = ca.crt
private_key = ca.key
default_md = sha256
default_days = 30
default_crl_days = 30
policy = anything
unique_subject = no
preserve = yes
copy_extensions = none
[anything]
commonName = optional
organizationName = optional
organizationalUnitName = optional
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
"""


def openssl(directory: Path, *arguments):
    result = subprocess.run(["openssl", *arguments], cwd=directory, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"openssl {' '.join(arguments)}:\n{result.stderr}"


def openssl_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%y%m%d%H%M%SZ")


class Pki:
    """The test's certificates, made once per module. ca.crt issues server, valid, nocn (a
    subject without a CN), expired (valid in January 2020 only) and revoked (listed in crl.pem);
    other_ca.crt issues wrong_ca; stray.key belongs to no certificate. EC P-256 keys: quick to
    make, and every client here speaks ECDSA."""

    def __init__(self, directory: Path):
        self.directory = directory
        (directory / "openssl.cnf").write_text(OPENSSL_CONFIG)
        (directory / "issued").mkdir()
        (directory / "index.txt").write_text("")
        (directory / "serial").write_text("1000\n")
        (directory / "crlnumber").write_text("1000\n")
        config = ["-config", "openssl.cnf"]
        new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        for ca, subject in (("ca", "/O=coremq tests/CN=coremq test CA"), ("other_ca", "/O=elsewhere/CN=other CA")):
            openssl(directory, "req", *config, "-x509", *new_key, "-keyout", f"{ca}.key", "-out", f"{ca}.crt",
                    "-days", "30", "-subj", subject)
        subjects = {"server": "/O=coremq tests/CN=127.0.0.1", "valid": "/O=coremq tests/CN=valid-client",
                    "nocn": "/O=coremq tests/OU=no common name", "expired": "/O=coremq tests/CN=expired-client",
                    "revoked": "/O=coremq tests/CN=revoked-client", "wrong_ca": "/O=coremq tests/CN=wrong-ca-client",
                    "stray": "/CN=stray"}
        for name, subject in subjects.items():
            openssl(directory, "req", *config, "-new", *new_key, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                    "-subj", subject)
        sign = ["ca", *config, "-batch", "-notext"]
        openssl(directory, *sign, "-in", "server.csr", "-out", "server.crt", "-extensions", "server_ext")
        for name in ("valid", "nocn", "revoked"):
            openssl(directory, *sign, "-in", f"{name}.csr", "-out", f"{name}.crt", "-extensions", "client_ext")
        openssl(directory, *sign, "-in", "expired.csr", "-out", "expired.crt", "-extensions", "client_ext",
                "-startdate", "200101000000Z", "-enddate", "200201000000Z")
        openssl(directory, "x509", "-req", "-in", "wrong_ca.csr", "-out", "wrong_ca.crt", "-CA", "other_ca.crt",
                "-CAkey", "other_ca.key", "-set_serial", "4660", "-days", "30", "-extfile", "openssl.cnf",
                "-extensions", "client_ext")
        openssl(directory, "ca", *config, "-revoke", "revoked.crt")
        # A Mosquitto $7$ password file (PBKDF2-SHA512, as mosquitto_passwd writes it): alice/secret.
        salt = bytes(range(12))
        digest = hashlib.pbkdf2_hmac("sha512", b"secret", salt, 101, 64)
        (directory / "passwords").write_text(
            f"alice:$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}\n")
        # lastUpdate an hour back, so no clock step makes the CRL "not yet valid".
        openssl(directory, "ca", *config, "-gencrl", "-out", "crl.pem", "-crldays", "30",
                "-crl_lastupdate", openssl_time(datetime.now(timezone.utc) - timedelta(hours=1)))

    def path(self, name: str) -> str:
        return str(self.directory / name)

    @property
    def ca(self) -> str:
        return self.path("ca.crt")

    def cert(self, name: str) -> str:
        return self.path(f"{name}.crt")

    def key(self, name: str) -> str:
        return self.path(f"{name}.key")

    def server_keys(self) -> str:
        return f"certfile={self.cert('server')},keyfile={self.key('server')}"

    def mosquitto_client_arguments(self, certificate):
        """mosquitto_pub/sub TLS arguments; certificate is a client certificate's name or "none"."""
        arguments = ["--cafile", self.ca]
        if certificate != "none":
            arguments += ["--cert", self.cert(certificate), "--key", self.key(certificate)]
        return arguments


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


# ------------------------------------------------------------------ brokers

def listener_specs(pki: Pki) -> dict:
    """Every listener the tests use, by name: SCHEME plus the options after the port."""
    verify = f"cafile={pki.ca}"
    return {
        "tls": ("mqtts", pki.server_keys()),
        "mtls": ("mqtts", f"{pki.server_keys()},{verify},require_certificate=true,crlfile={pki.path('crl.pem')}"),
        "identity": ("mqtts", f"{pki.server_keys()},{verify},require_certificate=true,"
                              "use_identity_as_username=true,allow_anonymous=false"),
        # Without require_certificate the server asks for no certificate, so none ever comes.
        "identity_optional": ("mqtts", f"{pki.server_keys()},{verify},use_identity_as_username=true,"
                                       "allow_anonymous=false"),
        "subject": ("mqtts", f"{pki.server_keys()},{verify},require_certificate=true,"
                             "use_subject_as_username=true,allow_anonymous=false"),
        "tls13": ("mqtts", f"{pki.server_keys()},tls_version=tlsv1.3"),
        "ciphers": ("mqtts", f"{pki.server_keys()},ciphers=ECDHE-ECDSA-AES256-GCM-SHA384,"
                             "ciphersuites=TLS_CHACHA20_POLY1305_SHA256"),
        "password": ("mqtts", f"{pki.server_keys()},password_file={pki.path('passwords')},allow_anonymous=false"),
        "wss": ("wss", pki.server_keys()),
        "wss_identity": ("wss", f"{pki.server_keys()},{verify},require_certificate=true,"
                                f"crlfile={pki.path('crl.pem')},use_identity_as_username=true,allow_anonymous=false"),
    }


class TlsBroker(Broker):
    """coremq with the named listeners (see listener_specs), each on a free loopback port."""

    def __init__(self, directory: Path, threads: int, specs: dict, options: dict):
        super().__init__(directory, threads, options)
        self.specs = specs
        self.ports = {name: free_port() for name in specs}

    def _coremq_command(self):
        if not os.access(COREMQ_BINARY, os.X_OK):
            pytest.skip(f"no coremq binary at {COREMQ_BINARY}")
        command = [COREMQ_BINARY, f"--threads={self.threads}", "--log-level=info", "--pin-threads=false"]
        for name, (scheme, options) in self.specs.items():
            command.append(f"--listener={scheme}://127.0.0.1:{self.ports[name]},{options}")
        for name, value in self.options.items():
            command.append(f"--{name.replace('_', '-')}={value}")
        return command

    def _ready(self) -> bool:
        if "coremq started" not in self.log():
            return False
        self.port = next(iter(self.ports.values()))
        return True

    def wait_for_log(self, text: str, timeout=helpers.WAIT_SECONDS):
        assert helpers.wait_until(lambda: text in self.log(), timeout=timeout), \
            f"{text!r} not in the broker log within {timeout} s:\n{self.log_tail()}"


@pytest.fixture(scope="module")
def module_tls_broker(threads, pki, tmp_path_factory):
    broker = TlsBroker(tmp_path_factory.mktemp(f"tls-broker-t{threads}"), threads, listener_specs(pki), {})
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def broker(module_tls_broker):
    yield module_tls_broker
    assert module_tls_broker.alive(), f"broker died during the test:\n{module_tls_broker.log_tail()}"


@pytest.fixture
def start_tls_broker(threads, pki, tmp_path):
    """Factory for a broker of its own: start_tls_broker(["mtls"], connect_timeout=2). Its log
    then holds only this test's lines (TLS errors are logged at most once a second per shard)."""
    started = []

    def start(names, **options):
        specs = {name: spec for name, spec in listener_specs(pki).items() if name in names}
        broker = TlsBroker(tmp_path / f"broker{len(started)}", threads, specs, options)
        started.append(broker)
        return broker.start()

    yield start
    for broker in started:
        broker.stop()


# ------------------------------------------------------------------ clients

def client_context(pki: Pki, certificate=None, minimum=None, maximum=None) -> ssl.SSLContext:
    """A client context trusting the test CA (and checking the server's name against its
    subjectAltName); certificate names a client certificate to present."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(pki.ca)
    if certificate is not None:
        context.load_cert_chain(pki.cert(certificate), pki.key(certificate))
    if minimum is not None:
        context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    return context


class TlsRawClient(helpers.RawClient):
    """helpers.RawClient over TLS: the handshake completes in the constructor (ssl.SSLError if
    the server refuses it there). A TLS alert read later (TLS 1.3 sends the verdict on a client
    certificate after the client's handshake ended) counts as the connection's end; it is
    kept in `alert`."""

    def __init__(self, port: int, context: ssl.SSLContext, session=None):  # pylint: disable=super-init-not-called
        plain = socket.create_connection((helpers.HOST, port), timeout=helpers.WAIT_SECONDS)
        plain.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock = context.wrap_socket(plain, server_hostname=helpers.HOST, session=session)
        except BaseException:
            plain.close()
            raise
        self.buffer = b""
        self.pending = []
        self.closed_by_peer = False
        self.alert = None

    def _fill(self, deadline: float) -> bool:
        try:
            return super()._fill(deadline)
        except ssl.SSLError as error:
            self.alert = error
            self.closed_by_peer = True
            raise helpers.ConnectionClosed() from error

    def version(self) -> str:
        return self.sock.version()


class CoalescingTlsClient(helpers.RawClient):
    """A TLS client over memory BIOs: its handshake stops with its last flight unsent, so the
    first send() puts that flight and the first records of MQTT in one TCP write, and the
    broker reads the end of the handshake and the CONNECT (and what follows) together."""

    def __init__(self, port: int, context: ssl.SSLContext):  # pylint: disable=super-init-not-called
        self.sock = socket.create_connection((helpers.HOST, port), timeout=helpers.WAIT_SECONDS)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=helpers.HOST)
        self.buffer = b""
        self.pending = []
        self.closed_by_peer = False
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self.outgoing.read())
                data = self.sock.recv(65536)
                assert data, "the broker closed the connection during the handshake"
                self.incoming.write(data)

    def send(self, data: bytes):
        self.tls.write(data)
        self.sock.sendall(self.outgoing.read())

    def _fill(self, deadline: float) -> bool:
        # The broker's close_notify ends the stream, after the packets decrypted before it.
        if self.closed_by_peer:
            raise helpers.ConnectionClosed()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed_by_peer = True
            raise helpers.ConnectionClosed()
        self.incoming.write(data)
        while True:
            try:
                plain = self.tls.read(65536)
            except ssl.SSLWantReadError:
                return True
            except ssl.SSLZeroReturnError:
                plain = b""
            if not plain:  # close_notify (SSLObject.read answers b"" once it has come)
                self.closed_by_peer = True
                return True
            self.buffer += plain

    def version(self) -> str:
        return self.tls.version()


@pytest.fixture
def tls_clients():
    """tls_clients(port, context, session=None) -> a TlsRawClient closed at teardown."""
    made = []

    def make(port, context, session=None):
        client = TlsRawClient(port, context, session)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def paho_clients():
    """paho_clients(port, client_id, ca_certs, certfile=None, keyfile=None, transport="tcp") ->
    a PahoClient over TLS that has its CONNACK; disconnected at teardown."""
    made = []

    def make(port, client_id, ca_certs, certfile=None, keyfile=None, transport="tcp"):
        client = helpers.PahoClient(port, client_id, transport=transport)
        client.client.tls_set(ca_certs=ca_certs, certfile=certfile, keyfile=keyfile)
        made.append(client)
        client.connect()
        return client

    yield make
    for client in made:
        try:
            client.disconnect(timeout=1)
        except Exception:
            pass


def mosquitto_pub(port, client_id, tls_arguments, *arguments):
    """mosquitto_pub's exit code and stderr (0 once its message went through at its QoS)."""
    result = subprocess.run(["mosquitto_pub", "-h", helpers.HOST, "-p", str(port), "-i", client_id,
                             *tls_arguments, *arguments], stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=10)
    return result.returncode, result.stderr


def start_mosquitto_sub(clients, port, client_id, tls_arguments, *arguments):
    """A running mosquitto_sub that has its SUBACK; returns (process, output reader)."""
    process = clients.process(["stdbuf", "-oL", "mosquitto_sub", "-h", helpers.HOST, "-p", str(port),
                               "-i", client_id, "-d", "-F", MESSAGE_FORMAT, *tls_arguments, *arguments])
    output = helpers.OutputReader(process)
    output.wait_for("SUBACK")
    return process, output


def finish(process, output, timeout=10):
    return_code = process.wait(timeout)
    return return_code, [line for line in output.rest() if line.startswith("MSG ")]


def tls_subscriber(tls_clients, pki, port, client_id, topic, certificate="valid"):
    subscriber = tls_clients(port, client_context(pki, certificate))
    subscriber.connect(client_id)
    assert subscriber.subscribe([(topic, 1)]) == [1]
    return subscriber


def expect_delivery(subscriber, topic, payload):
    received = subscriber.receive_publish()
    assert (received.topic, received.payload) == (topic.encode(), payload)


def refused_by_tls(port, context, client_id) -> bool:
    """Whether TLS ends the connection before the CONNECT gets any answer."""
    try:
        client = TlsRawClient(port, context)
    except (ssl.SSLError, ConnectionError):
        return True
    try:
        client.send(connect_packet(client_id))
        packets = client.expect_closed()
    except (ssl.SSLError, ConnectionError):
        return True
    finally:
        client.close()
    return packets == []


def read_until_eof(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection; fails after timeout s."""
    deadline = time.monotonic() + timeout
    received = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"the broker did not close the connection within {timeout} s "
                                 f"(received {received[:64]!r})")
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return received
        if not data:
            return received
        received += data


def client_hello(pki: Pki) -> bytes:
    """The bytes of a real TLS ClientHello, as Python's ssl would send it first."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    connection = client_context(pki).wrap_bio(incoming, outgoing, server_hostname=helpers.HOST)
    with pytest.raises(ssl.SSLWantReadError):
        connection.do_handshake()
    hello = outgoing.read()
    assert hello[0] == 0x16 and len(hello) > 100, hello[:16]
    return hello


# ------------------------------------------------------------------ mosquitto clients

@pytest.mark.parametrize("listener, certificate", [("tls", "none"), ("mtls", "valid")],
                         ids=["cafile", "client-certificate"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mosquitto_clients_round_trip(broker, clients, names, pki, listener, certificate, qos):
    port = broker.ports[listener]
    tls = pki.mosquitto_client_arguments(certificate)
    topic = names.topic(f"{listener}-q{qos}")
    process, output = start_mosquitto_sub(clients, port, names.sub(), tls, "-t", topic, "-q", str(qos),
                                          "-C", "1", "-W", "10")
    code, errors = mosquitto_pub(port, names.pub(), tls, "-t", topic, "-q", str(qos), "-m", f"over tls {qos}")
    assert code == 0, errors
    assert finish(process, output) == (0, [f"MSG {qos} {topic} over tls {qos}"])


@pytest.mark.parametrize("certificate", ["none", "wrong_ca", "expired", "revoked"])
def test_refused_client_certificate(start_tls_broker, tls_clients, names, pki, certificate):
    broker = start_tls_broker(["mtls"])
    port = broker.ports["mtls"]
    topic = names.topic("after-refusal")
    subscriber = tls_subscriber(tls_clients, pki, port, names.sub(), topic)
    code, errors = mosquitto_pub(port, names.pub("refused"), pki.mosquitto_client_arguments(certificate),
                                 "-t", topic, "-q", "1", "-m", "must not arrive")
    assert code != 0, f"mosquitto_pub with certificate {certificate!r} was let in"
    broker.wait_for_log(f"before CONNECT: {'' if certificate == 'none' else 'certificate verify failed: '}"
                        f"{REFUSAL_REASONS[certificate]}")
    # Python's client is refused the same way: at the handshake, or (TLS 1.3 judges the client's
    # certificate after the client's side of the handshake) by an alert before any CONNACK.
    assert refused_by_tls(port, client_context(pki, None if certificate == "none" else certificate),
                          names.client("refused-raw", 0))
    # The refusals took nothing from the valid clients: the subscriber is still served.
    code, errors = mosquitto_pub(port, names.pub(), pki.mosquitto_client_arguments("valid"),
                                 "-t", topic, "-q", "1", "-m", "valid")
    assert code == 0, errors
    expect_delivery(subscriber, topic, b"valid")
    subscriber.ping()


# ------------------------------------------------------------------ certificate usernames

def test_use_identity_as_username(broker, clients, tls_clients, names, pki):
    port = broker.ports["identity"]
    # No username in CONNECT and anonymous clients refused: the certificate's CN is the username.
    for shard in range(names.threads):
        accepted = tls_clients(port, client_context(pki, "valid"))
        accepted.connect(names.client("identity", shard))
        accepted.ping()
    code, errors = mosquitto_pub(port, names.pub(), pki.mosquitto_client_arguments("valid"),
                                 "-t", names.topic("identity"), "-q", "1", "-m", "named by my certificate")
    assert code == 0, errors
    # A certificate from the same CA but without a CN names nobody: refused at CONNECT.
    nameless = tls_clients(port, client_context(pki, "nocn"))
    nameless.send(connect_packet(names.client("nameless", 1)))
    nameless.expect(connack_bytes(0, NOT_AUTHORIZED_311))
    nameless.expect_closed()
    # No certificate at all: the handshake is refused (require_certificate).
    code, _ = mosquitto_pub(port, names.pub("none"), pki.mosquitto_client_arguments("none"),
                            "-t", names.topic("identity"), "-m", "refused")
    assert code != 0


def test_use_identity_as_username_without_a_certificate(broker, tls_clients, names, pki):
    # The listener asks for no certificate, so none comes: every CONNECT is refused, even one
    # whose username is a valid certificate's CN (the CONNECT's username is never used there).
    port = broker.ports["identity_optional"]
    for shard, username in enumerate([None, "valid-client"]):
        client = tls_clients(port, client_context(pki, "valid"))
        client.send(connect_packet(names.client("no-certificate", shard), username=username))
        client.expect(connack_bytes(0, NOT_AUTHORIZED_311))
        client.expect_closed()
    broker.wait_for_log("the listener takes usernames from client certificates")


def test_use_subject_as_username(broker, tls_clients, names, pki):
    port = broker.ports["subject"]
    # Any certificate the CA issued has a subject, CN or not: both are accepted without a username.
    for shard, certificate in enumerate(["valid", "nocn"]):
        client = tls_clients(port, client_context(pki, certificate))
        client.connect(names.client(f"subject-{certificate}", shard))
        client.ping()
    code, _ = mosquitto_pub(port, names.pub("none"), pki.mosquitto_client_arguments("none"),
                            "-t", names.topic("subject"), "-m", "refused")
    assert code != 0


# ------------------------------------------------------------------ paho-mqtt

def test_paho_over_tls_with_and_without_client_certificate(broker, paho_clients, names, pki):
    subscriber = paho_clients(broker.ports["tls"], names.sub(), pki.ca)
    publisher = paho_clients(broker.ports["mtls"], names.pub(), pki.ca, pki.cert("valid"), pki.key("valid"))
    to_subscriber, to_publisher = names.topic("to-sub"), names.topic("to-pub")
    assert subscriber.subscribe(to_subscriber, 2) == [2]
    assert publisher.subscribe(to_publisher, 1) == [1]
    # 200 KiB: a message over many TLS records, both ways.
    large = bytes(range(256)) * 800
    for qos in (0, 1, 2):
        publisher.publish(to_subscriber, b"qos %d" % qos, qos=qos)
        message = subscriber.get()
        assert (message.topic, message.payload, message.qos) == (to_subscriber, b"qos %d" % qos, qos)
    publisher.publish(to_subscriber, large, qos=1)
    assert subscriber.get(timeout=15).payload == large
    subscriber.publish(to_publisher, large, qos=1)
    assert publisher.get(timeout=15).payload == large


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_paho_over_wss(broker, paho_clients, names, pki, qos):
    subscriber = paho_clients(broker.ports["wss"], names.sub(), pki.ca, transport="websockets")
    publisher = paho_clients(broker.ports["tls"], names.pub(), pki.ca)
    ws_publisher = paho_clients(broker.ports["wss"], names.pub("ws"), pki.ca, transport="websockets")
    topic = names.topic(f"wss-{qos}")
    assert subscriber.subscribe(topic, qos) == [qos]
    publisher.publish(topic, b"from mqtts", qos=qos)
    ws_publisher.publish(topic, b"from wss", qos=qos)
    payloads = sorted(message.payload for message in subscriber.get_many(2))
    assert payloads == [b"from mqtts", b"from wss"]


def test_paho_over_wss_with_client_certificate(broker, paho_clients, names, pki):
    # wss with require_certificate, a CRL and use_identity_as_username: TLS under WebSocket
    # verifies the certificate and names the user; paho sends no username.
    port = broker.ports["wss_identity"]
    client = paho_clients(port, names.sub(), pki.ca, pki.cert("valid"), pki.key("valid"), transport="websockets")
    topic = names.topic("wss-identity")
    assert client.subscribe(topic, 1) == [1]
    client.publish(topic, b"named by my certificate", qos=1)
    assert client.get().payload == b"named by my certificate"
    refused = helpers.PahoClient(port, names.pub("revoked"), transport="websockets")
    refused.client.tls_set(ca_certs=pki.ca, certfile=pki.cert("revoked"), keyfile=pki.key("revoked"))
    with pytest.raises(ssl.SSLError):
        refused.connect()
    refused.disconnect()


# ------------------------------------------------------------------ protocol versions

def test_tls_version_13_refuses_tls_12(broker, tls_clients, names, pki):
    port = broker.ports["tls13"]
    with pytest.raises(ssl.SSLError):
        tls_clients(port, client_context(pki, maximum=ssl.TLSVersion.TLSv1_2))
    # openssl s_client, as the other TLS 1.2-only client (mosquitto_pub's --tls-version is a minimum).
    for flag, refused in (("-tls1_2", True), ("-tls1_3", False)):
        result = subprocess.run(["openssl", "s_client", "-connect", f"{helpers.HOST}:{port}", flag,
                                 "-CAfile", pki.ca, "-verify_return_error"], stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=10)
        output = result.stdout + result.stderr
        if refused:
            assert result.returncode != 0 and "alert protocol version" in output, output
        else:
            assert result.returncode == 0 and "New, TLSv1.3" in output, output
    code, errors = mosquitto_pub(port, names.pub("v13"), ["--cafile", pki.ca, "--tls-version", "tlsv1.3"],
                                 "-t", names.topic("v13"), "-q", "1", "-m", "accepted")
    assert code == 0, errors
    accepted = tls_clients(port, client_context(pki, minimum=ssl.TLSVersion.TLSv1_3))
    accepted.connect(names.client("v13", 1))
    accepted.ping()
    assert accepted.version() == "TLSv1.3"
    # The default listener still speaks TLS 1.2: the refusal above is tls_version's doing.
    older = tls_clients(broker.ports["tls"], client_context(pki, maximum=ssl.TLSVersion.TLSv1_2))
    older.connect(names.client("v12-elsewhere", 2))
    older.ping()
    assert older.version() == "TLSv1.2"


def test_ciphers_and_ciphersuites(broker, tls_clients, names, pki):
    port = broker.ports["ciphers"]
    tls13 = tls_clients(port, client_context(pki, minimum=ssl.TLSVersion.TLSv1_3))
    tls13.connect(names.client("suite", 0))
    assert tls13.sock.cipher()[0] == "TLS_CHACHA20_POLY1305_SHA256"
    tls12 = tls_clients(port, client_context(pki, maximum=ssl.TLSVersion.TLSv1_2))
    tls12.connect(names.client("cipher", 1))
    assert tls12.sock.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"
    # A TLS 1.2 client offering only a cipher the listener left out finds no common one.
    other = client_context(pki, maximum=ssl.TLSVersion.TLSv1_2)
    other.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    with pytest.raises(ssl.SSLError):
        tls_clients(port, other)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls12", "tls13"])
def test_handshake_end_and_packets_in_one_write(broker, names, pki, version):
    # The accepting shard reads the client's last handshake flight and the CONNECT, SUBSCRIBE,
    # PUBLISH and PINGREQ behind it at once; at t4 most of these clients belong to another
    # shard, so the TLS state, the decrypted packets and any unsent handshake bytes (TLS 1.3
    # session tickets) move there together.
    for shard in range(2 * names.threads):
        client_id = names.client("coalesced", shard)
        topic = names.topic(client_id)
        client = CoalescingTlsClient(broker.ports["tls"], client_context(pki, maximum=version))
        try:
            client.send(connect_packet(client_id) + helpers.subscribe_packet(1, [(topic, 1)]) +
                        helpers.publish_packet(topic, b"echo", qos=1, packet_id=5) + helpers.PINGREQ_BYTES)
            client.expect(connack_bytes(0, 0))
            client.expect(helpers.suback_bytes(1, [1]))
            client.expect(helpers.puback_bytes(5))
            assert client.receive_publish().payload == b"echo"
            client.expect(helpers.PINGRESP_BYTES)
            assert client.version() == ("TLSv1.3" if version == ssl.TLSVersion.TLSv1_3 else "TLSv1.2")
        finally:
            client.close()


def test_packets_behind_a_connect_waiting_for_its_password(broker, names, pki):
    # The CONNECT waits for the password checker's verdict; what follows it in the same write
    # (a PUBLISH of 64 KiB: several reads) waits behind it and is handled after the CONNACK.
    # Before the fix in Shard::replay the connection was not read again once the input parked
    # behind the CONNECT had been replayed, and the large PUBLISH never got its PUBACK.
    large = bytes(range(256)) * 256
    for shard in range(2 * names.threads):
        client_id = names.client("password", shard)
        topic = names.topic(client_id)
        client = CoalescingTlsClient(broker.ports["password"], client_context(pki))
        try:
            client.send(connect_packet(client_id, username="alice", password="secret") +
                        helpers.subscribe_packet(1, [(topic, 1)]) +
                        helpers.publish_packet(topic, large, qos=1, packet_id=5) + helpers.PINGREQ_BYTES)
            client.expect(connack_bytes(0, 0))
            client.expect(helpers.suback_bytes(1, [1]))
            client.expect(helpers.puback_bytes(5), timeout=10)
            assert client.receive_publish(timeout=10).payload == large
            client.expect(helpers.PINGRESP_BYTES)
        finally:
            client.close()
    wrong = CoalescingTlsClient(broker.ports["password"], client_context(pki))
    try:
        wrong.send(connect_packet(names.client("wrong", 0), username="alice", password="guess"))
        wrong.expect(connack_bytes(0, NOT_AUTHORIZED_311))
        wrong.expect_closed()
    finally:
        wrong.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls12", "tls13"])
def test_session_resumption_keeps_the_certificate_username(broker, tls_clients, names, pki, version):
    # Every shard encrypts tickets with the same keys, so a ticket from one shard resumes on
    # any; a resumed session carries its client certificate, whose CN stays the username on a
    # listener that refuses anonymous clients.
    port = broker.ports["identity"]
    context = client_context(pki, "valid", maximum=version)
    first = tls_clients(port, context)
    first.connect(names.client("ticket", 0))  # TLS 1.3 tickets come after the handshake: read them
    session = first.sock.session
    assert session is not None and session.has_ticket
    for shard in range(2 * names.threads):
        resumed = tls_clients(port, context, session)
        assert resumed.sock.session_reused, f"connection {shard} did not resume"
        resumed.connect(names.client("resumed", shard))
        resumed.ping()


# ------------------------------------------------------------------ bad handshakes

def garbage_handshake_record() -> bytes:
    """A complete handshake record holding a ClientHello of seeded random bytes."""
    body = random.Random(24).randbytes(508)
    message = bytes([1]) + len(body).to_bytes(3, "big") + body
    return bytes([0x16, 0x03, 0x01]) + struct.pack("!H", len(message)) + message


@pytest.mark.parametrize("junk, reason", [
    (bytes([0]) + random.Random(9).randbytes(511), "wrong version number"),
    (garbage_handshake_record(), "length mismatch"),
    (b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\r\n", "http request"),
    (connect_packet("plain-mqtt-on-tls"), "wrong version number"),
], ids=["random-bytes", "random-client-hello", "http-request", "plain-mqtt-connect"])
def test_malformed_handshake_is_closed(start_tls_broker, tls_clients, names, pki, junk, reason):
    broker = start_tls_broker(["tls"])
    port = broker.ports["tls"]
    topic = names.topic("established")
    established = tls_subscriber(tls_clients, pki, port, names.sub(), topic, certificate=None)
    with socket.create_connection((helpers.HOST, port), timeout=helpers.WAIT_SECONDS) as bad:
        bad.sendall(junk)
        # Well before --connect-timeout (10 s): the TLS error closes it, not the timer.
        answer = read_until_eof(bad, timeout=5)
    assert not answer or answer[0] == 0x15, f"expected nothing or a TLS alert, got {answer[:16]!r}"
    broker.wait_for_log(f"before CONNECT: {reason}")
    established.ping()
    publisher = tls_clients(port, client_context(pki))
    publisher.connect(names.pub())
    publisher.publish(topic, b"still served", qos=1)
    expect_delivery(established, topic, b"still served")


@pytest.mark.parametrize("sent", ["nothing", "half-client-hello", "client-hello-only", "handshake-no-connect"])
def test_stalled_handshake_is_closed_by_the_connect_timeout(start_tls_broker, tls_clients, names, pki, sent):
    timeout_seconds = 2
    broker = start_tls_broker(["tls"], connect_timeout=timeout_seconds)
    port = broker.ports["tls"]
    topic = names.topic("stall")
    established = tls_subscriber(tls_clients, pki, port, names.sub(), topic, certificate=None)
    hello = client_hello(pki)
    started = time.monotonic()
    if sent == "handshake-no-connect":
        # The TLS handshake completes; then no CONNECT.
        finished = tls_clients(port, client_context(pki))
        assert finished.expect_closed(timeout=10) == []
    else:
        with socket.create_connection((helpers.HOST, port), timeout=helpers.WAIT_SECONDS) as stalled:
            if sent == "half-client-hello":
                stalled.sendall(hello[:len(hello) // 2])
            elif sent == "client-hello-only":
                stalled.sendall(hello)  # the broker answers with its flight; the client's never comes
            answer = read_until_eof(stalled, timeout=10)
        assert answer[:1] == (b"\x16" if sent == "client-hello-only" else b""), answer[:16]
    elapsed = time.monotonic() - started
    # Not before the timeout (a lower bound, which a slow machine only makes safer).
    assert elapsed >= timeout_seconds - 0.5, f"closed after {elapsed:.2f} s, before the connect timeout"
    broker.wait_for_log(f"sent no CONNECT (or did not finish its authentication) within {timeout_seconds} s")
    # Meanwhile, and after, the established client is served.
    established.ping()
    publisher = tls_clients(port, client_context(pki))
    publisher.connect(names.pub())
    publisher.publish(topic, b"after the stall", qos=1)
    expect_delivery(established, topic, b"after the stall")


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls12", "tls13"])
def test_close_notify_without_disconnect(broker, tls_clients, names, pki, version):
    # A client's close_notify without DISCONNECT: the broker answers with its own close_notify
    # (a clean TLS close both ways) and, the MQTT session having ended without DISCONNECT,
    # publishes the will.
    port = broker.ports["tls"]
    topic = names.topic("will")
    subscriber = tls_subscriber(tls_clients, pki, port, names.sub(), topic, certificate=None)
    leaving = tls_clients(port, client_context(pki, maximum=version))
    leaving.connect(names.pub(), will=(topic, b"gone without DISCONNECT", 1, False))
    leaving.ping()
    plain = leaving.sock.unwrap()  # sends close_notify, returns once the broker's has come
    plain.settimeout(helpers.WAIT_SECONDS)
    assert plain.recv(16) == b"", "the broker did not close the connection after its close_notify"
    plain.close()
    expect_delivery(subscriber, topic, b"gone without DISCONNECT")


def test_sigterm_closes_tls_clients_with_close_notify(start_tls_broker, names, pki):
    broker = start_tls_broker(["tls"])
    context = client_context(pki)
    connected = []
    try:
        for shard in range(2 * names.threads):
            plain = socket.create_connection((helpers.HOST, broker.ports["tls"]), timeout=helpers.WAIT_SECONDS)
            # suppress_ragged_eofs=False: an end of stream without close_notify raises.
            client = context.wrap_socket(plain, server_hostname=helpers.HOST, suppress_ragged_eofs=False)
            connected.append(client)
            client.sendall(connect_packet(names.client("sigterm", shard)))
            assert client.recv(4) == connack_bytes(0, 0)
        broker.stop()  # SIGTERM; exit 0 within its bound, with a clean log
        for client in connected:
            assert client.recv(16) == b"", "expected the broker's close_notify"
    finally:
        for client in connected:
            client.close()


# ------------------------------------------------------------------ start-up errors

def server_identity_cases(pki: Pki):
    missing = pki.path("missing.pem")
    return {
        "missing-certfile": (f"certfile={missing},keyfile={pki.key('server')}", f'certfile "{missing}": No such file'),
        "missing-keyfile": (f"certfile={pki.cert('server')},keyfile={missing}", f'keyfile "{missing}": No such file'),
        "mismatched-key": (f"certfile={pki.cert('server')},keyfile={pki.key('stray')}",
                           f'keyfile "{pki.key("stray")}" does not match certfile "{pki.cert("server")}"'),
        "key-as-certfile": (f"certfile={pki.key('server')},keyfile={pki.key('server')}",
                            f'certfile "{pki.key("server")}": cannot load the certificate chain'),
        "missing-cafile": (f"{pki.server_keys()},cafile={missing}", f'cafile "{missing}": No such file'),
        "missing-crlfile": (f"{pki.server_keys()},cafile={pki.ca},require_certificate=true,crlfile={missing}",
                            f'crlfile "{missing}": No such file'),
    }


@pytest.mark.parametrize("case", ["missing-certfile", "missing-keyfile", "mismatched-key", "key-as-certfile",
                                  "missing-cafile", "missing-crlfile"])
def test_bad_server_files_fail_the_start(threads, pki, case):
    options, message = server_identity_cases(pki)[case]
    result = subprocess.run([COREMQ_BINARY, f"--threads={threads}", "--pin-threads=false",
                             f"--listener=mqtts://127.0.0.1:{free_port()},{options}"],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert message in output, output
    assert "coremq started" not in output, output


# ------------------------------------------------------------------ against mosquitto

class Mosquitto:
    """Debian's mosquitto with one TLS listener given the same files as coremq's mtls one."""

    def __init__(self, directory: Path, pki: Pki):
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log_path = directory / "mosquitto.log"
        lines = [f"listener {self.port} 127.0.0.1", f"cafile {pki.ca}", f"certfile {pki.cert('server')}",
                 f"keyfile {pki.key('server')}", "require_certificate true", f"crlfile {pki.path('crl.pem')}",
                 "allow_anonymous true", "persistence false", "log_dest stderr", "log_type all"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to user mosquitto, who cannot read the 0600 keys
        config = directory / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([MOSQUITTO, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        ready = helpers.wait_until(lambda: "running" in self.log() or self.process.poll() is not None, timeout=10)
        assert ready and self.process.poll() is None, f"mosquitto did not start:\n{self.log()}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_SECONDS)


def test_same_certificate_decisions_as_mosquitto(start_tls_broker, names, pki, tmp_path):
    if not os.access(MOSQUITTO, os.X_OK):
        pytest.skip(f"no {MOSQUITTO} (Debian's mosquitto package)")
    coremq = start_tls_broker(["mtls"])
    mosquitto = Mosquitto(tmp_path / "mosquitto", pki)
    try:
        table = {}
        for index, certificate in enumerate(["valid", "nocn", "none", "wrong_ca", "expired", "revoked"]):
            row = []
            for port in (coremq.ports["mtls"], mosquitto.port):
                code, _ = mosquitto_pub(port, names.client(f"table-{certificate}", index),
                                        pki.mosquitto_client_arguments(certificate),
                                        "-t", names.topic(certificate), "-q", "1", "-m", certificate)
                row.append(code == 0)
            table[certificate] = tuple(row)
    finally:
        mosquitto.stop()
    expected = {"valid": True, "nocn": True, "none": False, "wrong_ca": False, "expired": False, "revoked": False}
    # (coremq accepts, mosquitto accepts) per certificate: both as expected, so both the same.
    assert table == {certificate: (accepted, accepted) for certificate, accepted in expected.items()}, table
    for reason in ("certificate verify failed", "peer did not return a certificate"):
        assert reason in mosquitto.log(), mosquitto.log()

# 35 mosquitto.conf examples: configuration files written the way Mosquitto's documentation
# (mosquitto.conf(5), the example mosquitto.conf and Debian's /etc/mosquitto/mosquitto.conf) shows
# them start Debian's mosquitto 2.0 and coremq unchanged, each broker with its own copy (its own
# ports and directories), and both accept and refuse the same things:
#   - two listeners, one plain and one TLS (cafile/certfile/keyfile made here with openssl), with
#     allow_anonymous false, a password_file (one user hashed by mosquitto_passwd, one by
#     coremq-passwd) and an acl_file: anonymous clients and wrong passwords are refused, right ones
#     let in, the ACL decides what is delivered, and mosquitto_pub --cafile gets through the TLS
#     listener; persistence, log_dest file and a row of options coremq does not support (each a
#     warning naming FILE:LINE, and coremq still starts);
#   - per_listener_settings true: an anonymous listener with its own ACL next to a password one;
#   - a bare `listener` line: anonymous clients refused (allow_anonymous defaults to false), on
#     loopback too, and with no password file clients with a username as well;
#   - Debian's default file (pid_file, persistence true + persistence_location, log_dest file,
#     include_dir with the listener in conf.d/): a persistent session and a retained message
#     survive a restart on both.
# SUBSCRIBE codes are the one documented difference (test_21): mosquitto 2.0 grants every filter,
# coremq refuses (0x80) a filter through which the ACL lets nothing be read; deliveries are the same.
# Every wait is on a protocol answer (CONNACK, SUBACK, PUBACK, a message) or a log line.
import getpass
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

import helpers
from conftest import BAD_LOG_WORDS, COREMQ_BINARY, START_SECONDS, STOP_SECONDS, free_port

pytestmark = pytest.mark.coremq_only("compares coremq with mosquitto itself")

MOSQUITTO_BINARY = "/usr/sbin/mosquitto"
ACCEPTED = 0
NOT_AUTHORIZED_311 = 0x05
REFUSED = 0x80
TOOL_SECONDS = 30
KINDS = ("mosquitto", "coremq")
# As root, mosquitto changes to this user after reading its config; "mosquitto" (its default) could
# not read the test's 0700 directories, so the files say root, as an operator's would.
RUN_AS = "root" if os.geteuid() == 0 else getpass.getuser()

# ------------------------------------------------------------------ the files

# The mosquitto.conf(5) sections in the order of Mosquitto's example file; every path is the
# broker's own. The options coremq lacks are in UNSUPPORTED below.
TWO_LISTENERS = """\
# Config file for mosquitto
#
# See mosquitto.conf(5) for more information.

# =================================================================
# General configuration
# =================================================================
per_listener_settings false
pid_file {dir}/mosquitto.pid
user {user}
max_queued_messages 1000
max_inflight_messages 20
message_size_limit 0
queue_qos0_messages false
set_tcp_nodelay true

# =================================================================
# Listeners
# =================================================================
# Plain MQTT on loopback.
listener {plain_port} 127.0.0.1
max_connections -1
protocol mqtt

# MQTT over TLS.
listener {tls_port} 127.0.0.1
protocol mqtt
cafile {pki}/ca.crt
certfile {pki}/server.crt
keyfile {pki}/server.key
require_certificate false
tls_version tlsv1.2

# =================================================================
# Persistence
# =================================================================
persistence true
persistence_location {dir}/data/
persistence_file mosquitto.db
autosave_interval 1800

# =================================================================
# Logging
# =================================================================
log_dest file {dir}/broker.log
log_type error
log_type warning
log_type notice
log_type information
log_timestamp true
log_timestamp_format %Y-%m-%dT%H:%M:%S
connection_messages true

# =================================================================
# Security
# =================================================================
allow_anonymous false
password_file {shared}/passwords
acl_file {shared}/acl
"""

# Options of TWO_LISTENERS coremq does not support: each must be a warning naming its line.
UNSUPPORTED = ("pid_file", "user", "message_size_limit", "queue_qos0_messages", "set_tcp_nodelay",
               "persistence_file", "autosave_interval", "log_timestamp", "log_timestamp_format",
               "connection_messages")

ACL = """\
# Clients without a username may read the broker's status, nothing else.
topic read $SYS/#

# The sensors publish readings and read their own commands.
user sensor
topic write sensors/#
topic read commands/sensor

# The dashboard reads every reading and sends commands.
user dashboard
topic read sensors/#
topic readwrite commands/#

# Each client may use its own tree.
pattern readwrite clients/%c/#
"""

PASSWORDS = {"sensor": ("/usr/bin/mosquitto_passwd", "s3nsor pw"), "dashboard": ("coremq-passwd", "dash-pw")}

# per_listener_settings true: each listener has its own security options.
PER_LISTENER = """\
per_listener_settings true
user {user}

# Anyone may read the public topics here, and do nothing else.
listener {plain_port} 127.0.0.1
allow_anonymous true
acl_file {shared}/public_acl

# Users with a password, who may do anything.
listener {tls_port} 127.0.0.1
allow_anonymous false
password_file {shared}/passwords

persistence false
log_dest stderr
log_type all
"""

PUBLIC_ACL = "topic read public/#\n"

# The smallest file that opens a listener: no allow_anonymous, so (Mosquitto 2) it defaults to false.
LISTENER_ONLY = """\
# Plain MQTT on loopback.
listener {plain_port} 127.0.0.1
user {user}
"""

# Debian's /etc/mosquitto/mosquitto.conf, with the broker's own paths; the listener is in conf.d.
DEBIAN_DEFAULT = """\
# Place your local configuration in /etc/mosquitto/conf.d/
#
# A full description of the configuration file is at
# /usr/share/doc/mosquitto/examples/mosquitto.conf.example

pid_file {dir}/mosquitto.pid

persistence true
persistence_location {dir}/data/

log_dest file {dir}/broker.log

include_dir {dir}/conf.d
"""

DEBIAN_LOCAL = """\
listener {plain_port} 127.0.0.1
allow_anonymous true
user {user}
"""

# ------------------------------------------------------------------ certificates and passwords

SERVER_EXTENSIONS = """\
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
"""


def openssl(directory: Path, *arguments):
    result = subprocess.run(["openssl", *arguments], cwd=directory, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=TOOL_SECONDS)
    assert result.returncode == 0, f"openssl {' '.join(arguments)}:\n{result.stderr}"


def run_tool(arguments):
    result = subprocess.run(arguments, capture_output=True, text=True, timeout=TOOL_SECONDS,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{arguments}: exit {result.returncode}: {result.stderr}"


@pytest.fixture(scope="module")
def shared(tmp_path_factory, coremq_passwd):
    """A CA and a server certificate for 127.0.0.1 (EC P-256, 30 days), the password file (made by
    both tools) and the ACL files, in one directory both brokers read."""
    for binary in (MOSQUITTO_BINARY, "/usr/bin/mosquitto_passwd", "/usr/bin/mosquitto_pub"):
        if not os.access(binary, os.X_OK):
            pytest.skip(f"needs {binary} (Debian's mosquitto and mosquitto-clients)")
    directory = tmp_path_factory.mktemp("shared")
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl(directory, "req", "-x509", *new_key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "30",
            "-subj", "/O=coremq tests/CN=mosquitto examples CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl(directory, "req", "-new", *new_key, "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/O=coremq tests/CN=127.0.0.1")
    (directory / "server.ext").write_text(SERVER_EXTENSIONS)
    openssl(directory, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-set_serial", "4097", "-days", "30", "-out", "server.crt", "-extfile", "server.ext")
    passwords = directory / "passwords"
    for user, (tool, password) in PASSWORDS.items():
        tool = coremq_passwd if tool == "coremq-passwd" else tool
        run_tool([tool, *([] if passwords.exists() else ["-c"]), "-b", str(passwords), user, password])
    (directory / "acl").write_text(ACL)
    (directory / "public_acl").write_text(PUBLIC_ACL)
    return directory


# ------------------------------------------------------------------ the brokers

class ConfBroker:
    """Debian's mosquitto or coremq, started with `-c FILE` (the template filled in with this
    broker's ports and directory); stopped with SIGTERM, which it must survive with exit 0."""

    def __init__(self, kind, directory: Path, threads: int, template: str, shared: Path):
        self.kind = kind
        self.directory = directory
        self.threads = threads
        self.plain_port, self.tls_port = free_port(), free_port()
        self.values = {"dir": directory, "pki": shared, "shared": shared, "user": RUN_AS,
                       "plain_port": self.plain_port, "tls_port": self.tls_port}
        self.config_text = template.format(**self.values)
        self.config_path = directory / "mosquitto.conf"
        self.output_path = directory / "output.log"  # stdout and stderr
        self.log_path = directory / "broker.log"      # log_dest file, where the file says so
        self.process = None
        self.written_before = (0, 0)  # lengths of the output and the log file when this run started
        (directory / "data").mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text)

    def command(self):
        if self.kind == "mosquitto":
            return [MOSQUITTO_BINARY, "-c", str(self.config_path)]
        if not os.access(COREMQ_BINARY, os.X_OK):
            pytest.skip(f"no coremq binary at {COREMQ_BINARY}")
        return [COREMQ_BINARY, "-c", str(self.config_path), f"--threads={self.threads}", "--pin-threads=false"]

    def output(self) -> str:
        return self.output_path.read_text(errors="replace") if self.output_path.exists() else ""

    def log_file(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log(self) -> str:
        """Everything the broker wrote: its output and its log file."""
        return self.output() + self.log_file()

    def ready(self) -> bool:
        """The start line of this run (not of one before a restart) in the output or the log file."""
        marker = r"mosquitto version \S+ running" if self.kind == "mosquitto" else r"coremq started"
        output_before, log_before = self.written_before
        return any(re.search(marker, text) is not None
                   for text in (self.output()[output_before:], self.log_file()[log_before:]))

    def start(self):
        self.written_before = (len(self.output()), len(self.log_file()))
        with open(self.output_path, "ab") as output:
            self.process = subprocess.Popen(self.command(), stdout=output, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        started = helpers.wait_until(lambda: self.process.poll() is not None or self.ready(), timeout=START_SECONDS)
        assert started and self.process.poll() is None, \
            f"{self.kind} did not start on\n{self.config_text}\n{self.log()[-4000:]}"
        return self

    def stop(self):
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_SECONDS)
                raise AssertionError(f"{self.kind} did not exit within {STOP_SECONDS} s of SIGTERM")
        assert process.returncode == 0, f"{self.kind} exited with {process.returncode}:\n{self.log()[-4000:]}"
        for word in BAD_LOG_WORDS:
            assert word not in self.log(), f"{self.kind} log contains {word!r}"

    def restart(self):
        self.stop()
        return self.start()


@pytest.fixture
def start_pair(threads, tmp_path, shared):
    """start_pair(template, prepare=None) -> {"mosquitto": ConfBroker, "coremq": ConfBroker}, each
    started from its own copy of the file; prepare(broker) writes extra files first."""
    started = []

    def start(template, prepare=None):
        pair = {}
        for kind in KINDS:
            broker = ConfBroker(kind, tmp_path / kind, threads, template, shared)
            if prepare is not None:
                prepare(broker)
            started.append(broker)
            pair[kind] = broker.start()
        return pair

    yield start
    for broker in started:
        broker.stop()


# ------------------------------------------------------------------ clients

def connack_code(port, client_id, username=None, password=None):
    """The CONNACK return code (3.1.1) a client gets; a refused one must also be closed."""
    client = helpers.RawClient(port)
    try:
        client.send(helpers.connect_packet(client_id, username=username, password=password))
        connack = client.receive(packet_type=helpers.CONNACK)
        code = connack.body[1]
        if code != ACCEPTED:
            client.expect_closed()
        return code
    finally:
        client.close()


def user_client(port, client_id, user):
    client = helpers.RawClient(port)
    client.connect(client_id, username=user.encode(), password=PASSWORDS[user][1].encode())
    return client


def received_until(client, last_payload):
    """(topic, payload) of every message up to the one with last_payload (the test's sync: what
    a publisher sent before it must have come before it)."""
    got = []
    while not got or got[-1][1] != last_payload:
        message = client.receive_publish()
        got.append((message.topic.decode(), message.payload))
    return got


def mosquitto_pub(port, *arguments):
    result = subprocess.run(["mosquitto_pub", "-h", helpers.HOST, "-p", str(port), *arguments],
                            capture_output=True, text=True, timeout=TOOL_SECONDS, stdin=subprocess.DEVNULL)
    return result.returncode


def line_numbers(text, name):
    return [number for number, line in enumerate(text.splitlines(), 1) if line.split(" ", 1)[0] == name]


# ------------------------------------------------------------------ 1. two listeners, TLS, passwords, ACL

def secure_answers(broker, names, shared):
    """What clients of `broker` are answered, as one comparable dict."""
    plain, tls = broker.plain_port, broker.tls_port
    answers = {
        "anonymous": connack_code(plain, names.client("anon", 0)),
        "anonymous over tls": mosquitto_pub(tls, "--cafile", f"{shared}/ca.crt", "-i", names.client("anon-tls", 1),
                                            "-t", "sensors/x", "-m", "x", "-q", "1"),
        "wrong password": connack_code(plain, names.client("wrong", 1), b"sensor", b"not it"),
        "unknown user": connack_code(plain, names.client("nobody", 2), b"nobody", b"s3nsor pw"),
        "sensor": connack_code(plain, names.client("sensor-ok", 3), b"sensor", b"s3nsor pw"),
        "dashboard": connack_code(plain, names.client("dash-ok", 0), b"dashboard", b"dash-pw"),
    }
    dashboard_id, sensor_id = names.client("dashboard", 1), names.client("sensor", 2)
    dashboard = user_client(plain, dashboard_id, "dashboard")
    sensor = user_client(plain, sensor_id, "sensor")
    answers["dashboard suback"] = dashboard.subscribe(
        [("sensors/#", 1), ("commands/#", 1), (f"clients/{dashboard_id}/#", 1), (f"clients/{sensor_id}/#", 1)])
    answers["sensor suback"] = sensor.subscribe(
        [("commands/sensor", 1), ("commands/other", 1), ("sensors/#", 1)])
    # The sensor may not write commands/, and its own tree is not the dashboard's to read.
    sensor.publish("commands/all", b"sensor commands", qos=1)
    sensor.publish(f"clients/{sensor_id}/state", b"own tree", qos=1)
    sensor.publish("sensors/temperature", b"21.5", qos=1)
    answers["dashboard got"] = received_until(dashboard, b"21.5")
    # The dashboard may not write sensors/, and commands/other is not the sensor's to read.
    dashboard.publish("sensors/temperature", b"forged", qos=1)
    dashboard.publish("commands/other", b"not for the sensor", qos=1)
    dashboard.publish("commands/sensor", b"calibrate", qos=1)
    answers["sensor got"] = received_until(sensor, b"calibrate")
    # Through the TLS listener (the same password file and ACL): mosquitto_pub --cafile.
    answers["dashboard over tls"] = mosquitto_pub(
        tls, "--cafile", f"{shared}/ca.crt", "-u", "dashboard", "-P", "dash-pw", "-i", names.client("dash-tls", 3),
        "-t", "commands/sensor", "-m", "over tls", "-q", "1")
    answers["sensor got over tls"] = received_until(sensor, b"over tls")
    # Plain MQTT to the TLS port is not let in.
    answers["plain to tls port"] = mosquitto_pub(
        tls, "-u", "dashboard", "-P", "dash-pw", "-i", names.client("plain-tls", 0), "-t", "commands/sensor",
        "-m", "x", "-q", "1") != 0
    for client in (dashboard, sensor):
        client.disconnect_and_wait()
    return answers


def test_two_listeners_tls_passwords_and_acl_as_mosquitto(start_pair, names, shared):
    pair = start_pair(TWO_LISTENERS)
    coremq = pair["coremq"]
    # Each option coremq lacks is a warning naming its line; it started all the same.
    output = coremq.output()
    for name in UNSUPPORTED:
        for number in line_numbers(coremq.config_text, name):
            assert f"{coremq.config_path}:{number}: warning: {name} " in output, f"{name}:\n{output}"
    assert ": error:" not in output, output

    answers = {kind: secure_answers(broker, names, shared) for kind, broker in pair.items()}
    expected = {
        "anonymous": NOT_AUTHORIZED_311,
        "anonymous over tls": NOT_AUTHORIZED_311,  # mosquitto_pub exits with the CONNACK code
        "wrong password": NOT_AUTHORIZED_311,
        "unknown user": NOT_AUTHORIZED_311,
        "sensor": ACCEPTED,
        "dashboard": ACCEPTED,
        "dashboard got": [("sensors/temperature", b"21.5")],
        "sensor got": [("commands/sensor", b"calibrate")],
        "dashboard over tls": 0,
        "sensor got over tls": [("commands/sensor", b"over tls")],
        "plain to tls port": True,
    }
    # SUBACK: mosquitto 2.0 grants every filter; coremq refuses the ones the ACL lets nothing through.
    assert answers["mosquitto"].pop("dashboard suback") == [1, 1, 1, 1]
    assert answers["mosquitto"].pop("sensor suback") == [1, 1, 1]
    assert answers["coremq"].pop("dashboard suback") == [1, 1, 1, REFUSED]
    assert answers["coremq"].pop("sensor suback") == [1, REFUSED, REFUSED]
    assert answers["mosquitto"] == expected
    assert answers["coremq"] == answers["mosquitto"]

    # log_dest file: both wrote their lines (with the client ids) to the file, not to stdout.
    # coremq's log thread writes what the shards logged about every 10 ms, later on a loaded
    # machine: a bounded wait for the line.
    for broker in pair.values():
        helpers.wait_until(lambda broker=broker: names.client("dashboard", 1) in broker.log_path.read_text(errors="replace"))
        written = broker.log_path.read_text(errors="replace")
        assert names.client("dashboard", 1) in written, f"{broker.kind}:\n{written[-2000:]}"
    # persistence true + persistence_location: each keeps its store there (at the latest at exit).
    for broker in pair.values():
        broker.stop()
    assert (pair["mosquitto"].directory / "data" / "mosquitto.db").exists()
    assert (coremq.directory / "data" / "CURRENT").exists()  # RocksDB


# ------------------------------------------------------------------ 2. per_listener_settings true

def per_listener_answers(broker, names):
    public, private = broker.plain_port, broker.tls_port  # both plain MQTT here
    answers = {
        "anonymous, public listener": connack_code(public, names.client("anon-public", 0)),
        "anonymous, password listener": connack_code(private, names.client("anon-private", 1)),
        "wrong password, password listener": connack_code(private, names.client("wrong", 2), b"dashboard", b"x"),
    }
    # The same shard for both, so the writer's PUBACK orders what it sent before the reader's own.
    reader = helpers.RawClient(public)
    reader.connect(names.client("reader", 1))
    writer = user_client(private, names.client("writer", 1), "dashboard")
    answers["reader suback"] = reader.subscribe([("public/#", 1), ("private/#", 1)])
    writer.subscribe([("public/#", 1)])
    writer.publish("private/plan", b"hidden", qos=1)
    writer.publish("public/news", b"news", qos=1)
    answers["reader got"] = received_until(reader, b"news")
    answers["writer got"] = received_until(writer, b"news")
    # The public listener's ACL lets anonymous clients read, not write.
    reader.publish("public/news", b"spam", qos=1)
    writer.publish("public/news", b"more news", qos=1)
    answers["writer got after spam"] = received_until(writer, b"more news")
    for client in (reader, writer):
        client.disconnect_and_wait()
    return answers


def test_per_listener_settings_as_mosquitto(start_pair, names):
    pair = start_pair(PER_LISTENER)
    answers = {kind: per_listener_answers(broker, names) for kind, broker in pair.items()}
    assert answers["mosquitto"].pop("reader suback") == [1, 1]
    assert answers["coremq"].pop("reader suback") == [1, REFUSED]
    assert answers["mosquitto"] == {
        "anonymous, public listener": ACCEPTED,
        "anonymous, password listener": NOT_AUTHORIZED_311,
        "wrong password, password listener": NOT_AUTHORIZED_311,
        "reader got": [("public/news", b"news")],
        "writer got": [("public/news", b"news")],
        "writer got after spam": [("public/news", b"more news")],
    }
    assert answers["coremq"] == answers["mosquitto"]


# ------------------------------------------------------------------ 3. allow_anonymous not given

def test_a_listener_without_allow_anonymous_refuses_clients_as_mosquitto(start_pair, names):
    """Mosquitto 2: allow_anonymous defaults to false once the file defines a listener, on loopback
    too (coremq's flags would let anonymous clients in there: the file's rule wins); and with no
    password file, a client with a username is refused as well."""
    pair = start_pair(LISTENER_ONLY)
    codes = {kind: [connack_code(broker.plain_port, names.client("anon", shard)) for shard in range(names.threads)]
             for kind, broker in pair.items()}
    assert codes["mosquitto"] == [NOT_AUTHORIZED_311] * names.threads
    assert codes["coremq"] == codes["mosquitto"]
    assert "(anonymous refused)" in pair["coremq"].output()
    # With no password file nothing can check a username either: Mosquitto refuses those too.
    codes = {kind: [connack_code(broker.plain_port, names.client("named", shard), b"bob", password)
                    for shard, password in ((0, b"any"), (1, None))]
             for kind, broker in pair.items()}
    assert codes["mosquitto"] == [NOT_AUTHORIZED_311] * 2
    assert codes["coremq"] == codes["mosquitto"]
    assert "refuses every client but those a certificate names" in pair["coremq"].output()


# ------------------------------------------------------------------ 4. Debian's default file

def test_debian_default_file_with_include_dir_keeps_sessions_and_retained_over_a_restart(start_pair, names):
    def prepare(broker):
        (broker.directory / "conf.d").mkdir()
        (broker.directory / "conf.d" / "local.conf").write_text(DEBIAN_LOCAL.format(**broker.values))

    pair = start_pair(DEBIAN_DEFAULT, prepare)
    coremq = pair["coremq"]
    number = line_numbers(coremq.config_text, "pid_file")[0]
    assert f"{coremq.config_path}:{number}: warning: pid_file " in coremq.output()
    answers = {}
    for kind, broker in pair.items():
        keeper_id, publisher_id = names.client("keeper", 1), names.client("publisher", 2)
        keeper = helpers.RawClient(broker.plain_port)
        assert keeper.connect(keeper_id, clean_session=False) == 0
        keeper.subscribe([("news/#", 1)])
        keeper.disconnect_and_wait()
        publisher = helpers.RawClient(broker.plain_port)
        publisher.connect(publisher_id)
        publisher.publish("status/broker", b"kept", qos=1, retain=True)
        publisher.disconnect_and_wait()

        broker.restart()
        result = {}
        keeper = helpers.RawClient(broker.plain_port)
        result["session present"] = keeper.connect(keeper_id, clean_session=False)
        publisher = helpers.RawClient(broker.plain_port)
        publisher.connect(publisher_id)
        publisher.publish("news/today", b"after the restart", qos=1)
        # The subscription came back with the session: no SUBSCRIBE after the restart.
        result["keeper got"] = received_until(keeper, b"after the restart")
        result["retained"] = publisher.subscribe([("status/#", 1)])
        message = publisher.receive_publish()
        result["retained message"] = (message.topic.decode(), message.payload, message.retain)
        for client in (keeper, publisher):
            client.disconnect_and_wait()
        result["log file written"] = broker.log_path.exists() and keeper_id in broker.log_path.read_text()
        answers[kind] = result
    assert answers["mosquitto"] == {
        "session present": 1,
        "keeper got": [("news/today", b"after the restart")],
        "retained": [1],
        "retained message": ("status/broker", b"kept", True),
        "log file written": True,
    }
    assert answers["coremq"] == answers["mosquitto"]

# 25 password files end to end: a listener's password_file (`--listener=...,password_file=PATH`)
# decides CONNECTs the way Mosquitto 2 does, checked against Debian's real mosquitto run in the
# same test on the same file (made by mosquitto_passwd and by coremq-passwd: $6$ and $7$); the
# checker thread pool holds a CONNECT's pipelined packets until its verdict; a flood of wrong
# passwords (an expensive $7$ hash) saturates the checker without slowing connected clients;
# listeners with and without the file are independent; a bad file stops the start, naming it.
# Each broker case runs at --threads=1 and --threads=4 (t1/t4).
import os
import re
import selectors
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import conftest
import helpers
from conftest import MOSQUITTO_BINARY, free_port
from helpers import CONNACK, PUBLISH, SUBACK, connect_packet, publish_packet, subscribe_packet
from helpers_v5 import Connack, Publish, connect5, publish5, subscribe5

pytestmark = pytest.mark.coremq_only("runs coremq and mosquitto side by side itself")

ACCEPTED = 0x00
NOT_AUTHORIZED_311, NOT_AUTHORIZED_5 = 0x05, 0x87
SERVER_BUSY_311, SERVER_BUSY_5 = 0x03, 0x89
TOOL_SECONDS = 30
START_SECONDS = 10
LISTENING = re.compile(r"listening on mqtt://127\.0\.0\.1:(\d+) \(anonymous (allowed|refused)\)")

# The users of the shared password file: name -> (tool, scheme, password). Both tools write
# both SHA-512 formats; empty passwords and non-ASCII bytes are legal in the MQTT password field.
USERS = {
    "mq-pbkdf2": ("mosquitto_passwd", "sha512-pbkdf2", "m0squitto pw"),
    "mq-sha512": ("mosquitto_passwd", "sha512", "sha-512 by mosquitto"),
    "mq-empty": ("mosquitto_passwd", "sha512-pbkdf2", ""),
    "cq-pbkdf2": ("coremq-passwd", "sha512-pbkdf2", "pbkdf2 by coremq"),
    "cq-sha512": ("coremq-passwd", "sha512", "sha-512: by coremq"),
    "cq-empty": ("coremq-passwd", "sha512", ""),
    "cq-ünï": ("coremq-passwd", "sha512-pbkdf2", "pässwörd:with colon"),
}


def run_tool(arguments):
    result = subprocess.run(arguments, capture_output=True, timeout=TOOL_SECONDS, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{arguments}: exit {result.returncode}: {result.stderr!r}"


def add_user(tool_path, path: Path, username, password, scheme):
    create = [] if path.exists() else ["-c"]
    run_tool([tool_path, *create, "-H", scheme, "-b", str(path), username, password])


def mosquitto_available():
    if not os.access(MOSQUITTO_BINARY, os.X_OK) or not os.access("/usr/bin/mosquitto_passwd", os.X_OK):
        pytest.skip("needs Debian's mosquitto and mosquitto_passwd (apt-get install mosquitto)")


# ---------------------------------------------------------------- brokers

class PasswordCoremq(conftest.Broker):
    """coremq with the given --listener arguments (and the HTTP admin listener, whose
    /api/v1/stats the tests read the counters from); `ports` lists the
    listeners' ports in the order of the arguments, `anonymous` whether each lets anonymous in."""

    def __init__(self, directory: Path, threads: int, arguments):
        super().__init__(directory, threads, {"http_listener": ":0"})
        self.arguments = list(arguments)
        self.ports, self.anonymous = [], []

    def _coremq_command(self):
        if not os.access(conftest.COREMQ_BINARY, os.X_OK):
            pytest.skip(f"no coremq binary at {conftest.COREMQ_BINARY}")
        return [conftest.COREMQ_BINARY, f"--threads={self.threads}", "--pin-threads=false",
                "--log-level=info", "--http-listener=:0", *self.arguments]

    def _ready(self) -> bool:
        text = self.log()
        if "coremq started" not in text:
            return False
        found = LISTENING.findall(text)
        self.ports = [int(port) for port, _ in found]
        self.anonymous = [anonymous == "allowed" for _, anonymous in found]
        self.port = self.ports[0]
        return True


class PasswordMosquitto:
    """Debian's mosquitto on a free loopback port with a password_file and allow_anonymous."""

    def __init__(self, directory: Path, password_file: Path, allow_anonymous: bool):
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log_path = directory / "mosquitto.log"
        lines = [f"listener {self.port} 127.0.0.1", f"password_file {password_file}",
                 f"allow_anonymous {'true' if allow_anonymous else 'false'}", "persistence false",
                 "log_dest stderr", "log_type all", "sys_interval 0"]
        # As root, mosquitto drops to user "mosquitto", which cannot read a 0600 file of root's.
        if os.geteuid() == 0:
            lines.append("user root")
        config = directory / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([MOSQUITTO_BINARY, "-c", str(config)], stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        ready = helpers.wait_until(lambda: self.process.poll() is not None or
                                   re.search(r"mosquitto version \S+ running", self.log()) is not None,
                                   timeout=START_SECONDS)
        assert ready and self.process.poll() is None, f"mosquitto did not start:\n{self.log()}"

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def start_coremq(threads, tmp_path):
    """Factory: start_coremq(*arguments) -> a started PasswordCoremq, stopped (exit 0 checked)
    at teardown."""
    started = []

    def start(*arguments):
        broker = PasswordCoremq(tmp_path / f"coremq{len(started)}", threads, arguments)
        started.append(broker)
        return broker.start()

    yield start
    for broker in started:
        broker.stop()


@pytest.fixture
def start_mosquitto(tmp_path):
    mosquitto_available()
    started = []

    def start(password_file, allow_anonymous):
        broker = PasswordMosquitto(tmp_path / f"mosquitto{len(started)}", password_file, allow_anonymous)
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.stop()


def listener(path=None, **keys):
    spec = "--listener=mqtt://127.0.0.1:0"
    if path is not None:
        spec += f",password_file={path}"
    for key, value in keys.items():
        spec += f",{key}={value}"
    return spec


# ---------------------------------------------------------------- one CONNECT, its CONNACK

def connect_bytes(version, client_id, username, password):
    if version == 5:
        return connect5(client_id, username=username, password=password)
    return connect_packet(client_id, username=username, password=password)


def connack_code(connack_packet, version):
    if version == 5:
        return Connack(connack_packet).reason_code
    assert len(connack_packet.body) == 2, connack_packet
    return connack_packet.body[1]


def login(port, version, username, password, client_id="pw-test", timeout=helpers.WAIT_SECONDS):
    """CONNECTs and returns what a client sees: (CONNACK flags, reason code), and for a refusal
    also that the broker then closed the connection."""
    client = helpers.RawClient(port)
    try:
        client.send(connect_bytes(version, client_id, username, password))
        connack = client.receive(timeout, packet_type=CONNACK)
        code = connack_code(connack, version)
        outcome = (connack.body[0], code)
        if code != ACCEPTED:
            client.expect_closed()
            outcome += ("closed",)
        return outcome
    finally:
        client.close()


def as_bytes(text):
    return None if text is None else text.encode()


def login_table(users):
    """(label, username, password) for each case of the comparison: every user's right and wrong
    password, no password, an empty one; unknown users; a name in other case; no username."""
    cases = []
    for name, (_, _, password) in users.items():
        cases += [(f"{name} right", name, password),
                  (f"{name} wrong", name, password + "x" if password else "x"),
                  (f"{name} no password", name, None),
                  (f"{name} empty password", name, ""),
                  (f"{name} right password, name upper case", name.upper(), password)]
    cases += [("unknown user", "nobody", "m0squitto pw"),
              ("unknown user, no password", "nobody", None),
              ("unknown user, empty password", "nobody", ""),
              ("empty username", "", "m0squitto pw"),
              ("no username", None, None)]
    return cases


def outcomes(port, version, cases):
    return {label: login(port, version, as_bytes(username), as_bytes(password), client_id=f"pw-{index}")
            for index, (label, username, password) in enumerate(cases)}


@pytest.fixture
def shared_password_file(tmp_path, coremq_passwd):
    """One password file written by both tools (mode 0600, as they make it)."""
    mosquitto_available()
    path = tmp_path / "passwords"
    for name, (tool, scheme, password) in USERS.items():
        tool_path = "/usr/bin/mosquitto_passwd" if tool == "mosquitto_passwd" else coremq_passwd
        add_user(tool_path, path, name, password, scheme)
    text = path.read_text()
    for name, (_, scheme, _) in USERS.items():
        prefix = "$6$" if scheme == "sha512" else "$7$"
        assert f"\n{name}:{prefix}" in "\n" + text, f"{name} not written as {prefix}:\n{text}"
    return path


# ---------------------------------------------------------------- 1. the same decisions as mosquitto

@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_same_connack_as_mosquitto(start_coremq, start_mosquitto, shared_password_file, version):
    cases = login_table(USERS)
    coremq = start_coremq(listener(shared_password_file, allow_anonymous="false"),
                          listener(shared_password_file, allow_anonymous="true"))
    assert coremq.anonymous == [False, True], coremq.log()
    not_authorized = NOT_AUTHORIZED_5 if version == 5 else NOT_AUTHORIZED_311
    checked_refusals = 0
    for port, allow_anonymous in zip(coremq.ports, (False, True)):
        mosquitto = start_mosquitto(shared_password_file, allow_anonymous)
        expected = outcomes(mosquitto.port, version, cases)
        got = outcomes(port, version, cases)
        # Anchors, so that two brokers agreeing on nonsense still fail: right passwords get in,
        # wrong ones and unknown users do not, and the anonymous client follows allow_anonymous.
        # (Mosquitto 2.0 lets no empty password in, even a user's right one.)
        for name, (_, _, password) in USERS.items():
            if password:
                assert expected[f"{name} right"] == (0, ACCEPTED), (name, mosquitto.log()[-3000:])
            assert expected[f"{name} wrong"] == (0, not_authorized, "closed"), name
        assert expected["unknown user"] == (0, not_authorized, "closed")
        assert expected["no username"][1] == (ACCEPTED if allow_anonymous else not_authorized)
        differences = {label: (expected[label], got[label]) for label, _, _ in cases
                       if expected[label] != got[label]}
        assert not differences, (f"allow_anonymous={allow_anonymous}: (mosquitto, coremq) differ:\n" +
                                 "\n".join(f"  {label}: {pair}" for label, pair in differences.items()))
        checked_refusals += sum(1 for label, username, _ in cases if username and got[label][1] == not_authorized)
    # Every case with a username went through the checker (an empty one is none, as in
    # Mosquitto), on both listeners; each refusal was counted as an authentication failure or,
    # for the two anonymous ones on the allow_anonymous=false listener, as anonymous_refused.
    with_username = sum(1 for _, username, _ in cases if username)
    coremq.wait_for_stats(lambda b: b.stats_total("password_checks") == 2 * with_username and
                          b.stats_total("authentication_failures") == checked_refusals and
                          b.stats_total("anonymous_refused") == 2,
                          what=f"password_checks == {2 * with_username}, authentication_failures == "
                               f"{checked_refusals}, anonymous_refused == 2")


def test_v5_password_without_username_as_mosquitto(start_coremq, start_mosquitto, shared_password_file):
    """MQTT 5 lets a client send a password without a username (3.1.1 did not): it is anonymous
    to both brokers, so allow_anonymous decides."""
    coremq = start_coremq(listener(shared_password_file, allow_anonymous="false"),
                          listener(shared_password_file, allow_anonymous="true"))
    cases = [("password, no username", None, "m0squitto pw"), ("empty password, no username", None, "")]
    for port, allow_anonymous in zip(coremq.ports, (False, True)):
        mosquitto = start_mosquitto(shared_password_file, allow_anonymous)
        expected = outcomes(mosquitto.port, 5, cases)
        assert set(expected.values()) == {(0, ACCEPTED) if allow_anonymous else (0, NOT_AUTHORIZED_5, "closed")}, \
            expected
        assert outcomes(port, 5, cases) == expected, f"allow_anonymous={allow_anonymous}"


# ---------------------------------------------------------------- 2. argon2id

@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_argon2id_file(start_coremq, coremq_passwd, tmp_path, version):
    path = tmp_path / "argon2"
    add_user(coremq_passwd, path, "device-7", "argon two", "argon2id")
    add_user(coremq_passwd, path, "device-8", "", "argon2id")
    assert path.read_text().startswith("device-7:$argon2id$v=19$m=")
    coremq = start_coremq(listener(path))
    not_authorized = NOT_AUTHORIZED_5 if version == 5 else NOT_AUTHORIZED_311
    assert login(coremq.port, version, b"device-7", b"argon two") == (0, ACCEPTED)
    assert login(coremq.port, version, b"device-7", b"argon twO") == (0, not_authorized, "closed")
    assert login(coremq.port, version, b"device-7", None) == (0, not_authorized, "closed")
    # An empty password is no password, even when it is the user's (as in Mosquitto).
    assert login(coremq.port, version, b"device-8", b"") == (0, not_authorized, "closed")
    assert login(coremq.port, version, b"device-8", b" ") == (0, not_authorized, "closed")


# ---------------------------------------------------------------- 3. pipelined input waits for the verdict

@pytest.fixture
def fast_password_file(tmp_path, coremq_passwd):
    path = tmp_path / "fast"
    add_user(coremq_passwd, path, "alice", "alice pw", "sha512-pbkdf2")
    add_user(coremq_passwd, path, "bob", "bob pw", "sha512")
    return path


def pipelined(version, client_id, password, topic):
    if version == 5:
        return (connect5(client_id, username=b"alice", password=password) +
                subscribe5(1, [(topic, 1)]) + publish5(topic, b"to myself", qos=0))
    return (connect_packet(client_id, username=b"alice", password=password) +
            subscribe_packet(1, [(topic, 1)]) + publish_packet(topic, b"to myself", qos=0))


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_pipelined_connect_subscribe_publish(start_coremq, fast_password_file, names, version):
    coremq = start_coremq(listener(fast_password_file))
    topic = names.topic("echo")
    client = helpers.RawClient(coremq.port)
    try:
        client.send(pipelined(version, names.sub("pipe"), b"alice pw", topic))
        packets = [client.receive() for _ in range(3)]
        assert [packet.type for packet in packets] == [CONNACK, SUBACK, PUBLISH], packets
        assert connack_code(packets[0], version) == ACCEPTED
        assert packets[1].packet_id == 1 and packets[1].body[-1] == 1  # granted QoS 1
        message = Publish(packets[2]) if version == 5 else packets[2]
        assert packets[2].topic == topic.encode() and message.payload == b"to myself", packets[2]
        client.ping()
    finally:
        client.close()


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_pipelined_packets_after_a_wrong_password_are_dropped(start_coremq, fast_password_file, names, version):
    coremq = start_coremq(listener(fast_password_file))
    topic = names.topic("echo")
    # A logged-in subscriber on the same topic: the refused client's PUBLISH must not reach it.
    watcher = helpers.RawClient(coremq.port)
    publisher = helpers.RawClient(coremq.port)
    intruder = helpers.RawClient(coremq.port)
    try:
        watcher.connect(names.sub("watch"), username=b"bob", password=b"bob pw")
        watcher.subscribe([(topic, 0)])
        intruder.send(pipelined(version, names.pub("pipe"), b"alice PW", topic))
        packets = intruder.expect_closed()
        assert len(packets) == 1 and packets[0].type == CONNACK, packets
        assert connack_code(packets[0], version) == (NOT_AUTHORIZED_5 if version == 5 else NOT_AUTHORIZED_311)
        # A marker through another logged-in client: the watcher's next message is it.
        publisher.connect(names.pub("marker"), username=b"alice", password=b"alice pw")
        publisher.publish(topic, b"marker", qos=1)
        assert watcher.receive_publish().payload == b"marker"
    finally:
        for client in (watcher, publisher, intruder):
            client.close()


# ---------------------------------------------------------------- 4. a flood of wrong passwords

class Flood(threading.Thread):
    """`connections` sockets that CONNECT with a wrong password for `username`, each again at
    once after its CONNACK, with a new password every time (the checker caches verdicts of
    repeated credentials), until stop() or `seconds`. Counts the answers by reason code."""

    def __init__(self, port, username, connections, seconds):
        super().__init__(daemon=True)
        self.port, self.username, self.connections = port, username, connections
        self.deadline = time.monotonic() + seconds
        self.stopping = threading.Event()
        self.answers = {}          # CONNACK return code -> count
        self.errors = []           # socket errors (refused, reset before a CONNACK)
        self.waiting = 0           # connections that sent CONNECT and wait for its CONNACK
        self.attempts = 0

    def _open(self, selector, slot):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex((helpers.HOST, self.port))
        self.attempts += 1
        password = f"wrong {slot} {self.attempts}".encode()
        selector.register(sock, selectors.EVENT_WRITE,
                          {"slot": slot, "out": connect_packet(f"flood-{slot}", username=self.username,
                                                               password=password), "in": b""})

    def run(self):
        selector = selectors.DefaultSelector()
        for slot in range(self.connections):
            self._open(selector, slot)
        while not self.stopping.is_set() and time.monotonic() < self.deadline:
            for key, events in selector.select(timeout=0.1):
                sock, state = key.fileobj, key.data
                try:
                    if events & selectors.EVENT_WRITE:
                        sent = sock.send(state["out"])
                        state["out"] = state["out"][sent:]
                        if not state["out"]:
                            selector.modify(sock, selectors.EVENT_READ, state)
                            self.waiting += 1
                        continue
                    data = sock.recv(64)
                except OSError as error:
                    data, state["error"] = b"", error
                state["in"] += data
                if len(state["in"]) < 4 and data:
                    continue
                self.waiting -= 1
                selector.unregister(sock)
                sock.close()
                if len(state["in"]) >= 4:
                    code = state["in"][3]
                    self.answers[code] = self.answers.get(code, 0) + 1
                else:
                    self.errors.append(state.get("error", "closed before CONNACK"))
                self._open(selector, state["slot"])
        for key in list(selector.get_map().values()):
            key.fileobj.close()
        selector.close()

    def stop(self):
        self.stopping.set()
        self.join(10)
        assert not self.is_alive(), "flood thread did not stop"


@pytest.fixture
def slow_password_file(tmp_path, coremq_passwd):
    """`slow` has an expensive $7$ hash (100,000 PBKDF2 rounds: 40-80 ms per check on 2 loaded
    CPUs), `medium` a cheaper one (20,000 rounds), `fast` a $6$ one for the clients whose
    traffic must go on."""
    path = tmp_path / "slow"
    run_tool([coremq_passwd, "-c", "-I", "100000", "-b", str(path), "slow", "slow pw"])
    run_tool([coremq_passwd, "-I", "20000", "-b", str(path), "medium", "medium pw"])
    add_user(coremq_passwd, path, "fast", "fast pw", "sha512")
    assert re.search(r"^slow:\$7\$100000\$.*^medium:\$7\$20000\$.*^fast:\$6\$", path.read_text(),
                     re.MULTILINE | re.DOTALL), path.read_text()
    return path


FLOOD_CONNECTIONS = 200
FLOOD_SECONDS_MAX = 60
ROUND_TRIP_SECONDS_MAX = 2.0  # liveness, not a benchmark: a loaded 2-CPU machine meets it
ROUND_TRIP_PACE_SECONDS = 0.02  # pacing, not synchronisation: leave the CPUs to the flood


def round_trips_during(flood, publisher, subscriber, topic, seconds=None, until=None):
    """QoS 1 publisher -> broker -> subscriber round trips while the flood runs, for `seconds` or
    until until() holds (bounded by FLOOD_SECONDS_MAX); returns their durations. Each must
    finish within ROUND_TRIP_SECONDS_MAX."""
    durations = []
    end = time.monotonic() + (seconds if seconds is not None else FLOOD_SECONDS_MAX)
    while time.monotonic() < end and not (until is not None and until()):
        assert flood.is_alive(), "the flood ended early"
        round_trips_during.packet_id = round_trips_during.packet_id % 65535 + 1
        packet_id = round_trips_during.packet_id
        payload = f"round trip {packet_id}".encode()
        start = time.monotonic()
        publisher.publish(topic, payload, qos=1, packet_id=packet_id)
        received = subscriber.receive_publish(timeout=ROUND_TRIP_SECONDS_MAX + 3)
        duration = time.monotonic() - start
        assert received.payload == payload
        assert duration < ROUND_TRIP_SECONDS_MAX, f"round trip {packet_id} took {duration:.2f} s during the flood"
        durations.append(duration)
        time.sleep(ROUND_TRIP_PACE_SECONDS)
    return durations


round_trips_during.packet_id = 0


def pair(port, names, topic):
    subscriber = helpers.RawClient(port)
    publisher = helpers.RawClient(port)
    subscriber.connect(names.sub("flood-sub"), username=b"fast", password=b"fast pw")
    subscriber.subscribe([(topic, 1)])
    publisher.connect(names.pub("flood-pub"), username=b"fast", password=b"fast pw")
    return publisher, subscriber


def report(what, **figures):
    print(f"\n[test_25] {what}: " + ", ".join(f"{name}={value}" for name, value in figures.items()))


@pytest.mark.serial("the flood saturates both CPUs; its round trips have a 2 s bound")
def test_wrong_password_flood_waiting_in_the_queue(start_coremq, slow_password_file, names, threads):
    """200 connections send wrong passwords for `medium` without pause; the queue (the default
    --password-check-queue, 1024 per shard) holds them all, so the checker works flat out while
    most flood clients wait. Connected clients' round trips stay fast, and a correct login
    issued during the flood waits its turn (FIFO, behind at most the 200 queued checks) and is
    accepted. The contract holds while the queued checks take less than the connect timeout
    (--connect-timeout, 10 s): 200 checks of 20,000 rounds do here; 200 of 100,000 rounds
    (`slow`) do not, and then every waiting client, the correct one too, is closed by the
    connect timeout instead (the small-queue test below is the setting for expensive hashes)."""
    coremq = start_coremq(listener(slow_password_file), "--password-check-threads=2")
    topic = names.topic("flood")
    publisher, subscriber = pair(coremq.port, names, topic)
    flood = Flood(coremq.port, b"medium", FLOOD_CONNECTIONS, FLOOD_SECONDS_MAX)
    started = time.monotonic()
    flood.start()
    try:
        # Saturated: refusals come back, and far more CONNECTs wait than the checker serves.
        assert helpers.wait_until(lambda: flood.answers.get(NOT_AUTHORIZED_311, 0) >= 10 and
                                  flood.waiting >= FLOOD_CONNECTIONS // 2, timeout=20), \
            f"flood not saturating: answers {flood.answers}, waiting {flood.waiting}, errors {flood.errors[:3]}"
        waiting_seen = flood.waiting
        login_result = {}

        def correct_login():
            login_start = time.monotonic()
            try:
                login_result["outcome"] = login(coremq.port, 4, b"medium", b"medium pw",
                                                names.client("good", 0), timeout=30)
            except AssertionError as error:
                login_result["outcome"] = str(error)
            login_result["seconds"] = time.monotonic() - login_start

        login_thread = threading.Thread(target=correct_login, daemon=True)
        login_thread.start()
        durations = round_trips_during(flood, publisher, subscriber, topic,
                                       until=lambda: not login_thread.is_alive())
        login_thread.join(1)
        assert login_result.get("outcome") == (0, ACCEPTED), f"correct login during the flood: {login_result}"
        waiting_after = flood.waiting
        answered = flood.answers.get(NOT_AUTHORIZED_311, 0)
        flood_seconds = time.monotonic() - started
    finally:
        flood.stop()
    assert waiting_after >= FLOOD_CONNECTIONS // 2, f"the flood stopped saturating the checker ({waiting_after})"
    assert set(flood.answers) == {NOT_AUTHORIZED_311}, f"a wrong password got {flood.answers}"
    assert not flood.errors, f"flood connections failed: {flood.errors[:5]}"
    coremq.wait_for_stats(lambda b: b.stats_total("authentication_failures") >= answered,
                          what="authentication_failures counted the flood")
    assert coremq.stats_total("password_checks") >= answered + 3
    assert coremq.stats_total("password_checks_refused_busy") == 0
    report(f"flood queued t{threads}", wrong_checks_per_second=f"{answered / flood_seconds:.1f}",
           waiting=waiting_seen, round_trips=len(durations), round_trip_max=f"{max(durations) * 1000:.0f}ms",
           correct_login_waited=f"{login_result['seconds']:.2f}s")
    publisher.close()
    subscriber.close()


@pytest.mark.serial("the flood saturates both CPUs; its round trips have a 2 s bound")
def test_wrong_password_flood_over_a_small_queue(start_coremq, slow_password_file, names, threads):
    """200 connections send wrong passwords for `slow` (100,000 rounds) without pause, over
    --password-check-queue=4: the queue stays full and the rest is refused Server busy at once.
    Connected clients' round trips stay fast. A correct login during the flood gets an answer
    at once, accepted or Server busy, never Not authorized and never held: the bound is the
    back-pressure, and a client retries (as the spec means 0x89/0x03). Once the flood stops,
    the same login, retried on Server busy while the queue drains, is accepted."""
    coremq = start_coremq(listener(slow_password_file), "--password-check-threads=2",
                          "--password-check-queue=4")
    topic = names.topic("flood")
    publisher, subscriber = pair(coremq.port, names, topic)
    flood = Flood(coremq.port, b"slow", FLOOD_CONNECTIONS, FLOOD_SECONDS_MAX)
    started = time.monotonic()
    flood.start()
    try:
        assert helpers.wait_until(lambda: flood.answers.get(SERVER_BUSY_311, 0) >= 100 and
                                  flood.answers.get(NOT_AUTHORIZED_311, 0) >= 10, timeout=20), \
            f"flood did not fill the queue: answers {flood.answers}, errors {flood.errors[:3]}"
        durations = round_trips_during(flood, publisher, subscriber, topic, seconds=3)
        correct = []
        for attempt in range(10):
            login_start = time.monotonic()
            outcome = login(coremq.port, 4, b"slow", b"slow pw", names.client(f"good{attempt}", 0))
            correct.append((outcome[1], round(time.monotonic() - login_start, 2)))
            assert outcome in ((0, ACCEPTED), (0, SERVER_BUSY_311, "closed")), correct
            # Busy is answered at once; an accepted login waited at most its shard's 4 checks.
            assert correct[-1][1] < ROUND_TRIP_SECONDS_MAX + 1, correct
        durations += round_trips_during(flood, publisher, subscriber, topic, seconds=1)
        answered = flood.answers.get(NOT_AUTHORIZED_311, 0)
        busy = flood.answers.get(SERVER_BUSY_311, 0)
        flood_seconds = time.monotonic() - started
    finally:
        flood.stop()
    assert set(flood.answers) <= {NOT_AUTHORIZED_311, SERVER_BUSY_311}, flood.answers
    assert not flood.errors, f"flood connections failed: {flood.errors[:5]}"
    coremq.wait_for_stats(lambda b: b.stats_total("password_checks_refused_busy") >= busy,
                          what="password_checks_refused_busy counted the busy refusals")
    # The flood is over: the queue drains (at most 4 checks per shard) and the login gets in.
    after = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        outcome = login(coremq.port, 4, b"slow", b"slow pw", names.client(f"after{len(after)}", 0))
        after.append(outcome[1])
        assert outcome in ((0, ACCEPTED), (0, SERVER_BUSY_311, "closed")), after
        if outcome == (0, ACCEPTED):
            break
    assert after and after[-1] == ACCEPTED, f"no correct login within 15 s of the flood's end: {after}"
    report(f"flood small queue t{threads}", wrong_checks_per_second=f"{answered / flood_seconds:.1f}",
           busy_refusals=busy, round_trips=len(durations), round_trip_max=f"{max(durations) * 1000:.0f}ms",
           correct_logins_during=correct, logins_after=after)
    publisher.close()
    subscriber.close()


# ---------------------------------------------------------------- 5. listeners are independent

def test_listeners_with_and_without_the_file(start_coremq, fast_password_file, names):
    coremq = start_coremq(listener(fast_password_file), listener(fast_password_file, allow_anonymous="true"),
                          listener())
    strict, open_anonymous, plain = coremq.ports
    assert coremq.anonymous == [False, True, True], coremq.log()
    # The file's users, on both listeners that have it; wrong passwords refused on both.
    for port in (strict, open_anonymous):
        assert login(port, 4, b"alice", b"alice pw") == (0, ACCEPTED)
        assert login(port, 5, b"bob", b"bob pw") == (0, ACCEPTED)
        assert login(port, 4, b"alice", b"bob pw") == (0, NOT_AUTHORIZED_311, "closed")
        assert login(port, 5, b"mallory", b"x") == (0, NOT_AUTHORIZED_5, "closed")
    # The anonymous rule is each listener's own.
    assert login(strict, 4, None, None) == (0, NOT_AUTHORIZED_311, "closed")
    assert login(open_anonymous, 4, None, None) == (0, ACCEPTED)
    # No password file: any username and password get in, as in Mosquitto, and cost no check.
    coremq.wait_for_stats(lambda b: b.stats_total("password_checks") == 8 and
                          b.stats_total("authentication_failures") == 4, what="8 checks, 4 failures")
    assert login(plain, 4, b"alice", b"not alice's") == (0, ACCEPTED)
    assert login(plain, 5, b"mallory", None) == (0, ACCEPTED)
    # A round trip across listeners: subscriber on the strict one, publisher on the plain one.
    subscriber = helpers.RawClient(strict)
    publisher = helpers.RawClient(plain)
    try:
        subscriber.connect(names.sub("across"), username=b"bob", password=b"bob pw")
        subscriber.subscribe([(names.topic("x"), 1)])
        publisher.connect(names.pub("across-pub"))
        publisher.publish(names.topic("x"), b"across listeners", qos=1)
        assert subscriber.receive_publish().payload == b"across listeners"
    finally:
        subscriber.close()
        publisher.close()
    # Exactly the subscriber's login was checked since (stats lines come every second).
    coremq.wait_for_stats(lambda b: b.stats_total("password_checks") == 9 and
                          b.stats_total("connections_accepted") == 14,
                          what="one more password check (14 connections)")
    assert coremq.stats_total("authentication_failures") == 4


# ---------------------------------------------------------------- 6. bad files stop the start

def failed_start(threads, arguments, config_text=None, directory=None):
    command = [conftest.COREMQ_BINARY, f"--threads={threads}", "--pin-threads=false", *arguments]
    if config_text is not None:
        config = directory / "coremq.conf"
        config.write_text(config_text)
        command += ["-c", str(config)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=START_SECONDS,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"coremq {arguments} did not exit at start")
    return result.returncode, result.stdout + result.stderr


def test_missing_unreadable_and_oversized_files(threads, tmp_path, fast_password_file):
    if not os.access(conftest.COREMQ_BINARY, os.X_OK):
        pytest.skip(f"no coremq binary at {conftest.COREMQ_BINARY}")
    missing = tmp_path / "no-such-file"
    code, output = failed_start(threads, [listener(missing)])
    assert code != 0 and str(missing) in output and "cannot open" in output, (code, output)

    directory = tmp_path / "a-directory"  # readable by root too, unlike a mode-000 file
    directory.mkdir()
    code, output = failed_start(threads, [listener(directory)])
    assert code != 0 and str(directory) in output and "not a regular file" in output, (code, output)

    # A line over the 70,000-byte bound on line 3, after two good users.
    long_line = tmp_path / "long-line"
    long_line.write_text(fast_password_file.read_text() + "eve:" + "A" * 70_001 + "\n")
    code, output = failed_start(threads, [listener(fast_password_file), listener(long_line)])
    assert code != 0 and f"{long_line}:3" in output and "above the limit" in output, (code, output)

    nul = tmp_path / "nul-byte"
    nul.write_bytes(b"# users\n" + fast_password_file.read_bytes() + b"eve:\0\n")
    code, output = failed_start(threads, [listener(nul)])
    assert code != 0 and f"{nul}:4" in output, (code, output)

    # The same through the config file's password_file.
    port = free_port()
    code, output = failed_start(threads, [], f"listener {port} 127.0.0.1\npassword_file {long_line}\n", tmp_path)
    assert code != 0 and f"{long_line}:3" in output, (code, output)

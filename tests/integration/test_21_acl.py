# 21 ACL files: the same Mosquitto ACL file is given to coremq (--acl-file) and to Debian's real
# mosquitto 2.0 (started here on a free loopback port: listener, allow_anonymous true, acl_file),
# and a table of clients (anonymous, named users, a user without a section, names with '/', '+'
# and an empty username; MQTT 3.1.1 and 5) asks both brokers the same questions:
#   write:    which topics may it publish (a spy reading everything sees the message; MQTT 5 also
#             gets PUBACK 0x87 for a refused one),
#   read:     which live messages reach its '#' subscription, and which retained ones,
#   shared:   which reach it through a one-member $share group,
#   will:     which of its wills are published,
# and the answers must be identical. SUBSCRIBE is the one documented difference: mosquitto 2.0
# grants every filter; coremq refuses (0x80 / 0x87) a filter through which nothing is readable, so
# the test checks coremq's refusals against mosquitto's read answers: no filter coremq refused
# matches a topic mosquitto let that client read (so coremq never refuses a useful subscription).
# test_the_comparison_sees_a_wrong_rule gives coremq a file with one rule changed and checks that
# the comparison then fails, so it can fail.
import itertools
import os
import subprocess
import time

import pytest

import helpers
import helpers_v5
from conftest import free_port, is_mosquitto

pytestmark = pytest.mark.coremq_only("compares coremq with mosquitto itself")

MOSQUITTO_BINARY = "/usr/sbin/mosquitto"

ACL_TEXT = """\
# The anonymous section: rules before any user line.
topic read pub/#
topic readwrite anon/#
topic deny anon/secret/#

user alice
topic readwrite a/#
topic deny a/secret/#
topic write w/only
topic read r/only
topic read spaced topic/x
  topic read indented/#
topic $foo/#

user bob
topic read b/#

user spy
topic read #
topic read $foo/#

user god
topic write #
topic write $foo/#

user p+
topic readwrite plus/#

user u/x
topic read direct/u

# A second section for alice: merged with the first.
user alice
topic write a2/#

pattern readwrite dev/%c/#
pattern read users/%u/#
pattern write out/%u/%c
pattern deny dev/%c/locked/#
pattern read all/#
"""

# One rule changed (bob may also write b/#): the comparison must notice.
ACL_TEXT_WRONG = ACL_TEXT.replace("user bob\ntopic read b/#", "user bob\ntopic readwrite b/#")

# (username or None, client id)
IDENTITIES = [
    (None, "anon-1"),
    ("alice", "alice-1"),
    ("bob", "bob-1"),
    ("carol", "carol-1"),   # no section of its own: the patterns only
    ("u/x", "ux-1"),        # '/' in a username is substituted as is
    ("p+", "plus-1"),       # '+' in a username: the pattern stage refuses
    (None, "d/e"),          # '/' in a client id
    (None, "c+1"),          # '+' in a client id
    ("", "empty-1"),        # a zero-length username counts as anonymous
]

TOPICS = [
    "pub/1", "anon/1", "anon/secret/1", "a/1", "a/secret/1", "a2/1", "w/only", "r/only",
    "spaced topic/x", "indented/1", "$foo/1", "b/1", "plus/1", "direct/u", "zzz/1", "all/1",
    "dev/anon-1/1", "dev/alice-1/1", "dev/alice-1/locked/1", "dev/d/e/1", "dev/empty-1/1",
    "users/alice/1", "users/u/x/1", "users/carol/1", "users//1",
    "out/alice/alice-1", "out/carol/carol-1", "out/u/x/ux-1", "$SYS/x",
]
RETAINED_TOPICS = ["pub/r", "anon/r", "a/r", "b/r", "dev/alice-1/r", "users/carol/r", "all/r"]
WILL_TOPICS = ["anon/will", "a/will", "dev/{cid}/will"]
FILTERS = ["#", "a/#", "a/secret/#", "a/secret/x", "+/only", "zzz/#", "b/+", "dev/{cid}/#",
           "dev/{cid}/locked/#", "users/+/1", "$foo/#", "$SYS/#", "indented/#", "all/#", "+/+/+/+/+"]

RECEIVE_WAIT = 5.0


def sync(client):
    """A PINGREQ round trip: every message published before it is in the client's pending list."""
    client.send(helpers.PINGREQ_BYTES)
    client.receive(packet_type=helpers.PINGRESP)


def take_publishes(client):
    """(topic, payload, retain) of every PUBLISH received so far, decoded for its protocol."""
    got = [packet for packet in client.pending if packet.type == helpers.PUBLISH]
    client.pending = [packet for packet in client.pending if packet.type != helpers.PUBLISH]
    if isinstance(client, helpers_v5.RawClient5):
        return [(publish.topic, publish.payload, publish.retain) for publish in map(helpers_v5.Publish, got)]
    return [(packet.topic.decode(), packet.payload, packet.retain) for packet in got]


class Prober:
    """Asks one broker the table's questions over raw MQTT connections."""

    def __init__(self, port, tag):
        self.port = port
        self.tag = tag
        self.fences = itertools.count()
        self.spy = self.connect(5, "spy", f"spy-{tag}")
        for topic_filter in ("#", "$foo/#"):
            assert self.spy.subscribe5([(topic_filter, 0)]).reason_codes == [0]

    def connect(self, protocol, username, client_id, will=None):
        if protocol == 5:
            client = helpers_v5.RawClient5(self.port)
            client.connect5(client_id, username=username, will=will)
        else:
            client = helpers.RawClient(self.port)
            client.connect(client_id, username=username, will=will)
        return client

    def spy_saw(self, marker, client_id):
        """Topics the spy received with `marker`. A fence first: a message published under the
        subject's own client id, so on coremq it enters on the same shard as the subject's
        messages and wills, and reaches the spy's shard behind them (rings are FIFO). Waiting
        for it (bounded) is what makes "not received" an answer even across shards."""
        fence = f"fence-{self.tag}-{next(self.fences)}".encode()
        client = self.connect(5, "god", client_id)
        client.publish5("fence/x", fence, qos=1)
        client.disconnect_and_wait()
        got = []
        deadline = time.monotonic() + RECEIVE_WAIT
        while not any(payload == fence for _, payload, _ in got):
            assert time.monotonic() < deadline, "the fence message never reached the spy"
            sync(self.spy)
            got += take_publishes(self.spy)
        return sorted(topic for topic, payload, _ in got if payload == marker)

    def publish_all(self, client, protocol, topics, marker, retain=False):
        """Publishes each topic at QoS 1; returns the MQTT 5 topics refused with 0x87."""
        refused = []
        for topic in topics:
            if protocol == 5:
                ack = client.publish5(topic, marker, qos=1, retain=retain)
                assert ack.reason_code in (0x00, 0x10, 0x87), ack
                if ack.reason_code == 0x87:
                    refused.append(topic)
            else:
                client.publish(topic, marker, qos=1, retain=retain)
        return refused

    def god(self):
        return self.connect(5, "god", f"god-{self.tag}")

    def received(self, client, marker):
        sync(client)
        return sorted((topic, retain) for topic, payload, retain in take_publishes(client) if payload == marker)

    def subscribe(self, client, protocol, topic_filter):
        if protocol == 5:
            return client.subscribe5([(topic_filter, 0)]).reason_codes[0]
        return client.subscribe([(topic_filter, 0)], packet_id=7)[0]

    def ask(self, protocol, username, client_id):
        answers = {}
        marker = f"w-{self.tag}-{protocol}-{client_id}".encode()
        # write
        client = self.connect(protocol, username, client_id)
        refused = self.publish_all(client, protocol, TOPICS, marker)
        client.disconnect_and_wait()
        answers["write"] = self.spy_saw(marker, client_id)
        if protocol == 5:
            answers["write_refused_0x87"] = sorted(refused)
        # retained, then live, through '#' and '$foo/#'
        god = self.god()
        marker = f"r-{self.tag}-{protocol}-{client_id}".encode()
        self.publish_all(god, 5, RETAINED_TOPICS, marker, retain=True)
        client = self.connect(protocol, username, client_id)
        for topic_filter in ("#", "$foo/#"):
            self.subscribe(client, protocol, topic_filter)
        answers["retained"] = self.received(client, marker)
        self.publish_all(god, 5, RETAINED_TOPICS, b"", retain=True)  # clear them again
        take_publishes(client)
        marker = f"l-{self.tag}-{protocol}-{client_id}".encode()
        self.publish_all(god, 5, TOPICS, marker)
        answers["read"] = self.received(client, marker)
        client.disconnect_and_wait()
        # a one-member shared group
        client = self.connect(protocol, username, client_id)
        self.subscribe(client, protocol, f"$share/g{self.tag}/#")
        marker = f"s-{self.tag}-{protocol}-{client_id}".encode()
        self.publish_all(god, 5, TOPICS, marker)
        answers["shared"] = self.received(client, marker)
        client.disconnect_and_wait()
        god.disconnect_and_wait()
        # wills
        marker = f"will-{self.tag}-{protocol}-{client_id}".encode()
        for will_topic in WILL_TOPICS:
            will_topic = will_topic.format(cid=client_id)
            if "+" in will_topic:
                continue  # not a valid topic name
            will = (will_topic, marker, 0, False)
            client = self.connect(protocol, username, client_id, will=will)
            client.close_and_wait()
        answers["will"] = self.spy_saw(marker, client_id)
        # SUBSCRIBE codes (compared separately: mosquitto 2.0 grants everything)
        client = self.connect(protocol, username, client_id)
        # A client id with '+' makes no valid filter: those are left out.
        filters = [topic_filter.format(cid=client_id) for topic_filter in FILTERS
                   if "+" not in client_id or "{cid}" not in topic_filter]
        answers["suback"] = {topic_filter: self.subscribe(client, protocol, topic_filter)
                             for topic_filter in filters}
        client.disconnect_and_wait()
        return answers

    def ask_all(self):
        return {(protocol, username, client_id): self.ask(protocol, username, client_id)
                for protocol in (4, 5) for username, client_id in IDENTITIES}


class Mosquitto:
    def __init__(self, directory, acl_path):
        self.port = free_port()
        self.log_path = directory / "mosquitto.log"
        config = directory / "mosquitto.conf"
        config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\nacl_file {acl_path}\n"
                          "persistence false\nsys_interval 0\nlog_dest stderr\nlog_type all\n"
                          # Run as root, mosquitto drops to its own user before reading the ACL
                          # file, which then cannot see pytest's private temporary directory.
                          + ("user root\n" if os.geteuid() == 0 else ""))
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([MOSQUITTO_BINARY, "-c", str(config)], stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if not helpers.wait_until(lambda: "running" in self.log_path.read_text(errors="replace"),
                                  timeout=10):
            self.stop()
            raise AssertionError(f"mosquitto did not start:\n{self.log_path.read_text()}")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture(scope="module")
def acl_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("acl") / "acl"
    path.write_text(ACL_TEXT)
    return path


@pytest.fixture(scope="module")
def mosquitto_answers(tmp_path_factory, acl_path):
    """mosquitto's answers, asked once for the module (they do not depend on --threads)."""
    if is_mosquitto() or not os.access(MOSQUITTO_BINARY, os.X_OK):
        pytest.skip("needs Debian's mosquitto next to the coremq binary")
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"), acl_path)
    try:
        answers = Prober(broker.port, "m").ask_all()
    finally:
        broker.stop()
    return answers


def differences(expected, actual):
    lines = []
    for key in expected:
        for question in ("write", "write_refused_0x87", "read", "retained", "shared", "will"):
            if question not in expected[key]:
                continue
            if expected[key][question] != actual[key][question]:
                lines.append(f"{key} {question}: mosquitto {expected[key][question]} "
                             f"coremq {actual[key][question]}")
    return lines


def test_same_decisions_as_mosquitto(start_broker, acl_path, mosquitto_answers):
    broker = start_broker(acl_file=str(acl_path), http_listener=":0")
    answers = Prober(broker.port, "c").ask_all()
    diff = differences(mosquitto_answers, answers)
    assert not diff, "coremq and mosquitto decide differently:\n" + "\n".join(diff)
    # The table must exercise both answers, or equality would prove little.
    writes = [len(a["write"]) for a in answers.values()]
    reads = [len(a["read"]) for a in answers.values()]
    for counts in (writes, reads):
        assert max(counts) >= 5 and sum(counts) < len(TOPICS) * len(counts) // 2, counts
    assert any(a["will"] for a in answers.values()) and not all(a["will"] for a in answers.values())
    assert any(a["retained"] for a in answers.values())
    # SUBSCRIBE: mosquitto 2.0 grants every filter; coremq may refuse one only if nothing the
    # client may read (per mosquitto's own read answers) could arrive through it.
    for key, mosquitto in mosquitto_answers.items():
        protocol = key[0]
        assert set(mosquitto["suback"].values()) == {0}, (key, mosquitto["suback"])
        refused_code = 0x87 if protocol == 5 else 0x80
        readable = {topic for topic, _ in mosquitto["read"]}
        for topic_filter, code in answers[key]["suback"].items():
            matches = [topic for topic in readable if topic_matches(topic_filter, topic)]
            assert code in (0, refused_code), (key, topic_filter, code)
            if code == refused_code:
                assert not matches, f"{key}: coremq refused {topic_filter!r}, mosquitto delivered {matches}"
    # Denials were counted (stats lines, summed over shards).
    broker.wait_for_stats(lambda b: b.stats_total("acl_publishes_denied") > 0
                          and b.stats_total("acl_deliveries_denied") > 0
                          and b.stats_total("acl_subscriptions_denied") > 0, what="ACL counters")


def test_the_comparison_sees_a_wrong_rule(start_broker, tmp_path, mosquitto_answers):
    wrong = tmp_path / "acl-wrong"
    wrong.write_text(ACL_TEXT_WRONG)
    assert ACL_TEXT_WRONG != ACL_TEXT
    broker = start_broker(acl_file=str(wrong))
    answers = Prober(broker.port, "w").ask_all()
    diff = differences(mosquitto_answers, answers)
    assert diff, "a changed rule went unnoticed"
    assert all("'bob'" in line and "write" in line for line in diff), diff


def topic_matches(topic_filter, topic):
    """MQTT matching, '$' rule included (the same as coremq's and mosquitto's)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels, topic_levels = topic_filter.split("/"), topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


@pytest.mark.parametrize("text,reason", [
    ("topic read a/b#\n", "invalid topic 'a/b#'"),
    ("user\n", "missing username"),
    ("topic foo bar\n", "invalid access type 'foo'"),
    ("  # an indented comment is not a comment to Mosquitto\n", "invalid line"),
    ("\ttopic read a\n", "invalid line"),
    ("topic\n", "empty topic"),
])
def test_a_bad_file_stops_the_start_naming_its_line(tmp_path, text, reason):
    from conftest import COREMQ_BINARY
    path = tmp_path / "acl"
    path.write_text("topic read ok/#\n" + text)
    result = subprocess.run([COREMQ_BINARY, "--bind=127.0.0.1", "--port=0", "--threads=1",
                             f"--acl-file={path}"], capture_output=True, text=True, timeout=20)
    assert result.returncode != 0
    assert f"{path}:2: " in result.stderr and reason in result.stderr, result.stderr
    # mosquitto refuses the same file.
    if os.access(MOSQUITTO_BINARY, os.X_OK):
        config = tmp_path / "m.conf"
        config.write_text(f"listener {free_port()} 127.0.0.1\nallow_anonymous true\nacl_file {path}\n")
        refused = subprocess.run([MOSQUITTO_BINARY, "-c", str(config)], capture_output=True,
                                 text=True, timeout=20)
        assert refused.returncode != 0, refused.stderr

# 11 mosquitto clients: the stock mosquitto_pub / mosquitto_sub command-line clients work
# against the broker: QoS 0/1/2, retained messages, persistent sessions (-c -i), message
# counts with timeouts (-C, -W), many lines from stdin (-l) and MQTT 3.1 (-V mqttv31).
import subprocess

import pytest

import helpers

MESSAGE_FORMAT = "MSG %q %r %t %p"
TIMED_OUT_EXIT_CODE = 27


def mosquitto_pub(broker, client_id, *arguments, stdin=None):
    result = subprocess.run(["mosquitto_pub", "-h", helpers.HOST, "-p", str(broker.port),
                             "-i", client_id, *arguments], input=stdin, capture_output=True,
                            timeout=10)
    assert result.returncode == 0, result.stderr
    return result


def start_mosquitto_sub(clients, broker, client_id, *arguments):
    """A running mosquitto_sub that has its SUBACK; returns (process, output reader)."""
    process = clients.process(["stdbuf", "-oL", "mosquitto_sub", "-h", helpers.HOST,
                               "-p", str(broker.port), "-i", client_id, "-d",
                               "-F", MESSAGE_FORMAT, *arguments])
    output = helpers.OutputReader(process)
    output.wait_for("SUBACK")
    return process, output


def finish(process, output, timeout=10):
    """Exit code and the message lines of a mosquitto_sub that is ending by itself."""
    return_code = process.wait(timeout)
    return return_code, [line for line in output.rest() if line.startswith("MSG ")]


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_pub_sub_roundtrip(broker, clients, names, qos):
    topic = names.topic(f"q{qos}")
    process, output = start_mosquitto_sub(clients, broker, names.sub(), "-t", topic,
                                          "-q", str(qos), "-C", "1", "-W", "5")
    mosquitto_pub(broker, names.pub(), "-t", topic, "-q", str(qos), "-m", f"hello {qos}")
    return_code, lines = finish(process, output)
    assert return_code == 0
    assert lines == [f"MSG {qos} 0 {topic} hello {qos}"]


def test_retained_set_read_and_cleared(broker, clients, names):
    topic = names.topic("retained")
    mosquitto_pub(broker, names.pub(), "-t", topic, "-q", "1", "-r", "-m", "kept")
    process, output = start_mosquitto_sub(clients, broker, names.sub(), "-t", topic,
                                          "-q", "1", "-C", "1", "-W", "5")
    assert finish(process, output) == (0, [f"MSG 1 1 {topic} kept"])
    mosquitto_pub(broker, names.pub(), "-t", topic, "-r", "-n")
    process, output = start_mosquitto_sub(clients, broker, names.sub("again"), "-t", topic,
                                          "-C", "1", "-W", "1")
    assert finish(process, output) == (TIMED_OUT_EXIT_CODE, [])


def test_persistent_session_round_trip(broker, clients, names):
    client_id, topic = names.sub(), names.topic("persistent")
    # Subscribe with clean session 0, then leave after one second with nothing received.
    process, output = start_mosquitto_sub(clients, broker, client_id, "-c", "-t", topic,
                                          "-q", "1", "-W", "1")
    assert finish(process, output) == (TIMED_OUT_EXIT_CODE, [])
    for index in range(3):
        mosquitto_pub(broker, names.pub(), "-t", topic, "-q", "1", "-m", f"offline {index}")
    # Coming back with the same id: the queued messages arrive without a new SUBSCRIBE
    # being needed (this mosquitto_sub subscribes to an unrelated topic).
    process = clients.process(["stdbuf", "-oL", "mosquitto_sub", "-h", helpers.HOST,
                               "-p", str(broker.port), "-i", client_id, "-c", "-q", "1",
                               "-t", names.topic("unrelated"), "-F", MESSAGE_FORMAT,
                               "-C", "3", "-W", "5"])
    return_code, lines = finish(process, helpers.OutputReader(process))
    assert return_code == 0
    assert lines == [f"MSG 1 0 {topic} offline {index}" for index in range(3)]


def test_count_with_timeout(broker, clients, names):
    topic = names.topic("count")
    process, output = start_mosquitto_sub(clients, broker, names.sub(), "-t", topic,
                                          "-C", "3", "-W", "5")
    for index in range(3):
        mosquitto_pub(broker, names.pub(), "-t", topic, "-m", f"m{index}")
    assert finish(process, output) == (0, [f"MSG 0 0 {topic} m{index}" for index in range(3)])
    process, output = start_mosquitto_sub(clients, broker, names.sub("short"), "-t", topic,
                                          "-C", "3", "-W", "2")
    for index in range(2):
        mosquitto_pub(broker, names.pub(), "-t", topic, "-m", f"n{index}")
    return_code, lines = finish(process, output)
    assert return_code == TIMED_OUT_EXIT_CODE
    assert lines == [f"MSG 0 0 {topic} n{index}" for index in range(2)]


def test_lines_from_stdin_arrive_in_order(broker, clients, names):
    topic = names.topic("lines")
    process, output = start_mosquitto_sub(clients, broker, names.sub(), "-t", names.topic("#"),
                                          "-q", "2", "-C", "100", "-W", "10")
    stdin = "".join(f"line {index}\n" for index in range(100)).encode()
    mosquitto_pub(broker, names.pub(), "-t", topic, "-q", "2", "-l", stdin=stdin)
    return_code, lines = finish(process, output, timeout=15)
    assert return_code == 0
    assert lines == [f"MSG 2 0 {topic} line {index}" for index in range(100)]


def test_mqtt31_clients(broker, clients, names):
    topic = names.topic("v31")
    process, output = start_mosquitto_sub(clients, broker, names.sub(), "-V", "mqttv31",
                                          "-t", topic, "-q", "1", "-C", "1", "-W", "5")
    mosquitto_pub(broker, names.pub(), "-V", "mqttv31", "-t", topic, "-q", "1", "-m", "old")
    assert finish(process, output) == (0, [f"MSG 1 0 {topic} old"])


def test_wildcard_subscription_with_several_publishers(broker, clients, names):
    process, output = start_mosquitto_sub(clients, broker, names.sub(),
                                          "-t", names.topic("+/state"), "-C", "4", "-W", "5")
    for shard in range(4):
        mosquitto_pub(broker, names.client(f"dev{shard}", shard),
                      "-t", names.topic(f"dev{shard}/state"), "-m", "on")
    return_code, lines = finish(process, output)
    assert return_code == 0
    assert sorted(lines) == [f"MSG 0 0 {names.topic(f'dev{shard}/state')} on"
                             for shard in range(4)]

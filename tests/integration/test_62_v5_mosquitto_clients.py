# 62 v5 mosquitto clients: mosquitto_pub and mosquitto_sub with -V 5 round-trip messages and
# their properties (-D: user-property, content-type, message-expiry-interval, response-topic,
# correlation-data, payload-format-indicator) through the broker, publisher and subscriber
# on different shards.
import subprocess

import pytest

import helpers
from helpers_v5 import module_broker, start_broker  # noqa: F401 (fixtures)
from helpers_v5 import (CONTENT_TYPE, CORRELATION_DATA, MESSAGE_EXPIRY_INTERVAL,
                        PAYLOAD_FORMAT_INDICATOR, RESPONSE_TOPIC, raw5)

PROPERTY_OPTIONS = [
    "-D", "publish", "user-property", "colour", "blue",
    "-D", "publish", "user-property", "size", "9",
    "-D", "publish", "content-type", "text/plain",
    "-D", "publish", "message-expiry-interval", "120",
    "-D", "publish", "correlation-data", "corr-7",
    "-D", "publish", "payload-format-indicator", "1",
]


def mosquitto_pub(broker, client_id, *arguments):
    result = subprocess.run(["mosquitto_pub", "-V", "5", "-h", helpers.HOST,
                             "-p", str(broker.port), "-i", client_id, *arguments],
                            capture_output=True, timeout=10)
    assert result.returncode == 0, result.stderr
    return result


def start_mosquitto_sub(clients, broker, client_id, *arguments):
    process = clients.process(["stdbuf", "-oL", "mosquitto_sub", "-V", "5", "-h", helpers.HOST,
                               "-p", str(broker.port), "-i", client_id, "-d", *arguments])
    output = helpers.OutputReader(process)
    output.wait_for("SUBACK")
    return process, output


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_pub_properties_reach_raw_subscriber(broker, clients, names, qos):
    topic = names.topic(f"q{qos}")
    subscriber = raw5(clients, names.sub())
    subscriber.subscribe5([(topic, qos)])
    mosquitto_pub(broker, names.pub(), "-t", topic, "-m", "hello v5", "-q", str(qos),
                  *PROPERTY_OPTIONS, "-D", "publish", "response-topic", names.topic("reply"))
    received = subscriber.receive_publish5()
    properties = received.properties
    assert (received.payload, received.qos) == (b"hello v5", qos)
    assert properties.user_properties == [("colour", "blue"), ("size", "9")]
    assert properties.get(CONTENT_TYPE) == "text/plain"
    assert 0 < properties.get(MESSAGE_EXPIRY_INTERVAL) <= 120
    assert properties.get(CORRELATION_DATA) == b"corr-7"
    assert properties.get(PAYLOAD_FORMAT_INDICATOR) == 1
    assert properties.get(RESPONSE_TOPIC) == names.topic("reply")


def test_sub_prints_properties(broker, clients, names):
    topic = names.topic("print")
    process, output = start_mosquitto_sub(clients, broker, names.sub(), "-t", topic, "-q", "1",
                                          "-C", "1", "-F", "MSG %t %p")
    mosquitto_pub(broker, names.pub(), "-t", topic, "-m", "shown", "-q", "1",
                  *PROPERTY_OPTIONS)
    assert output.wait_for("MSG ") == f"MSG {topic} shown"
    assert process.wait(10) == 0
    # -d prints the received PUBLISH; mosquitto_sub prints nothing about properties, so the
    # properties themselves are checked by the raw subscriber test above.


def test_sub_with_session_expiry_and_user_property(broker, clients, names):
    topic = names.topic("session")
    client_id = names.sub()
    process, output = start_mosquitto_sub(
        clients, broker, client_id, "-t", topic, "-q", "1", "-c", "-x", "60",
        "-D", "connect", "user-property", "who", "sub", "-F", "MSG %p")
    process.kill()                    # the session outlives the connection (-x 60)
    process.wait(10)
    mosquitto_pub(broker, names.pub(), "-t", topic, "-m", "queued", "-q", "1")
    # The queued message may arrive before the SUBACK of the repeated subscription.
    process = clients.process(["stdbuf", "-oL", "mosquitto_sub", "-V", "5", "-h", helpers.HOST,
                               "-p", str(broker.port), "-i", client_id, "-t", topic, "-q", "1",
                               "-c", "-x", "0", "-C", "1", "-F", "MSG %p"])
    assert helpers.OutputReader(process).wait_for("MSG ") == "MSG queued"
    assert process.wait(10) == 0


def test_pub_sub_many_lines(broker, clients, names):
    topic = names.topic("lines")
    process, output = start_mosquitto_sub(clients, broker, names.sub(), "-t", topic, "-q", "2",
                                          "-C", "50", "-F", "MSG %p")
    lines = "".join(f"line {index}\n" for index in range(50)).encode()
    result = subprocess.run(["mosquitto_pub", "-V", "5", "-h", helpers.HOST,
                             "-p", str(broker.port), "-i", names.pub(), "-t", topic, "-q", "2",
                             "-l", "-D", "publish", "user-property", "batch", "1"],
                            input=lines, capture_output=True, timeout=10)
    assert result.returncode == 0, result.stderr
    assert process.wait(10) == 0
    received = [line for line in output.rest() if line.startswith("MSG ")]
    assert received == [f"MSG line {index}" for index in range(50)]

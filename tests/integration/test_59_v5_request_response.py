# 59 v5 request/response: Response Topic, Correlation Data, User Properties (order and
# duplicates kept), Payload Format Indicator and Content Type reach subscribers unaltered;
# Request Response Information gets Response Information only when the broker has a prefix;
# Request Problem Information 0 keeps Reason Strings and User Properties off packets other
# than PUBLISH, CONNACK and DISCONNECT (MQTT 5.0 3.3.2.3, 4.10, 3.1.2.11.6-7).
import pytest

from helpers_v5 import module_broker, start_broker  # noqa: F401 (fixtures)
from helpers_v5 import (CONNACK, CONTENT_TYPE, CORRELATION_DATA, PAYLOAD_FORMAT_INDICATOR, REASON_STRING,
                        REQUEST_PROBLEM_INFORMATION, REQUEST_RESPONSE_INFORMATION,
                        RESPONSE_INFORMATION, RESPONSE_TOPIC, USER_PROPERTY, Connack,
                        connect5, paho5, paho_properties, raw5)

USER_PROPERTIES = [("region", "eu"), ("trace", "1"), ("region", "us"), ("", ""),
                   ("ünïcode", "välue")]


def request_properties(names):
    return [(PAYLOAD_FORMAT_INDICATOR, 1), (CONTENT_TYPE, "application/json; charset=utf-8"),
            (RESPONSE_TOPIC, names.topic("reply/1")), (CORRELATION_DATA, b"\x00\xffid-17"),
            *[(USER_PROPERTY, pair) for pair in USER_PROPERTIES]]


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_properties_forwarded_unaltered(broker, clients, names, qos):
    topic = names.topic("request")
    subscriber = raw5(clients, names.sub())
    subscriber.subscribe5([(topic, qos)])
    raw5(clients, names.pub()).publish5(topic, b'{"ask": 1}', qos=qos,
                                        properties=request_properties(names))
    received = subscriber.receive_publish5()
    properties = received.properties
    assert received.payload == b'{"ask": 1}'
    assert properties.get(PAYLOAD_FORMAT_INDICATOR) == 1
    assert properties.get(CONTENT_TYPE) == "application/json; charset=utf-8"
    assert properties.get(RESPONSE_TOPIC) == names.topic("reply/1")
    assert properties.get(CORRELATION_DATA) == b"\x00\xffid-17"
    assert properties.user_properties == USER_PROPERTIES


def test_properties_forwarded_to_every_subscriber(broker, clients, names):
    topic = names.topic("fan")
    subscribers = []
    for shard in range(4):
        subscriber = raw5(clients, names.client(f"sub{shard}", shard))
        subscriber.subscribe5([(names.topic("+"), 1)])
        subscribers.append(subscriber)
    raw5(clients, names.pub()).publish5(topic, b"x", qos=1, properties=request_properties(names))
    for subscriber in subscribers:
        received = subscriber.receive_publish5()
        assert received.properties.user_properties == USER_PROPERTIES
        assert received.properties.get(CORRELATION_DATA) == b"\x00\xffid-17"


def test_retained_message_keeps_properties(broker, clients, names):
    topic = names.topic("retained")
    raw5(clients, names.pub()).publish5(topic, b"kept", qos=1, retain=True,
                                        properties=request_properties(names))
    subscriber = raw5(clients, names.sub())
    subscriber.subscribe5([(topic, 1)])
    received = subscriber.receive_publish5()
    assert received.retain and received.properties.user_properties == USER_PROPERTIES
    assert received.properties.get(RESPONSE_TOPIC) == names.topic("reply/1")
    raw5(clients, names.client("clear", 0)).publish5(topic, b"", qos=1, retain=True)


def test_request_response_round_trip_with_paho(broker, clients, names):
    request_topic = names.topic("service")
    reply_topic = names.topic("replies/requester")
    responder = paho5(clients, names.client("responder", 1))
    responder.subscribe5(request_topic, 1)
    requester = paho5(clients, names.client("requester", 2))
    requester.subscribe5(reply_topic, 1)
    request = paho_properties("PUBLISH", ResponseTopic=reply_topic, CorrelationData=b"req-42",
                              UserProperty=[("a", "1"), ("b", "2")])
    requester.publish5(request_topic, b"ping?", qos=1, properties=request)
    asked = responder.get()
    assert asked.prop("ResponseTopic") == reply_topic
    assert asked.prop("CorrelationData") == b"req-42"
    assert asked.user_properties == [("a", "1"), ("b", "2")]
    reply = paho_properties("PUBLISH", CorrelationData=asked.prop("CorrelationData"))
    responder.publish5(asked.prop("ResponseTopic"), b"pong!", qos=1, properties=reply)
    answer = requester.get()
    assert (answer.payload, answer.prop("CorrelationData")) == (b"pong!", b"req-42")


@pytest.mark.coremq_only("mosquitto 2.0.11 has no Response Information")
def test_response_information_with_prefix(start_broker, clients, names):
    broker = start_broker(response_information_prefix="responses/")
    asked = raw5(clients, names.sub(), broker=broker,
                 properties=[(REQUEST_RESPONSE_INFORMATION, 1)])
    information = asked.connack.properties.get(RESPONSE_INFORMATION)
    assert information and information.startswith("responses/"), asked.connack
    # Response Information is a basis for response topics the client may use.
    asked.subscribe5([(information.rstrip("/") + "/#", 1)])
    raw5(clients, names.pub(), broker=broker).publish5(information.rstrip("/") + "/r", b"ok",
                                                       qos=1)
    assert asked.receive_publish5().payload == b"ok"
    not_asked = raw5(clients, names.client("quiet", 3), broker=broker,
                     properties=[(REQUEST_RESPONSE_INFORMATION, 0)])
    assert RESPONSE_INFORMATION not in not_asked.connack.properties


def test_no_response_information_without_prefix(broker, clients, names):
    client = raw5(clients, names.sub(), properties=[(REQUEST_RESPONSE_INFORMATION, 1)])
    assert RESPONSE_INFORMATION not in client.connack.properties


def test_request_response_information_2_refused(broker, clients, names):
    client = raw5(clients)
    client.send(connect5(names.sub(), properties=[(REQUEST_RESPONSE_INFORMATION, 2)]))
    packets = client.expect_closed()
    assert all(Connack(item).reason_code >= 0x80 for item in packets if item.type == CONNACK)


def test_no_problem_information_on_acks(broker, clients, names):
    """Request Problem Information 0: UNSUBACK 0x11 and PUBACK without subscribers carry
    no Reason String and no User Property [MQTT-3.1.2-29]."""
    client = raw5(clients, names.sub(), properties=[(REQUEST_PROBLEM_INFORMATION, 0)])
    unsuback = client.unsubscribe5([names.topic("never")])
    assert unsuback.reason_codes == [0x11]
    assert unsuback.properties.items == []
    puback = client.publish5(names.topic("nobody"), b"x", qos=1)
    assert puback.reason_code in (0x00, 0x10)
    assert puback.properties.items == []
    pubrec = client.publish5(names.topic("nobody"), b"x", qos=2)
    assert pubrec.properties.items == []


@pytest.mark.coremq_only("mosquitto cannot refuse wildcard subscriptions")
def test_no_problem_information_on_failed_suback(start_broker, clients, names):
    broker = start_broker(wildcard_subscriptions=False)
    client = raw5(clients, names.sub(), broker=broker,
                  properties=[(REQUEST_PROBLEM_INFORMATION, 0)])
    suback = client.subscribe5([(names.topic("#"), 1)])
    assert suback.reason_codes == [0xA2]
    assert REASON_STRING not in suback.properties and USER_PROPERTY not in suback.properties

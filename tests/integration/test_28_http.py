# 28 the HTTP admin listener (--http-listener): Prometheus /metrics values move with real
# clients' traffic (per shard with --threads=4), credentials are enforced, the JSON admin API
# lists, pages and filters clients, shows one client, disconnects one (MQTT 5: DISCONNECT 0x98
# Administrative action), publishes, lists retained topics, and answers bad requests with a
# JSON 4xx; each HTTP bound is counted. Every check synchronises on an MQTT round trip (a
# SUBACK, a message echo) before it reads the HTTP side. $SYS is off (--sys-interval=0): its
# publisher is an in-process client and would add its own connection and messages to the counts.
import base64
import socket
import subprocess

import pytest

import helpers
from helpers import DISCONNECT
from helpers_http import get_json, http_base, metric, metrics, request, wait_for_metric
from helpers_v5 import raw5

pytestmark = pytest.mark.coremq_only("--http-listener is a coremq flag")

MESSAGES = 20


def test_metrics_move_with_traffic(start_broker, clients, names, threads):
    broker = start_broker(sys_interval=0, http_listener=":0")
    topic = names.topic("m")
    subscriber = clients.paho(names.sub(), broker=broker)
    subscriber.subscribe(topic, qos=1)
    publisher = clients.paho(names.pub(), broker=broker)
    for index in range(MESSAGES):
        publisher.publish(topic, b"%d" % index, qos=1)
    assert [m.payload for m in subscriber.get_many(MESSAGES)] == [b"%d" % i for i in range(MESSAGES)]
    samples = metrics(broker)
    assert metric(samples, "coremq_messages_received_total") == MESSAGES
    assert metric(samples, "coremq_messages_delivered_total") == MESSAGES
    assert metric(samples, "coremq_connections") == 2
    assert metric(samples, "coremq_sessions_online") == 2
    assert metric(samples, "coremq_subscriptions") == 1
    assert metric(samples, "coremq_shards") == threads
    assert metric(samples, "coremq_delivery_latency_seconds_count") == MESSAGES
    assert metric(samples, "coremq_delivery_latency_seconds_bucket", le="+Inf") == MESSAGES
    assert metric(samples, "coremq_loop_turn_duration_seconds_count") > 0
    assert metric(samples, "coremq_messages_dropped_total", reason="queue_full") == 0
    # Per shard: the publisher's shard received every message, the others none.
    publisher_shard = 2 % threads
    for shard in range(threads):
        received = metric(samples, "coremq_shard_messages_received_total", shard=str(shard))
        assert received == (MESSAGES if shard == publisher_shard else 0), shard
    if threads > 1:
        assert metric(samples, "coremq_messages_forwarded_to_shards_total") == MESSAGES
    # The same numbers through the JSON API.
    stats = get_json(broker, "/api/v1/stats")
    assert stats["shard_count"] == threads
    assert stats["total"]["messages_received"] == MESSAGES
    assert [shard["shard"] for shard in stats["shards"]] == list(range(threads))


def test_bearer_token(start_broker, tmp_path):
    token = "integration-token-0123456789"
    path = tmp_path / "token"
    path.write_text(token + "\n")
    broker = start_broker(sys_interval=0, http_listener=":0", http_token_file=path)
    status, headers, body = request(broker, "GET", "/metrics")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert request(broker, "GET", "/api/v1/stats", headers={"Authorization": "Bearer nope"})[0] == 401
    samples = metrics(broker, headers={"Authorization": f"Bearer {token}"})
    assert metric(samples, "coremq_http_authentication_failures_total") == 2


def test_basic_auth_with_a_password_file(start_broker, coremq_passwd, tmp_path):
    path = tmp_path / "http.passwd"
    subprocess.run([coremq_passwd, "-c", "-b", str(path), "ops", "correct horse"], check=True, timeout=30,
                capture_output=True)
    broker = start_broker(sys_interval=0, http_listener=":0", http_user="ops", http_password_file=path)

    def basic(credentials):
        return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}

    status, headers, _ = request(broker, "GET", "/metrics")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
    assert request(broker, "GET", "/metrics", headers=basic("ops:wrong"))[0] == 401
    assert request(broker, "GET", "/metrics", headers=basic("root:correct horse"))[0] == 401
    for _ in range(3):  # the first one hashes, the others use the cached verdict
        assert request(broker, "GET", "/metrics", headers=basic("ops:correct horse"))[0] == 200


def test_clients_list_paging_and_filters(start_broker, clients, names, threads):
    broker = start_broker(sys_interval=0, http_listener=":0")
    prefix = f"page-{names.tag}-"
    ids = [names.client(f"{prefix}{index}", index) for index in range(5)]
    for client_id in ids:
        clients.paho(client_id, broker=broker)
    named = clients.paho(names.client(f"user-{names.tag}", 0), broker=broker, connect=False)
    named.client.username_pw_set("alice")
    named.connect()
    # Each connection's CONNACK came back: every session exists on its shard.
    seen = []
    cursor = None
    pages = 0
    while True:
        query = f"/api/v1/clients?prefix={prefix}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = get_json(broker, query)
        assert len(page["clients"]) <= 2
        seen += [client["client_id"] for client in page["clients"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert seen == sorted(ids)
    assert pages == 3
    everyone = get_json(broker, "/api/v1/clients")["clients"]
    assert len(everyone) == 6
    assert all(client["connected"] for client in everyone)
    alice = get_json(broker, "/api/v1/clients?username=alice")["clients"]
    assert [client["client_id"] for client in alice] == [named.client._client_id.decode()]
    for shard in range(threads):
        on_shard = get_json(broker, f"/api/v1/clients?shard={shard}")["clients"]
        assert on_shard and all(client["shard"] == shard for client in on_shard)
    assert sum(len(get_json(broker, f"/api/v1/clients?shard={s}")["clients"]) for s in range(threads)) == 6


def test_client_detail(start_broker, clients, names):
    broker = start_broker(sys_interval=0, http_listener=":0")
    client_id = names.sub()
    client = raw5(clients, client_id, broker=broker, keepalive=42)
    client.subscribe5([(names.topic("a"), 1), (names.topic("b/#"), 0)])
    detail = get_json(broker, f"/api/v1/clients/{client_id}")
    host, port = client.sock.getsockname()[:2]
    assert detail["connection"]["address"] == f"{host}:{port}"
    assert detail["connection"]["protocol_level"] == 5
    assert detail["connection"]["keep_alive_seconds"] == 42
    assert detail["session"]["subscriptions"] == 2
    assert sorted(s["filter"] for s in detail["subscriptions"]) == [names.topic("a"), names.topic("b/#")]
    assert detail["subscriptions"][0]["qos"] in (0, 1)
    subscriptions = get_json(broker, "/api/v1/subscriptions?limit=1")
    assert len(subscriptions["subscriptions"]) == 1 and subscriptions["next_cursor"] is not None
    second = get_json(broker, f"/api/v1/subscriptions?limit=5&cursor={subscriptions['next_cursor']}")
    assert len(second["subscriptions"]) == 1 and second["next_cursor"] is None


def test_delete_disconnects_with_administrative_action(start_broker, clients, names):
    broker = start_broker(sys_interval=0, http_listener=":0")
    client_id = names.sub()
    # A session that outlives its connection (Session Expiry Interval 300 s).
    client = raw5(clients, client_id, broker=broker,
                  properties=[(0x11, 300)])
    client.subscribe5([(names.topic(), 1)])
    status, _, body = request(broker, "DELETE", f"/api/v1/clients/{client_id}")
    assert status == 200, body
    packet = client.receive(packet_type=DISCONNECT)
    assert packet.body[0] == 0x98, packet.raw
    client.expect_closed()
    detail = get_json(broker, f"/api/v1/clients/{client_id}")
    assert detail["connected"] is False and detail["session"]["subscriptions"] == 1
    status, _, body = request(broker, "DELETE", f"/api/v1/clients/{client_id}?discard_session=1")
    assert status == 200 and b'"session_ended":true' in body
    get_json(broker, f"/api/v1/clients/{client_id}", expect=404)


def test_delete_disconnects_a_paho_client(start_broker, clients, names):
    broker = start_broker(sys_interval=0, http_listener=":0")
    client = clients.paho(names.sub(), broker=broker)
    client.subscribe(names.topic(), qos=0)
    assert request(broker, "DELETE", f"/api/v1/clients/{names.sub()}")[0] == 200
    assert client.disconnected.wait(10), "the client was not disconnected"


def test_publish_via_api_and_retained_topics(start_broker, clients, names):
    broker = start_broker(sys_interval=0, http_listener=":0")
    subscriber = clients.paho(names.sub(), broker=broker)
    subscriber.subscribe(names.topic("#"), qos=1)
    status, _, body = request(broker, "POST", "/api/v1/publish",
                              {"topic": names.topic("text"), "payload": "hello", "qos": 1})
    assert status == 200, body
    message = subscriber.get()
    assert (message.topic, message.payload, message.qos) == (names.topic("text"), b"hello", 1)
    binary = bytes(range(256))
    status, _, body = request(broker, "POST", "/api/v1/publish",
                              {"topic": names.topic("bin"), "payload_base64": base64.b64encode(binary).decode(),
                               "retain": True, "qos": 1})
    assert status == 200, body
    assert subscriber.get().payload == binary
    topics = get_json(broker, "/api/v1/topics?retained=1")["topics"]
    entry = [t for t in topics if t["topic"] == names.topic("bin")]
    assert entry and entry[0]["size"] == 256 and base64.b64decode(entry[0]["payload_base64"]) == binary


def test_bad_requests_get_json_errors(start_broker):
    broker = start_broker(sys_interval=0, http_listener=":0", http_max_body_bytes=1024)
    cases = [
        ("GET", "/nope", None, 404),
        ("PUT", "/api/v1/stats", None, 405),
        ("GET", "/api/v1/clients?limit=abc", None, 400),
        ("GET", "/api/v1/topics", None, 400),
        ("POST", "/api/v1/publish", b"{", 400),
        ("POST", "/api/v1/publish", {"topic": "a/+"}, 400),
        ("POST", "/api/v1/publish", {"topic": "a", "qos": 7}, 400),
        ("POST", "/api/v1/publish", {"payload": "no topic"}, 400),
        ("POST", "/api/v1/publish", b"x" * 4096, 413),
        ("DELETE", "/api/v1/clients/nobody", None, 404),
    ]
    for method, path, body, expected in cases:
        status, headers, answer = request(broker, method, path, body)
        assert status == expected, (method, path, status, answer)
        assert headers["Content-Type"] == "application/json" and b'"error":' in answer
    samples = metrics(broker)
    assert metric(samples, "coremq_http_bodies_too_large_total") == 1


def test_connection_limit_is_counted(start_broker):
    broker = start_broker(sys_interval=0, http_listener=":0", http_max_connections=2)
    port = int(http_base(broker).rsplit(":", 1)[1])
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
    try:
        # The broker saw both (a third is refused at accept: closed without an answer).
        refused = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            refused.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = refused.recv(100)
        except ConnectionResetError:
            answer = b""
        assert answer == b"", answer
        refused.close()
    finally:
        for connection in idle:
            connection.close()
    wait_for_metric(broker, lambda s: metric(s, "coremq_http_connections_refused_total",
                                             reason="max_connections") >= 1,
                    "a refused HTTP connection")

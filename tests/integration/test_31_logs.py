# 31 logs: one info line per client connect and disconnect, with the client id, its address,
# protocol and transport, listener and keep-alive, and for a disconnect the reason (client
# DISCONNECT and its code, keep-alive timeout, protocol error and why, takeover, connection
# lost, shutdown); --log-format json writes one JSON object per line; --log-dest file:PATH is
# reopened on SIGHUP (logrotate); a connect flood collapses into "(N similar lines suppressed)".
import json
import os
import signal
import time

import pytest

import helpers
from helpers_v5 import PROTOCOL_ERROR, connect5, raw5

pytestmark = pytest.mark.coremq_only("coremq's log lines")

WAIT_SECONDS = 10.0


def json_lines(broker):
    """Every line the broker wrote, parsed: a line that is not JSON fails the test."""
    return [json.loads(line) for line in broker.log().splitlines() if line.strip()]


def wait_for_line(broker, predicate, what):
    found = []

    def look():
        found[:] = [line for line in json_lines(broker) if predicate(line)]
        return bool(found)

    assert helpers.wait_until(look, timeout=WAIT_SECONDS), f"no {what} line in:\n{broker.log_tail()}"
    return found[-1]


def event(message, client_id, **expected):
    def matches(line):
        if line.get("message", "").split(" (")[0] != message or line.get("client_id") != client_id:
            return False
        return all(line.get(name) == value for name, value in expected.items())
    return matches


def address_of(raw_client) -> str:
    host, port = raw_client.sock.getsockname()[:2]
    return f"{host}:{port}"


def test_connect_and_disconnect_lines_carry_their_fields_and_reason(start_broker, clients, names):
    broker = clients.broker = start_broker(log_format="json", sys_interval=0)

    # Client DISCONNECT (3.1.1): reason client-disconnect, code 0x00.
    leaving = clients.raw()
    leaving.connect(names.client("leaving", 0), keepalive=42)
    address = address_of(leaving)
    connected = wait_for_line(broker, event("client connected", names.client("leaving", 0)), "connect")
    assert connected["address"] == address
    assert (connected["protocol"], connected["transport"], connected["listener"], connected["keep_alive"]) == \
        ("3.1.1", "tcp", 0, 42)
    assert connected["level"] == "info" and isinstance(connected["shard"], int)
    leaving.disconnect_and_wait()
    gone = wait_for_line(broker, event("client disconnected", names.client("leaving", 0)), "disconnect")
    assert (gone["reason"], gone["reason_code"], gone["address"], gone["protocol"]) == \
        ("client-disconnect", "0x00", address, "3.1.1")

    # MQTT 5 DISCONNECT with a reason code of its own (0x04: with will).
    v5 = raw5(clients, names.client("v5", 1))
    v5.send(bytes([0xE0, 0x01, 0x04]))
    v5.expect_closed()
    line = wait_for_line(broker, event("client disconnected", names.client("v5", 1)), "MQTT 5 disconnect")
    assert (line["reason"], line["reason_code"], line["protocol"]) == ("client-disconnect", "0x04", "5.0")

    # End of stream without DISCONNECT.
    lost = clients.raw(names.client("lost", 2))
    lost.close_and_wait()
    line = wait_for_line(broker, event("client disconnected", names.client("lost", 2)), "connection lost")
    assert line["reason"] == "connection-lost"

    # Protocol error, with why (MQTT 5: the DISCONNECT's reason code too).
    broken = raw5(clients, names.client("broken", 3))
    broken.send(connect5(names.client("broken", 3)))  # a second CONNECT
    broken.expect_disconnect(PROTOCOL_ERROR)
    line = wait_for_line(broker, event("client disconnected", names.client("broken", 3)), "protocol error")
    assert (line["reason"], line["reason_code"]) == ("protocol-error", "0x82") and "CONNECT" in line["detail"], line

    # Takeover: the old connection's line says so.
    first = clients.raw(names.client("twin", 0))
    clients.raw(names.client("twin", 0))
    first.expect_closed()
    line = wait_for_line(broker, event("client disconnected", names.client("twin", 0), reason="takeover"),
                         "takeover")
    assert line["detail"]

    # Keep-alive: 1 s, then silence; closed after 1.5 s.
    silent = clients.raw()
    silent.connect(names.client("silent", 1), keepalive=1)
    silent.expect_closed(timeout=WAIT_SECONDS)
    line = wait_for_line(broker, event("client disconnected", names.client("silent", 1)), "keep-alive")
    assert (line["reason"], line["keep_alive"]) == ("keep-alive-timeout", 1)

    # Shutdown: the broker closes whoever is still there.
    staying = clients.raw(names.client("staying", 2))
    staying.ping()
    broker.stop()
    line = next(line for line in json_lines(broker) if event("client disconnected", names.client("staying", 2))(line))
    assert line["reason"] == "shutdown"
    # Every line of the run parsed as JSON (json_lines would have failed), with the four keys.
    for line in json_lines(broker):
        assert {"time", "level", "message"} <= line.keys(), line


def test_text_format_lines(start_broker, clients, names):
    broker = clients.broker = start_broker(sys_interval=0)
    client = clients.raw(names.client("text", 0))
    address = address_of(client)
    client.disconnect_and_wait()
    client_id = names.client("text", 0)
    assert helpers.wait_until(lambda: f'client disconnected client_id="{client_id}"' in broker.log(),
                              timeout=WAIT_SECONDS), broker.log_tail()
    text = broker.log()
    assert (f'client connected client_id="{client_id}" address="{address}" protocol="3.1.1" transport="tcp" '
            f'listener=0 keep_alive=60') in text
    assert f'address="{address}" protocol="3.1.1" transport="tcp" listener=0 keep_alive=60 ' \
           f'reason="client-disconnect" reason_code="0x00"' in text


def test_file_destination_is_reopened_on_sighup(start_broker, clients, names, tmp_path):
    path = tmp_path / "coremq.log"
    broker = clients.broker = start_broker(log_dest=f"stderr,file:{path}", sys_interval=0)
    before = names.client("before", 0)
    clients.raw(before).ping()
    assert helpers.wait_until(lambda: path.exists() and before in path.read_text(), timeout=WAIT_SECONDS)
    os.rename(path, tmp_path / "coremq.log.1")
    broker.process.send_signal(signal.SIGHUP)
    assert helpers.wait_until(lambda: "received SIGHUP" in broker.log(), timeout=WAIT_SECONDS)
    after = names.client("after", 1)
    clients.raw(after).ping()
    assert helpers.wait_until(lambda: path.exists() and after in path.read_text(), timeout=WAIT_SECONDS), \
        broker.log_tail()
    assert before not in path.read_text()
    rotated = (tmp_path / "coremq.log.1").read_text()
    assert before in rotated and after not in rotated
    # The same lines went to stderr too.
    assert before in broker.log() and after in broker.log()


def test_connect_flood_collapses_into_a_count(start_broker, clients, names):
    broker = clients.broker = start_broker(log_connection_lines=5, sys_interval=0)
    flood = 150
    for i in range(flood):
        client = clients.raw(names.client(f"flood{i}", i))
        client.disconnect()
    # The count rides on the next line the limit lets out: keep connecting (bounded) until one did.
    deadline = time.monotonic() + 20
    extra = 0
    while "similar lines suppressed" not in broker.log() and time.monotonic() < deadline:
        clients.raw(names.client(f"late{extra}", extra)).disconnect()
        extra += 1
        time.sleep(0.1)
    text = broker.log()
    assert "similar lines suppressed" in text, broker.log_tail()
    connect_lines = text.count("client connected client_id=")
    assert connect_lines < flood, f"{connect_lines} connect lines for {flood + extra} connects"

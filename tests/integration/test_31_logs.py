# 31 logs: one info line per client connect and disconnect, with the client id, its address,
# protocol and transport, listener and keep-alive, and for a disconnect the reason (client
# DISCONNECT and its code, keep-alive timeout, protocol error and why, takeover, connection
# lost, shutdown); --log-format json writes one JSON object per line; --log-dest file:PATH is
# reopened on SIGHUP (logrotate); a connect flood collapses into "(N similar lines suppressed)";
# --log-dest syslog sends each line through syslog(3) to /dev/log (a socket of the test's, in a
# private mount namespace) with the daemon facility and the line's level.
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

import conftest
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


# ------------------------------------------------------------------ syslog

# syslog(3) writes to /dev/log, a path of the machine's: the broker runs in a mount namespace of
# its own (unshare -m, private propagation, so nothing here is seen outside it) where /dev is a
# small tmpfs of symbolic links to the real /dev's entries (bound under SCRATCH/dev first) and
# /dev/log links to the test's socket. Arguments: SOCKET SCRATCH COMMAND...
SYSLOG_NAMESPACE_SCRIPT = r"""
set -eu
socket=$1 scratch=$2
shift 2
mkdir -p "$scratch/dev"
mount --rbind /dev "$scratch/dev"
mount -t tmpfs -o mode=0755,size=64k coremq-test-dev /dev
for entry in "$scratch"/dev/* "$scratch"/dev/.[!.]*; do
  [ -e "$entry" ] || [ -L "$entry" ] || continue
  ln -s "$entry" "/dev/${entry##*/}"
done
rm -f /dev/log
ln -s "$socket" /dev/log
exec "$@"
"""
SYSLOG_DAEMON = 3  # LOG_DAEMON >> 3, the facility coremq opens syslog with
SYSLOG_INFO, SYSLOG_WARNING = 6, 4


def private_mount_namespace_or_skip():
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to give the broker a /dev/log of the test's in a private "
                    "mount namespace (syslog(3) always writes to /dev/log)")
    # What the script does first that needs the privilege, in a namespace that ends with the probe.
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs",
                            "coremq-probe", "/dev"], capture_output=True, text=True, timeout=10)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a private mount namespace here (a container without CAP_SYS_ADMIN?): "
                    f"{probe.stderr.strip()}")


class SyslogReceiver:
    """The test's syslog daemon: an AF_UNIX datagram socket that keeps every message it gets as
    (facility, severity, tag, text), in order."""

    MESSAGE = re.compile(r"<(\d+)>(\w{3} [ \d]\d \d\d:\d\d:\d\d) ([^:\[]+)\[(\d+)\]: (.*)", re.DOTALL)

    def __init__(self, path):
        self.path = path
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(path))
        self.socket.settimeout(0.1)
        self.messages = []

    def receive(self):
        try:
            while True:
                datagram = self.socket.recv(65536).decode(errors="replace")
                match = self.MESSAGE.fullmatch(datagram.rstrip("\n"))
                assert match, f"not a syslog(3) message: {datagram!r}"
                priority = int(match.group(1))
                self.messages.append((priority >> 3, priority & 7, match.group(3), int(match.group(4)),
                                      match.group(5)))
        except socket.timeout:
            pass

    def wait_for(self, text):
        """The first message containing text (waits, bounded)."""
        def found():
            self.receive()
            return any(text in message[4] for message in self.messages)
        assert helpers.wait_until(found, timeout=WAIT_SECONDS), f"no syslog message with {text!r} in {self.messages}"
        return next(message for message in self.messages if text in message[4])

    def close(self):
        self.socket.close()


class SyslogBroker(conftest.Broker):
    """coremq with --log-dest=stderr,syslog (stderr for the harness's ready line) run through
    SYSLOG_NAMESPACE_SCRIPT; exec keeps the broker's pid the one Popen started."""

    def __init__(self, directory, threads, options, socket_path):
        super().__init__(directory, threads, options)
        self.socket_path = socket_path

    def _coremq_command(self):
        return ["unshare", "--mount", "--propagation", "private", "bash", "-c", SYSLOG_NAMESPACE_SCRIPT,
                "coremq-syslog", str(self.socket_path), str(self.directory / "namespace"),
                *super()._coremq_command()]


def test_syslog_destination_gets_each_line_with_its_level(threads, tmp_path, clients, names):
    private_mount_namespace_or_skip()
    receiver = SyslogReceiver(tmp_path / "log.sock")
    broker = SyslogBroker(tmp_path / "broker", threads,
                          {"log_dest": "stderr,syslog", "sys_interval": 0, "max_connections": 2},
                          receiver.path)
    try:
        broker.start()
        clients.broker = broker
        pid = broker.process.pid
        started = receiver.wait_for("coremq started")
        assert started[:4] == (SYSLOG_DAEMON, SYSLOG_INFO, "coremq", pid), started
        client_id = names.client("syslog", 1)
        client = clients.raw(client_id)
        connected = receiver.wait_for(f'client connected client_id="{client_id}"')
        assert connected[:2] == (SYSLOG_DAEMON, SYSLOG_INFO), connected
        # A warning: a third connection over --max-connections=2 is refused.
        second = clients.raw(names.client("second", 2))
        third = clients.raw()
        third.expect_closed()
        refused = receiver.wait_for("refusing connections: --max-connections=2 reached")
        assert refused[:2] == (SYSLOG_DAEMON, SYSLOG_WARNING), refused
        client.disconnect_and_wait()
        second.disconnect_and_wait()
        gone = receiver.wait_for(f'client disconnected client_id="{client_id}"')
        assert 'reason="client-disconnect"' in gone[4], gone
        # syslog has the time and the level: the text starts at the shard, as on stderr after those.
        assert connected[4].startswith(f"[shard {helpers.shard_of(client_id, threads)}] client connected "), connected
        assert started[4] == "coremq started" or started[4].startswith("coremq started:"), started
        stderr_line = next(line for line in broker.log().splitlines()
                           if f'client connected client_id="{client_id}"' in line)
        assert stderr_line.endswith(connected[4]), (stderr_line, connected)
    finally:
        clients.close_all()
        broker.stop()
        receiver.close()
    # Nothing of the namespace is left on the machine: /dev/log is as it was.
    assert not os.path.lexists("/dev/log") or os.path.realpath("/dev/log") != str(receiver.path)

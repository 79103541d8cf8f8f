# 18 config file: `coremq -c FILE` reads a mosquitto.conf. The options it maps must take effect
# through the protocol (max_packet_size closes a bigger PUBLISH, max_keepalive refuses a 3.1.1
# client asking for more, max_inflight_messages bounds the in-flight window); an unknown option or
# a bad value stops coremq before it listens, naming FILE:LINE; so does an access restriction it
# has no equivalent for (PSK, auth plugins); any other Mosquitto
# option coremq does not support is a warning naming FILE:LINE and coremq still starts; COREMQ_<FLAG> environment
# variables override the file and flags override both.
import socket
import subprocess

import pytest

import helpers
from conftest import COREMQ_BINARY, free_port
from helpers import connack_bytes, connect_packet, puback_bytes, publish_packet

pytestmark = pytest.mark.coremq_only("coremq's config file reader")

IDENTIFIER_REJECTED = 0x02
PACKET_SIZE_MAX = 4096

# The general part of the example mosquitto.conf that Mosquitto ships (and Debian installs),
# with its commented defaults set the way an operator would, adapted to loopback and a free port.
MOSQUITTO_EXAMPLE = """\
# Config file for mosquitto
#
# See mosquitto.conf(5) for more information.

# =================================================================
# General configuration
# =================================================================
per_listener_settings false
allow_anonymous true
max_inflight_messages 2
max_queued_messages 1000
max_packet_size {packet_size}
max_keepalive 30
retain_available true
sys_interval 10

# =================================================================
# Listeners
# =================================================================
listener {port} 127.0.0.1
max_connections -1
protocol mqtt

# =================================================================
# Persistence
# =================================================================
persistence false

# =================================================================
# Logging
# =================================================================
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information

# coremq's own flags, in the same form
max-topic-levels 100
"""


def example_config(port):
    return MOSQUITTO_EXAMPLE.format(port=port, packet_size=PACKET_SIZE_MAX)


def line_of(text, start):
    """1-based number of the first line of text that starts with start."""
    return next(number for number, line in enumerate(text.splitlines(), 1) if line.startswith(start))


def refused_keepalive(clients, broker, client_id, keepalive):
    client = clients.raw(broker=broker)
    client.send(connect_packet(client_id, keepalive=keepalive))
    client.expect(connack_bytes(0, IDENTIFIER_REJECTED))
    assert client.expect_closed() == []


def run_to_exit(tmp_path, config_text, timeout=10):
    """Runs coremq on config_text, which must make it exit; returns (exit code, output, path)."""
    path = tmp_path / "coremq.conf"
    path.write_text(config_text)
    result = subprocess.run([COREMQ_BINARY, "-c", str(path), "--threads=1", "--pin-threads=false"],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    return result.returncode, result.stdout + result.stderr, path


def nothing_listens_on(port):
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex((helpers.HOST, port)) != 0


def test_mosquitto_example_config_takes_effect(start_config_broker, clients, names):
    port = free_port()
    config = example_config(port)
    broker = start_config_broker(config)
    assert broker.port == port
    # sys_interval is taken (the $SYS topics, test_30): no warning about it.
    assert "warning: sys_interval" not in broker.log()

    # Every client below keeps within max_keepalive 30.
    # max_packet_size: a bigger PUBLISH closes the connection, a smaller one is delivered.
    topic = names.topic("size")
    subscriber = clients.raw(names.sub(), broker=broker, keepalive=30)
    subscriber.subscribe([(topic, 0)])
    big = clients.raw(names.pub("big"), broker=broker, keepalive=30)
    big.send(publish_packet(topic, b"x" * (2 * PACKET_SIZE_MAX)))
    big.expect_closed()
    small = clients.raw(names.pub("small"), broker=broker, keepalive=30)
    small.publish(topic, b"y" * (PACKET_SIZE_MAX // 2))
    assert subscriber.receive_publish().payload == b"y" * (PACKET_SIZE_MAX // 2)

    # max_keepalive 30: a 3.1.1 client asking for 31 is refused, 30 is taken.
    refused_keepalive(clients, broker, names.client("ka31", 0), 31)
    clients.raw(names.client("ka30", 1), broker=broker, keepalive=30).ping()

    # max_inflight_messages 2: two unacknowledged QoS 1 messages, then the window is full.
    window_topic = names.topic("window")
    receiver = clients.raw(names.sub("receiver"), broker=broker, keepalive=30)
    receiver.subscribe([(window_topic, 1)])
    publisher = clients.paho(names.pub("window"), broker=broker, keepalive=30)
    for index in range(4):
        publisher.publish(window_topic, b"%d" % index, qos=1)
    first = [receiver.receive_publish(acknowledge=False) for _ in range(2)]
    receiver.expect_no_packet(0.5)
    receiver.send(puback_bytes(first[0].packet_id))
    third = receiver.receive_publish(acknowledge=False)
    assert [p.payload for p in first + [third]] == [b"0", b"1", b"2"]
    receiver.expect_no_packet(0.3)
    for packet in (first[1], third):
        receiver.send(puback_bytes(packet.packet_id))
    assert receiver.receive_publish().payload == b"3"


def test_unknown_option_exits_before_listening_naming_file_and_line(tmp_path):
    port = free_port()
    code, output, path = run_to_exit(tmp_path, f"listener {port} 127.0.0.1\n# comment\nno_such_option 1\n")
    assert code != 0, output
    assert f"{path}:3: error: unknown option 'no_such_option'" in output
    assert nothing_listens_on(port)


def test_malformed_values_exit_naming_each_line(tmp_path):
    port = free_port()
    code, output, path = run_to_exit(
        tmp_path, f"listener {port} 127.0.0.1\nmax_inflight_messages 70000\nmax_keepalive soon\n")
    assert code != 0, output
    assert f"{path}:2: error: max_inflight_messages 70000: --max-inflight=70000 is out of range" in output
    assert f"{path}:3: error: max_keepalive soon:" in output
    assert nothing_listens_on(port)


def test_bad_listener_section_is_an_error(tmp_path):
    # Several listeners are fine (test_19); a TLS option on a listener without TLS is not.
    first, second = free_port(), free_port()
    code, output, path = run_to_exit(
        tmp_path, f"listener {first} 127.0.0.1\nlistener {second} 127.0.0.1\ncafile /etc/ca.pem\n")
    assert code != 0, output
    assert f"{path}:2: error: listener: cafile is a TLS option" in output
    assert nothing_listens_on(first)


def test_unsupported_mosquitto_option_warns_and_starts(start_config_broker, clients, names):
    port = free_port()
    config = (f"listener {port} 127.0.0.1\nlog_dest topic\n"
              "autosave_interval 1800\nallow_anonymous true\n")
    broker = start_config_broker(config)
    log = broker.log()
    assert f"{broker.config_path}:2: warning: log_dest topic is not supported and is ignored" in log
    assert f"{broker.config_path}:3: warning: autosave_interval is not supported yet" in log
    clients.raw(names.sub(), broker=broker).ping()


def test_access_restriction_it_cannot_enforce_stops_the_start(tmp_path):
    """An authentication plugin or a PSK file that coremq would ignore leaves the broker more open
    than the file asks: it refuses to start, naming the line, and listens nowhere."""
    port = free_port()
    code, output, path = run_to_exit(
        tmp_path, f"listener {port} 127.0.0.1\nplugin /usr/lib/mosquitto_dynamic_security.so\n")
    assert code != 0, output
    assert f"{path}:2: error: plugin cannot be enforced" in output
    assert nothing_listens_on(port)


def test_no_listener_listens_on_loopback_only_as_mosquitto_2(start_config_broker, clients, names):
    # The harness waits for "listening on mqtt://127.0.0.1:PORT"; --port=0 picks a free port.
    broker = start_config_broker("max_keepalive 30\n", arguments=["--port=0"])
    assert "listening on loopback only (127.0.0.1 and ::1)" in broker.log()
    clients.raw(names.sub(), broker=broker, keepalive=30).ping()


def test_environment_overrides_file_and_flags_override_environment(start_config_broker, clients, names):
    config = f"listener {free_port()} 127.0.0.1\nallow_anonymous true\nmax_keepalive 30\n"
    from_file = start_config_broker(config)
    refused_keepalive(clients, from_file, names.client("file35", 0), 35)

    from_environment = start_config_broker(f"listener {free_port()} 127.0.0.1\nallow_anonymous true\nmax_keepalive 30\n",
                                           environment={"COREMQ_MAX_KEEPALIVE": "40"})
    clients.raw(names.client("env35", 1), broker=from_environment, keepalive=35).ping()
    refused_keepalive(clients, from_environment, names.client("env45", 2), 45)

    from_flag = start_config_broker(f"listener {free_port()} 127.0.0.1\nallow_anonymous true\nmax_keepalive 30\n",
                                    arguments=["--max-keepalive=50"],
                                    environment={"COREMQ_MAX_KEEPALIVE": "40"})
    clients.raw(names.client("flag45", 3), broker=from_flag, keepalive=45).ping()
    refused_keepalive(clients, from_flag, names.client("flag55", 0), 55)


def test_bad_environment_value_names_the_variable(tmp_path):
    path = tmp_path / "coremq.conf"
    path.write_text(f"listener {free_port()} 127.0.0.1\n")
    result = subprocess.run([COREMQ_BINARY, "-c", str(path), "--threads=1"], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=10,
                            env={"COREMQ_MAX_CONNECTIONS": "0", "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert "COREMQ_MAX_CONNECTIONS: error: --max-connections=0 is out of range" in result.stderr

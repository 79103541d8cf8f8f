# 14 port in use: a second broker started on the address and port of a running one must fail
# at start ("Address already in use", non-zero exit) instead of joining the first one's
# SO_REUSEPORT group and taking half of its new clients; the first keeps serving. A restart
# right after a stop, with the old connections in TIME_WAIT, must succeed; and the shards of
# one broker still share the port (connections are spread over them).
import re
import shutil
import signal
import subprocess
import time

import pytest

import conftest
import helpers

# A port is given up and taken again (and a second broker must find one in use): a broker or
# free_port() on another worker could take it in between.
pytestmark = pytest.mark.serial("gives up a port and takes it again")

START_SECONDS = 10


def run_coremq(directory, port, threads, *extra):
    """A coremq on 127.0.0.1:port, logging to a file; returns (process, log path)."""
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / "broker.log"
    command = [conftest.COREMQ_BINARY, "--bind=127.0.0.1", f"--port={port}",
               f"--threads={threads}", "--pin-threads=false", *extra]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    return process, log_path


def wait_listening(process, log_path):
    assert helpers.wait_until(lambda: "listening on" in log_path.read_text(errors="replace")
                              or process.poll() is not None, timeout=START_SECONDS)
    assert process.poll() is None, f"broker exited with {process.returncode}:\n" \
                                   f"{log_path.read_text(errors='replace')}"


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(conftest.STOP_SECONDS)
    return process.returncode


def time_wait_count(port) -> int:
    """Sockets in TIME_WAIT whose local port is port (None without ss)."""
    if shutil.which("ss") is None:
        return None
    output = subprocess.run(["ss", "-tanH", "state", "time-wait", f"( sport = :{port} )"],
                            capture_output=True, text=True, timeout=10).stdout
    return len([line for line in output.splitlines() if line.strip()])


@pytest.mark.coremq_only("coremq's start-up check")
def test_second_broker_on_the_same_port_fails(start_broker, clients, names, threads, tmp_path):
    first = start_broker()
    second, log_path = run_coremq(tmp_path / "second", first.port, threads)
    try:
        second.wait(START_SECONDS)
    except subprocess.TimeoutExpired:
        stop(second)
        pytest.fail("a second broker started on a port a running broker listens on")
    output = log_path.read_text(errors="replace")
    assert second.returncode != 0, output
    assert re.search(r"already in use", output, re.IGNORECASE), output
    # The first one still serves.
    client = clients.raw(names.sub(), broker=first)
    client.ping()


@pytest.mark.coremq_only("coremq's start-up check")
def test_restart_with_connections_in_time_wait(threads, tmp_path):
    port = conftest.free_port()
    first, first_log = run_coremq(tmp_path / "first", port, threads)
    wait_listening(first, first_log)
    # Connections the broker closes first end in TIME_WAIT on its side of the port.
    connected = []
    for index in range(4):
        client = helpers.RawClient(port)
        client.connect(f"restart-{index}")
        client.ping()
        connected.append(client)
    assert stop(first) == 0, first_log.read_text(errors="replace")
    for client in connected:
        client.expect_closed(timeout=10)
        client.close()
    waiting = time_wait_count(port)
    assert waiting is None or waiting > 0, "expected the old connections in TIME_WAIT"
    again, again_log = run_coremq(tmp_path / "again", port, threads)
    try:
        wait_listening(again, again_log)
        client = helpers.RawClient(port)
        client.connect("after-restart")
        client.ping()
        client.close()
    finally:
        assert stop(again) == 0, again_log.read_text(errors="replace")


@pytest.mark.coremq_only("the admin API is coremq's")
def test_shards_share_the_port(start_broker, clients, threads):
    if threads == 1:
        pytest.skip("one shard: nothing to spread")
    broker = start_broker(http_listener=":0")
    connections = [clients.raw(broker=broker) for _ in range(32)]
    broker.wait_for_stats(lambda b: b.stats_total("connections_accepted") == len(connections),
                          what="every connection accepted")
    accepting = [shard for shard, counters in broker.stats().items()
                 if counters["connections_accepted"] > 0]
    assert len(accepting) >= 2, broker.stats()

# mqtt-bench as a product (issue 12 part 4): open-loop schedules (--rate with --arrival,
# --interval) stamped with their scheduled time so a slow broker shows as latency and the tool
# says when it fell behind; fleets bounded by RLIMIT_NOFILE; --source-address and the split
# over processes; host names and IPv6; MQTT 5 (properties, reason codes, topic aliases);
# the shared scenario (exactly once across the group); --retain, --will, --reconnect-every
# churn and payload size ranges. Short bounded runs against coremq (t1, t4 through the
# module broker) and, where quick, Debian's mosquitto. Counts are asserted, never tight
# timings: a loaded 2-CPU machine must pass.
import json
import os
import re
import resource
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import helpers
from conftest import COREMQ_BINARY, MOSQUITTO_BINARY, REPO_ROOT, free_port

BENCH_BINARY = os.environ.get("MQTT_BENCH_BINARY") or str(
    Path(COREMQ_BINARY).resolve().parents[2] / "tools/mqtt-bench/mqtt-bench")
RUN_SECONDS_MAX = 60  # a bench run that hangs fails the test instead of the suite
START_SECONDS = 10.0


def bench_binary() -> str:
    for candidate in (BENCH_BINARY, str(REPO_ROOT / "build/tools/mqtt-bench/mqtt-bench")):
        if os.access(candidate, os.X_OK):
            return candidate
    pytest.skip(f"no mqtt-bench binary at {BENCH_BINARY} (set MQTT_BENCH_BINARY)")


def run_bench(command, arguments, tmp_path, port, timeout=RUN_SECONDS_MAX, host="127.0.0.1"):
    """Runs mqtt-bench to its end; returns (CompletedProcess, the --json report or None)."""
    json_path = tmp_path / f"bench-{time.monotonic_ns()}.json"
    full = [bench_binary(), command, "--host", host, "--port", str(port), "--threads", "1", "--quiet",
            "--stall-timeout", "20s", "--json", str(json_path), *[str(argument) for argument in arguments]]
    result = subprocess.run(full, capture_output=True, text=True, timeout=timeout)
    report = json.loads(json_path.read_text()) if json_path.exists() else None
    return result, report


def output(result) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def assert_clean(result, report, expected):
    assert result.returncode == 0, output(result)
    assert report is not None, output(result)
    assert report["errors"] == 0, output(result)
    assert report["expected"] == expected and report["delivered"] == expected, output(result)
    assert report["lost"] == 0 and report["duplicates"] == 0 and report["reordered"] == 0, output(result)


class Mosquitto:
    """Debian's mosquitto on a free loopback port, for the runs that compare with it."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.process = None
        self.log_path = directory / "mosquitto.log"

    def start(self):
        if not os.access(MOSQUITTO_BINARY, os.X_OK):
            pytest.skip(f"no mosquitto at {MOSQUITTO_BINARY}")
        config = self.directory / "mosquitto.conf"
        config.write_text("\n".join([f"listener {self.port} 127.0.0.1", "allow_anonymous true",
                                     "persistence false", "max_queued_messages 1000000",
                                     "log_dest stderr", "log_type error", "log_type warning",
                                     "log_type notice", "log_type information"]) + "\n")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([MOSQUITTO_BINARY, "-c", str(config)], stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        ready = helpers.wait_until(
            lambda: re.search(r"mosquitto version \S+ running", self.log()) is not None or
            self.process.poll() is not None, timeout=START_SECONDS)
        if not ready or self.process.poll() is not None:
            raise AssertionError(f"mosquitto did not start:\n{self.log()}")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory):
    started = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield started
    started.stop()


# ---------------------------------------------------------------- open loop

@pytest.mark.serial("asserts the achieved rate within 10 %")
def test_uniform_rate_is_kept_and_counted(broker, tmp_path):
    """--rate 1000 --arrival uniform for 3 s: about 3,000 messages, all delivered, the schedule
    is reported (on a loaded machine it may report falling behind: only that it is reported)."""
    result, report = run_bench("run", ["--scenario", "pairs", "--pairs", 10, "--qos", 1, "--rate", 1000,
                                       "--arrival", "uniform", "--duration", "3s"], tmp_path, broker.port)
    assert result.returncode == 0, output(result)
    assert report["arrival"] == "uniform" and report["schedule_period_us"] == pytest.approx(10000), output(result)
    # 1,000/s for 3 s is 3,000 scheduled messages; a few at the window's edges may fall either side.
    assert 2990 <= report["sent"] + report["schedule_unsent"] <= 3010, output(result)
    assert_clean(result, report, report["sent"])
    assert report["sent_per_second"] == pytest.approx(1000, rel=0.1), output(result)
    for field in ("schedule_late", "schedule_lag_max_us", "schedule_unsent", "fell_behind"):
        assert field in report, output(result)
    assert re.search(r"schedule +uniform, 1,000 msgs/s \(each publisher every 10\.00 ms\); ", result.stdout), \
        output(result)


def test_uniform_rate_against_mosquitto(mosquitto, tmp_path):
    result, report = run_bench("run", ["--scenario", "pairs", "--pairs", 10, "--qos", 1, "--rate", 1000,
                                       "--arrival", "uniform", "--duration", "2s"], tmp_path, mosquitto.port)
    assert_clean(result, report, report["sent"])
    assert 1990 <= report["sent"] + report["schedule_unsent"] <= 2010, output(result)
    assert report["arrival"] == "uniform" and "fell_behind" in report, output(result)


@pytest.mark.parametrize("arrival", ["burst", "poisson"])
def test_other_arrivals(broker, tmp_path, arrival):
    result, report = run_bench("run", ["--scenario", "pairs", "--pairs", 5, "--rate", 500, "--arrival", arrival,
                                       "--duration", "2s"], tmp_path, broker.port)
    assert_clean(result, report, report["sent"])
    assert report["arrival"] == arrival, output(result)
    # Poisson is random: 1,000 expected, five standard deviations either side.
    low, high = (990, 1010) if arrival == "burst" else (840, 1160)
    assert low <= report["sent"] + report["schedule_unsent"] <= high, output(result)


def test_fleet_interval(broker, tmp_path):
    """--interval: 1,000 clients each sending once a second, phases spread over the second."""
    result, report = run_bench("run", ["--scenario", "pairs", "--pairs", 1000, "--interval", "1s",
                                       "--duration", "3s", "--connect-timeout", "30s"], tmp_path, broker.port)
    assert_clean(result, report, report["sent"])
    assert report["arrival"] == "uniform" and report["interval_seconds"] == 1, output(result)
    assert 2990 <= report["sent"] + report["schedule_unsent"] <= 3010, output(result)
    assert "each publisher every 1.00 s" in result.stdout, output(result)


class StallingProxy:
    """A TCP proxy to the broker that stops reading from the clients for `stall_seconds` once
    `stall_after_bytes` came from them: a broker that stalls, then recovers."""

    def __init__(self, target_port: int, stall_after_bytes: int, stall_seconds: float):
        self.target_port = target_port
        self.stall_after_bytes = stall_after_bytes
        self.stall_seconds = stall_seconds
        self.forwarded = 0
        self.flowing = threading.Event()
        self.flowing.set()
        self.stalled = False
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets = []
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _stall(self):
        self.flowing.clear()
        threading.Timer(self.stall_seconds, self.flowing.set).start()

    def _pump(self, source, destination, from_client):
        try:
            while True:
                if from_client:
                    self.flowing.wait()
                data = source.recv(65536)
                if not data:
                    break
                destination.sendall(data)
                if from_client:
                    with self.lock:
                        self.forwarded += len(data)
                        start = not self.stalled and self.forwarded >= self.stall_after_bytes
                        self.stalled = self.stalled or start
                    if start:
                        self._stall()
        except OSError:
            pass
        for end in (source, destination):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.closing = True
        self.listener.close()
        for end in self.sockets:
            end.close()


@pytest.mark.serial("bounds how far a loaded run falls behind its schedule")
def test_stalled_broker_shows_as_latency_not_omission(broker, tmp_path):
    """The broker stops reading for 2.5 s mid-run. The publishers' window fills, the tool falls
    behind its schedule and says so, and the messages scheduled during the stall carry their
    scheduled time: the latency grows by the stall instead of freezing at the broker's speed.
    Nothing is lost, and the backlog is sent once the broker reads again."""
    proxy = StallingProxy(broker.port, stall_after_bytes=60_000, stall_seconds=2.5)
    try:
        result, report = run_bench("run", ["--scenario", "pairs", "--pairs", 5, "--qos", 1, "--rate", 1000,
                                           "--arrival", "uniform", "--window", 50, "--duration", "5s"],
                                   tmp_path, proxy.port)
    finally:
        proxy.close()
    assert proxy.stalled, output(result)
    assert_clean(result, report, report["sent"])
    assert report["fell_behind"] is True and report["schedule_late"] > 0, output(result)
    # A 2.5 s stall with a 50-message window (0.25 s at 200/s per publisher): about 2.25 s.
    assert report["schedule_lag_max_us"] >= 1_000_000, output(result)
    assert report["latency_us"]["max"] >= 1_000_000, output(result)
    # Every scheduled message is either sent or reported as never sent (a loaded machine may
    # still be catching up when publishing ends).
    assert 4990 <= report["sent"] + report["schedule_unsent"] <= 5010, output(result)
    assert report["schedule_unsent"] <= 250, output(result)
    assert "FELL BEHIND" in result.stdout, output(result)


def test_broker_that_never_reads(tmp_path):
    """A listener that answers CONNACK and then never reads: the socket fills, the publisher
    falls behind, the run still ends on time and reports what it could not send."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def serve():
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        accepted.append(connection)
        connection.recv(1024)  # the CONNECT
        connection.sendall(b"\x20\x02\x00\x00")

    threading.Thread(target=serve, daemon=True).start()
    try:
        started = time.monotonic()
        result, report = run_bench("pub", ["--rate", 5000, "--arrival", "uniform", "--size", 16384,
                                           "--window", 0, "--duration", "2s"], tmp_path,
                                   listener.getsockname()[1], timeout=30)
        elapsed = time.monotonic() - started
    finally:
        listener.close()
        for connection in accepted:
            connection.close()
    assert report is not None, output(result)
    assert report["fell_behind"] is True and report["schedule_unsent"] > 0, output(result)
    assert report["sent"] < 10000, output(result)
    assert elapsed < 25, output(result)


# ---------------------------------------------------------------- limits

def test_descriptor_limit_is_a_clear_error(tmp_path):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    connections = 50_000
    if hard == resource.RLIM_INFINITY or hard >= connections + 64:
        pytest.skip(f"the hard RLIMIT_NOFILE ({hard}) allows {connections} connections here")
    result, _ = run_bench("conn", ["--connections", connections, "--duration", "1s"], tmp_path, 1)
    assert result.returncode == 2, output(result)
    assert "RLIMIT_NOFILE" in result.stderr and "--process-count" in result.stderr, output(result)


@pytest.mark.serial("10,000 connections at once take both CPUs")
def test_ten_thousand_connections(broker, tmp_path):
    """A fleet-sized `conn`: 10,000 held connections spread over 254 source addresses."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 10_200:
        pytest.skip(f"the broker inherits a soft RLIMIT_NOFILE of {soft}: too few for 10,000 connections")
    result, report = run_bench("conn", ["--connections", 10_000, "--duration", "1s", "--threads", 2,
                                        "--source-address", "127.0.0.0/24", "--connect-timeout", "60s"],
                               tmp_path, broker.port, timeout=120)
    assert result.returncode == 0, output(result)
    assert report["connections_up"] == 10_000 and report["errors"] == 0, output(result)
    assert report["source_addresses"] == 254, output(result)


@pytest.mark.parametrize("flags, message", [
    (["--rate", 10, "--interval", "1s"], "--rate and --interval"),
    (["--arrival", "poisson"], "--arrival needs --rate or --interval"),
    (["--rate", 10, "--arrival", "sometimes"], "expected burst, uniform or poisson"),
    (["--process-index", 2, "--process-count", 2], "below the count"),
])
def test_schedule_flag_errors(tmp_path, flags, message):
    result, _ = run_bench("run", ["--count", 10, *flags], tmp_path, 1)
    assert result.returncode == 2 and message in result.stderr, output(result)


# ---------------------------------------------------------------- addresses and processes

def established_sources(port: int, pid=None):
    """Source addresses of the established TCP connections to 127.0.0.1:port (from `ss`), only
    those of process `pid` when given (other tests' clients may still be connected)."""
    listing = subprocess.run(["ss", "-Htnp", "state", "established", f"( dport = :{port} )"],
                             capture_output=True, text=True, timeout=10).stdout
    return [line.split()[2].rsplit(":", 1)[0] for line in listing.splitlines()
            if line.strip() and (pid is None or f"pid={pid}," in line)]


def test_source_address_range_spreads_connections(broker, tmp_path):
    """--source-address 127.0.0.1-127.0.0.5: 20 held connections, four from each address."""
    json_path = tmp_path / "conn.json"
    command = [bench_binary(), "conn", "--port", str(broker.port), "--connections", "20", "--threads", "1",
               "--source-address", "127.0.0.1-127.0.0.5", "--duration", "20s", "--quiet", "--json", str(json_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert helpers.wait_until(lambda: len(established_sources(broker.port, process.pid)) >= 20, timeout=20), \
            established_sources(broker.port)
        sources = established_sources(broker.port, process.pid)
    finally:
        process.send_signal(2)  # SIGINT: the tool stops, reports and disconnects
        text, _ = process.communicate(timeout=30)
    counts = {address: sources.count(address) for address in set(sources)}
    assert counts == {f"127.0.0.{i}": 4 for i in range(1, 6)}, (counts, text)
    assert "source addresses           5 of 127.0.0.1-127.0.0.5" in text, text
    assert json.loads(json_path.read_text())["source_addresses"] == 5, text


def test_source_address_cidr_and_errors(broker, tmp_path):
    result, report = run_bench("run", ["--scenario", "pairs", "--pairs", 20, "--count", 50,
                                       "--source-address", "127.0.0.0/28"], tmp_path, broker.port)
    assert_clean(result, report, 1000)
    assert report["source_addresses"] == 14, output(result)  # /28 without network and broadcast
    for bad, message in [("127.0.0.9-127.0.0.1", "ends before it starts"), ("127.0.0.0/40", "prefix"),
                         ("::1", "not of one address family"), ("nonsense", "not an IPv4 or IPv6")]:
        result, _ = run_bench("run", ["--count", 1, "--source-address", bad], tmp_path, broker.port)
        assert result.returncode == 2 and message in result.stderr, output(result)
    result, report = run_bench("conn", ["--connections", 2, "--duration", "1s", "--source-address", "192.0.2.1"],
                               tmp_path, broker.port)
    assert result.returncode == 1 and "not an address of this host" in result.stdout, output(result)


def test_split_over_processes(broker, tmp_path):
    """Two processes share 10 pairs: five each, numbered apart, both clean; together all ten."""
    runs = []
    for index in range(2):
        json_path = tmp_path / f"part{index}.json"
        runs.append((json_path, subprocess.Popen(
            [bench_binary(), "run", "--port", str(broker.port), "--scenario", "pairs", "--pairs", "10",
             "--qos", "1", "--count", "100", "--threads", "1", "--quiet", "--process-count", "2",
             "--process-index", str(index), "--client-id-prefix", "split-", "--source-address",
             "127.0.0.1-127.0.0.4", "--json", str(json_path)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    for json_path, process in runs:
        text, _ = process.communicate(timeout=RUN_SECONDS_MAX)
        assert process.returncode == 0, text
        report = json.loads(json_path.read_text())
        assert report["connections_up"] == 10 and report["expected"] == 500 and report["lost"] == 0, text
        assert report["source_addresses"] == 2 and report["process_count"] == 2, text


def test_host_names_and_ipv6(broker, tmp_path):
    result, report = run_bench("run", ["--scenario", "pairs", "--pairs", 3, "--count", 100], tmp_path, broker.port,
                               host="localhost")
    assert_clean(result, report, 300)
    assert report["host"] == "127.0.0.1", output(result)
    result, _ = run_bench("run", ["--count", 1], tmp_path, broker.port, host="no-such-host.invalid")
    assert result.returncode == 2 and "cannot resolve" in result.stderr, output(result)


def test_ipv6_loopback(threads, tmp_path):
    """::1 against a coremq listening on ::1 only."""
    if not os.access(COREMQ_BINARY, os.X_OK):
        pytest.skip(f"no coremq binary at {COREMQ_BINARY}")
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
        probe.close()
    except OSError as error:
        pytest.skip(f"no IPv6 loopback here: {error}")
    log_path = tmp_path / "coremq6.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([COREMQ_BINARY, "--bind=::1", f"--port={port}", f"--threads={threads}",
                                    "--pin-threads=false"], stdout=log, stderr=subprocess.STDOUT)
    try:
        assert helpers.wait_until(lambda: "listening on" in log_path.read_text(errors="replace"),
                                  timeout=START_SECONDS), log_path.read_text()
        result, report = run_bench("run", ["--scenario", "pairs", "--pairs", 3, "--qos", 1, "--count", 100,
                                           "--source-address", "::1"], tmp_path, port, host="::1")
        assert_clean(result, report, 300)
        assert f"against mqtt://[::1]:{port} " in result.stdout, output(result)
    finally:
        process.terminate()
        process.wait(10)


# ---------------------------------------------------------------- MQTT 5 and the shared scenario

def test_mqtt5_topic_alias_against_coremq(broker, tmp_path):
    result, report = run_bench("run", ["--mqtt", 5, "--topic-alias", "--user-property", "site=lab,rack=7",
                                       "--session-expiry", 0, "--receive-maximum", 100,
                                       "--maximum-packet-size", 100000, "--scenario", "pairs", "--pairs", 5,
                                       "--qos", 1, "--count", 200], tmp_path, broker.port)
    assert_clean(result, report, 1000)
    assert report["mqtt"] == "5" and report["connack_reason_codes"] == {"0x00": 10}, output(result)
    assert report["ack_reason_codes"] == {"0x00": 1000}, output(result)
    assert report["server_topic_alias_maximum"] >= 1, output(result)
    # Each publisher sends its topic once per connection, then the alias alone.
    assert report["topic_alias_publishes"] == 1000 - 5, output(result)
    assert "(TCP, MQTT 5, QoS 1," in result.stdout and "PUBLISH packets with the alias alone" in result.stdout


def test_mqtt5_topic_alias_against_mosquitto(mosquitto, tmp_path):
    result, report = run_bench("run", ["--mqtt", 5, "--topic-alias", "--scenario", "pairs", "--pairs", 5,
                                       "--qos", 2, "--count", 200], tmp_path, mosquitto.port)
    assert_clean(result, report, 1000)
    assert report["topic_alias_publishes"] == 995 and report["ack_reason_codes"].get("0x00") == 2000, \
        output(result)  # PUBREC and PUBCOMP for each message
    assert report["server_receive_maximum"] > 0, output(result)


def fake_broker(answer: bytes):
    """A listener that reads one CONNECT and answers `answer`, then holds the connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    held = []

    def serve():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            held.append(connection)
            connection.recv(4096)
            connection.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    return listener, held


@pytest.mark.parametrize("answer, message", [
    (b"\x20\x03\x00\x87\x00", "CONNACK refused the connection: reason code 0x87 (Not authorized)"),
    (b"\x20\x03\x00\x00\x00\xe0\x02\x9c\x00", "broker sent DISCONNECT: reason code 0x9c (Use another server)"),
    (b"\x20\x03\x00\x00\x05\x22\x00\x01", "bad CONNACK"),  # a property block that runs short
])
def test_mqtt5_reason_codes_are_reported(tmp_path, answer, message):
    listener, held = fake_broker(answer)
    try:
        result, report = run_bench("pub", ["--mqtt", 5, "--count", 10, "--connect-timeout", "10s"], tmp_path,
                                   listener.getsockname()[1], timeout=30)
    finally:
        listener.close()
        for connection in held:
            connection.close()
    assert result.returncode == 1 and message in result.stdout, output(result)


@pytest.mark.parametrize("qos", [1, 2])
def test_shared_scenario_exactly_once(broker, tmp_path, qos):
    result, report = run_bench("run", ["--scenario", "shared", "--publishers", 3, "--subscribers", 4, "--qos", qos,
                                       "--count", 500], tmp_path, broker.port)
    assert_clean(result, report, 1500)
    shared = report["shared"]
    assert shared["members"] == 4 and shared["delivered_twice"] == 0 and shared["untracked"] == 0, output(result)
    assert shared["member_min"] <= shared["member_max"] and shared["member_max"] <= 1500, output(result)
    assert "share group                4 members" in result.stdout, output(result)


def test_shared_scenario_mqtt5_against_mosquitto(mosquitto, tmp_path):
    result, report = run_bench("run", ["--scenario", "shared", "--mqtt", 5, "--subscribers", 3, "--qos", 1,
                                       "--count", 300], tmp_path, mosquitto.port)
    assert_clean(result, report, 600)
    assert report["shared"]["delivered_twice"] == 0, output(result)


def test_shared_duplicates_are_caught(broker, tmp_path):
    """Two share groups on one topic (a filter template naming the group per subscriber) give
    every message twice: refused up front, since one run checks one group."""
    result, _ = run_bench("run", ["--publishers", 1, "--subscribers", 2, "--topic", "bench/dup",
                                  "--sub-topic", "$share/g%i/bench/dup", "--count", 10], tmp_path, broker.port)
    assert result.returncode == 2 and "more than one share group" in result.stderr, output(result)


@pytest.mark.parametrize("flags, message", [
    (["--topic-alias"], "--topic-alias is an MQTT 5 property"),
    (["--mqtt", 5, "--user-property", "novalue"], "is not name=value"),
    (["--mqtt", 5, "--receive-maximum", 70000], "at most 65535"),
    (["--mqtt", 4.0], "expected 3.1.1, 3.1 or 5"),
])
def test_mqtt5_flag_errors(tmp_path, flags, message):
    result, _ = run_bench("run", ["--count", 10, *flags], tmp_path, 1)
    assert result.returncode == 2 and message in result.stderr, output(result)


# ---------------------------------------------------------------- retain, will, churn, sizes

def test_reconnect_churn_is_counted_and_loses_nothing(broker, tmp_path):
    """Publishers reconnect every 100 messages at QoS 1 (after their acks): 10 connections each
    (none after the last message), every message still delivered once and in order."""
    result, report = run_bench("run", ["--scenario", "pairs", "--pairs", 5, "--qos", 1, "--count", 1000,
                                       "--reconnect-every", 100], tmp_path, broker.port)
    assert_clean(result, report, 5000)
    assert report["reconnects"] == 45 and report["connections_up"] == 10, output(result)
    assert "reconnects                 45 (every 100 messages)" in result.stdout, output(result)


def test_reconnect_churn_by_time_with_mqtt5_aliases(broker, tmp_path):
    result, report = run_bench("conn", ["--connections", 10, "--reconnect-every", "300ms", "--duration", "2s"],
                               tmp_path, broker.port)
    assert result.returncode == 0 and report["errors"] == 0, output(result)
    assert report["reconnects"] >= 10, output(result)  # ~50 on an idle machine; each client at least once
    result, report = run_bench("run", ["--scenario", "pairs", "--pairs", 3, "--qos", 1, "--count", 300,
                                       "--mqtt", 5, "--topic-alias", "--reconnect-every", 50], tmp_path, broker.port)
    assert_clean(result, report, 900)
    # Every new connection sends its topic once again before the alias alone.
    assert report["reconnects"] == 3 * 5, output(result)
    assert report["topic_alias_publishes"] == 900 - 3 - 15, output(result)


def test_payload_size_ranges(broker, tmp_path):
    for distribution, mean_low, mean_high in (("uniform", 6000, 10500), ("exponential", 2500, 6500)):
        result, report = run_bench("run", ["--scenario", "pairs", "--pairs", 2, "--qos", 1, "--count", 500,
                                           "--size", "64-16384", "--size-dist", distribution], tmp_path, broker.port)
        assert_clean(result, report, 1000)
        assert report["payload_bytes"] == 64 and report["payload_bytes_max"] == 16384, output(result)
        mean = report["payload_bytes_sent"] / report["sent"]
        # uniform: mean 8,224; exponential: 64 + 16320/4 = 4,144 (a little less, capped)
        assert mean_low <= mean <= mean_high, (mean, output(result))
    for bad in ("16-64", "100-50", "64-", "x"):
        result, _ = run_bench("run", ["--count", 1, "--size", bad], tmp_path, broker.port)
        assert result.returncode == 2 and "--size" in result.stderr, output(result)


def test_retain(broker, tmp_path, clients):
    """--retain: the broker keeps each publisher's last message; a late subscriber gets it, with
    the retain flag and mqtt-bench's payload."""
    topic = f"bench-retain-{time.monotonic_ns()}"
    result, report = run_bench("run", ["--publishers", 2, "--subscribers", 2, "--topic", f"{topic}/%i",
                                       "--qos", 1, "--count", 20, "--retain"], tmp_path, broker.port)
    assert_clean(result, report, 40)
    assert ", retained)" in result.stdout and report["retain"] is True, output(result)
    late = clients.paho("late-subscriber")
    late.subscribe(f"{topic}/+", qos=1)
    messages = [late.get(timeout=10) for _ in range(2)]
    assert sorted(message.topic for message in messages) == [f"{topic}/0", f"{topic}/1"]
    assert all(message.retain and message.payload[:4] == b"CMQB" for message in messages)
    for index in range(2):  # leave nothing retained behind
        clients.paho(f"cleaner-{index}").publish(f"{topic}/{index}", b"", qos=1, retain=True)


def test_will_on_every_client(broker, tmp_path, clients):
    """--will-topic: a clean run publishes no will; a killed one publishes every client's."""
    watcher = clients.paho("will-watcher")
    topic = f"bench-will-{time.monotonic_ns()}"
    watcher.subscribe(f"{topic}/#", qos=1)
    arguments = [bench_binary(), "conn", "--port", str(broker.port), "--connections", "5", "--threads", "1",
                 "--quiet", "--will-topic", f"{topic}/%c", "--will-payload", "lost", "--will-qos", "1",
                 "--client-id-prefix", "willing-"]
    result = subprocess.run(arguments + ["--duration", "1s"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, output(result)
    process = subprocess.Popen(arguments + ["--duration", "30s"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        assert helpers.wait_until(lambda: len(established_sources(broker.port, process.pid)) >= 5, timeout=20)
    finally:
        process.kill()  # no DISCONNECT: the broker publishes the wills
        process.wait(10)
    wills = [watcher.get(timeout=10) for _ in range(5)]
    assert sorted(message.topic for message in wills) == [f"{topic}/willing-conn-{i}" for i in range(5)]
    assert all(message.payload == b"lost" for message in wills)
    watcher.expect_none(timeout=0.5)  # the clean run above sent none


def test_churn_over_websocket(threads, tmp_path):
    """--reconnect-every over WebSocket with MQTT 5 aliases: each new connection opens its own
    WebSocket (the old socket's completions are ignored), nothing is lost."""
    if not os.access(COREMQ_BINARY, os.X_OK):
        pytest.skip(f"no coremq binary at {COREMQ_BINARY}")
    port = free_port()
    log_path = tmp_path / "coremq-ws.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([COREMQ_BINARY, f"--threads={threads}", "--pin-threads=false",
                                    f"--listener=ws://127.0.0.1:{port},allow_anonymous=true"],
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        assert helpers.wait_until(lambda: "listening on" in log_path.read_text(errors="replace"),
                                  timeout=START_SECONDS), log_path.read_text()
        result, report = run_bench("run", ["--ws", "--mqtt", 5, "--topic-alias", "--scenario", "pairs",
                                           "--pairs", 3, "--qos", 1, "--count", 300, "--reconnect-every", 50],
                                   tmp_path, port)
        assert_clean(result, report, 900)
        assert report["transport"] == "ws" and report["reconnects"] == 15, output(result)
        assert report["topic_alias_publishes"] == 900 - 3 - 15, output(result)
    finally:
        process.terminate()
        process.wait(10)

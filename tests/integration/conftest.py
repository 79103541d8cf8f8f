# Harness for the coremq black-box integration tests. It starts the broker under test as a
# child process on a loopback port, parametrized over --threads=1 and --threads=4 (test ids
# "t1"/"t4"), hands tests client factories that clean up after themselves, and on teardown
# asks the broker to stop with SIGTERM and checks that it exits with 0 and logged no
# assertion failure or sanitizer report.
#
# Environment:
#   COREMQ_BINARY       broker binary (default: build/src/app/coremq under the repo root)
#   COREMQ_PASSWD_BINARY  coremq-passwd (default: tools/coremq-passwd in COREMQ_BINARY's build
#                       directory, e.g. build/tools/coremq-passwd)
#   COREMQ_TEST_BROKER  "coremq" (default) or "mosquitto" to run the same tests against
#                       Debian's /usr/sbin/mosquitto, which checks the tests themselves;
#                       tests that need a coremq-only flag or behaviour skip there.
import itertools
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

import helpers

REPO_ROOT = Path(__file__).resolve().parents[2]
BROKER_KIND = os.environ.get("COREMQ_TEST_BROKER", "coremq")
COREMQ_BINARY = os.environ.get("COREMQ_BINARY", str(REPO_ROOT / "build/src/app/coremq"))
MOSQUITTO_BINARY = "/usr/sbin/mosquitto"
# COREMQ_BINARY is <build>/src/app/coremq; the tools are built next to it in <build>/tools.
COREMQ_PASSWD_BINARY = os.environ.get(
    "COREMQ_PASSWD_BINARY", str(Path(COREMQ_BINARY).resolve().parents[2] / "tools/coremq-passwd"))
START_SECONDS = 10.0
STOP_SECONDS = 10.0
TEST_SECONDS_MAX = 90
BAD_LOG_WORDS = ("assertion failed", "AddressSanitizer", "runtime error", "LeakSanitizer")

# How each coremq flag maps onto mosquitto.conf; None means mosquitto has no equivalent.
MOSQUITTO_OPTION_NAMES = {
    "max_connections": "max_connections",
    "max_packet_size": "max_packet_size",
    "max_inflight": "max_inflight_messages",
    "max_queued_messages": "max_queued_messages",
    "connect_timeout": None,
    "max_client_output_bytes": None,
    "max_keepalive": "max_keepalive",
    "max_topic_levels": None,
    "stats_interval": None,
    "http_listener": None,
    "close_linger": None,
    "close_linger_bytes": None,
    "cross_shard_queue_capacity": None,
}

assert BROKER_KIND in ("coremq", "mosquitto"), f"unknown COREMQ_TEST_BROKER={BROKER_KIND}"


def is_mosquitto() -> bool:
    return BROKER_KIND == "mosquitto"


def skip_on_mosquitto(reason: str):
    if is_mosquitto():
        pytest.skip(f"mosquitto: {reason}")


def keepalive_close_seconds_max(keepalive_seconds: int) -> float:
    """Latest time after the last packet at which a silent client must have been closed.
    3.1.1 says 1.5x the keep-alive; mosquitto 2.0.11 checks them only every few seconds.
    coremq checks every 250 ms; the rest of the slack is for a loaded 2-CPU machine."""
    if is_mosquitto():
        return keepalive_seconds * 1.5 + 6.0
    return keepalive_seconds * 1.5 + 2.5


def pytest_configure(config):
    config.addinivalue_line("markers", "coremq_only(reason): coremq behaviour mosquitto lacks")
    # tests/integration/run gives these the machine to themselves, after the parallel pass.
    config.addinivalue_line("markers", "serial(reason): runs alone, not beside other tests on "
                            "parallel workers (CPU-saturating, or a port given up and taken again)")


def pytest_collection_modifyitems(config, items):
    if not is_mosquitto():
        return
    for item in items:
        marker = item.get_closest_marker("coremq_only")
        if marker is not None:
            reason = marker.args[0] if marker.args else "coremq-only behaviour"
            item.add_marker(pytest.mark.skip(reason=f"mosquitto: {reason}"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((helpers.HOST, 0))
        return probe.getsockname()[1]


class Broker:
    """One broker process; owned by the fixture that started it, stopped at its teardown."""

    def __init__(self, directory: Path, threads: int, options: dict):
        self.directory = directory
        self.threads = threads
        self.options = dict(options)
        self.kind = BROKER_KIND
        self.port = None
        self.process = None
        self.log_path = directory / "broker.log"
        self.environment = None  # the process's environment; None: this one's

    def start(self):
        self.directory.mkdir(parents=True, exist_ok=True)
        command = self._mosquitto_command() if is_mosquitto() else self._coremq_command()
        # The broker writes straight into a file, so its output never fills a pipe.
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=self.environment)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"broker exited with {self.process.returncode} during start:\n{self.log()}")
            if self._ready():
                return self
            time.sleep(0.02)
        self._kill()
        raise AssertionError(f"broker not ready within {START_SECONDS} s:\n{self.log()}")

    def _coremq_command(self):
        if not os.access(COREMQ_BINARY, os.X_OK):
            pytest.skip(f"no coremq binary at {COREMQ_BINARY} (set COREMQ_BINARY or "
                        "COREMQ_TEST_BROKER=mosquitto)")
        command = [COREMQ_BINARY, "--bind=127.0.0.1", "--port=0", f"--threads={self.threads}",
                   "--log-level=info", "--pin-threads=false"]
        for name, value in self.options.items():
            command.append(f"--{name.replace('_', '-')}={value}")
        return command

    def _mosquitto_command(self):
        self.port = free_port()
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true",
                 "persistence false", "log_dest stderr", "log_type all", "sys_interval 0"]
        for name, value in self.options.items():
            mosquitto_name = MOSQUITTO_OPTION_NAMES[name]
            if mosquitto_name is None:
                pytest.skip(f"mosquitto has no equivalent of --{name.replace('_', '-')}")
            lines.append(f"{mosquitto_name} {value}")
        config_path = self.directory / "mosquitto.conf"
        config_path.write_text("\n".join(lines) + "\n")
        return [MOSQUITTO_BINARY, "-c", str(config_path)]

    def _ready(self) -> bool:
        if is_mosquitto():
            # The log line, not a probe connection: mosquitto 2.0.11 would count a probe
            # that closes before CONNECT against max_connections wrongly.
            return re.search(r"mosquitto version \S+ running", self.log()) is not None
        # One line per listener address, once every shard serves ("listening on mqtt://...").
        match = re.search(r"listening on (?:mqtt://)?127\.0\.0\.1:(\d+)", self.log())
        if match is None:
            return False
        self.port = int(match.group(1))
        return True

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, characters=4000) -> str:
        return self.log()[-characters:]

    def stats(self) -> dict:
        """{shard: {counter: value}}: with the HTTP admin listener (http_listener=":0") each
        shard's counters and gauges from GET /api/v1/stats, read now; else each shard's latest
        `stats` log line (coremq with --stats-interval; the format is in README.md)."""
        if "http_listener" in self.options:
            from helpers_http import get_json  # noqa: PLC0415 (only tests with the listener need it)
            answer = get_json(self, "/api/v1/stats")
            return {entry["shard"]: entry["values"] for entry in answer["shards"] if entry["answered"]}
        latest = {}
        for match in re.finditer(r"\[shard (\d+)\] stats ((?:\w+=\d+ ?)+)", self.log()):
            latest[int(match.group(1))] = {name: int(value) for name, value in
                                           re.findall(r"(\w+)=(\d+)", match.group(2))}
        return latest

    def stats_total(self, counter: str) -> int:
        """counter summed over the shards."""
        return sum(shard.get(counter, 0) for shard in self.stats().values())

    def wait_for_stats(self, predicate, timeout=10.0, what="stats condition"):
        """Waits (bounded) until predicate(self) holds on the broker's counters."""
        assert "http_listener" in self.options or "stats_interval" in self.options, \
            'start the broker with http_listener=":0" (or stats_interval=1)'
        if not helpers.wait_until(lambda: predicate(self), timeout=timeout, interval=0.1):
            raise AssertionError(f"{what} not seen within {timeout} s; latest stats: {self.stats()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _kill(self):
        if self.alive():
            self.process.kill()
            self.process.wait(STOP_SECONDS)

    def stop(self):
        """SIGTERM, then the broker must exit 0 within STOP_SECONDS with a clean log."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self._kill()
                raise AssertionError(f"broker did not exit within {STOP_SECONDS} s of SIGTERM:\n"
                                     f"{self.log_tail()}")
        return_code = self.process.returncode
        assert return_code == 0, f"broker exited with {return_code}:\n{self.log_tail()}"
        text = self.log()
        for word in BAD_LOG_WORDS:
            assert word not in text, f"broker log contains {word!r}:\n{self.log_tail()}"


@pytest.fixture(scope="session")
def coremq_passwd() -> str:
    """Path of the coremq-passwd tool built with the broker under test."""
    if not os.access(COREMQ_PASSWD_BINARY, os.X_OK):
        pytest.skip(f"no coremq-passwd at {COREMQ_PASSWD_BINARY} (build it, or set COREMQ_PASSWD_BINARY)")
    return COREMQ_PASSWD_BINARY


@pytest.fixture(scope="module", params=[1, 4], ids=["t1", "t4"])
def threads(request):
    return request.param


@pytest.fixture(scope="module")
def module_broker(request, threads, tmp_path_factory):
    options = getattr(request.module, "BROKER_OPTIONS", {})
    broker = Broker(tmp_path_factory.mktemp(f"broker-t{threads}"), threads, options)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def broker(module_broker):
    """The module's broker; after each test it must still be running."""
    yield module_broker
    assert module_broker.alive(), f"broker died during the test:\n{module_broker.log_tail()}"


@pytest.fixture
def start_broker(threads, tmp_path):
    """Factory for a broker with its own flags, e.g. start_broker(max_inflight=3)."""
    started = []

    def start(**options):
        broker = Broker(tmp_path / f"broker{len(started)}", threads, options)
        started.append(broker)
        return broker.start()

    yield start
    for broker in started:
        broker.stop()


class ConfigFileBroker(Broker):
    """coremq started from a config file (`-c FILE`) plus extra flags and environment variables,
    instead of from flags alone; the file must listen on 127.0.0.1 (see free_port)."""

    def __init__(self, directory: Path, threads: int, config_text: str, arguments=(), environment=None):
        super().__init__(directory, threads, {})
        self.config_path = directory / "coremq.conf"
        self.config_text = config_text
        self.arguments = list(arguments)
        self.environment = {**os.environ, **(environment or {})}

    def _coremq_command(self):
        if is_mosquitto():
            pytest.skip("a coremq config file test")
        if not os.access(COREMQ_BINARY, os.X_OK):
            pytest.skip(f"no coremq binary at {COREMQ_BINARY}")
        self.config_path.write_text(self.config_text)
        return [COREMQ_BINARY, "-c", str(self.config_path), f"--threads={self.threads}",
                "--pin-threads=false", *self.arguments]


@pytest.fixture
def start_config_broker(threads, tmp_path):
    """Factory: start_config_broker(text, arguments=(), environment=None) -> a started broker."""
    started = []

    def start(config_text, arguments=(), environment=None):
        broker = ConfigFileBroker(tmp_path / f"config-broker{len(started)}", threads, config_text,
                                  arguments, environment)
        started.append(broker)
        return broker.start()

    yield start
    for broker in started:
        broker.stop()


_unique_counter = itertools.count()


class Names:
    """Unique topics and client ids for one test, with ids placed on chosen shards."""

    def __init__(self, threads: int):
        self.threads = threads
        self.tag = f"{uuid.uuid4().hex[:8]}{next(_unique_counter)}"

    def topic(self, suffix="") -> str:
        root = f"it/{self.tag}"
        return f"{root}/{suffix}" if suffix else root

    def client(self, label: str, shard: int) -> str:
        return helpers.client_id_on_shard(f"{label}-{self.tag}", shard, self.threads)

    def sub(self, label="sub") -> str:
        """Subscribers live on shard 1 (mod threads)."""
        return self.client(label, 1)

    def pub(self, label="pub") -> str:
        """Publishers live on shard 2 (mod threads), away from the subscribers."""
        return self.client(label, 2)


@pytest.fixture
def names(threads):
    return Names(threads)


class Clients:
    """Creates clients and processes for one test and closes all of them afterwards."""

    def __init__(self, broker):
        self.broker = broker
        self.paho_clients = []
        self.raw_clients = []
        self.processes = []

    def paho(self, client_id, clean_session=True, connect=True, broker=None, **kwargs):
        client = helpers.PahoClient((broker or self.broker).port, client_id, clean_session,
                                    **kwargs)
        self.paho_clients.append(client)
        if connect:
            client.connect()
        return client

    def raw(self, client_id=None, clean_session=True, broker=None, **kwargs):
        """A raw client; with client_id it has already sent CONNECT and read CONNACK 0."""
        receive_buffer_bytes = kwargs.pop("receive_buffer_bytes", None)
        client = helpers.RawClient((broker or self.broker).port, receive_buffer_bytes)
        self.raw_clients.append(client)
        if client_id is not None:
            client.connect(client_id, clean_session, **kwargs)
        return client

    def process(self, arguments, **kwargs):
        process = subprocess.Popen(arguments, stdin=kwargs.pop("stdin", subprocess.DEVNULL),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)
        self.processes.append(process)
        return process

    def close_all(self):
        for client in self.paho_clients:
            try:
                client.disconnect(timeout=1)
            except Exception:
                pass
        for client in self.raw_clients:
            client.close()
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(5)
            for stream in (process.stdout, process.stderr):
                if stream:
                    stream.close()


@pytest.fixture
def clients(request):
    # Set up after start_broker so that clients are closed before its brokers stop.
    request.getfixturevalue("start_broker")
    broker_fixture = "broker" if "broker" in request.fixturenames else None
    clients = Clients(request.getfixturevalue(broker_fixture) if broker_fixture else None)
    yield clients
    clients.close_all()


@pytest.fixture(autouse=True)
def test_time_bound():
    """A last-resort bound: a test still running after TEST_SECONDS_MAX fails."""

    def expire(signal_number, frame):
        raise TimeoutError(f"test exceeded {TEST_SECONDS_MAX} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TEST_SECONDS_MAX)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------- durable stores

class StoreBroker(Broker):
    """A coremq broker on a data directory that outlives it: restart() starts a new process on
    the same directory (optionally with another --threads); kill() is kill -9. Queues are large
    enough for every retained message a test reads back at once."""

    def __init__(self, directory, threads, data_dir, **options):
        super().__init__(directory, threads, {"persistence": "rocksdb", "data_dir": str(data_dir),
                                              "max_queued_messages": 1000000, **options})
        self.generation = 0

    def kill(self):
        self.process.kill()
        self.process.wait(10)

    def restart(self, threads=None):
        if self.alive():
            self.stop()
        if threads is not None:
            self.threads = threads
        self.generation += 1
        self.log_path = self.directory / f"broker-{self.generation}.log"
        return self.start()


def started_brokers(make):
    """The body of a broker factory fixture: yields start(*args, **options), which makes the
    n-th broker with make(n, *args, **options) and starts it; every one still alive is stopped
    at the end."""
    started = []

    def start(*args, **options):
        broker = make(len(started), *args, **options)
        started.append(broker)
        return broker.start()

    yield start
    for broker in started:
        if broker.alive():
            broker.stop()


@pytest.fixture
def store_broker(threads, tmp_path):
    """Starts StoreBrokers (--persistence=rocksdb) for test_27, test_32 and test_36; each on its own
    data directory; stopped at the end."""
    yield from started_brokers(lambda index, **options: StoreBroker(
        tmp_path / f"broker{index}", threads, tmp_path / f"data{index}", **options))

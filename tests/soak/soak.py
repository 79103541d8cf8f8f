#!/usr/bin/python3
# coremq soak test: starts the real broker (4 shards) on a loopback port, holds many
# connections for a bounded time under mixed QoS 0/1/2 publish/subscribe churn with abrupt
# disconnects of every kind, then checks that
#   - every QoS 1/2 message a publisher had acknowledged (PUBACK / PUBCOMP) reached every
#     matching persistent subscriber (at least once at QoS 1, exactly once at QoS 2), first
#     deliveries in publish order per publisher and topic, and nothing was delivered that
#     was never published or arrived corrupted;
#   - the broker's resident memory returns near its baseline and its descriptor count to
#     exactly its baseline once every client has left;
#   - the broker logged no assertion failure or sanitizer report and exits 0 on SIGTERM.
# Run it with scripts/soak (which raises the descriptor limit); see tests/soak/README.md.
# Single-threaded asyncio; every wait has a bound, so a broken broker fails the run instead
# of hanging it.
import argparse
import asyncio
import collections
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mqtt_wire as wire
from client import ClientError, ClientSession, Connection

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARDS = 4
BAD_LOG_WORDS = ("assertion failed", "AddressSanitizer", "runtime error", "LeakSanitizer")

# Bounds of the run (seconds unless named otherwise).
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 15.0
CONNECT_TIMEOUT_S = 10.0
ACK_TIMEOUT_S = 10.0
SCENARIO_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 60.0
QUIET_AFTER_DRAIN_S = 2.0
SETTLE_TIMEOUT_S = 30.0
RSS_SETTLE_S = 5.0
HOLDER_KEEPALIVE_S = 60
SUBSCRIBER_KEEPALIVE_S = 30
HOLDER_OPENS_IN_FLIGHT_MAX = 64
SUBSCRIBER_ONLINE_S = (3.0, 12.0)
SUBSCRIBER_OFFLINE_S = (0.2, 3.0)
SUBSCRIBER_RECONNECT_DEADLINE_S = 30.0
TAKEOVER_CLOSE_TIMEOUT_S = 10.0

# Load. The churn is bounded by its connect rate, which also bounds the publish rate: at
# most PUBLISHES_PER_CONNECTION_MAX messages per churn connection.
CHURN_CONNECTS_PER_S = 60.0
CHURN_WORKERS_MAX = 120
PUBLISHES_PER_CONNECTION_MAX = 5
HOLDER_KILLS_PER_S = 4.0
PERSISTENT_SUBSCRIBERS = 8
TOPICS_PER_QOS = 8
PAYLOAD_PAD_BYTES_MAX = 300

# A persistent subscriber is offline at most SUBSCRIBER_OFFLINE_S[1] plus the reconnect
# deadline, and is sent at most CHURN_CONNECTS_PER_S * PUBLISHES_PER_CONNECTION_MAX
# messages a second (every message, if its filters matched all topics). The queue bound
# is set far above rate x gap (300/s x 33 s ~ 10,000) so that the broker never has reason
# to drop a message for a checked subscriber; a missing message is then a broker bug.
MAX_QUEUED_MESSAGES = 100_000

# Resident memory. The leak check compares the broker's private anonymous memory (its heap,
# from /proc/PID/smaps) before the run and after every client has left, leaving out what
# becomes resident on first use and then stays at a fixed size: code pages of the binary and
# libraries, the io_uring rings (shared mappings), and each shard's provided receive buffers
# (--receive-buffer-count x --receive-buffer-size, 16 MiB by default, found as the SHARDS
# anonymous mappings of a pool's size), whose pages the kernel touches on its first write
# into them and which are reused, not freed: up to 64 MiB of high-water mark, not a leak.
# "Near the baseline" is baseline + 20% + 12 MiB: mimalloc keeps a few MiB of partly used
# pages per thread (five threads) after a peak of 10,000 connections (about 8 MiB measured
# at 10,000 connections, 5 MiB at 2,000), and the broker's tables sized by the peak (the
# per-fd connection slots, hash buckets of sessions and subscriptions) do not shrink. A
# leak of a few hundred bytes per connect (18,000 connects in a default run) exceeds it.
RECEIVE_BUFFER_POOL_BYTES = 1024 * 16384
# mimalloc 2.0 (the broker's allocator) by default keeps the pages of freed small objects
# committed for reuse, so its RSS stays at the high-water mark of the heap; told to reset
# freed pages (with MADV_DONTNEED, after its usual delay) its RSS follows the live heap, which
# is what a leak check needs. This costs the broker some madvise calls, nothing else.
ALLOCATOR_ENVIRONMENT = {"MIMALLOC_PAGE_RESET": "1", "MIMALLOC_RESET_DECOMMITS": "1"}  # the broker's defaults, not overridden here
RSS_ALLOWED_FRACTION = 0.20
RSS_ALLOWED_EXTRA_KIB = 12 * 1024
# --persistence: the store's memory is bounded by flags (block cache, memtables), set small for
# the run; what they hold after the load is not a leak, nor are RocksDB's table readers and
# write buffers around them (the slack). Its descriptors (table files, the log) come and go with
# flushes and compactions: the descriptor check leaves out those in its data directory.
STORE_CACHE_MB = 8
STORE_WRITE_BUFFER_MB = 8
STORE_ALLOWED_EXTRA_KIB = (STORE_CACHE_MB + STORE_WRITE_BUFFER_MB + 16) * 1024
# --passes N: the same load again against the same broker. A later pass starts where the one
# before left the broker (its peak's tables and the allocator's retained pages paid for, the
# receive pools touched and so recognised), so its check is tight: what a leak per connect
# adds over a pass (18,000 connects x 200 bytes ~ 3.5 MiB at the defaults) exceeds it.
LATER_PASS_ALLOWED_FRACTION = 0.05
LATER_PASS_ALLOWED_EXTRA_KIB = 2 * 1024

ALL_TOPICS = [f"soak/q{qos}/{k}" for qos in range(3) for k in range(TOPICS_PER_QOS)] + \
    [f"soak/hold/{k}" for k in range(256)]
PAD = bytes(random.Random(7).randrange(256) for _ in range(PAYLOAD_PAD_BYTES_MAX))


def log(text: str):
    print(f"[soak {time.strftime('%H:%M:%S')}] {text}", flush=True)


# ---------------------------------------------------------------- report

class Report:
    """Failures and counters of the run. Owned by main; lives for the whole run."""

    FAILURE_EXAMPLES_MAX = 10

    def __init__(self):
        self.failures = collections.Counter()
        self.failure_examples = collections.defaultdict(list)
        self.counters = collections.Counter()
        self.disconnects = collections.Counter()

    def fail(self, kind: str, text: str):
        self.failures[kind] += 1
        if len(self.failure_examples[kind]) < self.FAILURE_EXAMPLES_MAX:
            self.failure_examples[kind].append(text)

    def count(self, name: str, amount: int = 1):
        self.counters[name] += amount

    def disconnect(self, kind: str):
        self.disconnects[kind] += 1


# ---------------------------------------------------------------- ledger and receivers

class PublishedMessage:
    __slots__ = ("topic", "qos", "confirmed")

    def __init__(self, topic: str, qos: int):
        self.topic = topic
        self.qos = qos
        self.confirmed = False


class Ledger:
    """Every message any client sent, keyed by (publisher client id, sequence number); the
    sequence numbers of one publisher connection increase. Owned by main."""

    def __init__(self, report: Report):
        self.report = report
        self.messages = {}
        self.sent_by_qos = collections.Counter()
        self.confirmed_by_qos = collections.Counter()

    def payload(self, publisher: str, sequence: int, rng: random.Random) -> bytes:
        pad_bytes = rng.randrange(PAYLOAD_PAD_BYTES_MAX)
        return f"{publisher}|{sequence}|{pad_bytes}|".encode() + PAD[:pad_bytes]

    def sent(self, publisher: str, sequence: int, topic: str, qos: int):
        self.messages[(publisher, sequence)] = PublishedMessage(topic, qos)
        self.sent_by_qos[qos] += 1

    def confirmed(self, publisher: str, sequence: int):
        message = self.messages[(publisher, sequence)]
        assert not message.confirmed and message.qos > 0
        message.confirmed = True
        self.confirmed_by_qos[message.qos] += 1

    def lookup(self, topic: str, payload: bytes, receiver: str):
        """The published message a delivery carries, or None after reporting why not."""
        parts = payload.split(b"|", 3)
        try:
            publisher, sequence, pad_bytes = parts[0].decode(), int(parts[1]), int(parts[2])
            pad = parts[3]
        except (IndexError, ValueError, UnicodeDecodeError):
            self.report.fail("corrupt payload", f"{receiver} on {topic}: {payload[:80]!r}")
            return None, None
        if pad != PAD[:pad_bytes]:
            self.report.fail("corrupt payload", f"{receiver} on {topic}: padding differs")
            return None, None
        key = (publisher, sequence)
        message = self.messages.get(key)
        if message is None:
            self.report.fail("phantom message", f"{receiver} got {key} never published")
            return None, None
        if message.topic != topic:
            self.report.fail("wrong topic", f"{receiver} got {key} of {message.topic} on {topic}")
            return None, None
        return key, message


class Receiver:
    """What one subscriber received: delivery counts and the order of first deliveries.
    filters maps each filter to its granted QoS; they never overlap, so every topic matches
    at most one filter. Owned by its subscriber; lives for the run."""

    def __init__(self, name: str, ledger: Ledger, report: Report):
        self.name = name
        self.ledger = ledger
        self.report = report
        self.filters = {}
        self.counts = collections.Counter()
        self.last_sequence = {}       # (publisher, topic) -> sequence of the latest first delivery
        self.deliveries = 0
        self.qos1_duplicates = 0

    def qos_for(self, topic: str):
        for topic_filter, qos in self.filters.items():
            if wire.topic_matches(topic_filter, topic):
                return qos
        return None

    def on_message(self, topic: str, payload: bytes, qos: int, dup: bool):
        self.deliveries += 1
        key, message = self.ledger.lookup(topic, payload, self.name)
        if key is None:
            return
        granted = self.qos_for(topic)
        if granted is None:
            self.report.fail("unsubscribed delivery", f"{self.name} got {key} on {topic}")
            return
        if qos != min(granted, message.qos):
            self.report.fail("wrong delivery QoS", f"{self.name} got {key} at QoS {qos}, "
                             f"published {message.qos}, granted {granted}")
        self.counts[key] += 1
        if self.counts[key] > 1:
            if qos == 1:
                self.qos1_duplicates += 1
            else:
                self.report.fail(f"QoS {qos} duplicate", f"{self.name} got {key} "
                                 f"{self.counts[key]} times (dup flag {dup})")
            return
        publisher, sequence = key
        stream = (publisher, topic)
        last = self.last_sequence.get(stream)
        if last is not None and sequence < last:
            self.report.fail("order", f"{self.name}: {publisher} on {topic}: {sequence} after {last}")
        self.last_sequence[stream] = sequence if last is None else max(last, sequence)


# ---------------------------------------------------------------- broker process

class Broker:
    """The broker under test as a child process, logging into a file; owned by main."""

    def __init__(self, binary: str, directory: Path, connections: int, persistence: bool):
        self.binary = binary
        self.log_path = directory / "broker.log"
        self.process = None
        self.port = None
        self.arguments = [binary, "--bind=127.0.0.1", "--port=0", f"--threads={SHARDS}",
                          "--pin-threads=false", f"--max-connections={max(20000, 2 * connections)}",
                          f"--max-queued-messages={MAX_QUEUED_MESSAGES}", "--log-level=warning"]
        self.data_dir = directory / "data" if persistence else None
        if persistence:
            self.arguments += ["--persistence=rocksdb", f"--data-dir={self.data_dir}",
                               f"--persistence-cache-mb={STORE_CACHE_MB}",
                               f"--persistence-write-buffer-mb={STORE_WRITE_BUFFER_MB}"]

    def start(self):
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen(self.arguments, stdout=log_file,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=dict(os.environ, **ALLOCATOR_ENVIRONMENT))
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited with {self.process.returncode} at start:\n"
                                   f"{self.log_text()[-4000:]}")
            self.port = self._listening_port()
            if self.port is not None:
                return
            time.sleep(0.02)
        self.process.kill()
        self.process.wait(STOP_TIMEOUT_S)
        raise RuntimeError("broker not listening within the start timeout")

    def _listening_port(self):
        # At --log-level=warning the broker does not log its port (that line is info), and
        # info would log every connect; so find the listening socket among the broker's own
        # descriptors: its inode in /proc/PID/fd, its port in the LISTEN rows of /proc/net/tcp.
        inodes = set()
        for target in self._fd_targets():
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                rows = Path(table).read_text().splitlines()[1:]
            except FileNotFoundError:
                continue
            for row in rows:
                fields = row.split()
                if fields[3] == "0A" and fields[9] in inodes:
                    return int(fields[1].rsplit(":", 1)[1], 16)
        return None

    def _fd_targets(self):
        fd_directory = f"/proc/{self.process.pid}/fd"
        targets = []
        for name in os.listdir(fd_directory):
            try:
                targets.append(os.readlink(f"{fd_directory}/{name}"))
            except FileNotFoundError:
                pass
        return targets

    def fd_count(self) -> int:
        """The broker's descriptors, without the store's files (they follow its flushes)."""
        if self.data_dir is None:
            return len(os.listdir(f"/proc/{self.process.pid}/fd"))
        return sum(1 for target in self._fd_targets() if not target.startswith(str(self.data_dir)))

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def heap_rss_kib(self):
        """(resident private anonymous memory without the receive buffer pools, pools found).
        Code pages of the binary and its libraries and the io_uring rings (shared mappings)
        are left out: they become resident as they are first used and are fixed in size."""
        pool_kib_min = RECEIVE_BUFFER_POOL_BYTES // 1024
        pool_kib_max = pool_kib_min + 4096  # the allocator's header and alignment around it
        heap_kib = pools = 0
        mapping_kib, private_anonymous = 0, False
        for line in Path(f"/proc/{self.process.pid}/smaps").read_text().splitlines():
            fields = line.split()
            if "-" in fields[0] and not fields[0].endswith(":"):
                start, end = (int(value, 16) for value in fields[0].split("-"))
                mapping_kib = (end - start) // 1024
                private_anonymous = fields[1].endswith("p") and (
                    len(fields) == 5 or fields[5] in ("[heap]", "[stack]"))
            elif fields[0] == "Rss:" and private_anonymous:
                if pool_kib_min <= mapping_kib <= pool_kib_max:
                    pools += 1
                else:
                    heap_kib += int(fields[1])
        return heap_kib, pools

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, report: Report):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
                report.fail("broker stop", f"no exit within {STOP_TIMEOUT_S} s of SIGTERM")
        if self.process.returncode != 0:
            report.fail("broker stop", f"exit status {self.process.returncode}")
        text = self.log_text()
        for word in BAD_LOG_WORDS:
            if word in text:
                report.fail("broker log", f"contains {word!r}")
        return self.process.returncode


# ---------------------------------------------------------------- rate limit

class RateLimiter:
    """Spaces events at least 1/rate apart (no bursts beyond one); owned by main."""

    def __init__(self, per_second: float):
        self.interval = 1.0 / per_second
        self.next_time = time.monotonic()

    async def acquire(self):
        now = time.monotonic()
        slot = max(now, self.next_time)
        self.next_time = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


# ---------------------------------------------------------------- the run

class Soak:
    """One soak run: the broker, every client and the checks. Owned by main."""

    def __init__(self, arguments, broker: Broker, pass_index: int = 0):
        self.arguments = arguments
        self.broker = broker
        self.pass_index = pass_index
        self.port = broker.port
        self.report = Report()
        self.ledger = Ledger(self.report)
        self.rng = random.Random(arguments.seed + pass_index)
        self.stopping = False
        self.open_connections = set()
        self.connects_total = 0
        self.connects_by_shard = collections.Counter()
        self.holders = []
        self.subscribers = []
        self.peak = collections.Counter()
        self.loop_lag_max_s = 0.0
        self.client_counter = 0
        self.churn_limiter = RateLimiter(CHURN_CONNECTS_PER_S)

    # ------------------------------------------------------------ connections

    def new_client_id(self, prefix: str) -> str:
        self.client_counter += 1
        return wire.client_id_on_shard(f"{prefix}{self.client_counter}",
                                       self.client_counter % SHARDS, SHARDS)

    async def connect(self, session: ClientSession, label: str, clean=True, keepalive_s=0,
                      session_expiry_s=0):
        """Opens and handshakes one connection; returns (connection, session present)."""
        connection = await Connection.open(self.port, session, self.report, label,
                                           CONNECT_TIMEOUT_S)
        self.open_connections.add(connection)
        connection.closed.add_done_callback(lambda _: self.open_connections.discard(connection))
        try:
            present = await connection.handshake(clean, keepalive_s, CONNECT_TIMEOUT_S,
                                                 session_expiry_s)
        except BaseException:
            connection.abort_rst()
            raise
        self.connects_total += 1
        self.connects_by_shard[wire.shard_of(session.client_id, SHARDS)] += 1
        return connection, present

    def drop(self, connection: Connection, kind: str):
        """Closes abruptly: "rst" or "fin" (no DISCONNECT)."""
        self.report.disconnect(kind)
        if kind.endswith("rst"):
            connection.abort_rst()
        else:
            connection.close_fin()

    async def drop_mid_packet(self, connection: Connection, packet: bytes, kind: str):
        """Sends the first part of packet, lets the broker read it, then closes. The
        connection stops answering first: an acknowledgement or PINGREQ written after the
        half packet would make the stream malformed, which is not what is being tested."""
        connection.abandon()
        cut = self.rng.randrange(1, len(packet))
        connection.write(packet[:cut])
        await asyncio.sleep(0.05)
        self.drop(connection, kind)

    def version(self, share_v5: float) -> int:
        return wire.PROTOCOL_5 if self.rng.random() < share_v5 else wire.PROTOCOL_311

    # ------------------------------------------------------------ holders

    async def open_holder(self, slot: int):
        session = ClientSession(self.new_client_id("soak-hold-"), self.version(0.2),
                                on_message=self.holder_message)
        try:
            connection, _ = await self.connect(session, f"holder {slot}",
                                               keepalive_s=HOLDER_KEEPALIVE_S)
            if slot % 2 == 0:
                codes = await connection.subscribe([(f"soak/hold/{slot % 256}", 0)],
                                                   ACK_TIMEOUT_S)
                if codes != [0]:
                    self.report.fail("SUBACK", f"holder {slot}: {codes}")
        except (OSError, asyncio.TimeoutError, ClientError) as error:
            self.report.fail("holder connect", f"slot {slot}: {error!r}")
            return
        self.holders[slot] = connection

    def holder_message(self, topic, payload, qos, dup):
        self.report.count("holder deliveries")
        if qos != 0:
            self.report.fail("wrong delivery QoS", f"holder got QoS {qos} on {topic}")

    async def open_holders(self, count: int):
        self.holders = [None] * count
        in_flight = asyncio.Semaphore(HOLDER_OPENS_IN_FLIGHT_MAX)

        async def one(slot):
            async with in_flight:
                if not self.stopping:
                    await self.open_holder(slot)

        await asyncio.gather(*(one(slot) for slot in range(count)))
        opened = sum(1 for holder in self.holders if holder is not None)
        log(f"{opened} holders connected")

    async def kill_holders(self):
        """Drops a random holder now and then, in a random rude way, and replaces it."""
        while not self.stopping:
            await asyncio.sleep(self.rng.expovariate(HOLDER_KILLS_PER_S))
            slot = self.rng.randrange(len(self.holders))
            connection = self.holders[slot]
            if connection is None or not connection.is_open():
                continue
            self.holders[slot] = None
            kind = self.rng.choice(["holder-rst", "holder-fin", "holder-half-publish-rst",
                                    "holder-half-subscribe-fin"])
            if kind == "holder-half-publish-rst":
                await self.drop_mid_packet(connection, wire.publish(
                    "soak/q1/0", b"x" * 40, 1, 1, connection.session.version), kind)
            elif kind == "holder-half-subscribe-fin":
                await self.drop_mid_packet(connection, wire.subscribe(
                    1, [("soak/q2/#", 2)], connection.session.version), kind)
            else:
                self.drop(connection, kind)
            if not self.stopping:
                await self.open_holder(slot)

    # ------------------------------------------------------------ persistent subscribers

    def subscriber_filters(self, index: int):
        """Non-overlapping filters, granted as asked. Even subscribers use wildcards, odd ones
        exact topics; QoS 1/2 subscriptions are mixed so that downgrades are exercised."""
        if index % 2 == 0:
            return {"soak/q0/#": 0, "soak/q1/+": 1 + (index // 2) % 2, "soak/q2/#": 2 - (index // 2) % 2}
        topics = range(index % 3, TOPICS_PER_QOS, 2)
        filters = {f"soak/q1/{k}": 2 if k % 2 else 1 for k in topics}
        filters.update({f"soak/q2/{k}": 2 if k % 3 else 1 for k in topics})
        filters["soak/q0/+"] = 1
        return filters

    async def run_subscriber(self, index: int, ready: asyncio.Event):
        version = wire.PROTOCOL_5 if index >= PERSISTENT_SUBSCRIBERS - 2 else wire.PROTOCOL_311
        client_id = wire.client_id_on_shard(f"soak-sub-{index}", index, SHARDS)
        receiver = Receiver(f"subscriber {index} ({client_id})", self.ledger, self.report)
        session = ClientSession(client_id, version, on_message=receiver.on_message)
        subscriber = {"receiver": receiver, "session": session, "connection": None,
                      "version": version, "index": index}
        self.subscribers.append(subscriber)
        expiry_s = 3600 if version == wire.PROTOCOL_5 else 0
        connection, present = await self.connect(session, receiver.name, clean=False,
                                                 keepalive_s=SUBSCRIBER_KEEPALIVE_S,
                                                 session_expiry_s=expiry_s)
        if present:
            self.report.fail("session present", f"{receiver.name}: new session present")
        filters = self.subscriber_filters(index)
        codes = await connection.subscribe(list(filters.items()), ACK_TIMEOUT_S)
        if codes != list(filters.values()):
            raise RuntimeError(f"{receiver.name}: SUBACK {codes} for {filters}")
        receiver.filters = filters
        subscriber["connection"] = connection
        ready.set()
        while not self.stopping:
            await self.sleep_unless_stopping(self.rng.uniform(*SUBSCRIBER_ONLINE_S))
            if self.stopping:
                break
            if connection.closed.done():
                # The broker closed it (already reported); reconnect below.
                pass
            else:
                takeover = await self.disrupt_subscriber(connection)
                if not takeover:
                    await self.sleep_unless_stopping(self.rng.uniform(*SUBSCRIBER_OFFLINE_S))
            connection = await self.reconnect_subscriber(subscriber, connection)
            subscriber["connection"] = connection
        if subscriber["connection"].closed.done():
            subscriber["connection"] = await self.reconnect_subscriber(subscriber, connection)

    async def sleep_unless_stopping(self, seconds: float):
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            await asyncio.sleep(min(0.2, deadline - time.monotonic()))

    async def disrupt_subscriber(self, connection: Connection) -> bool:
        """Disconnects a persistent subscriber abruptly; True for a takeover (the old
        connection is left open for the broker to close)."""
        kind = self.rng.choice(["sub-rst", "sub-fin", "sub-after-pubrec-rst",
                                "sub-before-pubcomp-fin", "sub-half-puback-rst", "sub-takeover",
                                "sub-rst"])
        session = connection.session
        if kind in ("sub-after-pubrec-rst", "sub-before-pubcomp-fin"):
            # Wait for the next QoS 2 delivery and leave inside its flow; if none comes
            # soon, leave anyway.
            hooked = asyncio.get_running_loop().create_future()

            def hook(hooked_connection):
                self.drop(hooked_connection, kind)
                if not hooked.done():
                    hooked.set_result(True)

            if kind == "sub-after-pubrec-rst":
                session.drop_after_pubrec = hook
            else:
                session.drop_before_pubcomp = hook
            try:
                await asyncio.wait_for(asyncio.shield(hooked), 5.0)
            except asyncio.TimeoutError:
                session.drop_after_pubrec = session.drop_before_pubcomp = None
                if connection.is_open():
                    self.drop(connection, "sub-rst")
            return False
        if kind == "sub-half-puback-rst":
            await self.drop_mid_packet(connection, wire.ack(wire.PUBACK, 1), kind)
            return False
        if kind == "sub-takeover":
            self.report.disconnect(kind)
            connection.abandon()
            return True
        self.drop(connection, kind)
        return False

    async def reconnect_subscriber(self, subscriber, old: Connection) -> Connection:
        receiver, session = subscriber["receiver"], subscriber["session"]
        deadline = time.monotonic() + SUBSCRIBER_RECONNECT_DEADLINE_S
        expiry_s = 3600 if subscriber["version"] == wire.PROTOCOL_5 else 0
        while True:
            try:
                connection, present = await self.connect(session, receiver.name, clean=False,
                                                         keepalive_s=SUBSCRIBER_KEEPALIVE_S,
                                                         session_expiry_s=expiry_s)
                break
            except (OSError, asyncio.TimeoutError, ClientError) as error:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{receiver.name}: no reconnect: {error!r}")
                self.report.fail("subscriber reconnect", f"{receiver.name}: {error!r}")
                await asyncio.sleep(0.5)
        if not present:
            self.report.fail("session lost", f"{receiver.name}: session present 0 on resume")
        if old.ignoring_input:
            # Takeover: the broker must close the old connection.
            try:
                await asyncio.wait_for(asyncio.shield(old.closed), TAKEOVER_CLOSE_TIMEOUT_S)
            except asyncio.TimeoutError:
                self.report.fail("takeover", f"{receiver.name}: old connection still open")
                old.abort_rst()
        return connection

    # ------------------------------------------------------------ churn

    async def churn_worker(self, worker: int):
        scenarios = [(self.scenario_publish, 30), (self.scenario_publish_then_drop, 10),
                     (self.scenario_half_publish, 8), (self.scenario_qos2_drop, 8),
                     (self.scenario_subscriber, 20), (self.scenario_no_connect, 4),
                     (self.scenario_connect_drop, 4)]
        functions = [function for function, _ in scenarios]
        weights = [weight for _, weight in scenarios]
        while not self.stopping:
            await self.churn_limiter.acquire()
            if self.stopping:
                break
            scenario = self.rng.choices(functions, weights)[0]
            name = scenario.__name__
            try:
                await asyncio.wait_for(scenario(), SCENARIO_TIMEOUT_S)
                self.report.count(name)
            except asyncio.TimeoutError:
                self.report.fail("scenario timeout", f"worker {worker}: {name}")
            except (OSError, ClientError) as error:
                self.report.fail("scenario error", f"worker {worker}: {name}: {error!r}")

    async def churn_connect(self, prefix: str, clean=True, client_id=None, version=None):
        session = ClientSession(client_id or self.new_client_id(prefix),
                                version or self.version(0.25), on_message=None)
        receiver = Receiver(f"churn {session.client_id}", self.ledger, self.report)
        session.on_message = receiver.on_message
        # MQTT 5 ends a session with its connection unless it has a Session Expiry Interval.
        expiry_s = 0 if clean or session.version != wire.PROTOCOL_5 else 60
        connection, present = await self.connect(session, receiver.name, clean=clean,
                                                 keepalive_s=self.rng.choice([0, 30, 60]),
                                                 session_expiry_s=expiry_s)
        return connection, receiver, present

    def publish_one(self, connection: Connection, sequence: int, qos: int, stop_at_pubrec=False):
        """Sends one tracked message; returns (sequence, ack future or None)."""
        if qos == 0 and self.rng.random() < 0.3:
            topic = f"soak/hold/{self.rng.randrange(256)}"
        else:
            topic = f"soak/q{qos}/{self.rng.randrange(TOPICS_PER_QOS)}"
        publisher = connection.session.client_id
        payload = self.ledger.payload(publisher, sequence, self.rng)
        self.ledger.sent(publisher, sequence, topic, qos)
        return connection.send_publish(topic, payload, qos, stop_at_pubrec)

    async def publish_many(self, connection: Connection, count: int, qos_choices=(0, 1, 2)):
        """Publishes count messages pipelined and waits for every acknowledgement."""
        publisher = connection.session.client_id
        waits = []
        for sequence in range(count):
            future = self.publish_one(connection, sequence, self.rng.choice(qos_choices))
            if future is not None:
                waits.append((sequence, future))
        for sequence, future in waits:
            await asyncio.wait_for(future, ACK_TIMEOUT_S)
            self.ledger.confirmed(publisher, sequence)

    async def scenario_publish(self):
        connection, _, _ = await self.churn_connect("soak-pub-")
        await self.publish_many(connection, self.rng.randint(1, PUBLISHES_PER_CONNECTION_MAX))
        if self.rng.random() < 0.8:
            connection.disconnect()
        else:
            self.drop(connection, "pub-fin-no-disconnect")

    async def scenario_publish_then_drop(self):
        """Pipelines QoS 1/2 messages and leaves before their acknowledgements."""
        connection, _, _ = await self.churn_connect("soak-pubdrop-")
        for sequence in range(self.rng.randint(1, PUBLISHES_PER_CONNECTION_MAX)):
            self.publish_one(connection, sequence, self.rng.choice((1, 2)))
        self.drop(connection, self.rng.choice(["pub-unacked-rst", "pub-unacked-fin"]))

    async def scenario_half_publish(self):
        connection, _, _ = await self.churn_connect("soak-half-")
        count = self.rng.randint(0, 2)
        await self.publish_many(connection, count)
        publisher = connection.session.client_id
        qos = self.rng.choice((0, 1, 2))
        topic = f"soak/q{qos}/{self.rng.randrange(TOPICS_PER_QOS)}"
        # Not entered in the ledger: half a packet must never be delivered, so a delivery of it
        # is reported as a phantom.
        payload = self.ledger.payload(publisher, count, self.rng)
        packet = wire.publish(topic, payload, qos, connection.packet_id(), connection.session.version)
        await self.drop_mid_packet(connection, packet,
                                   self.rng.choice(["half-publish-rst", "half-publish-fin"]))

    async def scenario_qos2_drop(self):
        """A QoS 2 PUBLISH answered by PUBREC, then the publisher leaves before PUBREL. With a
        persistent session it comes back, sends PUBREL and must get PUBCOMP."""
        persistent = self.rng.random() < 0.5
        connection, _, _ = await self.churn_connect("soak-q2drop-", clean=not persistent)
        client_id, version = connection.session.client_id, connection.session.version
        await self.publish_many(connection, self.rng.randint(0, 2), qos_choices=(1, 2))
        sequence = PUBLISHES_PER_CONNECTION_MAX
        future = self.publish_one(connection, sequence, 2, stop_at_pubrec=True)
        packet_id = connection.next_id  # the id send_publish just took
        result = await asyncio.wait_for(future, ACK_TIMEOUT_S)
        assert result == "pubrec"
        self.drop(connection, self.rng.choice(["pub-after-pubrec-rst", "pub-after-pubrec-fin"]))
        if not persistent:
            return
        await asyncio.wait_for(asyncio.shield(connection.closed), ACK_TIMEOUT_S)
        connection, _, present = await self.churn_connect("", clean=False, client_id=client_id,
                                                          version=version)
        if not present:
            self.report.fail("session lost", f"publisher {client_id}: session present 0")
        connection.next_id = packet_id  # the next new id must not collide with the resumed one
        await asyncio.wait_for(connection.send_pubrel(packet_id), ACK_TIMEOUT_S)
        self.ledger.confirmed(client_id, sequence)
        self.report.count("qos2 flows completed after reconnect")
        connection.disconnect()
        await asyncio.wait_for(asyncio.shield(connection.closed), ACK_TIMEOUT_S)
        # Discard the session so that it does not outlive the run.
        connection, _, _ = await self.churn_connect("", clean=True, client_id=client_id,
                                                    version=version)
        connection.disconnect()

    async def scenario_subscriber(self):
        connection, receiver, _ = await self.churn_connect("soak-subchurn-")
        candidates = ["soak/q0/#", "soak/q1/+", "soak/q2/#", "soak/+/3", "soak/q1/5",
                      "soak/hold/+", "soak/q2/1"]
        chosen = self.rng.sample(candidates, self.rng.randint(1, 3))
        # Overlapping filters may be delivered once or once per filter (3.1.1); keep one.
        filters = {}
        for topic_filter in chosen:
            if not any(wire.topic_matches(topic_filter, topic) and wire.topic_matches(other, topic)
                       for other in filters for topic in ALL_TOPICS):
                filters[topic_filter] = self.rng.choice((0, 1, 2))
        receiver.filters = filters
        codes = await connection.subscribe(list(filters.items()), ACK_TIMEOUT_S)
        if codes != list(filters.values()):
            self.report.fail("SUBACK", f"{receiver.name}: {codes} for {filters}")
        await asyncio.sleep(self.rng.uniform(0.3, 1.5))
        await self.publish_many(connection, self.rng.randint(0, 2))
        leaving = [topic_filter for topic_filter in filters if self.rng.random() < 0.5]
        if leaving:
            await connection.unsubscribe(leaving, ACK_TIMEOUT_S)
        if self.rng.random() < 0.5:
            connection.disconnect()
        else:
            self.drop(connection, self.rng.choice(["subchurn-rst", "subchurn-fin"]))

    async def scenario_no_connect(self):
        """TCP connections that never finish a CONNECT."""
        session = ClientSession(self.new_client_id("soak-noconn-"), wire.PROTOCOL_311)
        connection = await Connection.open(self.port, session, self.report, "no-connect",
                                           CONNECT_TIMEOUT_S)
        kind = self.rng.choice(["tcp-only-rst", "tcp-only-fin", "half-connect-rst",
                                "half-connect-fin"])
        if kind.startswith("half-connect"):
            await self.drop_mid_packet(connection, wire.connect(session.client_id, True, 30,
                                                                self.version(0.5)), kind)
        else:
            await asyncio.sleep(0.01)
            self.drop(connection, kind)

    async def scenario_connect_drop(self):
        connection, _, _ = await self.churn_connect("soak-conndrop-")
        self.drop(connection, self.rng.choice(["after-connack-rst", "after-connack-fin"]))

    # ------------------------------------------------------------ monitor and checks

    async def monitor(self, start: float):
        last_log = start
        while True:
            before = time.monotonic()
            await asyncio.sleep(1.0)
            lag = time.monotonic() - before - 1.0
            self.loop_lag_max_s = max(self.loop_lag_max_s, lag)
            if not self.broker.alive():
                self.report.fail("broker died", f"exit status {self.broker.process.returncode}")
                return
            self.sample_peaks()
            now = time.monotonic()
            if now - last_log >= 10.0:
                last_log = now
                log(f"t={now - start:5.0f}s open={len(self.open_connections)} "
                    f"connects={self.connects_total} published={sum(self.ledger.sent_by_qos.values())} "
                    f"rss={self.broker.rss_kib() // 1024}MiB fds={self.broker.fd_count()} "
                    f"lag={lag * 1000:.0f}ms failures={sum(self.report.failures.values())}")

    def sample_peaks(self):
        open_count = sum(1 for connection in self.open_connections if connection.is_open())
        self.peak["connections"] = max(self.peak["connections"], open_count)
        self.peak["rss_kib"] = max(self.peak["rss_kib"], self.broker.rss_kib())
        self.peak["fds"] = max(self.peak["fds"], self.broker.fd_count())

    def missing_deliveries(self):
        """(subscriber-message pairs checked, list of missing (subscriber, key))."""
        checked, missing = 0, []
        confirmed = [(key, message) for key, message in self.ledger.messages.items()
                     if message.confirmed]
        for subscriber in self.subscribers:
            receiver = subscriber["receiver"]
            for key, message in confirmed:
                granted = receiver.qos_for(message.topic)
                if not granted:
                    continue
                checked += 1
                if receiver.counts[key] == 0:
                    missing.append((receiver.name, key, message.topic, message.qos))
        return checked, missing

    async def drain(self):
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while True:
            checked, missing = self.missing_deliveries()
            if not missing or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
        await asyncio.sleep(QUIET_AFTER_DRAIN_S)  # late duplicates would show up here
        checked, missing = self.missing_deliveries()
        for name, key, topic, qos in missing:
            self.report.fail("lost message", f"{name}: {key} on {topic} QoS {qos}")
        return checked

    async def leave_all(self):
        """Every client leaves; persistent sessions are discarded by a clean reconnect."""
        for slot, connection in enumerate(self.holders):
            if connection is not None and connection.is_open():
                if slot % 10 == 0:
                    self.drop(connection, "end-holder-rst")
                else:
                    connection.disconnect()
        for subscriber in self.subscribers:
            connection = subscriber["connection"]
            session = subscriber["session"]
            if connection is not None and connection.is_open():
                connection.disconnect()
                await asyncio.wait_for(asyncio.shield(connection.closed), ACK_TIMEOUT_S)
            session.reset()
            connection, _ = await self.connect(session, "cleanup " + session.client_id, clean=True)
            connection.disconnect()
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while self.open_connections and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if self.open_connections:
            self.report.fail("client close", f"{len(self.open_connections)} connections not closed")

    async def settle(self, fds_before: int):
        """Waits for the broker's descriptors to come back to the baseline, then for its
        allocator to return freed pages; returns (fds after, lowest RSS seen)."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while self.broker.fd_count() != fds_before and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        rss_after = self.broker.rss_kib()
        net_after, pools = self.broker.heap_rss_kib()
        end = time.monotonic() + RSS_SETTLE_S
        while time.monotonic() < end:
            await asyncio.sleep(0.5)
            rss_after = min(rss_after, self.broker.rss_kib())
            net, pools = self.broker.heap_rss_kib()
            net_after = min(net_after, net)
        return self.broker.fd_count(), rss_after, net_after, pools

    async def run(self):
        arguments = self.arguments
        start = time.monotonic()
        monitor = asyncio.create_task(self.monitor(start))
        rss_baseline = self.broker.rss_kib()
        net_baseline, pools_baseline = self.broker.heap_rss_kib()
        fds_before = self.broker.fd_count()
        log(f"broker pid {self.broker.process.pid} port {self.port}: RSS {rss_baseline} KiB, "
            f"{fds_before} fds")

        subscribers_ready = [asyncio.Event() for _ in range(PERSISTENT_SUBSCRIBERS)]
        subscriber_tasks = [asyncio.create_task(self.run_subscriber(index, ready))
                            for index, ready in enumerate(subscribers_ready)]
        await asyncio.wait_for(asyncio.gather(*(ready.wait() for ready in subscribers_ready)),
                               CONNECT_TIMEOUT_S * 2)
        holders = asyncio.create_task(self.open_holders(arguments.connections -
                                                        PERSISTENT_SUBSCRIBERS))
        workers = min(CHURN_WORKERS_MAX, max(8, arguments.connections // 50))
        churn = [asyncio.create_task(self.churn_worker(worker)) for worker in range(workers)]
        await holders
        killer = asyncio.create_task(self.kill_holders())

        await asyncio.sleep(max(0.0, arguments.seconds - (time.monotonic() - start)))
        self.sample_peaks()
        log("load phase over; stopping churn and draining")
        self.stopping = True
        results = await asyncio.gather(killer, *churn, *subscriber_tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                self.report.fail("task", repr(result))
        checked = await self.drain()
        run_seconds = time.monotonic() - start

        await self.leave_all()
        fds_after, rss_after, net_after, pools_after = await self.settle(fds_before)
        monitor.cancel()
        # With the store, RocksDB's own mappings may have a pool's size too: left out of the
        # heap as pools are (and bounded by the store's flags).
        def pools_found(found):
            return found >= SHARDS if arguments.persistence else found == SHARDS
        if pools_found(pools_baseline) and pools_found(pools_after):
            measured, baseline, pool_allowance_kib = net_after, net_baseline, 0
        else:
            # The pools were not found (another allocator or layout; today at the baseline,
            # tests/soak/README.md): compare whole RSS and
            # allow every pool to have become resident.
            measured, baseline = rss_after, rss_baseline
            pool_allowance_kib = SHARDS * RECEIVE_BUFFER_POOL_BYTES // 1024
        store_allowance_kib = STORE_ALLOWED_EXTRA_KIB if arguments.persistence else 0
        if self.pass_index == 0:
            rss_allowed = (int(baseline * (1 + RSS_ALLOWED_FRACTION)) + RSS_ALLOWED_EXTRA_KIB +
                           pool_allowance_kib + store_allowance_kib)
        else:
            # The first pass paid for the peak, the store's bounds and the pools (see
            # LATER_PASS_ALLOWED_EXTRA_KIB).
            rss_allowed = (int(baseline * (1 + LATER_PASS_ALLOWED_FRACTION)) + LATER_PASS_ALLOWED_EXTRA_KIB +
                           pool_allowance_kib)
        if measured > rss_allowed:
            self.report.fail("memory", f"RSS after {measured} KiB > allowed {rss_allowed} KiB "
                             f"(baseline {baseline} KiB; receive pools found: "
                             f"{pools_baseline}/{pools_after})")
        if fds_after != fds_before:
            self.report.fail("descriptor leak", f"{fds_before} fds before, {fds_after} after")
        if self.peak["connections"] < arguments.connections:
            self.report.fail("connections", f"peak {self.peak['connections']} held < "
                             f"{arguments.connections}")
        return {
            "pass": self.pass_index + 1,
            "duration_s": round(run_seconds, 1),
            "connections_held_peak": self.peak["connections"],
            "broker_fds_peak": self.peak["fds"],
            "connects_total": self.connects_total,
            "connects_by_shard": dict(sorted(self.connects_by_shard.items())),
            "published_by_qos": dict(sorted(self.ledger.sent_by_qos.items())),
            "acknowledged_by_qos": dict(sorted(self.ledger.confirmed_by_qos.items())),
            "checked_subscriber_messages": checked,
            "checked_distinct_messages": sum(1 for message in self.ledger.messages.values()
                                             if message.confirmed),
            "persistent_deliveries": sum(s["receiver"].deliveries for s in self.subscribers),
            "qos1_redelivered_duplicates": sum(s["receiver"].qos1_duplicates
                                               for s in self.subscribers),
            "abrupt_disconnects": dict(sorted(self.report.disconnects.items())),
            "abrupt_disconnects_total": sum(self.report.disconnects.values()),
            "scenarios": {name: count for name, count in sorted(self.report.counters.items())},
            "receive_pools_found": {"baseline": pools_baseline, "after": pools_after},
            "rss_kib": {"baseline": rss_baseline, "peak": self.peak["rss_kib"],
                        "after": rss_after,
                        "heap": {"baseline": net_baseline, "after": net_after},
                        "checked": {"baseline": baseline, "after": measured,
                                    "allowed": rss_allowed}},
            "fds": {"before": fds_before, "peak": self.peak["fds"], "after": fds_after},
            "event_loop_lag_max_ms": round(self.loop_lag_max_s * 1000),
            "max_queued_messages": MAX_QUEUED_MESSAGES,
            "persistence": "rocksdb" if arguments.persistence else "none",
        }


def raise_descriptor_limit(wanted: int):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = max(soft, min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(target, wanted), max(hard, wanted)))
    except (ValueError, PermissionError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=120.0, help="load phase length")
    parser.add_argument("--connections", type=int, default=10000, help="connections held")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    parser.add_argument("--binary", default=os.environ.get(
        "COREMQ_BINARY", str(REPO_ROOT / "build/src/app/coremq")))
    parser.add_argument("--keep-log", action="store_true", help="keep the broker log directory")
    parser.add_argument("--persistence", action="store_true",
                        help="run the broker with --persistence=rocksdb (its store in the log directory)")
    parser.add_argument("--passes", type=int, default=1,
                        help="run the load this many times against the same broker (1..10); the "
                             "passes after the first have a tight memory check")
    arguments = parser.parse_args()
    if arguments.seed is None:
        arguments.seed = int(time.time())
    if not 1 <= arguments.seconds <= 24 * 3600:
        parser.error("--seconds must be in 1..86400")
    if not 1 <= arguments.passes <= 10:
        parser.error("--passes must be in 1..10")
    if not PERSISTENT_SUBSCRIBERS + 8 <= arguments.connections <= 25000:
        parser.error(f"--connections must be in {PERSISTENT_SUBSCRIBERS + 8}..25000 "
                     "(ephemeral loopback ports bound it)")
    if not os.access(arguments.binary, os.X_OK):
        print(f"no broker binary at {arguments.binary} (ninja -C build src/app/coremq)",
              file=sys.stderr)
        return 2
    descriptors_needed = arguments.connections + 2048
    limit = raise_descriptor_limit(descriptors_needed)
    if limit < descriptors_needed:
        print(f"descriptor limit {limit} < {descriptors_needed}; run through scripts/soak",
              file=sys.stderr)
        return 2

    directory = Path(tempfile.mkdtemp(prefix="coremq-soak-"))
    broker = Broker(arguments.binary, directory, arguments.connections, arguments.persistence)
    log(f"seed {arguments.seed}, {arguments.connections} connections, {arguments.seconds:g} s; "
        f"broker log {broker.log_path}")
    broker.start()
    time.sleep(0.5)  # let the shards finish starting before the baseline is taken
    reports = []
    summaries = []
    try:
        for pass_index in range(arguments.passes):
            soak = Soak(arguments, broker, pass_index)
            reports.append(soak.report)
            if arguments.passes > 1:
                log(f"pass {pass_index + 1} of {arguments.passes}")
            try:
                summaries.append(asyncio.run(soak.run()))
            except Exception as error:  # a failed run still stops the broker and prints why
                soak.report.fail("run aborted", repr(error))
            if soak.report.failures:
                break
    finally:
        exit_status = broker.stop(reports[-1])
    report = Report()
    for each in reports:
        report.failures.update(each.failures)
        for kind, examples in each.failure_examples.items():
            report.failure_examples[kind].extend(examples)
    summary = (summaries[0] if summaries else {}) if arguments.passes == 1 else {"passes": summaries}
    summary["broker_exit_status"] = exit_status
    summary["failures"] = dict(report.failures)
    print(json.dumps(summary, indent=2))
    if report.failures:
        for kind, examples in report.failure_examples.items():
            print(f"FAIL {kind} ({report.failures[kind]}):", file=sys.stderr)
            for example in examples:
                print(f"    {example}", file=sys.stderr)
        print(f"broker log: {broker.log_path}", file=sys.stderr)
        return 1
    if not arguments.keep_log:
        broker.log_path.unlink()
        if broker.data_dir is not None:
            shutil.rmtree(broker.data_dir)
        directory.rmdir()
    log("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())

# A full disk under --persistence=rocksdb (docs/PERSISTENCE.md "Bounds and what happens at them"),
# black box, on a real file system that runs out of space: a small tmpfs mounted in a mount
# namespace of the test's own (unshare -m, private propagation, so nothing is seen outside it),
# held open by a `cat` that waits on the test's pipe so the store outlives a kill -9 of the broker,
# which runs in the namespace through nsenter. The test fills the tmpfs with a filler file (read
# and written through /proc/PID/root, the holder's view) and checks that
#   - the broker stops acknowledging: PUBACKs (and a PINGRESP behind them) wait, while the
#     committer logs the failed write and counts it in /metrics (coremq_store_write_failures_total);
#   - it stays up, and clean sessions' QoS 0 messages still flow;
#   - when the filler goes, the held PUBACKs come in order and new ones follow at once;
#   - every message acknowledged is there afterwards, and after a kill -9 and a restart (also a
#     kill -9 while the disk is full, at --fsync=batch and always): as a retained message and in
#     an offline persistent session's queue, in publish order;
#   - a SIGTERM while the disk stays full ends the broker (exit 0) in bounded time.
# It found three places where Debian's librocksdb (built with assertions on) aborted the broker
# on a full disk, and a stop that never ended (docs/PERSISTENCE.md "Bounds").
# And at start: a data directory on a read-only or a full file system stops the start with exit
# status 1 and a line that says why (test_27 has the other unusable directories).
import errno
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import helpers
from conftest import COREMQ_BINARY, StoreBroker, started_brokers
from helpers_http import metrics

pytestmark = pytest.mark.coremq_only("durable persistence is coremq's")

DISK_SIZE = "16m"
PAYLOAD_BYTES = 8 * 1024
WINDOW = 8               # QoS 1 PUBLISHes the publisher keeps unacknowledged
MESSAGES_MAX = 2000      # bound of the fill loop: 16 MB of payloads, more than the disk
SECONDS = 30.0           # bound of each wait on the broker below (a loaded 2-CPU machine)
STUCK_FAILURES = 4       # failed writes in a row (no PUBACK between) that show the store stuck

# Runs in the new namespace: mounts the tmpfs over MOUNT_POINT and waits on stdin (cat), which
# keeps the namespace, and so the file system, alive until the test closes the pipe.
# Arguments: MOUNT_POINT MOUNT_OPTIONS
DISK_SCRIPT = r"""
set -eu
mount -t tmpfs -o "$2" coremq-test-disk "$1"
echo mounted
exec cat >/dev/null
"""


def private_mount_namespace_or_skip():
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("nsenter") is None:
        pytest.skip("needs root, unshare(1) and nsenter(1) to mount a small file system in a private "
                    "mount namespace")
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs",
                            "coremq-probe", "/mnt"], capture_output=True, text=True, timeout=10)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a private mount namespace here (a container without CAP_SYS_ADMIN?): "
                    f"{probe.stderr.strip()}")


class SmallDisk:
    """A tmpfs of DISK_SIZE at `mount_point`, seen only inside its namespace; owned by the
    small_disk fixture, which unmounts it (ends the namespace) after the brokers stopped."""

    def __init__(self, mount_point: Path, mount_options: str):
        mount_point.mkdir(parents=True)
        self.mount_point = mount_point
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", DISK_SCRIPT, "coremq-disk",
             str(mount_point), mount_options],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ready, _, _ = select.select([self.holder.stdout], [], [], SECONDS)
        line = self.holder.stdout.readline() if ready else b""
        if line != b"mounted\n":
            self.close()
            raise AssertionError(f"tmpfs not mounted: {line!r} {self.holder.stderr.read()!r}")
        self.filler = self.outside(mount_point / "filler")

    def outside(self, path: Path) -> Path:
        """The test's way to `path` inside the namespace: through the holder's root."""
        return Path(f"/proc/{self.holder.pid}/root") / path.relative_to("/")

    def enter(self, command):
        """command run in the namespace (nsenter execs it: its pid is the command's)."""
        return ["nsenter", f"--target={self.holder.pid}", "--mount", "--", *command]

    def fill(self) -> int:
        """Writes the filler until the file system has no room left; its size in bytes."""
        written = 0
        with open(self.filler, "ab", buffering=0) as filler:
            for chunk in (1 << 20, 4096, 512):
                block = b"\0" * chunk
                while True:
                    try:
                        written += filler.write(block)
                    except OSError as error:
                        assert error.errno == errno.ENOSPC, error
                        break
        return written

    def free(self):
        os.unlink(self.filler)

    def close(self):
        if self.holder.poll() is None:
            self.holder.stdin.close()
            self.holder.wait(10)
        self.holder.stdout.close()
        self.holder.stderr.close()


@pytest.fixture
def small_disk(tmp_path):
    """Factory: small_disk(mount_options) -> a mounted SmallDisk; each unmounted at the end."""
    private_mount_namespace_or_skip()
    disks = []

    def make(mount_options=f"size={DISK_SIZE},mode=0755"):
        disk = SmallDisk(tmp_path / f"disk{len(disks)}", mount_options)
        disks.append(disk)
        return disk

    yield make
    for disk in disks:
        disk.close()


class DiskBroker(StoreBroker):
    """A StoreBroker whose process runs in the disk's namespace, its --data-dir on the disk."""

    def __init__(self, directory, threads, disk, **options):
        super().__init__(directory, threads, disk.mount_point / "data", **options)
        self.disk = disk

    def _coremq_command(self):
        return self.disk.enter(super()._coremq_command())


@pytest.fixture
def disk_broker(small_disk, threads, tmp_path):
    """Factory: disk_broker(disk, **options) -> a started DiskBroker; stopped at the end (before
    its disk goes)."""
    yield from started_brokers(lambda index, disk, **options: DiskBroker(
        tmp_path / f"broker{index}", threads, disk, **options))


def store_figure(broker, name) -> int:
    return int(metrics(broker)[(name, frozenset())])


def payload_of(index: int) -> bytes:
    return (b"%08d" % index) * (PAYLOAD_BYTES // 8)


def packet_or_none(client, timeout, packet_type):
    """The next packet of packet_type within timeout, or None; a closed connection fails the test."""
    try:
        return client.receive(timeout=timeout, packet_type=packet_type)
    except AssertionError as error:
        if "no packet" in str(error):
            return None
        raise


def puback_or_none(client, timeout):
    return packet_or_none(client, timeout, helpers.PUBACK)


def publish_or_none(client, deadline):
    """The next PUBLISH before deadline (acknowledged), or None."""
    packet = packet_or_none(client, max(0.1, deadline - time.monotonic()), helpers.PUBLISH)
    if packet is not None:
        client.send(helpers.puback_bytes(packet.packet_id))
    return packet


def retained_under(client, root, expected_topics):
    """Subscribes (QoS 1, each message acknowledged, so none is dropped as to a slow QoS 0
    consumer) to root/# and reads retained messages until every one of expected_topics came (others,
    unacknowledged but stored, may come too): {topic: payload}."""
    client.subscribe([(f"{root}/#", 1)])
    found = {}
    deadline = time.monotonic() + SECONDS
    while not set(expected_topics) <= set(found):
        packet = publish_or_none(client, deadline)
        if packet is None:
            break  # the caller says what is missing
        found[packet.topic.decode()] = packet.payload
    return found


class Stream:
    """A publisher of retained QoS 1 messages on root/d/<index> (payload_of(index)) that keeps
    track of which were acknowledged, in order; owned by one test."""

    def __init__(self, clients, names, broker, first_index=0):
        self.names = names
        self.publisher = clients.raw(names.pub(), broker=broker)
        self.acknowledged = []  # indices, in the order their PUBACKs came
        self.in_flight = {}     # packet id -> index, in sending order
        self.first_index = first_index
        self.next_index = first_index

    def topic(self, index):
        return self.names.topic(f"d/{index}")

    def send_next(self):
        packet_id = self.next_index % 65535 + 1
        assert packet_id not in self.in_flight
        self.publisher.send(helpers.publish_packet(self.topic(self.next_index), payload_of(self.next_index), qos=1,
                                                   retain=True, packet_id=packet_id))
        self.in_flight[packet_id] = self.next_index
        self.next_index += 1

    def take(self, puback):
        assert puback.packet_id == next(iter(self.in_flight)), "PUBACKs out of order"
        self.acknowledged.append(self.in_flight.pop(puback.packet_id))

    def publish(self, count):
        """count messages, each acknowledged before the next."""
        for _ in range(count):
            self.send_next()
            self.take(self.publisher.receive(timeout=SECONDS, packet_type=helpers.PUBACK))

    def until_stuck(self, broker, disk):
        """Streams (WINDOW unacknowledged) on a full disk until the store is stuck: the committer
        has counted STUCK_FAILURES failed writes (or attempts to reopen the store after one) since
        the last PUBACK came. Until then PUBACKs may still come: RocksDB's log had space set
        aside, and closing the store after a failure gives some back; the filler takes whatever
        was given back on every pass."""
        failures_at_progress = store_figure(broker, "coremq_store_write_failures_total")
        deadline = time.monotonic() + SECONDS
        while True:
            disk.fill()
            if store_figure(broker, "coremq_store_write_failures_total") >= failures_at_progress + STUCK_FAILURES:
                assert len(self.in_flight) == WINDOW
                return
            assert time.monotonic() < deadline and self.next_index - self.first_index < MESSAGES_MAX, \
                f"writes did not stop after {self.next_index} messages of {PAYLOAD_BYTES} bytes:\n{broker.log_tail()}"
            while len(self.in_flight) < WINDOW:
                self.send_next()
            puback = puback_or_none(self.publisher, 0.2)
            if puback is not None:
                self.take(puback)
                failures_at_progress = store_figure(broker, "coremq_store_write_failures_total")

    def check_store(self, clients, broker, keeper_id, reader_label):
        """Every acknowledged message is a retained message with its payload, and in the offline
        keeper's queue in publish order (the unacknowledged ones may be there too, in order)."""
        expected = {self.topic(index): payload_of(index) for index in self.acknowledged}
        found = retained_under(clients.raw(self.names.sub(reader_label), broker=broker), self.names.topic("d"),
                               expected)
        missing = [topic for topic in expected if found.get(topic) != expected[topic]]
        assert not missing, f"{len(missing)} of {len(expected)} acknowledged retained messages lost: {missing[:5]}"
        keeper = clients.raw(broker=broker)
        assert keeper.connect(keeper_id, clean_session=False) == 1
        # Read until every acknowledged message came (unacknowledged ones may come in between).
        delivered = []
        deadline = time.monotonic() + SECONDS
        while not set(self.acknowledged) <= set(delivered):
            packet = publish_or_none(keeper, deadline)
            if packet is None:
                break  # what is missing is said below
            index = int(packet.topic.decode().rsplit("/", 1)[1])
            assert packet.payload == payload_of(index)
            delivered.append(index)
        assert delivered == sorted(delivered), "queued messages out of publish order"
        lost = sorted(set(self.acknowledged) - set(delivered))
        assert not lost, f"{len(lost)} acknowledged messages missing from the keeper's queue: {lost[:5]}"
        keeper.disconnect_and_wait()


def start_with_keeper(disk_broker, disk, clients, names, fsync="batch"):
    """A broker on the disk and an offline persistent session subscribed to root/d/#, so every
    message is also queued for it in the store."""
    # A small write buffer: RocksDB sets space aside for its log by about the write buffer's
    # size; the smaller it is, the sooner a write meets the full disk.
    broker = disk_broker(disk, http_listener=":0", sys_interval=0, persistence_write_buffer_mb=4, fsync=fsync)
    clients.broker = broker
    keeper_id = names.sub("keeper")
    keeper = clients.raw(keeper_id, clean_session=False)
    assert keeper.subscribe([(names.topic("d/#"), 1)]) == [1]
    keeper.disconnect_and_wait()
    return broker, keeper_id


def test_a_full_disk_holds_acknowledgements_until_space_returns(disk_broker, small_disk, clients, names):
    disk = small_disk()
    broker, keeper_id = start_with_keeper(disk_broker, disk, clients, names)
    # A QoS 0 pair of clean sessions on two shards, which the store never sees.
    live_subscriber = clients.raw(names.sub("live-sub"))
    live_subscriber.subscribe([(names.topic("live"), 0)])
    live_publisher = clients.raw(names.pub("live-pub"))
    stream = Stream(clients, names, broker)
    stream.publish(10)
    assert store_figure(broker, "coremq_store_write_failures_total") == 0

    assert disk.fill() > 0
    stream.until_stuck(broker, disk)
    # A PINGREQ is not answered either (its PINGRESP queues behind the PUBACKs it follows)
    # while the committer fails twice more.
    stream.publisher.send(helpers.PINGREQ_BYTES)
    failures = store_figure(broker, "coremq_store_write_failures_total")
    assert helpers.wait_until(lambda: disk.fill() >= 0 and
                              store_figure(broker, "coremq_store_write_failures_total") >= failures + 2,
                              timeout=SECONDS), broker.log_tail()
    stream.publisher.expect_no_packet(timeout=0.2)
    assert broker.alive()
    assert "store: a write failed" in broker.log() and "No space left on device" in broker.log(), \
        broker.log_tail()
    assert store_figure(broker, "coremq_store_batches_waiting") > 0
    # RocksDB's diagnostics are in the broker's log, and it keeps no LOG file on the full disk
    # (whose writer, once failed, aborted the process).
    assert "rocksdb: " in broker.log() and not disk.outside(disk.mount_point / "data" / "LOG").exists()
    # Clean sessions' QoS 0 messages flow, and a new clean session connects.
    live_publisher.publish(names.topic("live"), b"still flowing", qos=0)
    assert live_subscriber.receive_publish(timeout=SECONDS).payload == b"still flowing"
    clients.raw(names.client("newcomer", 0)).ping()

    # Space returns: the held PUBACKs come, in order, then the PINGRESP behind them, and new
    # messages are acknowledged as before.
    disk.free()
    for packet_id in list(stream.in_flight):
        packet = stream.publisher.receive(timeout=SECONDS)
        assert packet.raw == helpers.puback_bytes(packet_id), broker.log_tail()
        stream.take(packet)
    stream.publisher.expect(helpers.PINGRESP_BYTES, timeout=SECONDS)
    stream.publish(5)
    assert stream.acknowledged == list(range(stream.next_index))  # every one, in order
    assert helpers.wait_until(lambda: store_figure(broker, "coremq_store_batches_waiting") == 0,
                              timeout=SECONDS)
    expected = {stream.topic(index): payload_of(index) for index in stream.acknowledged}
    assert retained_under(clients.raw(names.sub("reader")), names.topic("d"), expected) == expected

    # kill -9 and a restart on the same disk: everything acknowledged is there.
    broker.kill()
    broker.restart()
    stream.check_store(clients, broker, keeper_id, "reader2")


@pytest.mark.parametrize("fsync", ["batch", "always"])
def test_kill_9_or_a_stop_on_a_full_disk_loses_nothing_acknowledged(disk_broker, small_disk, clients, names, fsync):
    """With PUBACKs held on a full disk: a kill -9, space back, a restart: every message whose
    PUBACK came is there. Then a SIGTERM with the disk full again: the broker gives up what it
    cannot write (none of it acknowledged) and exits 0 in bounded time. With --fsync=always the
    committer must also not sync the log whose write failed."""
    disk = small_disk()
    broker, keeper_id = start_with_keeper(disk_broker, disk, clients, names, fsync)
    stream = Stream(clients, names, broker)
    stream.publish(5)
    disk.fill()
    stream.until_stuck(broker, disk)
    broker.kill()
    disk.free()
    broker.restart()
    stream.check_store(clients, broker, keeper_id, "reader")

    stream = Stream(clients, names, broker, first_index=100000)  # topics of their own
    disk.fill()
    stream.until_stuck(broker, disk)
    started = time.monotonic()
    broker.stop()  # SIGTERM: exit status 0 within STOP_SECONDS, a clean log
    assert time.monotonic() - started < 10
    assert "store: stopping with changes not written" in broker.log(), broker.log_tail()


def run_in_namespace_to_exit(disk, arguments, timeout=15):
    result = subprocess.run(disk.enter([COREMQ_BINARY, "--bind=127.0.0.1", "--port=0", "--pin-threads=false",
                                        "--persistence=rocksdb", *arguments]),
                            capture_output=True, text=True, timeout=timeout)
    return result.returncode, result.stdout + result.stderr


def test_a_read_only_or_full_file_system_stops_the_start(small_disk, threads):
    if not os.access(COREMQ_BINARY, os.X_OK):
        pytest.skip(f"no coremq binary at {COREMQ_BINARY}")
    read_only = small_disk("ro,size=1m,mode=0755")
    code, output = run_in_namespace_to_exit(read_only, [f"--threads={threads}",
                                                        f"--data-dir={read_only.mount_point}"])
    assert code == 1 and "not writable" in output and "Read-only file system" in output, output
    code, output = run_in_namespace_to_exit(read_only, [f"--threads={threads}",
                                                        f"--data-dir={read_only.mount_point}/data"])
    assert code == 1 and "cannot create it: Read-only file system" in output, output
    full = small_disk("size=1m,mode=0755")
    assert full.fill() > 0
    code, output = run_in_namespace_to_exit(full, [f"--threads={threads}", f"--data-dir={full.mount_point}/data"])
    assert code == 1 and "cannot open the store" in output and "No space left on device" in output, output

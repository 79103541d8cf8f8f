# Durable persistence (--persistence=rocksdb, docs/PERSISTENCE.md), black box: retained
# messages and persistent sessions (subscriptions, expiry) survive a clean restart, a kill -9
# and a restart with another --threads; every retained message whose PUBACK the publisher got
# is there after kill -9 at random moments (a bounded loop); a data directory the broker
# cannot use stops the start with exit code 1 and a clear message; the config file's
# `persistence` / `persistence_location` turn the store on.
import os
import random
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

import helpers
from conftest import COREMQ_BINARY, free_port
from helpers_http import metric, metrics

pytestmark = pytest.mark.coremq_only("durable persistence is coremq's (mosquitto saves snapshots)")

# Per --threads value: 20 across t1 and t4 in scripts/test; COREMQ_PERSIST_KILL_ROUNDS=200 for a
# longer soak of the same loop.
KILL_ROUNDS = int(os.environ.get("COREMQ_PERSIST_KILL_ROUNDS", "10"))


def loaded_counts(broker):
    """(retained, sessions) from the start-up line 'store ... loaded in N ms: R retained messages, S
    persistent sessions ...'."""
    match = re.search(r"store \S+ loaded in \d+ ms: (\d+) retained messages, (\d+) persistent sessions",
                      broker.log())
    assert match, broker.log_tail()
    return int(match.group(1)), int(match.group(2))


def retained_under(client, root, expected_count, timeout=5.0):
    """Subscribes to root/# and reads the retained messages it gets until expected_count came
    (then half a second more, to see any extra): {topic: payload}."""
    client.subscribe([(f"{root}/#", 1)])
    found = {}
    deadline = time.monotonic() + timeout
    settle = None
    while True:
        now = time.monotonic()
        if len(found) >= expected_count and settle is None:
            settle = now + 0.5
        end = settle if settle is not None else deadline
        if now >= end:
            break
        try:
            packet = client.receive(timeout=end - now, packet_type=helpers.PUBLISH)
        except AssertionError:
            break  # nothing more within the time
        if packet.qos == 1:
            client.send(helpers.puback_bytes(packet.packet_id))
        found[packet.topic.decode()] = packet.payload
    return found


def test_retained_and_session_survive_a_clean_restart(store_broker, clients, names):
    broker = store_broker()
    publisher = clients.raw(names.pub(), broker=broker)
    publisher.publish(names.topic("r/1"), b"one", qos=1, retain=True, packet_id=1)
    publisher.publish(names.topic("r/2"), b"two", qos=1, retain=True, packet_id=2)
    publisher.publish(names.topic("r/2"), b"", qos=1, retain=True, packet_id=3)  # cleared
    keeper_id = names.sub("keeper")
    keeper = clients.raw(keeper_id, clean_session=False, broker=broker)
    assert keeper.subscribe([(names.topic("live/#"), 1)]) == [1]
    keeper.disconnect_and_wait()
    broker.restart()
    assert loaded_counts(broker)[1] >= 1
    keeper = clients.raw(broker=broker)
    assert keeper.connect(keeper_id, clean_session=False) == 1  # session present
    publisher = clients.raw(names.pub(), broker=broker)
    publisher.publish(names.topic("live/a"), b"after", qos=1, packet_id=4)
    message = keeper.receive_publish()
    assert (message.topic, message.payload) == (names.topic("live/a").encode(), b"after")
    found = retained_under(clients.raw(names.sub("reader"), broker=broker), names.topic("r"), 1)
    assert found == {names.topic("r/1"): b"one"}


def test_kill_9_keeps_what_was_acknowledged_and_threads_may_change(store_broker, clients, names, threads):
    broker = store_broker()
    publisher = clients.raw(names.pub(), broker=broker)
    for index in range(20):
        publisher.publish(names.topic(f"k/{index}"), b"v%d" % index, qos=1, retain=True, packet_id=index + 1)
    keeper_id = names.sub("keeper")
    keeper = clients.raw(keeper_id, clean_session=False, broker=broker)
    assert keeper.subscribe([(names.topic("live/#"), 1)], packet_id=9) == [1]  # SUBACK: durable
    broker.kill()
    other = 4 if threads == 1 else 1
    broker.restart(threads=other)
    assert loaded_counts(broker) == (20, 1)
    keeper = clients.raw(broker=broker)
    assert keeper.connect(keeper_id, clean_session=False) == 1
    clients.raw(names.pub(), broker=broker).publish(names.topic("live/x"), b"x", qos=1, packet_id=1)
    assert keeper.receive_publish().payload == b"x"
    found = retained_under(clients.raw(names.sub("reader"), broker=broker), names.topic("k"), 20)
    assert found == {names.topic(f"k/{index}"): b"v%d" % index for index in range(20)}


def test_kill_9_at_random_moments_loses_no_acknowledged_retained_message(store_broker, clients, names):
    """KILL_ROUNDS rounds: a publisher streams retained QoS 1 messages (each on a new topic) while
    the broker is killed at a random moment; after each restart every topic whose PUBACK came
    back holds its message."""
    broker = store_broker()
    acknowledged = {}
    rng = random.Random(27)
    started = time.monotonic()
    for round_index in range(KILL_ROUNDS):
        stop = threading.Event()
        acked_this_round = []

        def stream():
            client = helpers.RawClient(broker.port)
            try:
                client.connect(names.pub(f"p{round_index}"))
                for index in range(100000):
                    if stop.is_set():
                        return
                    topic = names.topic(f"s/{round_index}/{index}")
                    client.publish(topic, b"m%d" % index, qos=1, retain=True, packet_id=index % 65535 + 1)
                    acked_this_round.append(topic)
            except (AssertionError, OSError, helpers.ConnectionClosed):
                return  # the broker was killed mid-flow
            finally:
                client.close()

        worker = threading.Thread(target=stream)
        worker.start()
        time.sleep(rng.uniform(0.05, 0.4))
        broker.kill()
        stop.set()
        worker.join(10)
        assert not worker.is_alive()
        for topic in acked_this_round:
            acknowledged[topic] = topic.rsplit("/", 1)[1]
        broker.restart()
    assert len(acknowledged) > KILL_ROUNDS, "too few acknowledged messages to mean anything"
    found = retained_under(clients.raw(names.sub("reader"), broker=broker), names.topic("s"), len(acknowledged),
                           timeout=20.0)
    missing = [topic for topic in acknowledged if found.get(topic) != b"m" + acknowledged[topic].encode()]
    assert not missing, f"{len(missing)} acknowledged retained messages lost, e.g. {missing[:5]}"
    assert time.monotonic() - started < 6 * KILL_ROUNDS


def run_to_exit(arguments, timeout=15):
    result = subprocess.run([COREMQ_BINARY, "--bind=127.0.0.1", "--port=0", "--pin-threads=false", *arguments],
                            capture_output=True, text=True, timeout=timeout)
    return result.returncode, result.stdout + result.stderr


def test_a_data_directory_it_cannot_use_stops_the_start(tmp_path, store_broker):
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("x")
    code, output = run_to_exit(["--persistence=rocksdb", f"--data-dir={not_a_directory}"])
    assert code == 1 and "not a directory" in output, output
    code, output = run_to_exit(["--persistence=rocksdb", f"--data-dir={tmp_path}/missing/parent/data"])
    assert code == 1 and "cannot create it" in output, output
    # A second broker on a directory in use.
    broker = store_broker()
    code, output = run_to_exit(["--persistence=rocksdb", f"--data-dir={broker.options['data_dir']}"])
    assert code == 1 and "in use by another process" in output, output
    code, output = run_to_exit(["--persistence=rocksdb", "--fsync=sometimes"])
    assert code == 2 and "expected always, batch or never" in output, output  # a usage error


def thread_nice(broker, name) -> int:
    """The nice value of the broker's thread called name (field 19 of /proc/PID/task/TID/stat)."""
    for task in Path(f"/proc/{broker.process.pid}/task").iterdir():
        try:
            if (task / "comm").read_text().strip() == name:
                return int((task / "stat").read_text().rsplit(")", 1)[1].split()[16])
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
    raise AssertionError(f"the broker has no thread {name}")


def test_the_committer_runs_below_the_shards_and_counts_what_it_writes(store_broker, clients, names):
    broker = store_broker(http_listener=":0")
    publisher = clients.raw(names.pub(), broker=broker)
    for index in range(5):
        publisher.publish(names.topic(f"r/{index}"), b"x", qos=1, retain=True, packet_id=index + 1)
    # Each PUBACK came after the committer wrote its record, so the committer has started.
    assert thread_nice(broker, "coremq-store") == 19
    assert thread_nice(broker, "coremq-shard0") == 0
    assert metric(metrics(broker), "coremq_store_changes_total", outcome="written") >= 5
    same_priority = store_broker(persistence_committer_nice=0)
    clients.raw(names.pub("second"), broker=same_priority).publish(names.topic("r"), b"x", qos=1, retain=True,
                                                                    packet_id=1)
    assert thread_nice(same_priority, "coremq-store") == 0
    code, output = run_to_exit(["--persistence=rocksdb", "--persistence-committer-nice=20"])
    assert code == 2 and "--persistence-committer-nice" in output, output


def test_config_file_persistence_keys_turn_the_store_on(start_config_broker, clients, names, tmp_path):
    port = free_port()
    data = tmp_path / "config-data"
    broker = start_config_broker(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                                 f"persistence_location {data}\n")
    assert f"store {data} loaded" in broker.log()
    clients.raw(names.sub(), broker=broker).ping()

# 39 --coalesce-wait-us: a shard going to sleep asks the kernel for a minimum wait (Linux
# 6.12+), so completions arriving close together are handled in one wake-up. What a user must
# still get: every message and answer, on every shard; an idle broker that sleeps (a wait the
# kernel refused would make the loop spin: a few ticks a second become thousands of turns);
# and a value out of range refused at start with a clear error. The CPU it saves is measured by
# scripts/bench-compare (the fleet rows' "coalesced" column), not here.
import os
import subprocess
import time

import pytest


pytestmark = pytest.mark.coremq_only("--coalesce-wait-us is a coremq flag")


def loop_turns(broker) -> int:
    return broker.stats_total("loop_turns")


@pytest.mark.parametrize("qos", [0, 1])
def test_every_message_and_answer_arrives_with_coalescing(start_broker, clients, names, qos):
    broker = start_broker(coalesce_wait_us=1000, http_listener=":0")
    topic = names.topic("coalesced")
    subscribers = [clients.raw(names.client(f"sub{shard}", shard), broker=broker) for shard in range(4)]
    for subscriber in subscribers:
        subscriber.subscribe([(topic, qos)])
    publisher = clients.raw(names.pub(), broker=broker)
    for index in range(200):
        publisher.publish(topic, b"%d" % index, qos=qos, packet_id=index + 1 if qos else None)
    publisher.ping()
    for subscriber in subscribers:
        assert [int(subscriber.receive_publish(timeout=10).payload) for _ in range(200)] == list(range(200))
        subscriber.ping()


def test_an_idle_coalescing_broker_sleeps(start_broker, clients, names):
    broker = start_broker(coalesce_wait_us=1000, http_listener=":0")
    client = clients.raw(names.pub(), broker=broker)
    client.ping()
    before = loop_turns(broker)
    started = time.monotonic()
    time.sleep(1.0)  # elapsed time to count turns over, not a synchronisation
    client.ping()
    elapsed = time.monotonic() - started
    turns = loop_turns(broker) - before
    # 4 ticks a second per shard, the pings and the stats requests: far below a spinning loop.
    assert turns < 200 * elapsed, f"{turns} loop turns in {elapsed:.1f} s while idle"
    assert "io_uring wait" not in broker.log()


def test_a_value_out_of_range_is_refused_at_start():
    binary = os.environ.get("COREMQ_BINARY", "build/src/app/coremq")
    result = subprocess.run([binary, "--coalesce-wait-us=5000", "--port=0"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode != 0
    assert "--coalesce-wait-us=5000 is out of range [0, 1000]" in result.stderr

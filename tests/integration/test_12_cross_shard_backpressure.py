# 12 cross-shard back-pressure: with --cross-shard-queue-capacity at its minimum, a
# publisher that floods a subscriber on another shard makes the publishing shard stop
# reading until the subscriber's shard catches up. Nothing is lost, not even QoS 0, and
# per-publisher order holds; /metrics shows that the pause did happen. (With
# --threads=1 there is no cross-shard queue; the test then checks the same flood through a
# single shard.)
import pytest

from helpers import publish_packet
from helpers_http import metric, metrics

MESSAGES = 20000


@pytest.mark.coremq_only("--cross-shard-queue-capacity is a coremq flag")
@pytest.mark.parametrize("qos", [0, 1])
def test_flood_across_shards_loses_nothing(start_broker, clients, names, threads, qos):
    broker = start_broker(cross_shard_queue_capacity=64, max_queued_messages=MESSAGES,
                          http_listener=":0")
    topic = names.topic("flood")
    subscriber = clients.raw(names.sub(), broker=broker)
    subscriber.subscribe([(topic, qos)])
    publisher = clients.raw(names.pub(), broker=broker)
    # All of it in a few large writes, so whole receive buffers of PUBLISH arrive at once.
    batch = 2000
    for start in range(0, MESSAGES, batch):
        publisher.send(b"".join(publish_packet(topic, b"%d" % index, qos=qos, packet_id=(index % 60000) + 1 if qos else None)
                                for index in range(start, start + batch)))
    payloads = []
    for _ in range(MESSAGES):
        packet = subscriber.receive_publish(timeout=20)
        payloads.append(int(packet.payload))
    assert payloads == list(range(MESSAGES))
    subscriber.expect_no_packet(0.2)
    if threads > 1:
        # The publishing shard did stop reading at least once (the bound was hit).
        # Every message was received: the counter was incremented before, on its shard, and
        # /metrics reads it there.
        samples = metrics(broker)
        assert metric(samples, "coremq_cross_shard_pauses_total") > 0, "no cross-shard input pause"

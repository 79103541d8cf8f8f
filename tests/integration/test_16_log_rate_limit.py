# 16 log rate limit: a warning on a data path (here: a retained message refused at
# --max-retained-messages, once per PUBLISH) is written at most once a second per site, with
# the count of lines left out, so one client cannot flood the log.
import pytest

import helpers
from helpers import publish_packet

MESSAGES = 200


@pytest.mark.coremq_only("coremq's log lines")
def test_retained_limit_warning_is_rate_limited(start_broker, clients, names):
    broker = start_broker(max_retained_messages=1)
    publisher = clients.raw(names.pub(), broker=broker)
    publisher.publish(names.topic("kept"), b"k", qos=1, retain=True, packet_id=1)
    # Every one of these is refused: a new topic past the limit.
    publisher.send(b"".join(publish_packet(names.topic(f"n{i}"), b"x", retain=True) for i in range(MESSAGES)))
    publisher.ping()  # all handled
    # The log thread writes the lines a moment after the shard made them: wait (bounded) for one.

    def warning_lines():
        return [line for line in broker.log().splitlines() if "not stored: --max-retained-messages" in line]

    helpers.wait_until(lambda: len(warning_lines()) >= 1, timeout=5.0, interval=0.05)
    lines = warning_lines()
    # One line a second per shard: a loaded machine may straddle a second or two.
    assert 1 <= len(lines) < 10, f"{len(lines)} warning lines for {MESSAGES} refused messages"

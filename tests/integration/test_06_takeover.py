# 06 takeover: a CONNECT with a client id that is already connected closes the older
# connection (which sees EOF), publishes its will, and hands the session to the newer one.
# The session lives on the id's shard, but each TCP connection may be accepted by any
# shard, so the tests connect several times to cover takeovers across shards.
import helpers

ROUNDS = 6


def test_takeover_closes_first_connection(broker, clients, names):
    client_id = names.sub()
    current = clients.raw(client_id)
    for _ in range(ROUNDS):
        newer = clients.raw(client_id)       # CONNACK 0 checked inside
        assert current.expect_closed() == []
        newer.ping()
        current = newer


def test_takeover_publishes_will_of_first_connection(broker, clients, names):
    will_topic = names.topic("will")
    watcher = clients.raw(names.client("watch", 3))
    watcher.subscribe([(will_topic, 1)])
    client_id = names.sub()
    current = clients.raw(client_id, will=(will_topic, b"gone 0", 1, False))
    for round_number in range(1, ROUNDS + 1):
        newer = clients.raw(client_id, will=(will_topic, b"gone %d" % round_number, 1, False))
        assert current.expect_closed() == []
        received = watcher.receive_publish()
        assert received.payload == b"gone %d" % (round_number - 1)
        current = newer
    current.disconnect()                     # a clean end: no will
    watcher.expect_no_packet(0.3)


def test_takeover_keeps_persistent_session(broker, clients, names):
    client_id, topic = names.sub(), names.topic("kept")
    first = clients.raw(client_id, clean_session=False)
    first.subscribe([(topic, 1)])
    publisher = clients.raw(names.pub())
    for round_number in range(ROUNDS):
        newer = clients.raw()
        assert newer.connect(client_id, clean_session=False) == 1
        assert first.expect_closed() == []
        publisher.publish(topic, b"%d" % round_number, qos=1, packet_id=round_number + 1)
        # The PUBACK for the previous round travels on the old socket and may reach the
        # session after the takeover; QoS 1 then allows a resend, marked DUP.
        while True:
            received = newer.receive_publish()
            if received.payload == b"%d" % round_number:
                break
            assert received.dup and int(received.payload) < round_number, received
        first = newer


def test_takeover_moves_unacknowledged_messages(broker, clients, names):
    client_id, topic = names.sub(), names.topic("inflight")
    first = clients.raw(client_id, clean_session=False)
    first.subscribe([(topic, 1)])
    publisher = clients.raw(names.pub())
    publisher.publish(topic, b"pending", qos=1, packet_id=1)
    pending = first.receive_publish(acknowledge=False)
    newer = clients.raw()
    assert newer.connect(client_id, clean_session=False) == 1
    first.expect_closed()
    resent = newer.receive_publish(acknowledge=False)
    assert (resent.payload, resent.dup, resent.packet_id) == (b"pending", True,
                                                               pending.packet_id)
    newer.send(helpers.puback_bytes(resent.packet_id))
    newer.expect_no_packet(0.3)


def test_takeover_with_clean_session_starts_afresh(broker, clients, names):
    client_id, topic = names.sub(), names.topic("fresh")
    first = clients.raw(client_id, clean_session=False)
    first.subscribe([(topic, 1)])
    newer = clients.raw()
    assert newer.connect(client_id, clean_session=True) == 0
    assert first.expect_closed() == []
    publisher = clients.raw(names.pub())
    publisher.publish(topic, b"old subscription is gone", qos=1, packet_id=1)
    newer.expect_no_packet(0.3)


def test_rapid_takeovers_leave_exactly_one_connection(broker, clients, names):
    client_id, topic = names.sub(), names.topic("rapid")
    connections = []
    for _ in range(12):
        connection = clients.raw()
        connection.send(helpers.connect_packet(client_id, clean_session=False))
        connections.append(connection)
    # Connections accepted by different shards may reach the session in any order;
    # whichever comes last wins, and every other one is closed.
    survivors = []
    for connection in connections:
        try:
            connection.expect_closed(timeout=4)
        except AssertionError:
            survivors.append(connection)
    assert len(survivors) == 1
    survivor = survivors[0]
    survivor.receive(packet_type=helpers.CONNACK)
    survivor.subscribe([(topic, 1)])
    publisher = clients.raw(names.pub())
    publisher.publish(topic, b"to the survivor", qos=1, packet_id=1)
    assert survivor.receive_publish().payload == b"to the survivor"


def test_takeover_of_paho_client(broker, clients, names):
    client_id, topic = names.sub(), names.topic("paho")
    first = clients.paho(client_id)
    first.subscribe(topic, 0)
    second = clients.paho(client_id)
    assert first.disconnected.wait(helpers.WAIT_SECONDS)
    second.subscribe(topic, 0)
    publisher = clients.paho(names.pub())
    publisher.publish(topic, b"second", qos=1)
    assert second.get().payload == b"second"
    first.expect_none(0.2)

# 17 close: how the broker ends a connection it decided to end. A close that has something
# to tell the client (a DISCONNECT with a reason) flushes it, shuts the write side and then
# reads and discards what the client still sends until the client closes, so a client that
# keeps writing reads the DISCONNECT instead of a reset. The whole close is bounded by
# --close-linger: a client that never reads cannot hold its socket, the broker resets it.
import ctypes
import os
import select
import socket
import time

import pytest

from helpers import PUBREL, ack_bytes
from helpers_v5 import module_broker, start_broker  # noqa: F401 (fixtures)
from helpers_v5 import (DISCONNECT, PROTOCOL_ERROR, PUBREC, RECEIVE_MAXIMUM_EXCEEDED, Ack,
                        connect5, publish5, raw5)

LINGER_SECONDS = 2
# From the broker's decision to close to the stats line showing the socket gone: the
# linger, a tick, a stats interval and room for a loaded machine.
LET_GO_SECONDS_MAX = LINGER_SECONDS + 10
SYS_PIDFD_GETFD = 438          # x86-64, arm64 and most others


def broker_side_tcp_user_timeout(broker, client):
    """TCP_USER_TIMEOUT (ms) of the broker's socket for client's connection, read from a copy
    of the broker's descriptor (pidfd_getfd: the test is the broker's parent)."""
    libc = ctypes.CDLL(None, use_errno=True)
    client_address = client.sock.getsockname()
    pidfd = os.pidfd_open(broker.process.pid)
    try:
        for name in os.listdir(f"/proc/{broker.process.pid}/fd"):
            try:
                if not os.readlink(f"/proc/{broker.process.pid}/fd/{name}").startswith("socket:"):
                    continue
            except FileNotFoundError:
                continue
            fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(name), 0)
            if fd < 0:
                pytest.skip(f"pidfd_getfd: {os.strerror(ctypes.get_errno())}")
            with socket.socket(fileno=fd) as copy:
                try:
                    if copy.getpeername() != client_address:
                        continue
                except OSError:
                    continue                     # the listeners
                return copy.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)
    finally:
        os.close(pidfd)
    raise AssertionError(f"no broker socket connected to {client_address}")


@pytest.mark.coremq_only("--tcp-user-timeout is coremq's")
def test_client_sockets_get_tcp_user_timeout(start_broker, clients, names):
    """A dead peer (no ACK for what the broker sends) is dropped by the kernel after
    --tcp-user-timeout, not after the default ~15 minutes of retransmissions."""
    for flag, expected_ms in ((None, 60000), (7, 7000), (0, 0)):
        broker = start_broker() if flag is None else start_broker(tcp_user_timeout=flag)
        client = raw5(clients, names.sub(), broker=broker)
        assert broker_side_tcp_user_timeout(broker, client) == expected_ms, flag


@pytest.mark.coremq_only("--close-linger and the admin API are coremq's")
@pytest.mark.parametrize("trigger", ["protocol_error", "keep_alive"])
def test_client_that_never_reads_is_let_go(start_broker, clients, names, trigger):
    """A subscriber with a tiny receive buffer that never reads is flooded until the
    broker's send to it stalls (its QoS 0 messages start being dropped), and the broker
    closes it with a DISCONNECT: after a protocol error (a second CONNECT), or when its
    keep-alive expires (0x8D; in whatever order with the stall, the client never reads
    nor closes). The DISCONNECT can never be read; the broker must still let go of the
    socket within --close-linger."""
    broker = start_broker(http_listener=":0", close_linger=LINGER_SECONDS,
                          max_client_output_bytes=64 * 1024)
    topic = names.topic("flood")
    subscriber = raw5(clients, names.sub(), broker=broker, receive_buffer_bytes=4096,
                      keepalive=2 if trigger == "keep_alive" else 60)
    subscriber.subscribe5([(topic, 0)])
    publisher = raw5(clients, names.pub(), broker=broker)
    batch = b"".join(publish5(topic, b"x" * 1024) for _ in range(64))   # 64 KiB
    for _ in range(256):                                                # 16 MiB at most
        publisher.send(batch)
        if broker.stats_total("qos0_dropped_slow_consumer") > 0:
            break
    publisher.ping()
    broker.wait_for_stats(lambda b: b.stats_total("qos0_dropped_slow_consumer") > 0,
                          what="the subscriber's sends stalling (QoS 0 dropped)")
    if trigger == "protocol_error":
        # Each shard logs on its own tick: wait for lines that all count both clients.
        broker.wait_for_stats(lambda b: b.stats_total("sockets") == 2, what="both sockets open")
        subscriber.send(connect5(names.sub()))
    broker.wait_for_stats(lambda b: b.stats_total("closes_forced_deadline") == 1
                          and b.stats_total("sockets") == 1, timeout=LET_GO_SECONDS_MAX,
                          what="the broker resetting the subscriber's socket")
    # Seen from the client: once it reads, what was sent before the reset, then the end.
    subscriber.expect_closed(timeout=30)
    publisher.ping()


@pytest.mark.coremq_only("mosquitto 2.0 answers the third QoS 2 PUBLISH with PUBREC 0x97, no DISCONNECT")
def test_client_that_keeps_writing_reads_the_disconnect(start_broker, clients, names):
    """With Receive Maximum 2, a third unacknowledged QoS 2 PUBLISH gets DISCONNECT 0x93.
    The client does not read at once: like a client busy sending PUBRELs it keeps writing
    for a while after the DISCONNECT arrived. Its writes must not fail (a reset would make
    them fail with EPIPE/ECONNRESET) and it must then read the DISCONNECT and the end."""
    # A long --close-linger: this test is about the graceful close, not its deadline, and
    # its writes must fit in the linger even on a loaded machine.
    broker = start_broker(receive_maximum=2, close_linger=30)
    client = raw5(clients, names.pub(), broker=broker)
    topic = names.topic("qos2")
    for packet_id in (1, 2):
        client.send(publish5(topic, b"held", qos=2, packet_id=packet_id))
        assert Ack(client.receive(packet_type=PUBREC)).packet_id == packet_id
    client.send(publish5(topic, b"one too many", qos=2, packet_id=3))
    # The DISCONNECT has arrived (readable), and is left unread.
    readable, _, _ = select.select([client.sock], [], [], 10)
    assert readable, "nothing from the broker after the third QoS 2 PUBLISH"
    write_errors = []
    for index in range(50):
        try:
            client.sock.sendall(ack_bytes(PUBREL, 1 + index % 2))
        except OSError as error:                 # BrokenPipeError, ConnectionResetError
            write_errors.append(repr(error))
            break
        time.sleep(0.01)                         # a client writing over half a second
    packets = client.expect_closed(timeout=10)
    disconnects = [Ack(item) for item in packets if item.type == DISCONNECT]
    assert not write_errors, f"writes failed after the broker's DISCONNECT: {write_errors}; " \
                             f"then read {packets!r}"
    assert [item.reason_code for item in disconnects] == [RECEIVE_MAXIMUM_EXCEEDED], packets


@pytest.mark.coremq_only("--close-linger-bytes is coremq's")
def test_linger_reads_a_bounded_number_of_bytes(start_broker, clients, names):
    """A client that keeps writing after the DISCONNECT cannot keep the socket: past
    --close-linger-bytes the broker closes it (counted)."""
    broker = start_broker(http_listener=":0", close_linger_bytes=4096, close_linger=60)
    client = raw5(clients, names.pub(), broker=broker)
    client.send(connect5(names.pub()))                                 # protocol error
    readable, _, _ = select.select([client.sock], [], [], 10)
    assert readable, "no DISCONNECT after a second CONNECT"
    try:
        for _ in range(64):                                            # 64 KiB at most
            client.sock.sendall(b"\x00" * 1024)
    except OSError:
        pass                                       # the broker closed: what is checked below
    broker.wait_for_stats(lambda b: b.stats_total("closes_linger_bytes_exceeded") == 1
                          and b.stats_total("sockets") == 0,
                          what="the lingering close ending on its byte bound")
    packets = client.expect_closed(timeout=10)
    assert [Ack(item).reason_code for item in packets if item.type == DISCONNECT] == \
        [PROTOCOL_ERROR], packets

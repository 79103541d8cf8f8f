# The soak test's MQTT client: one asyncio Protocol per TCP connection, cheap enough to hold
# ten thousand of them in one Python process (no task per connection; packets are handled in
# data_received). It speaks MQTT 3.1.1 or MQTT 5, answers the broker's QoS 1/2 deliveries,
# waits for its own acknowledgements with a bound, and can leave in every rude way the soak
# test injects: FIN without DISCONNECT, RST, half a packet, or in the middle of a QoS 2 flow.
# Everything runs on the soak test's single event loop thread.
import asyncio
import socket
import struct

import mqtt_wire as wire

HOST = "127.0.0.1"
MAX_PACKET_BYTES = 1 << 20


class ClientSession:
    """Client-side session state that outlives a connection (clean session 0): the inbound
    QoS 2 packet ids received and not yet released, which is what makes QoS 2 exactly once
    across reconnects. Owned by whoever owns the client id; lives as long as that owner."""

    def __init__(self, client_id: str, version: int, on_message=None):
        self.client_id = client_id
        self.version = version
        self.on_message = on_message  # (topic, payload, qos, dup), called once per delivery
        self.qos2_awaiting_pubrel = set()
        # One-shot fault hooks, armed by the owner and consumed by the connection.
        self.drop_after_pubrec = None      # callback(connection) run right after a PUBREC
        self.drop_before_pubcomp = None    # callback(connection) run instead of a PUBCOMP

    def reset(self):
        self.qos2_awaiting_pubrel.clear()


class ClientError(Exception):
    pass


class Connection(asyncio.Protocol):
    """One TCP connection to the broker. Owned by the scenario, holder slot or subscriber
    that opened it; lives until it is closed by that owner or by the broker."""

    def __init__(self, session: ClientSession, report, label: str):
        self.session = session
        self.report = report          # .fail(kind, text) and .count(name)
        self.label = label
        self.loop = asyncio.get_running_loop()
        self.transport = None
        self.buffer = bytearray()
        self.connack = self.loop.create_future()
        self.closed = self.loop.create_future()
        self.pending = {}             # packet id -> future of our PUBLISH/SUBSCRIBE/UNSUBSCRIBE/PUBREL
        self.stop_at_pubrec = set()   # our QoS 2 packet ids whose PUBREL we hold back
        self.next_id = 0
        self.closing_by_us = False    # closed on purpose: the broker's close is not a failure
        self.ignoring_input = False   # abandoned (takeover): later bytes belong to no one
        self.ping_handle = None

    # ------------------------------------------------------------ opening and closing

    @classmethod
    async def open(cls, port: int, session: ClientSession, report, label: str,
                   timeout_s: float):
        loop = asyncio.get_running_loop()
        connection = cls(session, report, label)
        await asyncio.wait_for(loop.create_connection(lambda: connection, HOST, port), timeout_s)
        return connection

    async def handshake(self, clean: bool, keepalive_s: int, timeout_s: float,
                        session_expiry_s: int = 0) -> int:
        """Sends CONNECT and waits for CONNACK 0; returns the session present flag."""
        self.write(wire.connect(self.session.client_id, clean, keepalive_s, self.session.version,
                                session_expiry_s))
        session_present, code = await asyncio.wait_for(asyncio.shield(self.connack), timeout_s)
        if code != 0:
            raise ClientError(f"{self.label}: CONNACK code {code:#x}")
        if keepalive_s:
            self._schedule_ping(keepalive_s)
        return session_present

    def _schedule_ping(self, keepalive_s: int):
        # Half the keep-alive, so a slow turn of this loop never lets the broker expire us.
        def ping():
            if self.is_open():
                self.write(wire.PINGREQ_BYTES)
                self.ping_handle = self.loop.call_later(keepalive_s / 2, ping)
        self.ping_handle = self.loop.call_later(keepalive_s / 2, ping)

    def is_open(self) -> bool:
        return self.transport is not None and not self.closed.done() and not self.closing_by_us

    def write(self, data: bytes):
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def disconnect(self):
        """DISCONNECT, then FIN once the bytes are out."""
        self.write(wire.DISCONNECT_BYTES)
        self.close_fin()

    def close_fin(self):
        self.closing_by_us = True
        self._cancel_ping()
        if self.transport is not None:
            self.transport.close()

    def abort_rst(self):
        """Close with SO_LINGER 0: the kernel sends RST and drops whatever is unsent."""
        self.closing_by_us = True
        self._cancel_ping()
        if self.transport is None or self.transport.is_closing():
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    def abandon(self):
        """Stops reading and answering on this connection without closing it: before a
        takeover (the broker must close it) or before cutting a packet in half."""
        self.ignoring_input = True
        self._cancel_ping()

    def _cancel_ping(self):
        if self.ping_handle is not None:
            self.ping_handle.cancel()
            self.ping_handle = None

    # ------------------------------------------------------------ requests

    def packet_id(self) -> int:
        for _ in range(65535):
            self.next_id = self.next_id % 65535 + 1
            if self.next_id not in self.pending:
                return self.next_id
        raise ClientError(f"{self.label}: no free packet id")

    def _expect(self, packet_id: int):
        future = self.loop.create_future()
        self.pending[packet_id] = future
        return future

    def send_publish(self, topic: str, payload: bytes, qos: int, stop_at_pubrec=False):
        """Writes a PUBLISH; returns a future that completes with "acked" (PUBACK/PUBCOMP)
        or "pubrec" (held back before PUBREL), or None for QoS 0."""
        packet_id = self.packet_id() if qos else 0
        future = self._expect(packet_id) if qos else None
        if stop_at_pubrec:
            assert qos == 2
            self.stop_at_pubrec.add(packet_id)
        self.write(wire.publish(topic, payload, qos, packet_id, self.session.version))
        return future

    def send_pubrel(self, packet_id: int):
        """Completes a QoS 2 flow begun on an earlier connection; the future sees PUBCOMP."""
        future = self._expect(packet_id)
        self.write(wire.ack(wire.PUBREL, packet_id))
        return future

    async def subscribe(self, filters, timeout_s: float):
        packet_id = self.packet_id()
        future = self._expect(packet_id)
        self.write(wire.subscribe(packet_id, filters, self.session.version))
        return await asyncio.wait_for(future, timeout_s)

    async def unsubscribe(self, filters, timeout_s: float):
        packet_id = self.packet_id()
        future = self._expect(packet_id)
        self.write(wire.unsubscribe(packet_id, filters, self.session.version))
        return await asyncio.wait_for(future, timeout_s)

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exception):
        self._cancel_ping()
        if not self.closing_by_us and not self.ignoring_input:
            self.report.fail("broker closed a connection",
                             f"{self.label} ({self.session.client_id}): {exception!r}")
        error = ClientError(f"{self.label}: connection closed")
        for future in list(self.pending.values()) + [self.connack]:
            if not future.done():
                future.set_exception(error)
                future.exception()  # a closed connection's unawaited futures are not errors
        self.pending.clear()
        if not self.closed.done():
            self.closed.set_result(exception)

    def data_received(self, data):
        if self.ignoring_input or self.closing_by_us:
            return
        self.buffer += data
        try:
            for first_byte, body in wire.split_packets(self.buffer, MAX_PACKET_BYTES):
                self._handle(first_byte, body)
                if self.ignoring_input or self.closing_by_us:
                    return
        except (wire.MalformedPacket, ClientError, UnicodeDecodeError, struct.error) as error:
            self.report.fail("bad packet from broker", f"{self.label}: {error}")
            self.abort_rst()

    def _complete(self, packet_id: int, value, kind: str):
        future = self.pending.pop(packet_id, None)
        if future is None:
            raise ClientError(f"{kind} for packet id {packet_id} that is not in flight")
        if not future.done():
            future.set_result(value)

    def _handle(self, first_byte: int, body: bytes):
        packet_type = first_byte >> 4
        version = self.session.version
        if packet_type == wire.PUBLISH:
            self._handle_publish(first_byte, body)
        elif packet_type == wire.PUBACK:
            self._check_reason(body, "PUBACK")
            self._complete(wire.parse_packet_id(body), "acked", "PUBACK")
        elif packet_type == wire.PUBREC:
            self._check_reason(body, "PUBREC")
            packet_id = wire.parse_packet_id(body)
            if packet_id in self.stop_at_pubrec:
                self.stop_at_pubrec.discard(packet_id)
                self._complete(packet_id, "pubrec", "PUBREC")
            elif packet_id in self.pending:
                self.write(wire.ack(wire.PUBREL, packet_id))
            else:
                raise ClientError(f"PUBREC for packet id {packet_id} that is not in flight")
        elif packet_type == wire.PUBCOMP:
            self._check_reason(body, "PUBCOMP")
            self._complete(wire.parse_packet_id(body), "acked", "PUBCOMP")
        elif packet_type == wire.PUBREL:
            if first_byte & 0x0F != 0x02:
                raise ClientError(f"PUBREL with flags {first_byte & 0x0F:#x}")
            packet_id = wire.parse_packet_id(body)
            self.session.qos2_awaiting_pubrel.discard(packet_id)
            hook = self.session.drop_before_pubcomp
            if hook is not None:
                self.session.drop_before_pubcomp = None
                hook(self)
                return
            self.write(wire.ack(wire.PUBCOMP, packet_id))
        elif packet_type == wire.CONNACK:
            if self.connack.done():
                raise ClientError("second CONNACK")
            self.connack.set_result(wire.parse_connack(body))
        elif packet_type == wire.SUBACK:
            packet_id, codes = wire.parse_suback(body, version)
            self._complete(packet_id, codes, "SUBACK")
        elif packet_type == wire.UNSUBACK:
            self._complete(wire.parse_packet_id(body), "acked", "UNSUBACK")
        elif packet_type == wire.PINGRESP:
            self.report.count("pingresp")
        elif packet_type == wire.DISCONNECT:
            raise ClientError(f"DISCONNECT from broker, reason {body[:1].hex()}")
        else:
            raise ClientError(f"unexpected packet type {packet_type}")

    def _check_reason(self, body: bytes, kind: str):
        reason = wire.parse_ack_reason(body)
        if reason >= 0x80:
            raise ClientError(f"{kind} reason {reason:#x}")

    def _handle_publish(self, first_byte: int, body: bytes):
        topic, packet_id, qos, dup, payload = wire.parse_publish(first_byte, body,
                                                                 self.session.version)
        session = self.session
        if qos == 0:
            session.on_message(topic, payload, qos, dup)
        elif qos == 1:
            session.on_message(topic, payload, qos, dup)
            self.write(wire.ack(wire.PUBACK, packet_id))
        else:
            if packet_id not in session.qos2_awaiting_pubrel:
                session.qos2_awaiting_pubrel.add(packet_id)
                session.on_message(topic, payload, qos, dup)
            elif not dup:
                raise ClientError(f"QoS 2 packet id {packet_id} reused before PUBREL without DUP")
            self.write(wire.ack(wire.PUBREC, packet_id))
            hook = session.drop_after_pubrec
            if hook is not None:
                session.drop_after_pubrec = None
                hook(self)

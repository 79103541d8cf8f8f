#!/usr/bin/env python3
"""Writes the seed corpora of the libFuzzer targets into tests/fuzz/corpus/<target>/.

corpus/fuzz_decoder/: one valid MQTT packet per file, of every type, for MQTT 3.1 (MQIsdp, level 3),
3.1.1 (level 4) and, for CONNECT, MQTT 5 (level 5, with properties), byte for byte as a client or a
server would send it.

corpus/fuzz_connection/: scripts in the operation format that tests/fuzz/fuzz_connection.cc
documents (a header of two bytes, then opcodes and their arguments): a session of every QoS flow,
hand-offs across shards, keep-alive and connect timeouts, wills, retained messages, takeover,
small queue and in-flight limits, and cross-shard items. Keep the opcodes and argument order in
step with that file.

Deterministic: running it again rewrites the same files. Usage: tests/fuzz/make_corpus.py
"""
import hashlib
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent


# ---- MQTT packets ------------------------------------------------------------------------

def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            byte |= 0x80
        out.append(byte)
        if not value:
            return bytes(out)


def string(text) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack(">H", len(data)) + data


def packet(type_: int, flags: int, body: bytes) -> bytes:
    return bytes([type_ << 4 | flags]) + varint(len(body)) + body


def connect(level=4, client_id="c0", clean=True, keep_alive=60, will=None, username=None, password=None,
            properties: bytes = None) -> bytes:
    name = "MQIsdp" if level == 3 else "MQTT"
    flags = 0x02 if clean else 0
    if will is not None:
        topic, payload, qos, retain = will
        flags |= 0x04 | qos << 3 | (0x20 if retain else 0)
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    body = string(name) + bytes([level, flags]) + struct.pack(">H", keep_alive)
    if level == 5:
        body += varint(len(properties or b"")) + (properties or b"")
    body += string(client_id)
    if will is not None:
        if level == 5:
            body += varint(0)  # will properties
        body += string(topic) + string(payload)
    if username is not None:
        body += string(username)
    if password is not None:
        body += string(password)
    return packet(1, 0, body)


def publish(topic, payload=b"", qos=0, retain=False, dup=False, packet_id=1) -> bytes:
    flags = (0x08 if dup else 0) | qos << 1 | (0x01 if retain else 0)
    body = string(topic) + (struct.pack(">H", packet_id) if qos else b"") + payload
    return packet(3, flags, body)


def ack(type_: int, packet_id: int) -> bytes:
    return packet(type_, 0b0010 if type_ == 6 else 0, struct.pack(">H", packet_id))


def subscribe(packet_id, entries) -> bytes:
    body = struct.pack(">H", packet_id) + b"".join(string(f) + bytes([q]) for f, q in entries)
    return packet(8, 0b0010, body)


def unsubscribe(packet_id, filters) -> bytes:
    return packet(10, 0b0010, struct.pack(">H", packet_id) + b"".join(string(f) for f in filters))


def decoder_seeds() -> dict:
    seeds = {}
    for level in (3, 4):
        tag = f"v{level}"
        seeds[f"connect_{tag}"] = connect(level=level)
        seeds[f"connect_{tag}_will_auth"] = connect(level=level, client_id="client-1", clean=False, keep_alive=0,
                                                    will=("will/topic", b"gone", 1, True), username="user",
                                                    password=b"secret")
        seeds[f"connect_{tag}_will_qos2"] = connect(level=level, will=("w", b"", 2, False))
    seeds["connect_v4_empty_id"] = connect(level=4, client_id="")
    seeds["connect_v3_password_only"] = connect(level=3, password=b"pw")
    # MQTT 5: Session Expiry Interval, Receive Maximum, a User Property.
    v5_properties = b"\x11" + struct.pack(">I", 3600) + b"\x21" + struct.pack(">H", 10) + b"\x26" + string("k") + string("v")
    seeds["connect_v5"] = connect(level=5, properties=v5_properties)
    seeds["connect_v5_will"] = connect(level=5, will=("w/5", b"bye", 1, False), username="u", password=b"p")
    seeds["connack_accepted"] = packet(2, 0, b"\x00\x00")
    seeds["connack_session_present"] = packet(2, 0, b"\x01\x00")
    seeds["connack_refused"] = packet(2, 0, b"\x00\x05")
    seeds["publish_qos0"] = publish("a/b", b"hello")
    seeds["publish_qos1_retain"] = publish("a/b/c", b"x" * 40, qos=1, retain=True, packet_id=7)
    seeds["publish_qos2_dup"] = publish("$SYS/x", b"\x00\xff", qos=2, dup=True, packet_id=65535)
    seeds["publish_empty_payload"] = publish("/", b"", qos=0, retain=True)
    seeds["publish_utf8_topic"] = publish("caf\u00e9/\u6771\u4eac", b"payload", qos=1, packet_id=2)
    seeds["publish_large"] = publish("big", bytes(range(256)) * 8, qos=1, packet_id=3)
    for type_, name in ((4, "puback"), (5, "pubrec"), (6, "pubrel"), (7, "pubcomp")):
        seeds[name] = ack(type_, 1)
        seeds[name + "_max_id"] = ack(type_, 65535)
    seeds["subscribe_one"] = subscribe(1, [("a/#", 1)])
    seeds["subscribe_many"] = subscribe(10, [("a/+/c", 0), ("#", 1), ("$SYS/#", 2), ("+", 0), ("a//b", 2)])
    seeds["suback"] = packet(9, 0, struct.pack(">H", 10) + bytes([0, 1, 2, 0x80]))
    seeds["unsubscribe"] = unsubscribe(11, ["a/#", "+"])
    seeds["unsuback"] = packet(11, 0, struct.pack(">H", 11))
    seeds["pingreq"] = packet(12, 0, b"")
    seeds["pingresp"] = packet(13, 0, b"")
    seeds["disconnect"] = packet(14, 0, b"")
    seeds["auth_v5"] = packet(15, 0, b"\x00\x00")
    seeds["length_two_bytes"] = publish("t", b"y" * 200)
    return seeds


# ---- fuzz_connection scripts --------------------------------------------------------------

OPEN_RAW, OPEN_CONNECT, FEED_RAW, FEED_PACKET, TICK, TRANSPORT_CLOSED, SEND_BEGIN, SEND_COMPLETE, END_OF_TURN, \
    CROSS_SHARD, DELIVER_SOME, CLOSE_HELD, OPEN_CONNECT_V5, FEED_AUTH = range(14)

# Indices into the tables of fuzz_connection.cc.
TOPICS = ["a", "a/b", "a/b/c", "b", "$SYS/x", "/", "a//b", "will/c", "x/y/z/w", "c0"]
FILTERS = ["a", "a/b", "a/+", "a/#", "#", "+", "+/b", "$SYS/#", "/", "a//b", "will/#", "+/+/+", "a/#/b", "a+", "",
           "x/#"]
CLIENT_IDS = ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "", "client-id-longer-than-twenty-three-bytes"]
# Authentication Methods (the hook supports the first two); index 3 in CONNECT means none.
METHODS = ["m1", "m2", "unsupported"]
# The fuzz hook's results, and the AUTH reason selectors of FEED_AUTH.
CONTINUE, SUCCESS, FAILURE = range(3)
AUTH_REASON_SELECTOR = {0x18: 0, 0x19: 1, 0x00: 4}


def hook_answer(result, data=b"", reason=0x87):
    """The bytes the fuzz hook reads for one step, right after the operation that calls it."""
    return [result, len(data), *data] + ([reason] if result == FAILURE else [])


def owner_shard(client_id: str, shards: int) -> int:
    """broker::owner_shard_of: FNV-1a over the id, modulo the shard count."""
    value = 2166136261
    for byte in client_id.encode():
        value = ((value ^ byte) * 16777619) & 0xFFFFFFFF
    return value % shards


RAW_STRING = 0xFF


def pick(table, text):
    """The index of `text` in a table, or the raw-string escape followed by its bytes."""
    if text in table:
        return [table.index(text)]
    data = text.encode()
    return [RAW_STRING, len(data), *data]


class Script:
    def __init__(self, shards=1, shutdown=False, presets=0):
        self.out = bytearray([(shards - 1) | (0x04 if shutdown else 0), presets])

    def op(self, code, *args):
        self.out += bytes([code, *args])
        return self

    def open_raw(self, shard=0):
        return self.op(OPEN_RAW, shard)

    def connect(self, shard=0, client="c0", clean=True, level=4, will=None, auth=False, keep_alive=None, split=0):
        flags = (0x01 if clean else 0) | (0x20 if level == 3 else 0) | (0x40 if auth else 0)
        args = [CLIENT_IDS.index(client)]
        tail = []
        if will is not None:
            topic, payload, qos, retain = will
            flags |= 0x02 | qos << 2 | (0x10 if retain else 0)
            tail += [*pick(TOPICS, topic), len(payload), *payload]
        if keep_alive is not None:
            flags |= 0x80
            tail.append(keep_alive)
        return self.op(OPEN_CONNECT, shard, *args, flags, *tail, split)

    def connect_v5(self, shard=0, client="c0", method="m1", data=b"", clean=True, maximum_packet_size=None,
                   no_problem_information=False, will=False, answers=(), split=0):
        """An MQTT 5 CONNECT; `answers` are the hook's steps it triggers (hook_answer lists)."""
        flags = (0x01 if clean else 0) | (METHODS.index(method) if method else 3) << 1
        flags |= (0x08 if maximum_packet_size else 0) | (0x10 if no_problem_information else 0) | (0x20 if will else 0)
        args = [CLIENT_IDS.index(client), flags, len(data), *data]
        if maximum_packet_size:
            args.append(maximum_packet_size - 16)
        self.op(OPEN_CONNECT_V5, shard, *args, split)
        return self.answers(answers)

    def auth(self, client, reason, method="m1", data=b"", answers=(), split=0):
        self.op(FEED_AUTH, client, AUTH_REASON_SELECTOR[reason], METHODS.index(method), len(data), *data, split)
        return self.answers(answers)

    def answers(self, answers):
        for answer in answers:
            self.out += bytes(answer)
        return self

    def publish(self, client, topic, qos=0, retain=False, dup=False, packet_id=1, payload_size=5, split=0):
        flags = qos | (0x04 if retain else 0) | (0x08 if dup else 0)
        args = [client, 0, flags, *pick(TOPICS, topic)]
        if qos:
            args.append(packet_id)
        args.append(payload_size)
        return self.op(FEED_PACKET, *args, split)

    def subscribe(self, client, entries, packet_id=1, split=0):
        args = [client, 1, len(entries) - 1]
        for filter_, qos in entries:
            args += [*pick(FILTERS, filter_), qos]
        return self.op(FEED_PACKET, *args, packet_id, split)

    def unsubscribe(self, client, filters, packet_id=2, split=0):
        args = [client, 2, len(filters) - 1] + [i for f in filters for i in pick(FILTERS, f)]
        return self.op(FEED_PACKET, *args, packet_id, split)

    def ack(self, client, kind, packet_id, split=0):
        return self.op(FEED_PACKET, client, {"puback": 3, "pubrec": 4, "pubrel": 5, "pubcomp": 6}[kind], packet_id,
                       split)

    def ping(self, client):
        return self.op(FEED_PACKET, client, 7, 0)

    def disconnect(self, client):
        return self.op(FEED_PACKET, client, 8, 0)

    def raw(self, client, data: bytes):
        assert len(data) < 256
        return self.op(FEED_RAW, client, len(data), *data)

    def tick(self, quarter_seconds):
        return self.op(TICK, quarter_seconds)

    def close(self, client):
        return self.op(TRANSPORT_CLOSED, client)

    def drain(self, client):
        return self.op(SEND_BEGIN, client).op(SEND_COMPLETE, client)

    def turn(self):
        return self.op(END_OF_TURN)

    def cross_publish(self, from_shard, to_shard, topic, qos=0, retain=False, payload_size=4):
        # selector % 3 == 0 (publish); QoS = (selector >> 2) % 3; retain = bit 7.
        selector = next(s for s in range(256)
                        if s % 3 == 0 and (s >> 2) % 3 == qos and bool(s & 0x80) == retain)
        return self.op(CROSS_SHARD, selector, from_shard, to_shard, *pick(TOPICS, topic), payload_size)

    def cross_interest(self, from_shard, to_shard, filter_, add=True):
        return self.op(CROSS_SHARD, 1 if add else 2, from_shard, to_shard, *pick(FILTERS, filter_), 0)

    def deliver_some(self, from_shard, to_shard, count=1):
        # count is 1 + byte % 4
        return self.op(DELIVER_SOME, from_shard, to_shard, count - 1)

    def close_held(self, client):
        return self.op(CLOSE_HELD, client)

    def bytes(self):
        return bytes(self.out)


def connection_seeds() -> dict:
    seeds = {}
    # One shard: every QoS flow between a subscriber (client 0) and a publisher (client 1).
    s = Script().connect(client="c0").connect(client="c1").subscribe(0, [("a/#", 2), ("a/+", 1)])
    for qos in (0, 1, 2):
        s.publish(1, "a/b", qos=qos, packet_id=qos + 1)
    s.drain(0).drain(1).ack(0, "puback", 1).ack(0, "pubrec", 2).ack(0, "pubcomp", 2).ack(1, "pubrel", 3)
    s.ping(0).unsubscribe(0, ["a/#"]).disconnect(1).drain(0).close(0)
    seeds["qos_flows"] = s.bytes()
    # Split packets and a 3.1 client.
    seeds["split_packets"] = (Script().connect(client="c2", level=3, split=7).subscribe(0, [("#", 1)], split=3)
                              .publish(0, "b", qos=1, packet_id=9, split=5).drain(0).bytes())
    # Four shards: clients land on the wrong shard and are handed off; cross-shard delivery.
    s = Script(shards=4)
    for shard, client in enumerate(["c0", "c1", "c2", "c3"]):
        s.connect(shard=shard, client=client)
    s.turn().subscribe(0, [("a/#", 1)]).subscribe(1, [("+/b", 2)]).turn()
    s.publish(2, "a/b", qos=1).publish(3, "a/b", qos=2, retain=True, packet_id=4).turn().turn()
    s.drain(4).drain(5).drain(6).drain(7).close(6).turn()
    seeds["handoff_four_shards"] = s.bytes()
    # Keep-alive expiry with a will, and a connect timeout.
    seeds["keepalive_will"] = (Script().connect(client="c0").subscribe(0, [("will/#", 1)])
                               .connect(client="c1", will=("will/c", b"bye", 1, False), keep_alive=1)
                               .tick(7).drain(0).bytes())
    seeds["connect_timeout"] = Script().open_raw().tick(44).bytes()
    # A will on a lost connection, none after DISCONNECT; takeover of a persistent session.
    seeds["will_and_takeover"] = (Script().connect(client="c0").subscribe(0, [("will/c", 2)])
                                  .connect(client="c1", clean=False, will=("will/c", b"x", 2, True))
                                  .connect(client="c1", clean=False).close(2).disconnect(0)
                                  .connect(client="c0", clean=False).drain(3).bytes())
    # Retained on subscribe.
    seeds["retained"] = (Script().connect(client="c0").publish(0, "a/b", qos=1, retain=True)
                         .publish(0, "a/b/c", retain=True).subscribe(0, [("a/#", 2)]).drain(0)
                         .publish(0, "a/b", retain=True, payload_size=0).bytes())
    # Tight limits: --max-inflight=1, --max-queued-messages=1, 1024 output bytes.
    s = Script(presets=0x01 | 0x04 | 0x10).connect(client="c0", clean=False).subscribe(0, [("a", 1)])
    s.connect(client="c1")
    for index in range(6):
        s.publish(1, "a", qos=index % 2, packet_id=index + 1, payload_size=200)
    s.close(0).connect(client="c0", clean=False).ack(2, "puback", 1).drain(2).ack(2, "puback", 2)
    seeds["limits"] = s.bytes()
    # Raw bytes: an MQTT 5 CONNECT (refused with 0x01), garbage, a second CONNECT.
    s = Script().open_raw().raw(0, connect(level=5)).open_raw().raw(1, b"\x10\xff\xff\xff\xff\x7f")
    s.connect(client="c3").raw(2, connect(level=4, client_id="c3"))
    seeds["raw_bytes"] = s.bytes()
    # Items from other shards.
    s = Script(shards=2).connect(shard=0, client="c1").turn()
    s.cross_interest(1, 0, "a/#").cross_publish(1, 0, "a/b", qos=1, retain=True)
    s.cross_interest(1, 0, "a/#", add=False).cross_publish(1, 0, "$SYS/x", qos=2)
    seeds["cross_shard_items"] = s.bytes()
    # The barrier: a SUBACK and a retained PUBACK wait for every peer while the client's later
    # packets are parked; items of one ring delivered a few at a time; closes while held.
    s = Script(shards=2).connect(shard=0, client="c0").connect(shard=1, client="c1").turn()
    s.subscribe(0, [("a/#", 1)]).ping(0).publish(0, "a/b", qos=1, retain=True, packet_id=3)
    s.deliver_some(0, 1, 1).deliver_some(1, 0, 1).deliver_some(0, 1, 2).deliver_some(1, 0, 1)
    s.publish(1, "a/b", qos=1).turn().drain(0)
    s.subscribe(1, [("b", 0)]).ping(1).close(1).turn()
    s.subscribe(0, [("x/#", 0)]).close_held(0).turn()
    seeds["barrier_held"] = s.bytes()
    seeds["shutdown"] = Script(shards=2, shutdown=True).connect(client="c0").connect(shard=1, client="c1").bytes()
    # Enhanced authentication: two Continue steps then CONNACK, a ping, a re-authentication in
    # two steps with a ping inside, then one that fails (DISCONNECT).
    s = Script().connect_v5(client="c0", data=b"hi", answers=[hook_answer(CONTINUE, b"ch1")])
    s.auth(0, 0x18, data=b"r1", answers=[hook_answer(CONTINUE, b"ch2")])
    s.auth(0, 0x18, data=b"r2", answers=[hook_answer(SUCCESS, b"ok")]).ping(0)
    s.auth(0, 0x19, data=b"re", answers=[hook_answer(CONTINUE, b"rc")]).ping(0)
    s.auth(0, 0x18, data=b"rr", answers=[hook_answer(SUCCESS)])
    s.auth(0, 0x19, answers=[hook_answer(FAILURE, reason=0x86)]).drain(0)
    seeds["enhanced_auth"] = s.bytes()
    # Refusals: an unsupported method, the hook's failure, another method mid-exchange, a step
    # over the client's Maximum Packet Size, AUTH from a client that named no method, and an
    # exchange that stalls until the connect timeout.
    s = Script().connect_v5(client="c1", method="unsupported")
    s.connect_v5(client="c2", method="m2", answers=[hook_answer(FAILURE, reason=0x8A)])
    s.connect_v5(client="c3", answers=[hook_answer(CONTINUE)]).auth(2, 0x18, method="m2")
    s.connect_v5(client="c4", maximum_packet_size=24, answers=[hook_answer(CONTINUE, b"x" * 40)])
    s.connect_v5(client="c5", method=None).auth(4, 0x19)
    s.connect_v5(client="c6", answers=[hook_answer(CONTINUE)]).tick(44)
    seeds["enhanced_auth_refusals"] = s.bytes()
    # The exchange runs on the owner shard, after the hand-off (the answer follows the turn).
    client = next(c for c in CLIENT_IDS[:8] if owner_shard(c, 2) == 1)
    s = Script(shards=2).connect_v5(shard=0, client=client).turn().answers([hook_answer(CONTINUE, b"ch")])
    s.auth(0, 0x18, data=b"r", answers=[hook_answer(SUCCESS)]).ping(0).drain(1)
    seeds["enhanced_auth_handoff"] = s.bytes()
    return seeds


def write(directory: Path, seeds: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        (directory / name).write_bytes(data)
    # A stale seed from an older version of this script would linger otherwise.
    for path in directory.iterdir():
        if path.name not in seeds:
            path.unlink()


def main() -> None:
    write(HERE / "corpus" / "fuzz_decoder", decoder_seeds())
    write(HERE / "corpus" / "fuzz_connection", connection_seeds())
    for target in ("fuzz_decoder", "fuzz_connection"):
        files = sorted((HERE / "corpus" / target).iterdir())
        digest = hashlib.sha256(b"".join(path.read_bytes() for path in files)).hexdigest()[:12]
        print(f"{target}: {len(files)} seeds ({digest})")


if __name__ == "__main__":
    main()

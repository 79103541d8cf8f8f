#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_websocket into tests/fuzz/corpus/fuzz_websocket/.

Each file is in the input format tests/fuzz/fuzz_websocket.cc documents: byte 0 (bit 0: a valid
upgrade request goes first; bits 1-7: read size - 1), byte 1 (frame bound / 8, 0 for 1 MiB), then
what a client sends: a browser's real upgrade request, MQTT packets in masked binary frames (one
packet per frame, one packet over a fragmented message, several packets in one frame), ping,
pong and close frames, and the frames and requests the transport refuses.

Deterministic: running it again rewrites the same files. Usage: tests/fuzz/make_corpus_websocket.py
"""
import struct
from pathlib import Path

OUT = Path(__file__).resolve().parent / "corpus" / "fuzz_websocket"

# What Chromium sends for `new WebSocket("ws://127.0.0.1:8080/mqtt", ["mqtt"])` (MQTT.js).
BROWSER_REQUEST = (
    b"GET /mqtt HTTP/1.1\r\n"
    b"Host: 127.0.0.1:8080\r\n"
    b"Connection: Upgrade\r\n"
    b"Pragma: no-cache\r\n"
    b"Cache-Control: no-cache\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"HeadlessChrome/120.0.0.0 Safari/537.36\r\n"
    b"Upgrade: websocket\r\n"
    b"Origin: http://127.0.0.1:8000\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Accept-Language: en-US,en;q=0.9\r\n"
    b"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    b"Sec-WebSocket-Protocol: mqtt\r\n"
    b"\r\n")
# What paho-mqtt (Python) sends with transport="websockets".
PAHO_REQUEST = (
    b"GET /mqtt HTTP/1.1\r\n"
    b"Host: 127.0.0.1:8080\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Origin: https://127.0.0.1:8080\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: mqtt\r\n"
    b"\r\n")

MASK = b"\x12\x34\x56\x78"
CONNECT = bytes([0x10, 0x10, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 4]) + b"fuzz"
SUBSCRIBE = bytes([0x82, 0x08, 0, 1, 0, 3]) + b"a/b" + bytes([1])
PUBLISH = bytes([0x32, 0x0c, 0, 3]) + b"a/b" + bytes([0, 2]) + b"hello"
PINGREQ = bytes([0xC0, 0])
DISCONNECT = bytes([0xE0, 0])


def frame(opcode, payload, fin=True, masked=True, rsv=0, length_bytes=None):
    out = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    size = len(payload)
    if length_bytes is None:
        length_bytes = 0 if size < 126 else 2 if size <= 0xFFFF else 8
    mask_bit = 0x80 if masked else 0
    if length_bytes == 0:
        out.append(mask_bit | size)
    elif length_bytes == 2:
        out.append(mask_bit | 126)
        out += struct.pack("!H", size)
    else:
        out.append(mask_bit | 127)
        out += struct.pack("!Q", size)
    if masked:
        out += MASK
        payload = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return bytes(out) + payload


def seed(prefix_request, read_size, bound_byte, body):
    return bytes([(1 if prefix_request else 0) | ((read_size - 1) << 1), bound_byte]) + body


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    session = (frame(2, CONNECT) + frame(2, SUBSCRIBE) + frame(2, PUBLISH[:5], fin=False) +
               frame(9, b"keep") + frame(0, PUBLISH[5:]) + frame(10, b"") +
               frame(2, PINGREQ + PUBLISH + PINGREQ) + frame(2, bytes(300), length_bytes=2) +
               frame(2, DISCONNECT) + frame(8, struct.pack("!H", 1000) + b"bye"))
    seeds = {
        "browser_session": seed(False, 64, 0, BROWSER_REQUEST + session),
        "paho_session_bytewise": seed(False, 1, 0, PAHO_REQUEST + session),
        "frames_after_request": seed(True, 8, 0, session),
        "long_lengths": seed(True, 16, 0, frame(2, bytes(70000), length_bytes=8)[:40] +
                             frame(2, b"\x01", length_bytes=8)),
        "small_bound": seed(True, 3, 2, frame(2, bytes(16)) + frame(2, bytes(17))),
        "bad_frames": seed(True, 5, 0, frame(2, b"x", masked=False) + frame(1, b"text") +
                           frame(2, b"x", rsv=4) + frame(3, b"") + frame(9, bytes(126)) +
                           frame(9, b"", fin=False) + frame(8, b"\x03") + frame(0, b"orphan") +
                           bytes([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1]) + MASK),
        "bad_request_post": seed(False, 7, 0, PAHO_REQUEST.replace(b"GET", b"POST")),
        "bad_request_version": seed(False, 11, 0, PAHO_REQUEST.replace(b"Version: 13", b"Version: 8")),
        "bad_request_protocol": seed(False, 128, 0,
                                     PAHO_REQUEST.replace(b"Protocol: mqtt", b"Protocol: chat, mqttv3.1")),
    }
    for name, data in seeds.items():
        (OUT / name).write_bytes(data)


if __name__ == "__main__":
    main()

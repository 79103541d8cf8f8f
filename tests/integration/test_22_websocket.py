# MQTT over WebSocket (RFC 6455; MQTT 3.1.1 and 5.0 section 6) on a ws:// listener: paho-mqtt
# with transport="websockets" at every QoS, across a WebSocket and a TCP listener, a large message
# in 64-bit-length frames; raw sockets for the upgrade refusals (400/405/426) and the frame rules
# (fragmentation, ping/pong, close echo, 1002/1003/1009 closes); and MQTT.js in headless Chromium
# (Debian's chromium and chromium-driver driven by python3-selenium) subscribing and receiving its
# own message. The broker listens on one mqtt:// and one ws:// port, both on 127.0.0.1.
#
# COREMQ_TEST_BROKER=mosquitto runs the same tests against Debian's mosquitto (its libwebsockets
# listener) to check the tests themselves; coremq's own answers (HTTP refusals, close codes) are
# marked coremq_only.
import base64
import hashlib
import http.server
import os
import shutil
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

import helpers
from conftest import COREMQ_BINARY, Broker, free_port, is_mosquitto

# The lead removes these lines once the shard loop serves `--listener=ws://` (issue 9): until
# then coremq has no WebSocket listener and every test here would fail at start-up.

REPO_ROOT = Path(__file__).resolve().parents[2]
MQTT_JS = REPO_ROOT / "tests/browser/node_modules/mqtt/dist/mqtt.min.js"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONNACK_ACCEPTED = bytes([0x20, 0x02, 0x00, 0x00])


class WebSocketBroker(Broker):
    """A broker with an mqtt:// and a ws:// listener on free loopback ports."""

    def __init__(self, directory: Path, threads: int, options: dict):
        super().__init__(directory, threads, options)
        self.tcp_port = free_port()
        self.ws_port = free_port()

    def _coremq_command(self):
        if not os.access(COREMQ_BINARY, os.X_OK):
            pytest.skip(f"no coremq binary at {COREMQ_BINARY}")
        command = [COREMQ_BINARY, f"--threads={self.threads}", "--log-level=info", "--pin-threads=false",
                   f"--listener=mqtt://127.0.0.1:{self.tcp_port}",
                   f"--listener=ws://127.0.0.1:{self.ws_port}"]
        for name, value in self.options.items():
            command.append(f"--{name.replace('_', '-')}={value}")
        return command

    def _mosquitto_command(self):
        # mosquitto 2.0 refuses to start with only a websockets listener, so the TCP one comes too.
        lines = [f"listener {self.tcp_port} 127.0.0.1", f"listener {self.ws_port} 127.0.0.1",
                 "protocol websockets", "allow_anonymous true", "persistence false",
                 "log_dest stderr", "log_type all", "sys_interval 0"]
        for name, value in self.options.items():
            lines.append(f"{name} {value}")
        config_path = self.directory / "mosquitto.conf"
        config_path.write_text("\n".join(lines) + "\n")
        return ["/usr/sbin/mosquitto", "-c", str(config_path)]

    def _ready(self) -> bool:
        for port in (self.tcp_port, self.ws_port):
            try:
                socket.create_connection((helpers.HOST, port), timeout=1).close()
            except OSError:
                return False
        self.port = self.tcp_port
        return True


@pytest.fixture(scope="module")
def ws_broker(threads, tmp_path_factory):
    broker = WebSocketBroker(tmp_path_factory.mktemp(f"ws-broker-t{threads}"), threads, {})
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def broker(ws_broker):
    yield ws_broker
    assert ws_broker.alive(), f"broker died during the test:\n{ws_broker.log_tail()}"


@pytest.fixture
def paho_clients(broker):
    """Factory: paho_clients(client_id, websocket=True) -> a connected PahoClient."""
    made = []

    def make(client_id, websocket=True, **kwargs):
        if websocket:
            client = helpers.PahoClient(broker.ws_port, client_id, transport="websockets", **kwargs)
        else:
            client = helpers.PahoClient(broker.tcp_port, client_id, **kwargs)
        made.append(client)
        client.connect()
        return client

    yield make
    for client in made:
        try:
            client.disconnect(timeout=1)
        except Exception:
            pass


# ------------------------------------------------------------------ raw WebSocket client

def upgrade_request(key=b"dGhlIHNhbXBsZSBub25jZQ==", protocol=b"mqtt", method=b"GET", version=b"13",
                    extra=b"", omit=()):
    headers = {b"Host": b"127.0.0.1", b"Upgrade": b"websocket", b"Connection": b"Upgrade",
               b"Sec-WebSocket-Key": key, b"Sec-WebSocket-Version": version}
    if protocol is not None:
        headers[b"Sec-WebSocket-Protocol"] = protocol
    lines = [method + b" /mqtt HTTP/1.1"]
    lines += [name + b": " + value for name, value in headers.items() if name not in omit]
    return b"\r\n".join(lines) + b"\r\n" + extra + b"\r\n"


def client_frame(opcode, payload=b"", fin=True, masked=True, mask=b"\x0f\xa5\x3c\x96"):
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    mask_bit = 0x80 if masked else 0
    if size < 126:
        header = struct.pack("!BB", first, mask_bit | size)
    elif size <= 0xFFFF:
        header = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, size)
    if not masked:
        return header + payload
    return header + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


class RawWebSocket:
    """A WebSocket client built from bytes, to see the broker's answers exactly."""

    def __init__(self, port):
        self.sock = socket.create_connection((helpers.HOST, port), timeout=helpers.WAIT_SECONDS)
        self.buffer = b""

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buffer += data

    def http_response(self):
        """(status, headers dict with lower-case names, body) of the HTTP answer."""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    def upgrade(self, **kwargs):
        self.send(upgrade_request(**kwargs))
        status, headers, _ = self.http_response()
        assert status == 101, (status, headers)
        return headers

    def frame(self):
        """(opcode, payload) of the next server frame, which must be final and unmasked."""
        while len(self.buffer) < 2:
            self._fill()
        first, second = self.buffer[0], self.buffer[1]
        assert first & 0x70 == 0 and second & 0x80 == 0, "server frames use no RSV bit and no mask"
        size, at = second & 0x7F, 2
        if size in (126, 127):
            length_bytes = 2 if size == 126 else 8
            while len(self.buffer) < 2 + length_bytes:
                self._fill()
            size = int.from_bytes(self.buffer[2:2 + length_bytes], "big")
            at += length_bytes
        while len(self.buffer) < at + size:
            self._fill()
        payload, self.buffer = self.buffer[at:at + size], self.buffer[at + size:]
        assert first & 0x80, "server frames are final"
        return first & 0x0F, payload

    def mqtt_bytes(self, count):
        """count bytes of MQTT from binary frames (packets may span frames)."""
        data = b""
        while len(data) < count:
            opcode, payload = self.frame()
            assert opcode == 0x2, f"expected a binary frame, got opcode {opcode}"
            data += payload
        assert len(data) == count, data
        return data

    def expect_close(self, code):
        opcode, payload = self.frame()
        assert opcode == 0x8, f"expected a close frame, got opcode {opcode} {payload!r}"
        assert struct.unpack("!H", payload[:2])[0] == code, payload
        self.expect_eof()

    def expect_eof(self):
        deadline = time.monotonic() + helpers.WAIT_SECONDS
        while time.monotonic() < deadline:
            try:
                self._fill()
            except (EOFError, ConnectionResetError):
                return
        raise AssertionError("broker did not close the connection")


@pytest.fixture
def raw_ws(broker):
    made = []

    def make():
        client = RawWebSocket(broker.ws_port)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


# ------------------------------------------------------------------ paho-mqtt

@pytest.mark.parametrize("qos", [0, 1, 2])
def test_paho_round_trip_over_websocket(paho_clients, names, qos):
    subscriber = paho_clients(names.sub())
    publisher = paho_clients(names.pub())
    topic = names.topic("ws")
    assert subscriber.subscribe(topic, qos) == [qos]
    publisher.publish(topic, b"over websocket", qos=qos)
    message = subscriber.get()
    assert (message.topic, message.payload, message.qos) == (topic, b"over websocket", qos)


def test_websocket_and_tcp_clients_talk_both_ways(paho_clients, names):
    on_websocket = paho_clients(names.sub("ws-side"))
    on_tcp = paho_clients(names.pub("tcp-side"), websocket=False)
    assert on_websocket.subscribe(names.topic("to-ws"), 1) == [1]
    assert on_tcp.subscribe(names.topic("to-tcp"), 1) == [1]
    on_tcp.publish(names.topic("to-ws"), b"tcp to ws", qos=1)
    on_websocket.publish(names.topic("to-tcp"), b"ws to tcp", qos=1)
    assert on_websocket.get().payload == b"tcp to ws"
    assert on_tcp.get().payload == b"ws to tcp"


def test_large_message_in_64_bit_length_frames(paho_clients, names):
    # 300 KiB: over 65535, so both directions use the 64-bit frame length.
    payload = bytes(range(256)) * 1200
    subscriber = paho_clients(names.sub())
    publisher = paho_clients(names.pub())
    topic = names.topic("large")
    assert subscriber.subscribe(topic, 1) == [1]
    publisher.publish(topic, payload, qos=1)
    message = subscriber.get(timeout=15)
    assert message.payload == payload


# ------------------------------------------------------------------ raw frames

def test_handshake_fragmentation_ping_and_close(raw_ws, names):
    client = raw_ws()
    headers = client.upgrade()
    expected_accept = base64.b64encode(hashlib.sha1(b"dGhlIHNhbXBsZSBub25jZQ==" + WEBSOCKET_GUID).digest())
    assert headers["sec-websocket-accept"] == expected_accept.decode()
    assert headers["sec-websocket-protocol"] == "mqtt"
    # CONNECT in a fragmented message: a binary frame and two continuations.
    connect = helpers.connect_packet(names.client("raw-ws", 0))
    client.send(client_frame(0x2, connect[:3], fin=False) + client_frame(0x0, connect[3:9], fin=False) +
                client_frame(0x0, connect[9:], fin=True))
    assert client.mqtt_bytes(4) == CONNACK_ACCEPTED
    # A ping in the middle of a fragmented PINGREQ is answered with its payload.
    client.send(client_frame(0x2, helpers.PINGREQ_BYTES[:1], fin=False) + client_frame(0x9, b"are you there") +
                client_frame(0x0, helpers.PINGREQ_BYTES[1:]))
    # The pong and the PINGRESP may go out in either order.
    answers = sorted([client.frame(), client.frame()])
    assert answers == [(0x2, helpers.PINGRESP_BYTES), (0xA, b"are you there")], answers
    # Two PINGREQs in one frame, then an unsolicited pong (ignored), then a close.
    client.send(client_frame(0x2, helpers.PINGREQ_BYTES * 2) + client_frame(0xA, b"ignored"))
    assert client.mqtt_bytes(4) == helpers.PINGRESP_BYTES * 2
    client.send(client_frame(0x8, struct.pack("!H", 1000)))
    client.expect_close(1000)


@pytest.mark.coremq_only("coremq's own HTTP refusals")
@pytest.mark.parametrize("request_bytes, status, header", [
    (upgrade_request(method=b"POST"), 405, ("allow", "GET")),
    (upgrade_request(omit=(b"Upgrade",)), 400, None),
    (upgrade_request(omit=(b"Connection",)), 400, None),
    (upgrade_request(omit=(b"Host",)), 400, None),
    (upgrade_request(key=b"short"), 400, None),
    (upgrade_request(version=b"8"), 426, ("sec-websocket-version", "13")),
    (upgrade_request(protocol=b"chat"), 400, None),
    (b"GET /mqtt HTTP/1.0\r\nHost: x\r\n\r\n", 400, None),
    (b"GET /" + b"a" * 5000, 431, None),
], ids=["post", "no-upgrade", "no-connection", "no-host", "bad-key", "version-8", "other-protocol",
        "http-1.0", "too-large"])
def test_bad_upgrade_request_gets_its_status_and_is_closed(raw_ws, request_bytes, status, header):
    client = raw_ws()
    client.send(request_bytes)
    got_status, headers, body = client.http_response()
    assert got_status == status, (headers, body)
    assert body.strip(), "the answer says why"
    if header is not None:
        assert headers.get(header[0]) == header[1], headers
    client.expect_eof()


@pytest.mark.coremq_only("mosquitto (libwebsockets) carries no MQTT without a subprotocol")
def test_upgrade_without_subprotocol_is_accepted(raw_ws, names):
    client = raw_ws()
    headers = client.upgrade(protocol=None)
    assert "sec-websocket-protocol" not in headers
    client.send(client_frame(0x2, helpers.connect_packet(names.client("no-protocol", 0))))
    assert client.mqtt_bytes(4) == CONNACK_ACCEPTED


@pytest.mark.coremq_only("coremq's close codes")
@pytest.mark.parametrize("frame, code", [
    (client_frame(0x2, helpers.PINGREQ_BYTES, masked=False), 1002),
    (client_frame(0x1, b"text"), 1003),
    (bytes([0x82 | 0x40, 0x80 | 2]) + b"\x01\x02\x03\x04" + b"\xc1\x02", 1002),  # RSV1 set
    (client_frame(0x9, b"x" * 126), 1002),
    (client_frame(0x0, b"orphan"), 1002),
    # A header announcing 2 MiB, over the bound (the 1 MiB --max-packet-size and a fixed header).
    (struct.pack("!BBQ", 0x82, 0x80 | 127, 2 << 20) + b"\x01\x02\x03\x04", 1009),
], ids=["unmasked", "text", "reserved-bit", "long-ping", "orphan-continuation", "too-large"])
def test_bad_frame_closes_with_its_code(raw_ws, names, frame, code):
    client = raw_ws()
    client.upgrade()
    client.send(client_frame(0x2, helpers.connect_packet(names.client("bad-frame", 0))))
    assert client.mqtt_bytes(4) == CONNACK_ACCEPTED
    client.send(frame)
    client.expect_close(code)


# ------------------------------------------------------------------ MQTT.js in Chromium

def browser_missing():
    """Why the browser test cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "python3-selenium is not installed (scripts/deps installs it)"
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            return f"{path} is missing (scripts/deps installs chromium and chromium-driver)"
    if not MQTT_JS.exists():
        return f"{MQTT_JS} is missing (scripts/deps runs npm install in tests/browser)"
    return None


class PageServer:
    """Serves a blank page with MQTT.js on a loopback port: Chromium lets a page reach a
    loopback WebSocket only from a loopback origin (Local Network Access), as a real web app
    served next to the broker would be."""

    def __init__(self):
        script = MQTT_JS.read_bytes()
        page = b"<!doctype html><html><head><script src='/mqtt.min.js'></script></head><body></body></html>"

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body, kind = (script, "text/javascript") if self.path == "/mqtt.min.js" else (page, "text/html")
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *arguments):
                pass

        self.server = http.server.ThreadingHTTPServer((helpers.HOST, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://{helpers.HOST}:{self.server.server_address[1]}/"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# Runs in the page: connect, subscribe, publish to the same topic, and report the message.
BROWSER_SCRIPT = """
const [url, topic, version, done] = arguments;
const client = mqtt.connect(url, {clientId: 'mqttjs-' + Math.random().toString(16).slice(2),
                                  protocolVersion: version, reconnectPeriod: 0, connectTimeout: 10000});
client.on('error', (error) => done({error: String(error)}));
client.on('connect', () => {
  client.subscribe(topic, {qos: 1}, (error, granted) => {
    if (error) { done({error: 'subscribe: ' + error}); return; }
    client.publish(topic, 'hello from chromium', {qos: 1});
  });
});
client.on('message', (received, payload, packet) => {
  client.end(false, {}, () => done({topic: received, payload: payload.toString(), qos: packet.qos}));
});
"""


@pytest.mark.parametrize("protocol_version", [4, 5], ids=["mqtt311", "mqtt5"])
def test_mqttjs_in_headless_chromium(broker, names, protocol_version):
    missing = browser_missing()
    if missing is not None:
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # --no-sandbox: the tests run as root, where Chromium's sandbox cannot start.
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    pages = PageServer()
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_script_timeout(30)
        driver.get(pages.url)
        topic = names.topic(f"browser-v{protocol_version}")
        result = driver.execute_async_script(BROWSER_SCRIPT, f"ws://{helpers.HOST}:{broker.ws_port}/mqtt",
                                             topic, protocol_version)
    finally:
        driver.quit()
        pages.close()
    assert "error" not in result, result
    assert (result["topic"], result["payload"], result["qos"]) == (topic, "hello from chromium", 1)

#!/usr/bin/env python3
"""Runs an installed coremq the way its systemd unit does (Type=notify) without systemd: a
datagram socket stands in for systemd's NOTIFY_SOCKET, and the broker must send READY=1 once it
listens (its start-up line is logged before), RELOADING=1 then READY=1 around SIGHUP, and
STOPPING=1 at SIGTERM, then exit 0. A PINGREQ/PINGRESP round trip on the port it logged proves
READY=1 came after the listener accepted connections.
Built without libsystemd (no unit installed), coremq sends nothing: --no-notify then checks only
that it serves (the first "listening on" line) and stops with exit 0.
Usage: service_check.py [--no-notify] COREMQ CONFIG [FLAG...]   (every wait bounded: 20 s)"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading

WAIT_SECONDS = 20


def fail(message, log=""):
    sys.exit(f"FAIL: {message}\n{log}")


def receive_exactly(client, count):
    data = b""
    while len(data) < count:
        chunk = client.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def main():
    arguments = sys.argv[1:]
    notify_expected = arguments[0] != "--no-notify"
    if not notify_expected:
        arguments = arguments[1:]
    binary, config, *flags = arguments
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "notify")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(path)
        notify.settimeout(WAIT_SECONDS)
        environment = dict(os.environ, NOTIFY_SOCKET=path)
        broker = subprocess.Popen([binary, "-c", config, "--threads=1", "--pin-threads=false", *flags],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  env=environment, text=True)
        log_lines = []
        reader = threading.Thread(target=lambda: log_lines.extend(broker.stderr), daemon=True)
        reader.start()

        def receive(expected):
            if not notify_expected:
                return {}
            try:
                message = notify.recv(4096).decode()
            except socket.timeout:
                broker.kill()
                fail(f"no {expected} from coremq within {WAIT_SECONDS} s", "".join(log_lines))
            fields = dict(line.split("=", 1) for line in message.split("\n") if "=" in line)
            if fields.get(expected.split("=")[0]) != expected.split("=")[1]:
                broker.kill()
                fail(f"expected {expected}, got {message!r}", "".join(log_lines))
            return fields

        try:
            ready = receive("READY=1")
            # The start-up lines are written before READY=1; give the reader thread a moment
            # by waiting on it for the line, bounded.
            port = None
            for _ in range(WAIT_SECONDS * 20):
                found = [re.search(r"listening on mqtt://127\.0\.0\.1:(\d+)", line) for line in list(log_lines)]
                found = [match for match in found if match]
                if found:
                    port = int(found[0].group(1))
                    break
                threading.Event().wait(0.05)
            if port is None:
                fail("READY=1 but no 'listening on mqtt://127.0.0.1:PORT' line", "".join(log_lines))
            with socket.create_connection(("127.0.0.1", port), timeout=WAIT_SECONDS) as client:
                # CONNECT (MQTT 3.1.1, clean session, client id "svc"), then PINGREQ.
                client.sendall(bytes([0x10, 15, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 3]) + b"svc")
                if receive_exactly(client, 4) != bytes([0x20, 2, 0, 0]):
                    fail("no CONNACK 0 after READY=1", "".join(log_lines))
                client.sendall(bytes([0xC0, 0]))
                if receive_exactly(client, 2) != bytes([0xD0, 0]):
                    fail("no PINGRESP after READY=1", "".join(log_lines))
            broker.send_signal(signal.SIGHUP)
            reloading = receive("RELOADING=1")
            if notify_expected and not reloading.get("MONOTONIC_USEC", "").isdigit():
                fail(f"RELOADING=1 without MONOTONIC_USEC: {reloading}")
            receive("READY=1")
            broker.send_signal(signal.SIGTERM)
            receive("STOPPING=1")
            status = broker.wait(timeout=WAIT_SECONDS)
            reader.join(timeout=WAIT_SECONDS)
            if status != 0:
                fail(f"coremq exited with {status} after SIGTERM", "".join(log_lines))
            if notify_expected:
                print(f"service: READY=1 ({ready.get('STATUS')}), served 127.0.0.1:{port}, RELOADING=1/READY=1 "
                      "on SIGHUP, STOPPING=1 and exit 0 on SIGTERM")
            else:
                print(f"service (no sd_notify in this build): served 127.0.0.1:{port}, exit 0 on SIGTERM")
        finally:
            if broker.poll() is None:
                broker.kill()
                broker.wait()


if __name__ == "__main__":
    main()

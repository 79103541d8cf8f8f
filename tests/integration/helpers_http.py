# HTTP helpers for the admin listener tests (test_28_http, test_29_dashboard, and the tests
# that read counters from /metrics): the listener's URL from the broker's log, requests with
# a bounded timeout, and a parser of the Prometheus text exposition. Everything runs in the
# pytest process; nothing but loopback is contacted.
import json
import re
import urllib.error
import urllib.request

import helpers

HTTP_SECONDS = 10


def http_base(broker) -> str:
    """http://127.0.0.1:PORT of a broker started with http_listener=":0" (from its log)."""
    match = re.search(r"http admin listening on (http://127\.0\.0\.1:\d+)/", broker.log())
    assert match is not None, f"no http admin listener in the log:\n{broker.log_tail()}"
    return match.group(1)


def request(broker, method, path, body=None, headers=None):
    """(status, headers, body bytes); never raises for an HTTP error status."""
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(http_base(broker) + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=HTTP_SECONDS) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def get_json(broker, path, expect=200, headers=None):
    status, _, body = request(broker, "GET", path, headers=headers)
    assert status == expect, f"GET {path}: {status} {body!r}"
    return json.loads(body)


def parse_metrics(text: str) -> dict:
    """{(name, frozenset(label items)): value} of every sample line."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)", line)
        assert match is not None, f"not a sample line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def metrics(broker, headers=None) -> dict:
    status, response_headers, body = request(broker, "GET", "/metrics", headers=headers)
    assert status == 200, f"GET /metrics: {status} {body!r}"
    assert response_headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse_metrics(body.decode())


def metric(samples: dict, name: str, **labels) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"no sample {name}{labels}"
    return samples[key]


def wait_for_metric(broker, predicate, what, timeout=10.0):
    """Polls /metrics (bounded) until predicate(samples) holds. A connection refused at the
    HTTP connection limit (closes not yet seen by the admin thread) is tried again."""
    latest = {}

    def check():
        nonlocal latest
        try:
            latest = metrics(broker)
        except (ConnectionResetError, urllib.error.URLError):
            return False
        return predicate(latest)

    if not helpers.wait_until(check, timeout=timeout, interval=0.1):
        raise AssertionError(f"{what} not seen in /metrics within {timeout} s")
    return latest

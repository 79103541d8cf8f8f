# 29 the web dashboard at / of the HTTP admin listener, in headless Chromium (Debian's
# chromium and chromium-driver driven by python3-selenium): the page loads with no console
# errors, its numbers move while mqtt-bench publishes, the clients table finds a paho client
# by prefix and its disconnect button disconnects it, the topic explorer shows a retained
# payload; a screenshot is saved in the test's tmp dir. Every wait is bounded.
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import COREMQ_BINARY, REPO_ROOT
from helpers_http import http_base

pytestmark = pytest.mark.coremq_only("--http-listener is a coremq flag")

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
BENCH_BINARY = os.environ.get("MQTT_BENCH_BINARY") or str(
    Path(COREMQ_BINARY).resolve().parents[2] / "tools/mqtt-bench/mqtt-bench")
WAIT_SECONDS = 20


def missing():
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "python3-selenium is not installed (scripts/deps installs it)"
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            return f"{path} is missing (scripts/deps installs chromium and chromium-driver)"
    for candidate in (BENCH_BINARY, str(REPO_ROOT / "build/tools/mqtt-bench/mqtt-bench")):
        if os.access(candidate, os.X_OK):
            return None
    return f"no mqtt-bench binary at {BENCH_BINARY} (set MQTT_BENCH_BINARY)"


def bench_binary():
    return BENCH_BINARY if os.access(BENCH_BINARY, os.X_OK) else str(REPO_ROOT / "build/tools/mqtt-bench/mqtt-bench")


def number(text):
    text = text.strip()
    scale = {"k": 1e3, "M": 1e6}.get(text[-1:], 1)
    try:
        return float(text.rstrip("kM")) * scale
    except ValueError:
        return None


def test_dashboard_in_headless_chromium(start_broker, clients, names, tmp_path):
    why = missing()
    if why is not None:
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    broker = start_broker(http_listener=":0")
    watched = clients.paho(names.client(f"dash-{names.tag}", 1), broker=broker)
    retained_topic = names.topic("retained")
    watched.publish(retained_topic, b"twenty-one point five", qos=1, retain=True)

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # --no-sandbox: the tests run as root, where Chromium's sandbox cannot start.
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1600"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    bench = None
    try:
        wait = WebDriverWait(driver, WAIT_SECONDS)
        driver.get(http_base(broker) + "/")
        assert driver.title == "coremq"
        text = lambda element_id: driver.find_element(By.ID, element_id).text  # noqa: E731
        wait.until(lambda _: number(text("messages-received")) is not None)
        received_before = number(text("messages-received"))
        assert number(text("shards")) == broker.threads
        assert driver.execute_script("return typeof Chart") == "function", "Chart.js did not load"

        # Numbers move while mqtt-bench publishes (bounded: 4 s at 2,000 msg/s).
        bench = subprocess.Popen(
            [bench_binary(), "run", "--scenario", "pairs", "--pairs", "4", "--qos", "0", "--rate", "2000",
             "--duration", "4s", "--port", str(broker.port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        wait.until(lambda _: (number(text("rate-in")) or 0) > 0)
        wait.until(lambda _: number(text("messages-received")) > received_before)
        assert bench.wait(timeout=60) == 0, bench.stdout.read().decode(errors="replace")[-2000:]

        # The topic explorer shows the retained payload as text.
        wait.until(lambda _: "twenty-one point five" in driver.find_element(By.ID, "topics").text)

        # Search the clients table by prefix and disconnect the paho client from it.
        search = driver.find_element(By.ID, "client-search")
        search.send_keys(f"dash-{names.tag}")
        row_path = f"//table[@id='clients']//tr[@data-client-id='{watched.client._client_id.decode()}']"
        wait.until(lambda _: len(driver.find_elements(By.XPATH, row_path)) == 1
                   and len(driver.find_elements(By.XPATH, "//table[@id='clients']/tbody/tr")) == 1)
        driver.save_screenshot(str(tmp_path / "dashboard.png"))
        driver.find_element(By.XPATH, row_path + "//button[@class='disconnect']").click()
        assert watched.disconnected.wait(WAIT_SECONDS), "the disconnect button did not disconnect the client"

        # The recent log lines show that disconnect, with the admin reason.
        client_id = watched.client._client_id.decode()
        wait.until(lambda _: any(client_id in line and "admin" in line
                                 for line in driver.find_element(By.ID, "logs").text.splitlines()))

        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == [], errors
    finally:
        if bench is not None and bench.poll() is None:
            bench.kill()
            bench.wait(10)
        if bench is not None:
            bench.stdout.close()
        driver.quit()
    screenshot = tmp_path / "dashboard.png"
    assert screenshot.exists() and screenshot.stat().st_size > 10000

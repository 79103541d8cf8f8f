# 20 coremq-passwd: the tool creates, updates and deletes users (-c, -b, -D, -U, -H, -I, the
# interactive prompt) and Debian's real mosquitto broker, given the file as its password_file
# with allow_anonymous false, accepts the right password (CONNACK 0) and refuses a wrong one or
# a deleted user (CONNACK 5), for each hash format mosquitto can read: $6$ (sha512) and $7$
# (sha512-pbkdf2); $argon2id$ only from mosquitto 2.1 (skipped on 2.0). It also checks the
# tool's own promises: mode 0600 for a new file, an existing file's mode kept, a symbolic link
# followed, errors with a non-zero exit that leave the file alone, no echo of a typed password.
# No coremq broker is involved, so these tests are not run per thread count.
import fcntl
import os
import pty
import re
import select
import stat
import subprocess
import termios
import time

import pytest

import helpers
from conftest import MOSQUITTO_BINARY, free_port
from helpers import connack_bytes, connect_packet

CONNACK_ACCEPTED = 0
CONNACK_NOT_AUTHORIZED = 5
TOOL_SECONDS = 30


def run_tool(tool, *arguments, check=True):
    result = subprocess.run([tool, *arguments], capture_output=True, text=True, timeout=TOOL_SECONDS,
                            stdin=subprocess.DEVNULL)
    if check:
        assert result.returncode == 0, f"{arguments}: exit {result.returncode}: {result.stderr}"
    return result


def users_in(path):
    return [line.split(":", 1)[0] for line in path.read_text().splitlines()
            if line and not line.startswith("#") and ":" in line]


def mosquitto_version():
    if not os.access(MOSQUITTO_BINARY, os.X_OK):
        return None
    output = subprocess.run([MOSQUITTO_BINARY, "-h"], capture_output=True, text=True, timeout=10).stdout
    match = re.search(r"mosquitto version (\d+)\.(\d+)", output)
    return (int(match.group(1)), int(match.group(2))) if match else None


class PasswordMosquitto:
    """Debian's mosquitto on a free loopback port with password_file and no anonymous clients."""

    def __init__(self, directory, password_file):
        self.directory = directory
        self.password_file = password_file
        self.port = free_port()
        self.log_path = directory / "mosquitto.log"
        self.process = None

    def start(self):
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous false",
                 f"password_file {self.password_file}", "persistence false", "log_dest stderr",
                 "log_type all"]
        # As root, mosquitto drops to user "mosquitto", which cannot read a 0600 file of root's.
        if os.geteuid() == 0:
            lines.append("user root")
        config = self.directory / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([MOSQUITTO_BINARY, "-c", str(config)], stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        ready = helpers.wait_until(
            lambda: self.process.poll() is not None or
            re.search(r"mosquitto version \S+ running", self.log()) is not None, timeout=10)
        assert ready and self.process.poll() is None, f"mosquitto did not start:\n{self.log()}"
        return self

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def connack(self, username, password):
        """The CONNACK's bytes for a 3.1.1 CONNECT with username and password."""
        client = helpers.RawClient(self.port)
        try:
            client.send(connect_packet(f"pw-{os.getpid()}", username=username, password=password))
            return client.receive(packet_type=helpers.CONNACK).raw
        finally:
            client.close()

    def assert_accepts(self, username, password):
        assert self.connack(username, password) == connack_bytes(0, CONNACK_ACCEPTED), \
            f"mosquitto refused {username}:\n{self.log()[-2000:]}"

    def assert_refuses(self, username, password):
        assert self.connack(username, password) == connack_bytes(0, CONNACK_NOT_AUTHORIZED), \
            f"mosquitto did not refuse {username}"

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def start_mosquitto(tmp_path):
    if mosquitto_version() is None:
        pytest.skip(f"no {MOSQUITTO_BINARY} (apt-get install mosquitto)")
    started = []

    def start(password_file):
        broker = PasswordMosquitto(tmp_path / f"mosquitto{len(started)}", password_file)
        broker.directory.mkdir()
        started.append(broker)
        return broker.start()

    yield start
    for broker in started:
        broker.stop()


def test_create_update_delete_and_mosquitto_reads_the_file(coremq_passwd, start_mosquitto, tmp_path):
    path = tmp_path / "passwords"
    run_tool(coremq_passwd, "-c", "-b", str(path), "alice", "first secret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert re.fullmatch(r"alice:\$7\$1000\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==\n", path.read_text())
    run_tool(coremq_passwd, "-H", "sha512", "-b", str(path), "bob", "b0b:pw")
    run_tool(coremq_passwd, "-b", str(path), "carol", "carol")
    run_tool(coremq_passwd, "-b", str(path), "alice", "second secret")  # update in place
    run_tool(coremq_passwd, "-D", str(path), "carol")
    assert users_in(path) == ["alice", "bob"]

    broker = start_mosquitto(path)
    broker.assert_accepts("alice", "second secret")
    broker.assert_refuses("alice", "first secret")
    broker.assert_accepts("bob", "b0b:pw")
    broker.assert_refuses("bob", "b0b")
    broker.assert_refuses("carol", "carol")  # deleted


@pytest.mark.parametrize("scheme", ["sha512", "sha512-pbkdf2", "argon2id"])
def test_each_hash_format_with_mosquitto(coremq_passwd, start_mosquitto, tmp_path, scheme):
    if scheme == "argon2id" and mosquitto_version() < (2, 1):
        pytest.skip(f"mosquitto {mosquitto_version()} reads no $argon2id$ hashes (2.1 does); "
                    "the unit tests check coremq's own reading of them")
    path = tmp_path / "passwords"
    run_tool(coremq_passwd, "-c", "-H", scheme, "-b", str(path), "dev-1", "pa55 w0rd")
    prefix = {"sha512": "$6$", "sha512-pbkdf2": "$7$", "argon2id": "$argon2id$"}[scheme]
    assert path.read_text().startswith("dev-1:" + prefix)
    broker = start_mosquitto(path)
    broker.assert_accepts("dev-1", "pa55 w0rd")
    broker.assert_refuses("dev-1", "pa55 w0rD")
    broker.assert_refuses("dev-2", "pa55 w0rd")


def test_iterations_flag_with_mosquitto(coremq_passwd, start_mosquitto, tmp_path):
    path = tmp_path / "passwords"
    run_tool(coremq_passwd, "-c", "-I", "20000", "-b", str(path), "slow", "pw")
    assert path.read_text().startswith("slow:$7$20000$")
    broker = start_mosquitto(path)
    broker.assert_accepts("slow", "pw")
    broker.assert_refuses("slow", "pW")


def test_upgrade_hashes_plain_text_and_keeps_the_rest(coremq_passwd, start_mosquitto, tmp_path):
    path = tmp_path / "passwords"
    run_tool(coremq_passwd, "-c", "-b", str(path), "hashed", "already")
    hashed_line = path.read_text()
    path.write_text("# devices\n\nplain:text pw\r\n" + hashed_line + "other:x\n")
    run_tool(coremq_passwd, "-U", str(path))
    lines = path.read_text().splitlines()
    assert lines[0] == "# devices" and lines[1] == ""
    assert lines[2].startswith("plain:$7$1000$") and lines[4].startswith("other:$7$")
    assert lines[3] + "\n" == hashed_line, "a line that already held a hash was hashed again"
    upgraded = path.read_text()
    run_tool(coremq_passwd, "-U", str(path))
    assert path.read_text() == upgraded, "a second -U changed the file"

    broker = start_mosquitto(path)
    broker.assert_accepts("plain", "text pw")
    broker.assert_accepts("hashed", "already")
    broker.assert_accepts("other", "x")
    broker.assert_refuses("plain", "text")


def test_errors_exit_non_zero_and_leave_the_file(coremq_passwd, tmp_path):
    path = tmp_path / "passwords"
    missing = tmp_path / "missing"
    result = run_tool(coremq_passwd, "-b", str(missing), "u", "p", check=False)
    assert result.returncode == 1 and "Unable to open password file" in result.stderr
    assert not missing.exists()

    run_tool(coremq_passwd, "-c", "-b", str(path), "alice", "pw")
    before = path.read_text()
    cases = [
        (["-D", str(path), "nobody"], "User nobody not found"),
        (["-b", str(path), "a:b", "pw"], "must not contain the ':'"),
        (["-b", str(path), "#x", "pw"], "must not start with '#'"),
        (["-b", str(path), " x", "pw"], "blank"),
        (["-H", "md5", "-b", str(path), "x", "pw"], "Unknown hash type 'md5'"),
        (["-H", "sha512", "-I", "5", "-b", str(path), "x", "pw"], "-I applies to -H sha512-pbkdf2 only"),
        (["-I", "0", "-b", str(path), "x", "pw"], "-I needs a number"),
        (["-I", "5000000", "-b", str(path), "x", "pw"], "above 1000000"),
        (["-c", "-D", str(path), "alice"], "-c and -D cannot be used together"),
        (["-U", "-b", str(path)], "-U cannot be used"),
        (["-b", str(path), "x"], "Missing arguments"),
        (["-b", str(path), "x", "p", "extra"], "Too many arguments"),
        (["-Z", str(path), "x"], "Unknown option '-Z'"),
        (["-b", str(path), "x", "p" * 65536], "less than 65536"),
    ]
    for arguments, message in cases:
        result = run_tool(coremq_passwd, *arguments, check=False)
        assert result.returncode == 1, f"{arguments[:4]}: exit {result.returncode}"
        assert message in result.stderr, f"{arguments[:4]}: {result.stderr}"
        assert path.read_text() == before, f"{arguments[:4]} changed the file"
    assert [p.name for p in tmp_path.iterdir()] == ["passwords"], "a temporary file was left behind"

    help_result = run_tool(coremq_passwd, "--help")
    assert "Usage: coremq-passwd" in help_result.stdout and "-U" in help_result.stdout
    assert run_tool(coremq_passwd, check=False).returncode == 1


def test_keeps_mode_follows_links_and_writes_to_stdout(coremq_passwd, tmp_path):
    path = tmp_path / "passwords"
    run_tool(coremq_passwd, "-c", "-b", str(path), "alice", "pw")
    os.chmod(path, 0o640)
    run_tool(coremq_passwd, "-b", str(path), "bob", "pw")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    link = tmp_path / "link"
    link.symlink_to(path)
    run_tool(coremq_passwd, "-b", str(link), "carol", "pw")
    assert link.is_symlink() and users_in(path) == ["alice", "bob", "carol"]

    result = run_tool(coremq_passwd, "-c", "-b", "-", "dave", "pw")
    assert re.fullmatch(r"dave:\$7\$1000\$\S+\n", result.stdout)
    assert not (tmp_path / "-").exists()


def read_until(master, text, timeout=10.0):
    """Bytes from the pty until text appears (bounded)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while text not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{text!r} not seen; got {seen!r}"
        ready, _, _ = select.select([master], [], [], remaining)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                chunk = b""
            assert chunk, f"pty closed before {text!r}; got {seen!r}"
            seen += chunk
    return seen


def run_on_terminal(tool, arguments, typed):
    """Runs tool with a pseudo-terminal as its controlling terminal; typed[i] is sent after the
    i-th prompt. Returns (exit code, everything the terminal showed)."""
    master, slave = pty.openpty()

    def take_terminal():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen([tool, *arguments], stdin=slave, stdout=slave, stderr=slave,
                               start_new_session=True, preexec_fn=take_terminal)
    os.close(slave)
    shown = b""
    try:
        for prompt, line in zip([b"Password: ", b"Reenter password: "], typed):
            shown += read_until(master, prompt)
            # Type only once echo is off, as a person would after seeing the prompt.
            assert helpers.wait_until(lambda: not termios.tcgetattr(master)[3] & termios.ECHO, timeout=5)
            os.write(master, line + b"\n")
        process.wait(TOOL_SECONDS)
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        os.close(master)
    return process.returncode, shown


def test_prompts_without_echo_and_confirms(coremq_passwd, start_mosquitto, tmp_path):
    path = tmp_path / "passwords"
    code, shown = run_on_terminal(coremq_passwd, ["-c", str(path), "tty-user"], [b"typed s3cret", b"typed s3cret"])
    assert code == 0, shown
    assert b"typed s3cret" not in shown, f"the password was echoed: {shown!r}"
    assert users_in(path) == ["tty-user"]

    code, shown = run_on_terminal(coremq_passwd, [str(path), "tty-user"], [b"new one", b"new 0ne"])
    assert code == 1 and b"Passwords do not match" in shown, shown
    code, shown = run_on_terminal(coremq_passwd, [str(path), "tty-user"], [b""])
    assert code == 1 and b"Empty password" in shown, shown

    broker = start_mosquitto(path)
    broker.assert_accepts("tty-user", "typed s3cret")
    broker.assert_refuses("tty-user", "new one")

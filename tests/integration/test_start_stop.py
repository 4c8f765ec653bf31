"""Starting `tenang serve` / `tenang demo` as an operator does, as subprocesses with a
deadline: a port in use, a data directory that cannot be written and a config that
cannot work each end the process at once with one line naming the address or path (no
traceback, no hang); a good start says where the database is and how to create the
first admin UI user."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import cli_support as cli

REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 30.0  # a failed start takes about a second; a hang takes forever
READY = re.compile(r"ready on http://127\.0\.0\.1:(\d+) \(admin http://127\.0\.0\.1:(\d+)\)")
ENV = {**os.environ, "TENANG_ADMIN_TOKEN": "test-admin-token"}


def write_config(folder: Path, listen: str = "127.0.0.1:0", admin: str = "127.0.0.1:0",
                 store: str = "sqlite:///./data/tenang.db", extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tenang.toml"
    path.write_text(f"""
[server]
listen = "{listen}"
admin_listen = "{admin}"

[store]
url = "{store}"
{extra}
[[upstreams]]
name = "antrean"
prefix = "/antreanrs"
target = "http://127.0.0.1:9/antreanrs"
""", encoding="utf-8")
    return path


def tenang(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return cli.tenang(*args, env=ENV, stdin=stdin, timeout_s=DEADLINE_S)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The only line on stderr (asserting there is exactly one and no traceback)."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


class Serving:
    """A `tenang serve` subprocess, its output collected in a file."""

    def __init__(self, config: Path, out: Path) -> None:
        self.out = out
        with out.open("w") as sink:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "proxy", "serve", "--config", str(config)],
                cwd=REPO, env=ENV, stdout=sink, stderr=subprocess.STDOUT, text=True)

    def wait_ready(self) -> tuple[int, int]:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            found = READY.search(self.out.read_text())
            if found:
                return int(found[1]), int(found[2])
            assert self.proc.poll() is None, self.out.read_text()
            time.sleep(0.05)  # polling interval of the deadline loop
        raise AssertionError(f"not ready in {DEADLINE_S} s:\n{self.out.read_text()}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=DEADLINE_S)


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[list[Serving]]:
    started: list[Serving] = []
    yield started
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port some other program listens on."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock.getsockname()[1]


@pytest.mark.slow
def test_second_serve_on_the_same_ports_exits_at_once_naming_the_address(
        tmp_path: Path, serving: list[Serving]) -> None:
    first = Serving(write_config(tmp_path / "a"), tmp_path / "a.out")
    serving.append(first)
    port, admin_port = first.wait_ready()
    # The same database and ports, as when an operator starts it twice.
    config = write_config(tmp_path / "a", f"127.0.0.1:{port}", f"127.0.0.1:{admin_port}")

    started = time.monotonic()
    second = tenang("serve", "--config", str(config))

    assert second.returncode == 1
    assert time.monotonic() - started < DEADLINE_S
    line = one_line_error(second)
    assert f"127.0.0.1:{admin_port}" in line and "address already in use" in line, line
    assert first.proc.poll() is None, "the first Tenang must keep running"
    assert first.stop() == 0


@pytest.mark.slow
def test_a_taken_simrs_port_exits_at_once_naming_the_address(
        tmp_path: Path, taken_port: int) -> None:
    result = tenang("serve", "--config", str(write_config(tmp_path, f"127.0.0.1:{taken_port}")))

    assert result.returncode == 1
    line = one_line_error(result)
    assert line == (f"tenang: cannot listen on 127.0.0.1:{taken_port} (server.listen): "
                    "address already in use (is another Tenang, or another program, "
                    "using it?)")


@pytest.mark.slow
def test_demo_with_its_port_taken_exits_at_once_naming_the_address(
        tmp_path: Path, taken_port: int) -> None:
    result = tenang("demo", "--dir", str(tmp_path / "demo"), "--port", str(taken_port),
                    "--admin-port", "0", "--duration", "60")

    assert result.returncode == 1, result.stdout + result.stderr
    line = one_line_error(result)
    assert f"127.0.0.1:{taken_port}" in line and "address already in use" in line, line


@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_admin_listen_equal_to_listen_is_refused(tmp_path: Path, command: str) -> None:
    config = write_config(tmp_path, "0.0.0.0:18080", "127.0.0.1:18080")

    result = tenang(command, "--config", str(config))

    assert result.returncode == 2
    assert one_line_error(result) == (
        "tenang: configuration error: server.admin_listen: must use another port than "
        "server.listen (0.0.0.0:18080)")


@pytest.mark.slow
def test_serve_prints_the_database_path_and_how_to_create_the_first_user(
        tmp_path: Path, serving: list[Serving]) -> None:
    config = write_config(tmp_path / "etc", store="sqlite:///../var/tenang.db")
    first = Serving(config, tmp_path / "first.out")
    serving.append(first)
    first.wait_ready()
    assert first.stop() == 0
    printed = first.out.read_text()
    assert f"tenang: database {(tmp_path / 'var' / 'tenang.db').resolve()}\n" in printed
    assert ("no admin UI user exists yet" in printed
            and f"tenang user add NAME --role admin --config {config}" in printed), printed

    added = tenang("user", "add", "siti", "--role", "admin", "--config", str(config),
                   "--password-stdin", stdin="a-long-password\n")
    assert added.returncode == 0, added.stderr
    second = Serving(config, tmp_path / "second.out")
    serving.append(second)
    second.wait_ready()
    assert second.stop() == 0
    assert "no admin UI user" not in second.out.read_text()


@pytest.mark.slow
def test_a_user_in_the_config_file_silences_the_hint(
        tmp_path: Path, serving: list[Serving]) -> None:
    users = ('[[admin.users]]\nname = "siti"\nrole = "admin"\n'
             'password_hash = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g"\n')
    first = Serving(write_config(tmp_path, extra=users), tmp_path / "out")
    serving.append(first)
    first.wait_ready()
    assert first.stop() == 0
    assert "no admin UI user" not in first.out.read_text()


@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_a_data_directory_that_cannot_be_created_is_named(tmp_path: Path,
                                                         command: str) -> None:
    (tmp_path / "state").write_text("a file, not a directory")
    config = write_config(tmp_path, store="sqlite:///./state/data/tenang.db")

    result = tenang(command, "--config", str(config))

    assert result.returncode == 2
    assert one_line_error(result) == (
        f"tenang: configuration error: store.url: data directory {tmp_path}/state/data "
        f"does not exist and cannot be created ({tmp_path}/state is not writable): "
        "create it, or fix the path")


def without_root_override() -> list[str]:
    """A command prefix under which permission bits bind: root may write anywhere, so as
    root the check runs without the capabilities that override file permissions."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and util-linux's setpriv is not installed")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]


@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_a_read_only_data_directory_is_named(tmp_path: Path, command: str) -> None:
    config = write_config(tmp_path, store="sqlite:///./data/tenang.db")
    (tmp_path / "data").mkdir()
    (tmp_path / "data").chmod(0o555)

    result = subprocess.run(
        [*without_root_override(), sys.executable, "-m", "proxy", command, "--config",
         str(config)], cwd=REPO, env=ENV, capture_output=True, text=True,
        timeout=DEADLINE_S, check=False)

    assert result.returncode == 2
    assert one_line_error(result) == (
        f"tenang: configuration error: store.url: data directory {tmp_path}/data is "
        "read-only for this user: Tenang writes tenang.db and its -wal/-shm files there")


def test_check_config_names_the_database_it_will_use(tmp_path: Path) -> None:
    config = write_config(tmp_path, store="sqlite:////var/lib/tenang-test-x/tenang.db")

    result = tenang("check-config", "--config", str(config))

    assert result.returncode == 0, result.stderr
    assert ("database: /var/lib/tenang-test-x/tenang.db (its directory is created at "
            "start)") in result.stdout


def test_check_config_notes_a_route_path_no_endpoint_has(tmp_path: Path) -> None:
    routes = """preset = "antrean"
cons_id = "12345"
unsigned_replays = true
[[upstreams.routes]]
match = "POST antrean/updatewaktuu"
mode = "queue"
[[upstreams.routes]]
match = "POST antrean/updatewaktu"
mode = "queue"
"""
    config = write_config(tmp_path)
    config.write_text(config.read_text() + routes)

    result = tenang("check-config", "--config", str(config))

    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stdout.splitlines() if "routes[" in line]
    assert notes == [
        "note: upstreams[0].routes[0].match 'POST antrean/updatewaktuu' matches none of the "
        "antrean preset's endpoints: check the path (it applies only to requests for "
        "exactly such a path)"]


def test_the_simulator_with_its_port_taken_exits_naming_the_address(taken_port: int) -> None:
    result = tenang("simulate-bpjs", "--listen", f"127.0.0.1:{taken_port}", "--cons-id", "1",
                    "--secret", "s")

    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{taken_port} (--listen): address already in use" \
        in one_line_error(result)


@pytest.mark.slow
def test_past_max_connections_serve_answers_503_on_its_own_event_loop(
        tmp_path: Path, serving: list[Serving]) -> None:
    """`tenang serve` runs uvloop, whose transports are not asyncio.Transport: the cap's
    refusal must still be written (an in-process test runs the plain asyncio loop)."""
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace(
        "[store]", "max_connections = 3\n\n[store]"), encoding="utf-8")
    server = Serving(config, tmp_path / "serve.out")
    serving.append(server)
    port, _ = server.wait_ready()
    held = [socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
            for _ in range(3)]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as extra:
            answer = extra.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        assert b"server.max_connections" in answer and b"Retry-After: 1" in answer
    finally:
        for sock in held:
            sock.close()
    assert server.stop() == 0
    assert "Traceback" not in server.out.read_text(), server.out.read_text()

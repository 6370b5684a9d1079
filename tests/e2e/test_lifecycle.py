"""Server lifecycle: startup announcement, graceful stop on SIGTERM/SIGINT, and startup
failures that name what is at fault."""

from __future__ import annotations

import signal
import socket
import subprocess

from conftest import MINIDB_BIN, MiniDBServer


def start_failure(*args: str) -> str:
    """What `minidb serve` prints when it cannot start (it must exit 1 at once)."""
    done = subprocess.run([MINIDB_BIN, "serve", *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 1, done
    return done.stderr.strip().splitlines()[-1]


def test_startup_failures_name_the_path_or_address_and_what_to_do(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    quiet = ["--flight-addr", "127.0.0.1:0", "--text-addr", "127.0.0.1:0"]
    line = start_failure("--data", str(blocker / "data"), *quiet)
    assert line == (f"minidb: cannot start: invalid data location '{blocker / 'data'}': Not a "
                    "directory (os error 20); --data must name a directory this user can create "
                    "or write to")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = start_failure("--data", str(tmp_path / "d"), "--flight-addr", "127.0.0.1:0",
                             "--text-addr", f"127.0.0.1:{port}")
    assert line.startswith(f"minidb: cannot start: cannot listen on 127.0.0.1:{port}: Address "
                           "already in use"), line
    assert "choose another address with --flight-addr, --text-addr" in line
    line = start_failure("--data", str(tmp_path / "d"), "--flight-addr", "localhost", *quiet[2:])
    assert "cannot listen on localhost" in line and "HOST:PORT" in line, line
    # One line, no backtrace, no "Caused by" list.
    assert "Caused by" not in line and "backtrace" not in line


def test_sigterm_right_after_startup_is_graceful(tmp_path):
    """Once the `listening` lines are printed the server is ready, so a SIGTERM sent at that
    moment must already take the graceful path (exit code 0), not the default signal action."""
    codes = []
    for i in range(20):
        data = tmp_path / f"data{i}"
        data.mkdir()
        srv = MiniDBServer(data, tmp_path)
        srv.start()
        codes.append(srv.stop())
    assert codes == [0] * 20


def test_sigint_stops_gracefully(server):
    with server.text() as c:
        c.ok("CREATE DATABASE s;")
        proc = server.proc
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert "Bye" in c.read_to_eof().decode("utf-8")
    assert server.stop() == 0
    server.start()
    with server.text() as c:
        assert "s" in c.query("SHOW DATABASES;").split("\n - ")

"""minidb-cli against a real server: one-shot statements, files, piped input, errors, timing,
USE, logins and TLS, and Ctrl-C at a terminal (a pseudo-terminal)."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

from conftest import MINIDB_BIN, MiniDBServer, self_signed_cert
from test_auth import hashed_line
from test_flight_control import cpu_used_within, wait_until_busy
from test_statement_limits import HEAVY

CLI = str(Path(MINIDB_BIN).with_name("minidb-cli"))


def cli(server, *args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, "--port", str(server.flight_port), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_one_shot_statements_print_tables_and_counts(server):
    done = cli(
        server,
        "-c",
        "CREATE TABLE users (id INT, name VARCHAR); INSERT INTO users VALUES (1, 'Alice'), (2, 'Bob');"
        "SELECT * FROM users ORDER BY id",
    )
    assert done.returncode == 0, done.stderr
    assert "OK, 2 row(s) affected" in done.stdout
    assert "| id | name  |" in done.stdout and "| 2  | Bob   |" in done.stdout
    assert "(2 rows)" in done.stdout


def test_files_span_lines_and_use_switches_database(server, tmp_path):
    script = tmp_path / "setup.sql"
    script.write_text(
        "CREATE DATABASE shop;\nUSE shop;\nCREATE TABLE items (\n  id INT,\n  label VARCHAR -- a comment; not the end\n);\n"
        "INSERT INTO items VALUES (7, 'a;b');\n\\timing on\nSELECT label FROM items;\n"
    )
    done = cli(server, "-f", str(script))
    assert done.returncode == 0, done.stderr
    assert "| a;b   |" in done.stdout
    assert "Timing is on." in done.stdout and "Time: " in done.stdout
    done = cli(server, "-d", "shop", "-c", "SELECT count(*) AS n FROM items")
    assert "| 1 |" in done.stdout
    # A database that does not exist fails before anything runs, even a statement that reads
    # no table, with the code of a failed connection.
    done = cli(server, "-d", "nosuchdb", "-c", "SELECT 1")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "database 'nosuchdb' does not exist" in done.stderr and done.stdout == ""


def test_piped_input_errors_and_exit_codes(server):
    done = cli(server, stdin="SELECT 1 AS one;\nSELECT * FROM missing;\nSELECT 2 AS two;\n")
    assert done.returncode == 1
    assert "| one |" in done.stdout and "| two |" in done.stdout
    assert "ERROR 42P01: table 'default.missing' does not exist" in done.stderr, done.stderr
    assert "transport" not in done.stderr
    unreachable = subprocess.run([CLI, "--port", "1", "-c", "SELECT 1"], capture_output=True, text=True, timeout=60)
    assert unreachable.returncode == 2 and "cannot connect" in unreachable.stderr


def test_login_and_tls(tmp_path):
    users = tmp_path / "users"
    users.write_text(hashed_line("alice", "secret1") + "\n")
    cert, key = self_signed_cert(tmp_path)
    (tmp_path / "data").mkdir()
    server = MiniDBServer(
        tmp_path / "data", tmp_path,
        args=["--users-file", str(users), "--tls-cert", str(cert), "--tls-key", str(key)],
    ).start()
    try:
        tls = ["--host", "localhost", "--tls-ca", str(cert)]
        done = cli(server, *tls, "-u", "alice", "-c", "SELECT 40 + 2 AS x", env={"MINIDB_PASSWORD": "secret1"})
        assert done.returncode == 0, done.stderr
        assert "| 42 |" in done.stdout
        done = cli(server, *tls, "-u", "alice", "--password", "wrong", "-c", "SELECT 1")
        assert done.returncode == 2 and "login failed: invalid user name or password" in done.stderr
        done = cli(server, *tls, "-c", "SELECT 1")
        assert done.returncode == 1 and "authentication required" in done.stderr
        assert "minidb-cli --user" in done.stderr and "Bearer" not in done.stderr
    finally:
        server.stop()


class Terminal:
    """minidb-cli on a pseudo-terminal, as a user at a keyboard runs it."""

    def __init__(self, server, home: Path):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            env = {**os.environ, "HOME": str(home), "TERM": "xterm"}
            os.execve(CLI, [CLI, "--port", str(server.flight_port)], env)
        self.seen = b""
        self.status: int | None = None

    def read_until(self, marker: bytes, timeout: float = 30) -> bytes:
        """What the terminal shows up to and including `marker` (which must appear)."""
        deadline = time.monotonic() + timeout
        while marker not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"no {marker!r} on the terminal; it shows {self.seen[-2000:]!r}"
            if select.select([self.fd], [], [], left)[0]:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # the client exited and its terminal closed
                    chunk = b""
                assert chunk, f"the terminal closed before {marker!r}: {self.seen[-2000:]!r}"
                self.seen += chunk
        shown, self.seen = self.seen.split(marker, 1)
        return shown + marker

    def type(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def exit_status(self, timeout: float = 10) -> int | None:
        """The client's exit code once it has exited, None if it is still running."""
        deadline = time.monotonic() + timeout
        while self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
            elif time.monotonic() >= deadline:
                break
            else:
                try:
                    os.read(self.fd, 65536)
                except OSError:
                    pass
                time.sleep(0.05)
        return self.status

    def close(self) -> None:
        if self.exit_status(timeout=0) is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def test_ctrl_c_cancels_the_running_statement_and_twice_at_the_prompt_quits(server, tmp_path):
    terminal = Terminal(server, tmp_path)
    try:
        terminal.read_until(b"SQL> ")
        terminal.type(HEAVY + ";\r")
        wait_until_busy(server.proc.pid)
        pressed = time.monotonic()
        terminal.type("\x03")
        terminal.read_until(b"ERROR 57014: canceling statement due to user request", timeout=5)
        terminal.read_until(b"SQL> ", timeout=5)
        assert time.monotonic() - pressed < 1.0
        # The server stopped computing, not only the client waiting.
        assert cpu_used_within(server.proc.pid, 1.0) < 0.2
        # The session goes on.
        terminal.type("SELECT 40 + 2 AS answer;\r")
        assert b"| 42     |" in terminal.read_until(b"SQL> ")
        # Ctrl-C at the prompt drops the line being typed; a second one in a row quits.
        terminal.type("SELECT 'not run'\x03")
        terminal.read_until(b"Ctrl-C again")
        terminal.type("\x03")
        assert terminal.exit_status() == 0
        assert b"not run" not in (tmp_path / ".minidb_history").read_bytes()
    finally:
        terminal.close()


def test_ctrl_c_stops_a_script_with_exit_code_130(server, tmp_path):
    script = tmp_path / "long.sql"
    script.write_text(f"CREATE TABLE reached (id INT);\n{HEAVY};\nINSERT INTO reached VALUES (1);\n")
    run = subprocess.Popen([CLI, "--port", str(server.flight_port), "-f", str(script)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_busy(server.proc.pid)
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=10)
    finally:
        run.kill()
    assert run.returncode == 130, (out, err)
    assert "canceling statement due to user request" in err
    assert cpu_used_within(server.proc.pid, 1.0) < 0.2
    done = cli(server, "-c", "SELECT count(*) AS n FROM reached")
    assert "| 0 |" in done.stdout, done.stdout

"""minidb-cli against a real server: one-shot statements, files, piped input, errors, timing,
USE, logins and TLS."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import MINIDB_BIN, MiniDBServer, self_signed_cert
from test_auth import hashed_line

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


def test_piped_input_errors_and_exit_codes(server):
    done = cli(server, stdin="SELECT 1 AS one;\nSELECT * FROM missing;\nSELECT 2 AS two;\n")
    assert done.returncode == 1
    assert "| one |" in done.stdout and "| two |" in done.stdout
    assert "ERROR:" in done.stderr and "missing" in done.stderr
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
    finally:
        server.stop()

"""minidb-cli against a real server: one-shot statements, files, piped input, errors with their
file and line, exit codes, timing, USE, logins and TLS, backslash commands, transactions, and at a
terminal (a pseudo-terminal): the prompt, history, the pager, expanded display and Ctrl-C."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
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
    # no table, with the code of a refused session.
    done = cli(server, "-d", "nosuchdb", "-c", "SELECT 1")
    assert done.returncode == 4, (done.stdout, done.stderr)
    assert "database 'nosuchdb' does not exist" in done.stderr and done.stdout == ""


def test_piped_input_errors_and_exit_codes(server):
    done = cli(server, stdin="SELECT 1 AS one;\nSELECT * FROM missing;\nSELECT 2 AS two;\n")
    assert done.returncode == 1
    assert "| one |" in done.stdout and "| two |" in done.stdout
    assert "ERROR 42P01: table 'default.missing' does not exist" in done.stderr, done.stderr
    assert "transport" not in done.stderr
    unreachable = subprocess.run([CLI, "--port", "1", "-c", "SELECT 1"], capture_output=True, text=True, timeout=60)
    assert unreachable.returncode == 2
    assert unreachable.stderr.startswith("minidb-cli: cannot connect to 127.0.0.1:1: "), unreachable.stderr
    # Each cause once, and what to do.
    assert unreachable.stderr.count("tcp connect error") <= 1, unreachable.stderr
    assert "is the server running there?" in unreachable.stderr


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
        assert done.returncode == 4 and "login failed: invalid user name or password" in done.stderr
        # Without --user the session is refused before any statement, saying how to log in.
        done = cli(server, *tls, "-c", "SELECT 1")
        assert done.returncode == 4 and "authentication required" in done.stderr
        assert "minidb-cli --user" in done.stderr and "Bearer" not in done.stderr
    finally:
        server.stop()


class Terminal:
    """minidb-cli on a pseudo-terminal, as a user at a keyboard runs it."""

    def __init__(self, server, home: Path, env: dict | None = None, rows: int = 0):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            env = {**os.environ, "HOME": str(home), "TERM": "xterm", **(env or {})}
            os.execve(CLI, [CLI, "--port", str(server.flight_port)], env)
        if rows:
            fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, 200, 0, 0))
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
        terminal.read_until(b"default=> ")
        terminal.type(HEAVY + ";\r")
        wait_until_busy(server.proc.pid)
        pressed = time.monotonic()
        terminal.type("\x03")
        terminal.read_until(b"ERROR 57014: canceling statement due to user request", timeout=5)
        terminal.read_until(b"default=> ", timeout=5)
        assert time.monotonic() - pressed < 1.0
        # The server stopped computing, not only the client waiting.
        assert cpu_used_within(server.proc.pid, 1.0) < 0.2
        # The session goes on.
        terminal.type("SELECT 40 + 2 AS answer;\r")
        assert b"| 42     |" in terminal.read_until(b"default=> ")
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


SHOP = """CREATE DATABASE shop;
USE shop;
CREATE TABLE orders (id INT PRIMARY KEY, customer VARCHAR(40) NOT NULL DEFAULT 'x', total DECIMAL(10,2),
  day DATE) PARTITION BY RANGE (day) (PARTITION p0 VALUES LESS THAN ('2024-01-01'),
  PARTITION p1 VALUES LESS THAN (MAXVALUE));
CREATE INDEX by_customer ON orders (customer);
CREATE VIEW big AS SELECT id FROM orders WHERE total > 100;
INSERT INTO orders VALUES (1, 'ann', 150, '2023-05-01'), (2, 'bob', NULL, '2024-02-02');
"""


def test_backslash_commands_describe_the_catalog(server, tmp_path):
    script = tmp_path / "shop.sql"
    script.write_text(SHOP + "\\l\n\\dt\n\\dv b*\n\\d\n\\d orders\n\\d big\n\\di\n\\dt default.*\n\\c default\n\\dt\n")
    done = cli(server, "-f", str(script))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "| name    | tables |\n+---------+--------+\n| default | 0      |\n| shop    | 1      |" in out
    # \dt lists tables only, \dv views matching the pattern, \d both.
    assert "| shop     | orders | table | 2    |" in out
    assert "| shop     | big  | view | NULL | NULL  |" in out
    assert "| shop     | big    | view  | NULL | NULL  |\n| shop     | orders | table | 2    |" in out
    # \d orders: columns with lengths, keys and defaults, then indexes and partitioning.
    assert 'Table "shop.orders"\n' in out
    assert "| customer    | VARCHAR(40)   | NO          | NULL       | 'x'            |" in out
    assert "| id          | INT           | NO          | PRI        | NULL           |" in out
    assert ('(4 rows)\nIndexes:\n    "by_customer" (customer)\n    "orders_pkey" PRIMARY KEY (id)\n'
            "Partitioned by: RANGE (day) (PARTITION p0 VALUES LESS THAN ('2024-01-01'), "
            "PARTITION p1 VALUES LESS THAN (MAXVALUE))") in out
    assert 'View "shop.big"' in out and "View definition: SELECT id FROM orders WHERE total > 100" in out
    assert "| shop     | by_customer | orders | customer | false     | NULL            |" in out
    assert "| shop     | orders_pkey | orders | id       | true      | PRIMARY KEY     |" in out
    # Another database by pattern, and \c switching to it: no tables there.
    assert out.count("database | name | type | rows | bytes\n(0 rows)") == 2, out


def test_formatting_commands_and_output_to_a_file(server, tmp_path):
    results = tmp_path / "results.txt"
    done = cli(server, "-c", SHOP + f"""\\x
SELECT id, total FROM orders ORDER BY id;
\\x off
\\pset null '(none)'
SELECT id, total FROM orders ORDER BY id;
\\o {results}
SELECT customer FROM orders ORDER BY id;
\\o
SELECT 'back' AS here;
\\pset border 2
\\nonsense
""")
    assert done.returncode == 1, done.stderr
    assert ("-[ RECORD 1 ]-\nid    | 1\ntotal | 150.00\n-[ RECORD 2 ]-\nid    | 2\ntotal | NULL\n"
            "(2 rows)") in done.stdout, done.stdout
    assert "| 2  | (none) |" in done.stdout
    assert results.read_text() == "+----------+\n| customer |\n+----------+\n| ann      |\n| bob      |\n+----------+\n(2 rows)\n"
    assert "customer" not in done.stdout and "| back |" in done.stdout
    assert "ERROR: \\pset has no option 'border'" in done.stderr
    assert "ERROR: unknown command \\nonsense; \\? lists the commands" in done.stderr


def test_script_errors_name_file_and_line_and_on_error_stop_stops(server, tmp_path):
    script = tmp_path / "load.sql"
    script.write_text("CREATE TABLE t (id INT);\n\nINSERT INTO t\n  VALUES (1);\nSELECT *\n  FROM missing;\n"
                      "INSERT INTO t VALUES (2); SELECT nope FROM t;\nINSERT INTO t VALUES (3);\n")
    done = cli(server, "-f", str(script))
    assert done.returncode == 1
    assert f"{script}:5: ERROR 42P01: table 'default.missing' does not exist" in done.stderr, done.stderr
    assert f"{script}:7: ERROR 42703: " in done.stderr, done.stderr
    assert "| 3 |" in cli(server, "-c", "SELECT count(*) AS n FROM t").stdout
    # --on-error-stop: nothing after the first failure runs, exit code 3.
    cli(server, "-c", "DROP TABLE t")
    done = cli(server, "--on-error-stop", "-f", str(script))
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert f"{script}:5: ERROR 42P01" in done.stderr and ":7:" not in done.stderr
    assert "| 1 |" in cli(server, "-c", "SELECT count(*) AS n FROM t").stdout
    # \i runs a file, whose errors name it; stdin is <stdin>.
    done = cli(server, stdin=f"SELECT 1 AS one;\n\\i {script}\nSELECT oops;\n")
    assert f"{script}:5: ERROR 42P01" in done.stderr and "<stdin>:3: ERROR" in done.stderr, done.stderr
    done = cli(server, "-c", "\\i /nonexistent.sql")
    assert done.returncode == 1 and "ERROR: cannot read /nonexistent.sql" in done.stderr


def test_transactions_use_flight_sql_transactions(server):
    done = cli(server, "-c", "CREATE TABLE acct (id INT, bal INT); INSERT INTO acct VALUES (1, 10);"
                             "BEGIN; UPDATE acct SET bal = 0; SELECT bal FROM acct; ROLLBACK;"
                             "SELECT bal AS after_rollback FROM acct;"
                             "START TRANSACTION; UPDATE acct SET bal = 20; COMMIT;"
                             "SELECT bal AS after_commit FROM acct; COMMIT;")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Transaction started\nOK, 1 row(s) affected\n+-----+\n| bal |\n+-----+\n| 0   |" in out
    assert "Transaction rolled back\n+----------------+\n| after_rollback |\n+----------------+\n| 10 " in out
    assert "Transaction committed\n+--------------+\n| after_commit |\n+--------------+\n| 20 " in out
    assert out.endswith("No transaction is open, nothing done\n")
    # A script that ends inside a transaction rolls it back, and says so.
    done = cli(server, "-c", "BEGIN; UPDATE acct SET bal = 99")
    assert done.returncode == 0 and "the open transaction was rolled back" in done.stderr
    assert "| 20  |" in cli(server, "-c", "SELECT bal FROM acct").stdout


def test_prompt_history_pager_at_a_terminal(server, tmp_path):
    terminal = Terminal(server, tmp_path, env={"MINIDB_PAGER": "sed s/^/paged:/"}, rows=20)
    try:
        terminal.read_until(b"default=> ")
        terminal.type("CREATE DATABASE shop;\r")
        terminal.read_until(b"default=> ")
        terminal.type("\\c shop\r")
        terminal.read_until(b"shop=> ")
        # History is on disk as soon as a statement is entered, not only at exit.
        assert "CREATE DATABASE shop;" in (tmp_path / ".minidb_history").read_text()
        terminal.type("CREATE TABLE t (id INT);\r")
        terminal.read_until(b"shop=> ")
        terminal.type("BEGIN;\r")
        terminal.read_until(b"shop=*> ")
        terminal.type("INSERT INTO t\r")
        terminal.read_until(b"shop*-> ")
        terminal.type("SELECT value FROM generate_series(1, 30);\r")
        terminal.read_until(b"shop=*> ")
        terminal.type("ROLLBACK;\r")
        terminal.read_until(b"Transaction rolled back")
        terminal.read_until(b"shop=> ")
        # Taller than the terminal: through the pager; shorter: printed as it is.
        terminal.type("SELECT value FROM generate_series(1, 40);\r")
        shown = terminal.read_until(b"shop=> ")
        assert b"paged:| 40    |" in shown and b"paged:(40 rows)" in shown, shown
        terminal.type("SELECT 1 AS one;\r")
        shown = terminal.read_until(b"shop=> ")
        assert b"paged:" not in shown and b"| one |" in shown
        terminal.type("\\pset pager off\r")
        terminal.read_until(b"Pager usage is off.")
        terminal.read_until(b"shop=> ")
        terminal.type("SELECT value FROM generate_series(1, 40);\r")
        shown = terminal.read_until(b"shop=> ")
        assert b"(40 rows)" in shown and b"paged:" not in shown
        # Backslash commands at the keyboard: expanded display, describing and listing.
        terminal.type("\\x\r")
        terminal.read_until(b"Expanded display is on.")
        terminal.read_until(b"shop=> ")
        terminal.type("SELECT 1 AS one, NULL AS nothing;\r")
        shown = terminal.read_until(b"shop=> ")
        assert b"-[ RECORD 1 ]-\r\none     | 1\r\nnothing | NULL\r\n(1 row)" in shown, shown
        terminal.type("\\x off\r")
        terminal.read_until(b"shop=> ")
        terminal.type("\\d t\r")
        shown = terminal.read_until(b"shop=> ")
        assert b'Table "shop.t"' in shown and b"| id          | INT       |" in shown, shown
        terminal.type("\\dt\r")
        assert b"| shop     | t    | table |" in terminal.read_until(b"shop=> ")
        terminal.type("\\q\r")
        assert terminal.exit_status() == 0
        assert "SELECT value FROM generate_series(1, 40);" in (tmp_path / ".minidb_history").read_text()
    finally:
        terminal.close()

"""End-to-end tests of the line-based text protocol (the seed transcript and its edge cases)."""

from __future__ import annotations

import random
import socket

from conftest import PROMPT, TextClient, parse_ascii_table

SEED_TABLE = (
    "+----+-------+-----+\n"
    "| id | name  | age |\n"
    "+----+-------+-----+\n"
    "| 1  | Alice | 25  |\n"
    "| 2  | Bob   | 30  |\n"
    "+----+-------+-----+"
)


def seed(text: TextClient) -> None:
    assert text.query("CREATE DATABASE test;") == "Database created: test"
    assert text.query("USE test;") == "Using database: test"
    assert text.query("CREATE TABLE users id,name,age;") == "Table created: users"
    assert text.query("INSERT INTO users id=1 name=Alice age=25;") == "Inserted into users"
    assert text.query("INSERT INTO users id=2 name=Bob age=30;") == "Inserted into users"


def test_greeting_and_prompt(text):
    assert "MiniDB" in text.greeting
    assert text.buf == b""


def test_seed_transcript(text):
    """Seed 000 end to end. Its second table prints the `name` column one character narrower
    than its header (`| name|`), which no column-width rule reproduces together with the first
    table; MiniDB pads both tables the same way and the rows are the seed's."""
    seed(text)
    assert text.query("SELECT * FROM users;") == SEED_TABLE
    assert text.query("DELETE FROM users WHERE id=1;") == "Deleted 1 row(s) from users"
    assert text.query("SELECT * FROM users;") == (
        "+----+------+-----+\n"
        "| id | name | age |\n"
        "+----+------+-----+\n"
        "| 2  | Bob  | 30  |\n"
        "+----+------+-----+"
    )
    text.send_raw(b"EXIT;\n")
    assert "Bye" in text.read_to_eof().decode()


def test_seed_second_session(server):
    """The transcript's second session, on a new connection: the table survived the first."""
    with server.text() as first:
        seed(first)
        first.ok("DELETE FROM users WHERE id=1;")
    with server.text() as second:
        assert second.query("USE test;") == "Using database: test"
        assert second.query("SHOW TABLES;") == "Tables in test:\n - users"
        _, rows = parse_ascii_table(second.query("SELECT * FROM users;"))
        assert rows == [["2", "Bob", "30"]]
        assert second.query("DROP TABLE users;") == "Dropped table: users"
        assert second.query("SHOW TABLES;") == "(no tables left)"


def test_seed_select_order_is_stable(text):
    """The seed transcript shows rows in insertion order; a plain SELECT * must reproduce it
    every time, not only by luck of thread scheduling."""
    seed(text)
    answers = [text.query("SELECT * FROM users;") for _ in range(20)]
    wrong = [a for a in answers if a != SEED_TABLE]
    assert not wrong, f"{len(wrong)}/20 answers differ from the seed transcript, e.g.\n{wrong[0]}"


def test_update_and_delete_messages(text):
    seed(text)
    assert text.query("UPDATE users SET age = '26' WHERE id = '1';") == "Updated 1 row(s) in users"
    assert text.query("UPDATE users SET age = '0' WHERE id = '9';") == "Updated 0 row(s) in users"
    assert text.query("DELETE FROM users WHERE name = 'Bob';") == "Deleted 1 row(s) from users"
    _, rows = parse_ascii_table(text.query("SELECT * FROM users ORDER BY id;"))
    assert rows == [["1", "Alice", "26"]]
    assert text.query("UPDATE users SET nope = 1;").startswith("ERROR 42703: column 'nope' does not exist")


def test_several_statements_on_one_line(text):
    answer = text.query("CREATE DATABASE multi; USE multi; CREATE TABLE t id,v; SHOW TABLES;")
    assert answer.splitlines() == [
        "Database created: multi",
        "Using database: multi",
        "Table created: t",
        "Tables in multi:",
        " - t",
    ]
    # Exactly one prompt for the whole line.
    assert text.buf == b""


def test_statement_spanning_lines(text):
    text.ok("CREATE DATABASE span;")
    text.ok("USE span;")
    text.send_raw(b"CREATE TABLE t (\n")
    text.send_raw(b"  id INT,\n")
    text.send_raw(b"  name VARCHAR(20)\n")
    text.send_raw(b");\n")
    assert text.read_answer() == "Table created: t"
    text.send_raw(b"INSERT INTO t\nVALUES (1, 'a;b'),\n(2, '-- not a comment');\n")
    assert text.read_answer() == "Inserted 2 row(s) into t"
    header, rows = parse_ascii_table(text.query("SELECT id,\n name\nFROM t\nORDER BY id;"))
    assert header == ["id", "name"]
    assert rows == [["1", "a;b"], ["2", "-- not a comment"]]


def test_errors_keep_session_alive(text):
    answer = text.query("SELEC 1;")
    assert answer.startswith("ERROR 42601: syntax error"), answer
    assert text.query("SELECT * FROM no_such_table;").startswith("ERROR 42P01: ")
    assert text.query("USE no_such_db;").startswith("ERROR 3D000: ")
    assert text.query("CREATE DATABASE default;").startswith("ERROR 42P04: ")
    header, rows = parse_ascii_table(text.query("SELECT 1 + 1 AS two;"))
    assert header == ["two"] and rows == [["2"]]


def test_each_connection_has_its_own_database(server):
    with server.text() as a, server.text() as b:
        a.ok("CREATE DATABASE da;")
        a.ok("CREATE DATABASE db;")
        assert a.query("USE da;") == "Using database: da"
        assert b.query("USE db;") == "Using database: db"
        a.ok("CREATE TABLE t id;")
        b.ok("CREATE TABLE u id;")
        assert a.query("SHOW TABLES;") == "Tables in da:\n - t"
        assert b.query("SHOW TABLES;") == "Tables in db:\n - u"
        # A new connection starts in `default`.
        with server.text() as c:
            assert c.query("SHOW TABLES;") == "(no tables left)"
            assert c.query("SELECT * FROM t;").startswith("ERROR 42P01: ")
            _, rows = parse_ascii_table(c.query("SELECT count(*) FROM da.t;"))
            assert rows == [["0"]]


def _garbage(rng: random.Random, n: int) -> bytes:
    # Random bytes, including NULs and invalid UTF-8, but none that open a quote or comment or
    # end the statement/line, so each chunk is exactly one (bad) statement once ';' follows.
    banned = set(b"'\"`-/;\n")
    out = bytes(b for b in rng.randbytes(n * 2) if b not in banned)[:n]
    return b"\x00\xff\xfe\xc3\x28" + out + b"\x00\x80"


def test_binary_garbage_gets_errors_and_spares_other_sessions(server):
    rng = random.Random(1234)
    with server.text() as good, server.text() as bad:
        good.ok("CREATE DATABASE g;")
        good.ok("USE g;")
        good.ok("CREATE TABLE t id,name;")
        good.ok("INSERT INTO t id=1 name=before;")
        # Start a multi-line statement on the good session, then let the other one misbehave.
        good.send_raw(b"INSERT INTO t\n")
        for _ in range(5):
            bad.send_raw(_garbage(rng, 300) + b";\n")
            answer = bad.read_until(PROMPT).decode("utf-8", errors="strict")
            assert answer.startswith("ERROR "), answer
        good.send_raw(b"VALUES ('2', 'during');\n")
        assert good.read_answer() == "Inserted into t"
        # The garbage session still works.
        _, rows = parse_ascii_table(bad.query("SELECT count(*) FROM g.t;"))
        assert rows == [["2"]]
        _, rows = parse_ascii_table(good.query("SELECT id, name FROM t ORDER BY id;"))
        assert rows == [["1", "before"], ["2", "during"]]


def test_overlong_line_gets_error_and_spares_other_sessions(server):
    with server.text() as good, server.text() as bad:
        good.ok("CREATE DATABASE ol;")
        good.ok("USE ol;")
        good.ok("CREATE TABLE t id;")
        # Over 1 MiB without a newline: the server reports it before the line ends...
        bad.send_raw(b"SELECT '" + b"x" * (1 << 20) + b"x" * 4096)
        error = bad.read_until(b"\n").decode()
        assert error.startswith("ERROR 54000: ") and "longer than" in error, error
        # ...and once the line does end, the answer is complete: blank line and prompt, as
        # after every answer, so a client waiting for the prompt is not left hanging.
        bad.send_raw(b"' AS big;\n")
        assert bad.read_answer(timeout=10) == ""
        assert bad.buf == b""
        # The session recovers: the next statement runs normally.
        _, rows = parse_ascii_table(bad.query("SELECT 42 AS answer;"))
        assert rows == [["42"]]
        assert good.query("INSERT INTO t id=7;") == "Inserted into t"
        _, rows = parse_ascii_table(good.query("SELECT id FROM t;"))
        assert rows == [["7"]]


def test_overlong_statement_over_many_lines_gets_error(server):
    with server.text() as c:
        line = b"x" * 1000 + b"\n"
        c.send_raw(b"SELECT 1 AS a,\n" + line * 1100 + b";\n")
        answer = c.read_answer()
        assert answer.startswith("ERROR 54000: ") and "longer than" in answer, answer
        _, rows = parse_ascii_table(c.query("SELECT 3 AS b;"))
        assert rows == [["3"]]


def test_abrupt_disconnect_mid_statement(server):
    with server.text() as other:
        other.ok("CREATE DATABASE ab;")
        for i in range(5):
            s = socket.create_connection(("127.0.0.1", server.text_port), timeout=10)
            s.sendall(b"CREATE TABLE ab.half (id INT,\n name VAR")
            if i % 2:
                # RST instead of FIN.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
        # A client that vanishes while its answer is being written.
        s = socket.create_connection(("127.0.0.1", server.text_port), timeout=10)
        s.sendall(b"SELECT * FROM generate_series(1, 200000);\n")
        s.close()
        assert server.alive()
        assert other.query("SHOW TABLES FROM ab;") == "(no tables left)"
        with server.text() as fresh:
            _, rows = parse_ascii_table(fresh.query("SELECT 5 AS five;"))
            assert rows == [["5"]]


def test_exit_says_bye_and_closes(text):
    text.send_raw(b"EXIT;\n")
    assert text.read_to_eof().decode("utf-8").strip() == "Bye 👋"


def test_graceful_shutdown_tells_open_sessions(server):
    with server.text() as c:
        assert server.stop() == 0
        assert "Bye 👋" in c.read_to_eof().decode("utf-8")


def test_unnamed_subquery_columns_are_named_by_their_text(text):
    text.ok("CREATE TABLE sq (a INT, b INT);")
    text.ok("INSERT INTO sq VALUES (1, 10), (2, 20);")
    header, rows = parse_ascii_table(
        text.ok("SELECT a, (SELECT count(*) FROM sq AS x WHERE x.b < sq.b), (SELECT max(b) FROM sq) FROM sq ORDER BY a;")
    )
    assert header == [
        "a",
        "(SELECT count(*) FROM sq AS x WHERE x.b < sq.b)",
        "(SELECT max(b) FROM sq)",
    ]
    assert rows == [["1", "0", "20"], ["2", "1", "20"]]


def test_show_create_table_recreates_the_table_on_both_protocols(server, text):
    """SHOW CREATE TABLE prints runnable statements over :7205 (one per line, each ending in a
    semicolon) and answers them as rows over Flight SQL; running them after a DROP gives a table
    that describes itself the same way, with its rows' rules (key, default, length) intact."""
    assert text.query("CREATE DATABASE shop;") == "Database created: shop"
    text.ok("CREATE TABLE shop.orders (id BIGINT PRIMARY KEY, customer VARCHAR(30) NOT NULL, "
            "status VARCHAR DEFAULT 'new', total DECIMAL(12,2), \"Note\" TEXT) "
            "PARTITION BY RANGE (id) (PARTITION a VALUES LESS THAN (100), "
            "PARTITION b VALUES LESS THAN (MAXVALUE)) "
            "TBLPROPERTIES ('delta.targetFileSize' = '1048576');")
    text.ok("CREATE UNIQUE INDEX orders_customer ON shop.orders (customer);")
    shown = text.query("SHOW CREATE TABLE shop.orders;")
    assert shown == (
        "CREATE TABLE shop.orders (id BIGINT, customer VARCHAR(30) NOT NULL, "
        "status VARCHAR DEFAULT 'new', total DECIMAL(12,2), \"Note\" VARCHAR, PRIMARY KEY (id)) "
        "PARTITION BY RANGE (id) (PARTITION a VALUES LESS THAN (100), "
        "PARTITION b VALUES LESS THAN (MAXVALUE)) "
        "TBLPROPERTIES ('delta.targetFileSize' = '1048576');\n"
        "CREATE UNIQUE INDEX orders_customer ON shop.orders (customer);"
    )
    described = text.query("DESCRIBE shop.orders;")

    conn = server.adbc()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW CREATE TABLE shop.orders")
            table = cur.fetch_arrow_table()
            assert table.column_names == ["statement"]
            statements = table.column("statement").to_pylist()
            assert [f"{s};" for s in statements] == shown.split("\n")
            cur.execute("DROP TABLE shop.orders")
            for statement in statements:
                cur.execute(statement)
            cur.execute("SHOW CREATE TABLE shop.orders")
            assert cur.fetch_arrow_table().column("statement").to_pylist() == statements
    finally:
        conn.close()
    assert text.query("DESCRIBE shop.orders;") == described
    text.ok("INSERT INTO shop.orders (id, customer) VALUES (1, 'ann');")
    assert parse_ascii_table(text.ok("SELECT status FROM shop.orders;"))[1] == [["new"]]
    assert "duplicate key" in text.query("INSERT INTO shop.orders (id, customer) VALUES (1, 'bo');")
    assert "UNIQUE INDEX orders_customer" in text.query(
        "INSERT INTO shop.orders (id, customer) VALUES (2, 'ann');")


def test_an_open_statement_prompts_for_its_next_line(text):
    """A line that leaves a statement open answers a continuation prompt naming what is open,
    so a missing `;` or an unclosed quote never leaves the session silent."""
    text.send_raw(b"SELECT\n")
    assert text.read_until(b"> ", timeout=5) == b"...> "
    text.send_raw(b"count(*\n")
    assert text.read_until(b"> ", timeout=5) == b"..(> "
    text.send_raw(b") AS n, 'a\n")
    assert text.read_until(b"> ", timeout=5) == b"..'> "
    text.send_raw(b"b' = 'a' || chr(10) || 'b' AS same;\n")
    assert text.read_answer() == (
        "+---+------+\n"
        "| n | same |\n"
        "+---+------+\n"
        "| 1 | true |\n"
        "+---+------+"
    )
    # A statement without its `;` waits for it, and says so.
    text.send_raw(b"SELECT 1\n")
    assert text.read_until(b"> ", timeout=5) == b"...> "
    assert text.query("AS one;") == "+-----+\n| one |\n+-----+\n| 1   |\n+-----+"


def test_explain_prints_plans_as_indented_text_and_cells_stay_on_one_line(text):
    text.ok("CREATE TABLE notes (id INT, body VARCHAR);")
    text.ok("INSERT INTO notes VALUES (1, 'two' || chr(10) || 'lines'), (2, '日本語');")
    plan = text.query("EXPLAIN SELECT id FROM notes WHERE id > 1;")
    lines = plan.splitlines()
    assert lines[0] == "logical_plan:", plan
    assert "physical_plan:" in lines, plan
    assert all(line.startswith("  ") for line in lines if not line.endswith("_plan:") and line), plan
    assert "|" not in plan and "+--" not in plan, plan
    assert text.query("SELECT body FROM notes ORDER BY id;") == (
        "+------------+\n"
        "| body       |\n"
        "+------------+\n"
        "| two\\nlines |\n"
        "| 日本語     |\n"
        "+------------+"
    )


def test_shorthand_values_may_be_quoted(text):
    assert text.query("CREATE TABLE people name,city;") == "Table created: people"
    assert text.query("INSERT INTO people name='O''Brien' city=\"Zoë's place\";") == "Inserted into people"
    assert text.query("INSERT INTO people name=\"Zoë\" city='New York';") == "Inserted into people"
    assert parse_ascii_table(text.query("SELECT name, city FROM people ORDER BY name;"))[1] == [
        ["O'Brien", "Zoë's place"],
        ["Zoë", "New York"],
    ]


def test_pset_shows_null_distinctly_and_adds_a_row_count_footer(server, text):
    """By default NULL prints as NULL and a table has no footer (the seed transcript's form);
    `\\pset` changes both for the session, as in psql."""
    text.ok("CREATE TABLE maybe (id INT, word VARCHAR);")
    text.ok("INSERT INTO maybe VALUES (1, 'NULL'), (2, NULL);")
    both_null = "| 1  | NULL |\n| 2  | NULL |"
    assert both_null in text.query("SELECT * FROM maybe ORDER BY id;")
    assert text.query("\\pset null '(null)'") == 'Null display is "(null)".'
    assert text.query("\\pset footer on") == "Default footer is on."
    assert text.query("SELECT * FROM maybe ORDER BY id;") == (
        "+----+--------+\n"
        "| id | word   |\n"
        "+----+--------+\n"
        "| 1  | NULL   |\n"
        "| 2  | (null) |\n"
        "+----+--------+\n"
        "(2 rows)"
    )
    assert text.query("SELECT id FROM maybe WHERE id = 1;").endswith("+----+\n(1 row)")
    assert text.query("SELECT id FROM maybe WHERE id > 9;") == (
        "+----+\n| id |\n+----+\n+----+\n(0 rows)"
    )
    assert text.query("\\pset") == 'Null display is "(null)".\nDefault footer is on.'
    # A backslash inside a statement is the statement's; a wrong command names itself.
    assert text.query("SELECT '\\pset' AS s;").endswith("| \\pset |\n+-------+\n(1 row)")
    assert text.query("\\x") == "ERROR 42601: unknown command \\x; \\? lists the commands"
    assert text.query("\\pset null two words").startswith("ERROR 42601: \\pset null takes one")
    # Settings belong to the connection.
    other = server.text()
    try:
        assert both_null in other.query("SELECT * FROM maybe ORDER BY id;")
    finally:
        other.close()

"""End-to-end tests of Flight SQL through the ADBC Flight SQL driver (DBAPI)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest
from adbc_driver_manager import dbapi as adbc_dbapi

from conftest import parse_ascii_table


def run(cur, sql: str) -> pa.Table:
    cur.execute(sql)
    return cur.fetch_arrow_table()


ITEMS_DDL = (
    "CREATE TABLE items (id INT NOT NULL, name VARCHAR(40), price DECIMAL(10,2), "
    "sold DATE, at TIMESTAMP, ok BOOLEAN, weight DOUBLE, big BIGINT, small SMALLINT, "
    "tiny TINYINT, note TEXT, ratio FLOAT)"
)
ITEMS_ROWS = (
    "INSERT INTO items VALUES "
    "(1, 'apple', 1.50, '2024-01-02', '2024-01-02 03:04:05.123456', true, 0.25, 10000000000, 3, 4, 'red', 2.5),"
    "(2, 'pear', 2.25, '2024-02-03', '2024-02-03 00:00:00', false, 0.5, -1, -3, -4, NULL, 0.125),"
    "(3, 'plum', 10.00, '2023-12-31', '2023-12-31 23:59:59', NULL, NULL, NULL, NULL, NULL, 'ripe', NULL)"
)

ITEMS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int32(), nullable=False),
        ("name", pa.utf8()),
        ("price", pa.decimal128(10, 2)),
        ("sold", pa.date32()),
        ("at", pa.timestamp("us")),
        ("ok", pa.bool_()),
        ("weight", pa.float64()),
        ("big", pa.int64()),
        ("small", pa.int16()),
        ("tiny", pa.int8()),
        ("note", pa.utf8()),
        ("ratio", pa.float64()),
    ]
)


def make_items(cur, db: str = "shop") -> None:
    run(cur, f"CREATE DATABASE {db}")
    run(cur, f"USE {db}")
    run(cur, ITEMS_DDL)
    cur.execute(ITEMS_ROWS)
    assert cur.rowcount == 3


def test_create_use_insert_select(conn):
    with conn.cursor() as cur:
        make_items(cur)
        t = run(cur, "SELECT * FROM items WHERE price > 2 ORDER BY id")
        assert t.schema == ITEMS_SCHEMA
        assert t.to_pylist() == [
            {
                "id": 2, "name": "pear", "price": Decimal("2.25"), "sold": dt.date(2024, 2, 3),
                "at": dt.datetime(2024, 2, 3), "ok": False, "weight": 0.5, "big": -1,
                "small": -3, "tiny": -4, "note": None, "ratio": 0.125,
            },
            {
                "id": 3, "name": "plum", "price": Decimal("10.00"), "sold": dt.date(2023, 12, 31),
                "at": dt.datetime(2023, 12, 31, 23, 59, 59), "ok": None, "weight": None,
                "big": None, "small": None, "tiny": None, "note": "ripe", "ratio": None,
            },
        ]
        t = run(cur, "SELECT at FROM items WHERE id = 1")
        assert t.column("at").to_pylist() == [dt.datetime(2024, 1, 2, 3, 4, 5, 123456)]


def test_aggregates(conn):
    with conn.cursor() as cur:
        make_items(cur)
        t = run(
            cur,
            "SELECT sum(price) AS total, count(*) AS n, min(sold) AS first, max(at) AS last, "
            "avg(weight) AS w FROM items",
        )
        row = t.to_pylist()[0]
        assert row["total"] == Decimal("13.75")
        assert pa.types.is_decimal(t.schema.field("total").type)
        assert t.schema.field("total").type.scale == 2
        assert row["n"] == 3
        assert row["first"] == dt.date(2023, 12, 31)
        assert t.schema.field("first").type == pa.date32()
        assert row["last"] == dt.datetime(2024, 2, 3)
        assert t.schema.field("last").type == pa.timestamp("us")
        assert row["w"] == pytest.approx(0.375)
        t = run(cur, "SELECT ok, count(*) AS n FROM items GROUP BY ok ORDER BY ok NULLS LAST")
        assert t.to_pylist() == [{"ok": False, "n": 1}, {"ok": True, "n": 1}, {"ok": None, "n": 1}]


def test_strings_are_utf8_not_utf8_view(conn):
    with conn.cursor() as cur:
        make_items(cur)
        t = run(cur, "SELECT name, upper(name) AS u, name || '!' AS e FROM items ORDER BY id")
        for field in t.schema:
            assert field.type == pa.utf8(), field
        assert t.column("e").to_pylist() == ["apple!", "pear!", "plum!"]


def test_insert_select_and_column_list(conn):
    with conn.cursor() as cur:
        make_items(cur)
        run(cur, "CREATE TABLE cheap (id BIGINT, name TEXT, price DECIMAL(10,2))")
        cur.execute("INSERT INTO cheap SELECT id, name, price FROM items WHERE price < 5")
        assert cur.rowcount == 2
        cur.execute("INSERT INTO cheap (name, id) VALUES ('kiwi', 9)")
        assert cur.rowcount == 1
        t = run(cur, "SELECT * FROM cheap ORDER BY id")
        assert t.to_pylist() == [
            {"id": 1, "name": "apple", "price": Decimal("1.50")},
            {"id": 2, "name": "pear", "price": Decimal("2.25")},
            {"id": 9, "name": "kiwi", "price": None},
        ]


def test_describe_via_cursor(conn):
    with conn.cursor() as cur:
        make_items(cur)
        t = run(cur, "DESCRIBE items")
        rows = [tuple(r.values()) for r in t.to_pylist()]
        assert t.column_names == [
            "column_name", "data_type", "is_nullable", "column_key", "column_default"]
        assert rows[:5] == [
            ("id", "INT", "NO", None, None),
            ("name", "VARCHAR(40)", "YES", None, None),
            ("price", "DECIMAL(10,2)", "YES", None, None),
            ("sold", "DATE", "YES", None, None),
            ("at", "TIMESTAMP", "YES", None, None),
        ]
        assert len(rows) == 12
        assert run(cur, "SHOW COLUMNS FROM items").to_pylist() == t.to_pylist()


def test_show_tables_via_cursor(conn):
    with conn.cursor() as cur:
        make_items(cur)
        run(cur, "CREATE TABLE other (x INT)")
        t = run(cur, "SHOW TABLES")
        assert sorted(t.column(0).to_pylist()) == ["items", "other"]


def test_show_databases_via_cursor(conn):
    with conn.cursor() as cur:
        run(cur, "CREATE DATABASE shop")
        t = run(cur, "SHOW DATABASES")
        assert sorted(t.column(0).to_pylist()) == ["default", "shop"]


def test_qualified_names_without_use(conn):
    with conn.cursor() as cur:
        run(cur, "CREATE DATABASE q1")
        run(cur, "CREATE DATABASE IF NOT EXISTS q1")
        run(cur, "CREATE TABLE q1.t (id INT, v VARCHAR(5))")
        cur.execute("INSERT INTO q1.t VALUES (1, 'a'), (2, 'b')")
        assert cur.rowcount == 2
        assert run(cur, "SELECT v FROM q1.t WHERE id = 2").to_pylist() == [{"v": "b"}]
        assert run(cur, "DESCRIBE q1.t").num_rows == 2
        # Still in `default`.
        with pytest.raises(adbc_dbapi.Error):
            run(cur, "SELECT * FROM t")
        run(cur, "DROP TABLE q1.t")
        run(cur, "DROP DATABASE q1")
        run(cur, "DROP DATABASE IF EXISTS q1")


def test_bad_sql_raises_with_cause_and_connection_survives(conn):
    with conn.cursor() as cur:
        with pytest.raises(adbc_dbapi.Error) as err:
            run(cur, "SELEC 1")
        assert "SELEC" in str(err.value)
        with pytest.raises(adbc_dbapi.Error) as err:
            run(cur, "SELECT * FROM missing_table")
        assert "missing_table" in str(err.value)
        with pytest.raises(adbc_dbapi.Error) as err:
            run(cur, "USE nowhere")
        assert "nowhere" in str(err.value)
        assert run(cur, "SELECT 40 + 2 AS x").to_pylist() == [{"x": 42}]
    with conn.cursor() as cur2:
        assert run(cur2, "SELECT 'still' AS s").to_pylist() == [{"s": "still"}]


def test_not_null_violation_names_the_column(conn):
    with conn.cursor() as cur:
        make_items(cur)
        with pytest.raises(adbc_dbapi.Error) as err:
            cur.execute("INSERT INTO items (id, name) VALUES (NULL, 'ghost')")
        message = str(err.value)
        assert "null" in message.lower()
        # The cause should name the declared column, not an internal one like `column1`.
        assert "'id'" in message, message
        assert run(cur, "SELECT count(*) AS n FROM items").to_pylist() == [{"n": 3}]


def test_use_needs_cookie_per_connection(server, conn):
    with conn.cursor() as cur:
        run(cur, "CREATE DATABASE c1")
        run(cur, "USE c1")
        run(cur, "CREATE TABLE t (id INT)")
    # A second cursor on the same connection stays in c1.
    with conn.cursor() as cur:
        assert run(cur, "SHOW COLUMNS FROM t").num_rows == 1
    # Another connection is unaffected and starts in `default`.
    other = server.adbc()
    try:
        with other.cursor() as cur:
            with pytest.raises(adbc_dbapi.Error):
                run(cur, "SELECT * FROM t")
            assert run(cur, "SELECT count(*) AS n FROM c1.t").to_pylist() == [{"n": 0}]
    finally:
        other.close()


def test_database_header(server, conn):
    with conn.cursor() as cur:
        run(cur, "CREATE DATABASE hdr")
        run(cur, "CREATE TABLE hdr.t (id INT, s TEXT)")
        cur.execute("INSERT INTO hdr.t VALUES (1, 'one')")
    hconn = server.adbc(database="hdr", cookies=False)
    try:
        with hconn.cursor() as cur:
            assert run(cur, "SELECT s FROM t").to_pylist() == [{"s": "one"}]
            cur.execute("INSERT INTO t VALUES (2, 'two')")
            assert cur.rowcount == 1
            assert run(cur, "SELECT count(*) AS n FROM t").to_pylist() == [{"n": 2}]
    finally:
        hconn.close()
    bad = server.adbc(database="no_such_db", cookies=False)
    try:
        with bad.cursor() as cur:
            with pytest.raises(adbc_dbapi.Error) as err:
                run(cur, "CREATE TABLE t (id INT)")
            assert "no_such_db" in str(err.value)
            with pytest.raises(adbc_dbapi.Error):
                run(cur, "SELECT * FROM t")
    finally:
        bad.close()


def test_text_and_flight_see_each_other_at_once(server, conn, text):
    text.ok("CREATE DATABASE mix;")
    text.ok("USE mix;")
    text.ok("CREATE TABLE t (id INT, who VARCHAR(10));")
    with conn.cursor() as cur:
        run(cur, "USE mix")
        for i in range(3):
            assert text.query(f"INSERT INTO t VALUES ({2 * i}, 'text');") == "Inserted into t"
            got = run(cur, "SELECT id, who FROM t ORDER BY id").to_pylist()
            assert got[-1] == {"id": 2 * i, "who": "text"}, got
            cur.execute(f"INSERT INTO t VALUES ({2 * i + 1}, 'flight')")
            _, rows = parse_ascii_table(text.query("SELECT id, who FROM t ORDER BY id;"))
            assert rows[-1] == [str(2 * i + 1), "flight"], rows
        assert run(cur, "SELECT count(*) AS n FROM t").to_pylist() == [{"n": 6}]


def test_a_prepared_query_sees_commits_made_after_it_was_prepared(conn, text):
    """ADBC prepares every query: CreatePreparedStatement plans it, and its first execution
    runs that plan only if nothing it reads has moved. A commit by another session between
    preparing and executing is seen, also through a system table; without one the kept plan
    answers."""
    text.ok("CREATE TABLE prep (id INT);")
    text.ok("INSERT INTO prep VALUES (1);")
    count = "SELECT count(*) AS n FROM prep"
    files = ("SELECT count(*) AS n FROM sys.table_files "
             "WHERE table_name = 'prep' AND status = 'active'")
    with conn.cursor() as cur:
        cur.adbc_prepare(count)
        cur.execute(count)
        assert cur.fetchall() == [(1,)]
        # Texts not prepared before on this cursor, so that each is prepared (and planned) anew.
        for n, sql in enumerate([f"{count} WHERE id < 100", files], start=2):
            cur.adbc_prepare(sql)
            assert text.query(f"INSERT INTO prep VALUES ({n});") == "Inserted into prep"
            cur.execute(sql)
            assert cur.fetchall() == [(n,)], sql


def test_repeated_column_names_come_back_as_written(conn, text):
    """SQL lets a SELECT list name two columns alike (`SELECT a, a`, `SELECT *, a`); DataFusion
    does not, so the front end names them apart inside and the rows come back with the names
    written, over both protocols and in a prepared statement's schema."""
    text.ok("CREATE TABLE dup (a INT, b INT);")
    text.ok("INSERT INTO dup VALUES (1, 10), (2, 20);")
    with conn.cursor() as cur:
        got = run(cur, "SELECT a, a, count(*), count(*) FROM dup GROUP BY a ORDER BY a")
        assert got.column_names == ["a", "a", "count(*)", "count(*)"]
        assert [c.to_pylist() for c in got.columns] == [[1, 2], [1, 2], [1, 1], [1, 1]]
        got = run(cur, "SELECT *, a FROM dup WHERE a = 2")
        assert got.column_names == ["a", "b", "a"]
        assert [c.to_pylist() for c in got.columns] == [[2], [20], [2]]
        # A query around the list reads the first column of the name.
        got = run(cur, "SELECT a * 10 AS x FROM (SELECT a, b AS a FROM dup) AS s ORDER BY x")
        assert got.to_pylist() == [{"x": 10}, {"x": 20}]
        # The schema a client gets before binding a parameter has the same names.
        cur.execute("SELECT b, b FROM dup WHERE a = ?", parameters=(1,))
        got = cur.fetch_arrow_table()
        assert got.column_names == ["b", "b"]
        assert [c.to_pylist() for c in got.columns] == [[10], [10]]
    header, rows = parse_ascii_table(text.query("SELECT a, a FROM dup ORDER BY a;"))
    assert header == ["a", "a"] and rows == [["1", "1"], ["2", "2"]]
    # A view's columns are its query's names, which must then differ.
    assert "more than one column named a" in text.query("CREATE VIEW dupv AS SELECT a, a FROM dup;")
    text.ok("CREATE VIEW dupw AS SELECT *, a + 1 AS c FROM dup;")
    with conn.cursor() as cur:
        got = run(cur, "SELECT * FROM dupw ORDER BY a")
        assert got.column_names == ["a", "b", "c"]


def test_result_columns_are_named_as_written(conn, text):
    """An unaliased expression's column is named by its text as written, as DuckDB names it
    (not DataFusion's `Int64(1)`, `Utf8("a")`, `sum(db.t.a)`); a column keeps its name and a cast
    its operand's, as in PostgreSQL; the same over both protocols."""
    text.ok("CREATE TABLE named (a INT, b VARCHAR);")
    text.ok("INSERT INTO named VALUES (1, 'x'), (2, 'y');")
    sql = ("SELECT 1, 'a', sum(a), a + 1, CAST(a AS BIGINT), named.b, upper(b), "
           "(SELECT max(a) FROM named) FROM named WHERE a = 2 GROUP BY a, b")
    expected = ["1", "'a'", "sum(a)", "a + 1", "a", "b", "upper(b)", "(SELECT max(a) FROM named)"]
    with conn.cursor() as cur:
        got = run(cur, sql)
        assert got.column_names == expected
        assert got.to_pylist()[0] == dict(zip(expected, [1, "a", 2, 3, 2, "y", "Y", 2]))
        # A query around it reads the columns by those names.
        got = run(cur, 'SELECT "a + 1" * 10 AS t FROM (SELECT a + 1 FROM named) s ORDER BY t')
        assert got.column("t").to_pylist() == [20, 30]
    header, rows = parse_ascii_table(text.query(f"{sql};"))
    assert header == expected and rows == [["1", "a", "2", "3", "2", "y", "Y", "2"]]

"""Views over both protocols: stored in the data root (a restart and a second server see them),
listed by Flight SQL's metadata calls with type VIEW, and TPC-H q15 as the specification writes
it — CREATE VIEW, SELECT, DROP VIEW."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from conftest import MiniDBServer, parse_ascii_table

Q15 = Path(__file__).resolve().parents[3] / "shared" / "corpora" / "tpch" / "queries" / "q15.sql"


def test_views_survive_a_restart_and_reach_a_second_server(server, tmp_path):
    conn = server.adbc()
    cur = conn.cursor()
    cur.execute("CREATE TABLE t (id INT, v VARCHAR)")
    cur.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    cur.execute("CREATE VIEW odd (n, label) AS SELECT id, upper(v) FROM t WHERE id % 2 = 1")
    cur.close()
    conn.close()

    server.restart()
    conn = server.adbc()
    cur = conn.cursor()
    cur.execute("SELECT n, label FROM odd ORDER BY n")
    assert cur.fetchall() == [(1, "A"), (3, "C")]
    cur.close()
    conn.close()

    log_dir = tmp_path / "second"
    log_dir.mkdir()
    second = MiniDBServer(server.data_dir, log_dir, server.args, data=server.data).start()
    try:
        with second.text() as text:
            text.ok("INSERT INTO t VALUES (5, 'e');")
            _, rows = parse_ascii_table(text.ok("SELECT n FROM odd ORDER BY n;"))
            assert [r[0] for r in rows] == ["1", "3", "5"]
            text.ok("CREATE OR REPLACE VIEW odd AS SELECT id AS n FROM t WHERE id > 2;")
        # The first server reads the replaced definition on its next statement.
        conn = server.adbc()
        cur = conn.cursor()
        cur.execute("SELECT * FROM odd ORDER BY n")
        assert cur.fetchall() == [(3,), (5,)]
        cur.execute("DROP VIEW odd")
        cur.close()
        conn.close()
        with second.text() as text:
            assert "does not exist" in text.query("SELECT * FROM odd;")
    finally:
        second.stop()


def test_flight_metadata_lists_views_with_their_type_and_schema(server, conn):
    cur = conn.cursor()
    cur.execute("CREATE DATABASE shop")
    cur.execute("CREATE TABLE shop.items (id INT, price DECIMAL(10, 2))")
    cur.execute("CREATE VIEW shop.cheap AS SELECT id, price * 2 AS doubled FROM shop.items WHERE price < 5")
    cur.execute("CREATE TABLE shop.gone (x INT)")
    cur.execute("CREATE VIEW shop.on_gone AS SELECT x FROM shop.gone")
    cur.execute("DROP TABLE shop.gone")
    cur.close()

    assert sorted(conn.adbc_get_table_types()) == ["SYSTEM TABLE", "TABLE", "VIEW"]
    objects = conn.adbc_get_objects(depth="all", db_schema_filter="shop").read_all().to_pylist()
    tables = {t["table_name"]: t for t in objects[0]["catalog_db_schemas"][0]["db_schema_tables"]}
    assert {name: t["table_type"] for name, t in tables.items()} == {
        "items": "TABLE",
        "cheap": "VIEW",
        "on_gone": "VIEW",
    }
    assert [c["column_name"] for c in tables["cheap"]["table_columns"]] == ["id", "doubled"]
    # A view whose table was dropped is listed without columns; reading it says why it fails.
    assert not tables["on_gone"]["table_columns"]
    only_views = conn.adbc_get_objects(depth="tables", table_types_filter=["VIEW"]).read_all()
    names = [
        t["table_name"]
        for c in only_views.to_pylist()
        for s in c["catalog_db_schemas"]
        for t in s["db_schema_tables"] or []
    ]
    assert sorted(names) == ["cheap", "on_gone"]


def _q15_tables(run) -> None:
    run("CREATE TABLE supplier (s_suppkey BIGINT, s_name VARCHAR, s_address VARCHAR, s_phone VARCHAR)")
    run(
        "CREATE TABLE lineitem (l_suppkey BIGINT, l_extendedprice DECIMAL(15, 2), "
        "l_discount DECIMAL(15, 2), l_shipdate DATE)"
    )
    run(
        "INSERT INTO supplier VALUES (1, 'Supplier#1', 'addr 1', '11-111'), "
        "(2, 'Supplier#2', 'addr 2', '22-222'), (3, 'Supplier#3', 'addr 3', '33-333')"
    )
    # Suppliers 1 and 3 tie for the quarter's top revenue (90.00); supplier 2's big sale is
    # outside the quarter.
    run(
        "INSERT INTO lineitem VALUES "
        "(1, 100.00, 0.10, DATE '1996-01-15'), (2, 50.00, 0.00, DATE '1996-02-01'), "
        "(2, 500.00, 0.00, DATE '1996-04-01'), (3, 45.00, 0.00, DATE '1996-03-31'), "
        "(3, 45.00, 0.00, DATE '1996-01-01')"
    )


EXPECTED = [
    ("1", "Supplier#1", "addr 1", "11-111", Decimal("90.0000")),
    ("3", "Supplier#3", "addr 3", "33-333", Decimal("90.0000")),
]


def test_tpch_q15_runs_as_written_over_the_text_protocol_in_one_line(text):
    _q15_tables(lambda sql: text.ok(sql + ";"))
    one_line = re.sub(r"\s+", " ", Q15.read_text()).strip()
    answer = text.query(one_line)
    assert answer.startswith("View created: revenue0\n"), answer
    assert answer.endswith("Dropped view: revenue0"), answer
    header, rows = parse_ascii_table(answer.split("\n", 1)[1].rsplit("\n", 1)[0])
    assert header == ["s_suppkey", "s_name", "s_address", "s_phone", "total_revenue"]
    assert [tuple(r[:4]) + (Decimal(r[4]),) for r in rows] == EXPECTED
    assert "does not exist" in text.query("SELECT * FROM revenue0;")


def test_tpch_q15_runs_over_flight_sql_as_three_calls(conn):
    cur = conn.cursor()
    _q15_tables(cur.execute)
    create, select, drop = [s.strip() for s in Q15.read_text().split(";") if s.strip()]
    cur.execute(create)
    cur.execute(select)
    rows = [(str(r[0]), *r[1:4], Decimal(r[4])) for r in cur.fetchall()]
    assert rows == EXPECTED
    cur.execute(drop)
    cur.execute("SHOW TABLES")
    assert [r[0] for r in cur.fetchall()] == ["lineitem", "supplier"]
    cur.close()

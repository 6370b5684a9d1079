"""Prepared statements with parameters over Flight SQL: ADBC (DBAPI execute/executemany,
adbc_prepare's parameter schema) and flightsql-dbapi (dense-union parameters sent to the
original handle)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest
from adbc_driver_manager import dbapi as adbc_dbapi

from test_flight_adbc import ITEMS_DDL, ITEMS_ROWS, make_items, run


def test_question_mark_parameters_select_and_insert(conn):
    with conn.cursor() as cur:
        make_items(cur)
        cur.execute("SELECT id, name FROM items WHERE id = ? OR name = ? ORDER BY id", (1, "plum"))
        assert cur.fetchall() == [(1, "apple"), (3, "plum")]

        cur.execute(
            "INSERT INTO items (id, name, price, sold, at, ok, weight) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                4,
                "it's; DROP TABLE items; --",
                Decimal("7.25"),
                dt.date(2025, 3, 4),
                dt.datetime(2025, 3, 4, 5, 6, 7, 890123),
                True,
                0.1,
            ),
        )
        assert cur.rowcount == 1
        got = run(cur, "SELECT name, price, sold, at, ok, weight FROM items WHERE id = 4").to_pylist()
        assert got == [
            {
                "name": "it's; DROP TABLE items; --",
                "price": Decimal("7.25"),
                "sold": dt.date(2025, 3, 4),
                "at": dt.datetime(2025, 3, 4, 5, 6, 7, 890123),
                "ok": True,
                "weight": 0.1,
            }
        ]
        assert run(cur, "SELECT count(*) AS n FROM items").column("n").to_pylist() == [4]

        # NULL binds as NULL; dollar placeholders work too, in any order.
        cur.execute("UPDATE items SET note = $2 WHERE id = $1", (4, None))
        assert cur.rowcount == 1
        cur.execute("SELECT note IS NULL AS gone FROM items WHERE id = $1", (4,))
        assert cur.fetchall() == [(True,)]


def test_parameter_schema_reports_inferred_types(conn):
    with conn.cursor() as cur:
        make_items(cur)
        schema = cur.adbc_prepare("SELECT * FROM items WHERE id = ? AND name = ? AND price > ?")
        assert schema.names == ["$1", "$2", "$3"]
        assert [f.type for f in schema] == [pa.int32(), pa.utf8(), pa.decimal128(10, 2)]
        assert all(f.nullable for f in schema)
        schema = cur.adbc_prepare("INSERT INTO items (id, sold) VALUES (?, ?)")
        assert [f.type for f in schema] == [pa.int32(), pa.date32()]
        assert len(cur.adbc_prepare("SELECT 1")) == 0


def test_executemany_inserts_in_one_commit(conn, server):
    with conn.cursor() as cur:
        make_items(cur)
        rows = [(100 + i, f"n{i}", Decimal(i) / 4) for i in range(500)]
        cur.executemany("INSERT INTO items (id, name, price) VALUES (?, ?, ?)", rows)
        assert cur.rowcount == 500
        got = run(cur, "SELECT id, name, price FROM items WHERE id >= 100 ORDER BY id")
        assert [tuple(r.values()) for r in got.to_pylist()] == rows
        # 500 parameter rows became one INSERT: one commit, one new file.
        history = run(cur, "DESCRIBE HISTORY items").to_pylist()
        assert [h["operation"] for h in history].count("WRITE") == 2


def test_executemany_update_is_atomic(conn):
    with conn.cursor() as cur:
        make_items(cur)
        cur.executemany("UPDATE items SET note = ? WHERE id = ?", [("a", 1), ("b", 2)])
        assert cur.rowcount == 2
        got = run(cur, "SELECT id, note FROM items ORDER BY id").to_pylist()
        assert [(r["id"], r["note"]) for r in got] == [(1, "a"), (2, "b"), (3, "ripe")]

        # The second row breaks NOT NULL: neither row's change may land.
        with pytest.raises(adbc_dbapi.Error, match="id"):
            cur.executemany("UPDATE items SET id = ? WHERE id = ?", [(10, 1), (None, 2)])
        got = run(cur, "SELECT id FROM items ORDER BY id").column("id").to_pylist()
        assert got == [1, 2, 3]


def test_parameter_rows_past_the_cap_are_refused_and_nothing_lands(conn):
    with conn.cursor() as cur:
        make_items(cur)
        # 72 MiB of parameter rows in one call (in 8 MiB messages): past the 64 MiB the server
        # holds for one.
        names = pa.array(["x" * 1024] * 72 * 1024)
        rows = pa.table([pa.array(range(1000, 1000 + len(names))), names], names=["id", "name"])
        with pytest.raises(adbc_dbapi.Error, match="more than 64 MiB of parameter rows.*adbc_ingest"):
            cur.executemany(
                "INSERT INTO items (id, name) VALUES (?, ?)",
                pa.RecordBatchReader.from_batches(rows.schema, rows.to_batches(max_chunksize=8 * 1024)),
            )
        assert run(cur, "SELECT count(*) AS n FROM items").to_pylist() == [{"n": 3}]
        # Rows within the cap go on.
        cur.executemany("INSERT INTO items (id, name) VALUES (?, ?)", [(1000 + i, "x") for i in range(10)])
        assert cur.rowcount == 10


def test_wrong_parameter_counts_fail_clearly(conn):
    with conn.cursor() as cur:
        make_items(cur)
        with pytest.raises(adbc_dbapi.Error, match=r"\$2 but 1 value"):
            cur.execute("SELECT * FROM items WHERE id = ? AND name = ?", (1,))
        with pytest.raises(adbc_dbapi.Error, match="either"):
            cur.execute("SELECT ?, $1", (1,))
        cur.execute("SELECT ? + 1 AS x", (41,))
        assert cur.fetchall() == [(42,)]


def test_parameters_of_every_type_bind(conn):
    """Dictionary-encoded, half-precision and nested parameters bind as the values they hold,
    in queries and in writes."""
    batch = pa.record_batch(
        [
            pa.array(["red", "red"]).dictionary_encode(),
            pa.array([1.5, -0.25], pa.float16()),
            pa.array([[1, None], []], pa.list_(pa.int32())),
            pa.array([{"x": 1, "y": None}, None], pa.struct([("x", pa.int8()), ("y", pa.string())])),
            pa.array([[("k", 2)], []], pa.map_(pa.string(), pa.int64())),
        ],
        ["color", "half", "list", "point", "attrs"],
    )
    with conn.cursor() as cur:
        cur.execute("SELECT ? AS c, ? AS h, ? AS l, ? AS p, ? AS m", parameters=batch.slice(0, 1))
        got = cur.fetch_arrow_table()
        assert got.schema.types == [
            pa.utf8(),
            pa.float32(),
            pa.list_(pa.int32()),
            pa.struct([("x", pa.int8()), ("y", pa.utf8())]),
            pa.map_(pa.utf8(), pa.int64()),
        ]
        assert got.to_pylist() == [
            {"c": "red", "h": 1.5, "l": [1, None], "p": {"x": 1, "y": None}, "m": [("k", 2)]}
        ]
        run(cur, "CREATE TABLE kinds (color VARCHAR(5), half REAL, list INT[], point STRUCT<x INT, y VARCHAR>, attrs MAP(VARCHAR, BIGINT))")
        cur.executemany("INSERT INTO kinds VALUES (?, ?, ?, ?, ?)", batch)
        assert run(cur, "SELECT * FROM kinds ORDER BY half").to_pylist() == [
            {"color": "red", "half": -0.25, "list": [], "point": None, "attrs": []},
            {"color": "red", "half": 1.5, "list": [1, None], "point": {"x": 1, "y": None}, "attrs": [("k", 2)]},
        ]


def test_a_query_bound_to_several_rows_is_refused_clearly(conn):
    rows = pa.record_batch([pa.array([1, 2, 3])], ["v"])
    with conn.cursor() as cur:
        with pytest.raises(adbc_dbapi.ProgrammingError, match="a query runs with one row of parameters; 3 rows were bound"):
            cur.execute("SELECT ? + 1 AS v", parameters=rows)
        with pytest.raises(adbc_dbapi.ProgrammingError, match="a query runs with one row of parameters; 3 rows were bound"):
            cur.executemany("SELECT ? + 1 AS v", rows)
        cur.execute("SELECT ? + 1 AS v", parameters=rows.slice(1, 1))
        assert cur.fetchall() == [(3,)]


def test_flightsql_dbapi_binds_to_the_original_handle(server, conn):
    from flightsql import FlightSQLClient, connect

    with conn.cursor() as cur:
        run(cur, ITEMS_DDL)
        run(cur, ITEMS_ROWS)
    client = FlightSQLClient(host="127.0.0.1", port=server.flight_port, insecure=True)
    try:
        db = connect(client)
        cur = db.cursor()
        cur.execute("SELECT id, name FROM items WHERE name = ? OR id = ? ORDER BY id", ("pear", 3))
        assert cur.fetchall() == [[2, "pear"], [3, "plum"]]
        cur.execute("SELECT count(*) AS n FROM items")
        assert cur.fetchall() == [[3]]
        # DML through the query path: its FlightInfo has an endpoint with no rows.
        cur.execute("INSERT INTO items (id, name) VALUES (?, ?)", (9, "fig"))
        cur.execute("SELECT name FROM items WHERE id = ?", (9,))
        assert cur.fetchall() == [["fig"]]
        cur.executemany("DELETE FROM items WHERE id = ?", [(9,), (3,)])
        cur.execute("SELECT id FROM items ORDER BY id")
        assert cur.fetchall() == [[1], [2]]
    finally:
        client.close()

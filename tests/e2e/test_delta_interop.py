"""Delta Lake interoperability: MiniDB's tables read by delta-rs, DuckDB and Polars, and back."""

from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal

import duckdb
import duckdb_extension_delta
import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable, QueryBuilder, write_deltalake

from conftest import parse_ascii_table

DDL = (
    "CREATE TABLE everything (id INT NOT NULL, big BIGINT, small SMALLINT, tiny TINYINT, "
    "name VARCHAR(30), note TEXT, price DECIMAL(12,3), ratio DOUBLE, f FLOAT, ok BOOLEAN, "
    "day DATE, at TIMESTAMP)"
)
INSERTS = [
    "INSERT INTO everything VALUES (1, 9000000000, 300, -7, 'Zoë', 'ünïcödé ✓', 12345.678, 0.5, 1.25, true, '2024-02-29', '2024-02-29 13:14:15.161718')",
    "INSERT INTO everything VALUES (2, -1, -300, 127, 'b', NULL, -0.001, -2.75, NULL, false, '1970-01-01', '1970-01-01 00:00:00')",
    "INSERT INTO everything VALUES (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),"
    " (4, 0, 0, 0, '', '', 0.000, 0.0, 0.0, true, '2000-01-01', '1999-12-31 23:59:59.999999')",
    "INSERT INTO everything (id, name, day) VALUES (5, 'col list', '2038-01-19')",
]
EXPECTED = [
    (1, 9000000000, 300, -7, "Zoë", "ünïcödé ✓", Decimal("12345.678"), 0.5, 1.25, True,
     dt.date(2024, 2, 29), dt.datetime(2024, 2, 29, 13, 14, 15, 161718)),
    (2, -1, -300, 127, "b", None, Decimal("-0.001"), -2.75, None, False,
     dt.date(1970, 1, 1), dt.datetime(1970, 1, 1)),
    (3, None, None, None, None, None, None, None, None, None, None, None),
    (4, 0, 0, 0, "", "", Decimal("0.000"), 0.0, 0.0, True,
     dt.date(2000, 1, 1), dt.datetime(1999, 12, 31, 23, 59, 59, 999999)),
    (5, None, None, None, "col list", None, None, None, None, None, dt.date(2038, 1, 19), None),
]


def rows(table: pa.Table) -> list[tuple]:
    return sorted((tuple(r.values()) for r in table.to_pylist()), key=lambda r: r[0])


def read_delta_rs(path) -> pa.Table:
    builder = QueryBuilder().register("t", DeltaTable(str(path)))
    return pa.table(builder.execute("SELECT * FROM t ORDER BY 1").read_all())


def duckdb_con():
    ext = os.path.join(
        os.path.dirname(duckdb_extension_delta.__file__),
        "extensions",
        "v" + duckdb.__version__,
        "delta.duckdb_extension",
    )
    con = duckdb.connect()
    con.execute(f"LOAD '{ext}'")
    return con


def read_duckdb(path) -> pa.Table:
    con = duckdb_con()
    try:
        sql = f"SELECT * FROM delta_scan('{os.path.abspath(path)}') ORDER BY 1"
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


@pytest.fixture
def everything(server, text):
    text.ok("CREATE DATABASE lake;")
    text.ok("USE lake;")
    text.ok(DDL + ";")
    for sql in INSERTS:
        text.ok(sql + ";")
    return server.data_dir / "lake" / "everything"


def test_table_layout_and_protocol(everything):
    log = everything / "_delta_log"
    commits = sorted(p.name for p in log.glob("*.json"))
    assert commits == [f"{v:020d}.json" for v in range(len(INSERTS) + 1)]
    actions = [json.loads(l) for l in (log / commits[0]).read_text().splitlines() if l.strip()]
    protocol = next(a["protocol"] for a in actions if "protocol" in a)
    assert protocol["minReaderVersion"] == 3 and protocol["minWriterVersion"] == 7
    assert "deletionVectors" in protocol["readerFeatures"]
    assert "timestampNtz" in protocol["readerFeatures"]
    assert "timestampNtz" in protocol["writerFeatures"]
    assert len(list(everything.glob("*.parquet"))) == len(INSERTS)


def test_delta_rs_reads_minidb_table(everything, server):
    table = read_delta_rs(everything)
    assert table.column_names == [
        "id", "big", "small", "tiny", "name", "note", "price", "ratio", "f", "ok", "day", "at"
    ]
    assert rows(table) == EXPECTED
    assert DeltaTable(str(everything)).version() == len(INSERTS)


def test_duckdb_reads_minidb_table(everything):
    table = read_duckdb(everything)
    assert rows(table) == EXPECTED


def test_polars_reads_minidb_table(everything):
    frame = pl.read_delta(str(everything))
    assert frame.schema["price"] == pl.Decimal(12, 3)
    assert frame.schema["at"] == pl.Datetime("us")
    assert rows(frame.to_arrow()) == EXPECTED


def test_readers_agree_with_minidb(everything, server):
    conn = server.adbc()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM lake.everything ORDER BY id")
            mine = cur.fetch_arrow_table()
    finally:
        conn.close()
    assert rows(mine) == EXPECTED
    assert rows(read_delta_rs(everything)) == rows(mine) == rows(read_duckdb(everything))


def test_delta_rs_table_is_visible_to_minidb(server, text):
    text.ok("CREATE DATABASE ext;")
    path = server.data_dir / "ext" / "made_by_delta_rs"
    data = pa.table(
        {
            "id": pa.array([3, 1, 2], pa.int64()),
            "label": pa.array(["three", "one", None], pa.utf8()),
            "score": pa.array([0.5, 1.5, 2.5], pa.float64()),
            "day": pa.array([dt.date(2024, 1, 3), dt.date(2024, 1, 1), None], pa.date32()),
        }
    )
    write_deltalake(str(path), data)
    write_deltalake(str(path), data.slice(0, 1).set_column(0, "id", pa.array([4], pa.int64())), mode="append")
    text.ok("USE ext;")
    assert text.query("SHOW TABLES;") == "Tables in ext:\n - made_by_delta_rs"
    header, got = parse_ascii_table(text.query("SELECT id, label, score, day FROM made_by_delta_rs ORDER BY id;"))
    assert header == ["id", "label", "score", "day"]
    assert got == [
        ["1", "one", "1.5", "2024-01-01"],
        ["2", "NULL", "2.5", "NULL"],
        ["3", "three", "0.5", "2024-01-03"],
        ["4", "three", "0.5", "2024-01-03"],
    ]
    # MiniDB can append to it, and delta-rs still reads the result.
    assert text.query("INSERT INTO made_by_delta_rs VALUES (5, 'five', 5.0, '2024-01-05');") == (
        "Inserted into made_by_delta_rs"
    )
    back = read_delta_rs(path)
    assert back.column("id").to_pylist() == [1, 2, 3, 4, 5]
    assert back.column("label").to_pylist()[-1] == "five"

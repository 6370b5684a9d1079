"""Time travel and DESCRIBE HISTORY against the real server, checked against delta-rs and
DuckDB reading the same versions."""

from __future__ import annotations

import datetime as dt
import os
import time

import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder

from conftest import parse_ascii_table
from test_delta_interop import duckdb_con
from test_mor import execute, query


def delta_rs_rows(path, version: int) -> list[tuple]:
    builder = QueryBuilder().register("t", DeltaTable(str(path), version=version))
    table = pa.table(builder.execute("SELECT * FROM t ORDER BY 1").read_all())
    return [tuple(r.values()) for r in table.to_pylist()]


def duckdb_rows(path, version: int) -> list[tuple]:
    con = duckdb_con()
    try:
        sql = f"SELECT * FROM delta_scan('{os.path.abspath(path)}', version => {version}) ORDER BY 1"
        return [tuple(r) for r in con.sql(sql).fetchall()]
    finally:
        con.close()


def test_every_version_reads_like_the_peers_read_it(server, conn):
    cur = conn.cursor()
    execute(cur, "CREATE TABLE h (id INT, v VARCHAR)")
    execute(cur, "INSERT INTO h VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    execute(cur, "UPDATE h SET v = 'B' WHERE id = 2")
    execute(cur, "DELETE FROM h WHERE id = 3")
    execute(cur, "INSERT INTO h VALUES (4, 'd')")
    execute(cur, "OPTIMIZE TABLE h")
    path = server.data_dir / "default" / "h"
    for version in range(6):
        ours = query(cur, f"SELECT * FROM h VERSION AS OF {version} ORDER BY 1")
        assert ours == delta_rs_rows(path, version), version
        assert ours == duckdb_rows(path, version), version
    assert query(cur, "SELECT * FROM h VERSION AS OF 5 ORDER BY 1") == query(cur, "SELECT * FROM h ORDER BY 1")


def test_describe_history_and_timestamp_as_of(server, conn, text):
    cur = conn.cursor()
    execute(cur, "CREATE TABLE g (id INT)")
    execute(cur, "INSERT INTO g VALUES (1)")
    time.sleep(0.05)
    execute(cur, "INSERT INTO g VALUES (2)")
    time.sleep(0.05)
    execute(cur, "DELETE FROM g WHERE id = 1")
    cur.execute("DESCRIBE HISTORY g")
    history = cur.fetch_arrow_table().to_pylist()
    assert [h["version"] for h in history] == [3, 2, 1, 0]
    assert [h["operation"] for h in history] == ["DELETE", "WRITE", "WRITE", "CREATE TABLE"]
    assert [h["readVersion"] for h in history] == [2, 1, 0, None]
    assert history[1]["isBlindAppend"] is True and history[0]["isBlindAppend"] is False
    assert '"numDeletedRows":1' in history[0]["operationMetrics"]
    stamps = [h["timestamp"] for h in reversed(history)]
    assert stamps == sorted(stamps) and len(set(stamps)) == 4

    # The newest version committed at or before a time: between commits 1 and 2 reads 1.
    between = stamps[1] + (stamps[2] - stamps[1]) / 2
    iso = between.strftime("%Y-%m-%d %H:%M:%S.%f")
    assert query(cur, f"SELECT id FROM g TIMESTAMP AS OF '{iso}' ORDER BY id") == [(1,)]
    exact = stamps[2].strftime("%Y-%m-%dT%H:%M:%S.%f") + "+00:00"
    assert query(cur, f"SELECT id FROM g TIMESTAMP AS OF '{exact}' ORDER BY id") == [(1,), (2,)]

    # The text protocol renders the same history as a table.
    header, rows = parse_ascii_table(text.query("DESCRIBE HISTORY g;"))
    assert header[:3] == ["version", "timestamp", "operation"]
    assert [r[0] for r in rows] == ["3", "2", "1", "0"]
    assert "no version 7" in text.query("SELECT * FROM g VERSION AS OF 7;")
    assert "does not exist" in text.query("DESCRIBE HISTORY nope;") or "not found" in text.query(
        "DESCRIBE HISTORY nope;"
    )
    assert isinstance(stamps[0], dt.datetime)

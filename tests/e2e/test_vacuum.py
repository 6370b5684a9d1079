"""VACUUM against the real server: it deletes only what no snapshot inside retention needs
(live deletion vectors and index segments included), peers still read the table, and time
travel past what it removed fails clearly."""

from __future__ import annotations

import os
import time

from conftest import parse_ascii_table
from test_indexes import index_use
from test_mor import commits, execute, peer_rows, query


def vacuum(text, sql: str) -> list[list[str]]:
    header, rows = parse_ascii_table(text.query(sql))
    assert header == ["path", "size_bytes", "action"], header
    return rows


def test_vacuum_keeps_what_snapshots_need_and_deletes_the_rest(server, text, conn):
    cur = conn.cursor()
    execute(cur, "CREATE TABLE v (id INT PRIMARY KEY, w VARCHAR)")
    execute(cur, "INSERT INTO v VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    execute(cur, "INSERT INTO v VALUES (4, 'd'), (5, 'e')")
    execute(cur, "DELETE FROM v WHERE id = 2")
    execute(cur, "OPTIMIZE TABLE v")
    execute(cur, "DELETE FROM v WHERE id = 5")  # a live deletion vector on the new file
    table = server.data_dir / "default" / "v"
    rows = query(cur, "SELECT * FROM v ORDER BY id")
    orphan = table / "part-00000-orphan-c000.snappy.parquet"
    orphan.write_bytes(b"left by a crashed writer")
    old = time.time() - 3600
    os.utime(orphan, (old, old))

    # Within the default 7 days, nothing is garbage but the old orphan... which is not old
    # enough either; and retention cannot be shortened by RETAIN alone.
    assert vacuum(text, "VACUUM v DRY RUN;") == []
    assert "shorter than the table's retention" in text.query("VACUUM v RETAIN 0 HOURS;")

    text.ok("ALTER TABLE v SET TBLPROPERTIES ('delta.deletedFileRetentionDuration' = 'interval 0 hours');")
    planned = vacuum(text, "VACUUM v RETAIN 0 HOURS DRY RUN;")
    assert {r[2] for r in planned} == {"would delete"}
    paths = [r[0] for r in planned]
    assert orphan.name in paths
    assert any(p.startswith("deletion_vector_") for p in paths)  # the DV OPTIMIZE purged
    assert any(p.startswith("_minidb_index/") for p in paths)  # segments of rewritten files
    assert all((table / p).exists() for p in paths)  # a dry run deletes nothing

    deleted = vacuum(text, "VACUUM TABLE v RETAIN 0 HOURS;")
    assert [r[0] for r in deleted] == paths
    assert all(not (table / p).exists() for p in paths)
    info = commits(table)[-1][0]["commitInfo"]
    assert info["operation"] == "VACUUM END"
    assert info["operationMetrics"]["numDeletedFiles"] == len(paths)

    # The table, its live DV and its index are intact; peers agree.
    assert query(cur, "SELECT * FROM v ORDER BY id") == rows
    assert list(table.glob("deletion_vector_*.bin"))
    assert index_use(text, "SELECT * FROM v WHERE id = 3")[:3] == ("v_pkey", 1, 1)
    for name, peer in peer_rows(table).items():
        assert peer == rows, name

    # Time travel: the newest versions remain; older ones fail clearly.
    latest = len(commits(table)) - 2  # the ALTER TABLE, the newest version at the cutoff
    assert query(cur, f"SELECT * FROM v VERSION AS OF {latest} ORDER BY id") == rows
    error = text.query("SELECT * FROM v VERSION AS OF 1;")
    assert "VACUUM removed the files of versions before" in error, error
    assert vacuum(text, "VACUUM v RETAIN 0 HOURS;") == []

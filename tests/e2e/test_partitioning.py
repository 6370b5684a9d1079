"""PARTITION BY HASH and RANGE against the real server: scans read only the partitions a
filter can match (EXPLAIN shows it), answers never change, and delta-rs, DuckDB and polars
read the tables with exactly their declared columns."""

from __future__ import annotations

import re

import pyarrow as pa
from deltalake import write_deltalake

from conftest import parse_ascii_table
from test_delta_interop import read_delta_rs, read_duckdb
from test_mor import commits, peer_rows

PARTITION_RE = re.compile(
    r"DeltaScanExec: .*files=(\d+)/(\d+) \((\d+) pruned by partition, (\d+) skipped by statistics\)"
)


def partition_counts(text, sql: str) -> tuple[int, int, int, int]:
    """(files read, files in snapshot, pruned by partition, skipped by statistics)."""
    plan = text.query(f"EXPLAIN {sql};")
    m = PARTITION_RE.search(plan)
    assert m, f"no partitioned DeltaScanExec line in plan:\n{plan}"
    return tuple(int(g) for g in m.groups())


def rows_of(text, sql: str) -> list[list[str]]:
    return parse_ascii_table(text.query(f"{sql};"))[1]


def live_adds(table_dir) -> dict[str, dict]:
    live: dict[str, dict] = {}
    for actions in commits(table_dir):
        for action in actions:
            if "add" in action:
                live[action["add"]["path"]] = action["add"]
            elif "remove" in action:
                live.pop(action["remove"]["path"], None)
    return live


def test_hash_partitions_prune_equality_and_peers_read(server, text):
    text.ok("CREATE TABLE h (id BIGINT, v VARCHAR) PARTITION BY HASH (id) PARTITIONS 8;")
    # Keys scrambled across the whole range, so file statistics cannot skip anything.
    for batch in range(3):
        values = ", ".join(f"({(batch * 200 + i) * 7919 % 600}, 'v{batch}-{i}')" for i in range(200))
        text.ok(f"INSERT INTO h VALUES {values};")
    table = server.data_dir / "default" / "h"
    adds = live_adds(table)
    assert len(adds) == 24, "each INSERT writes one file per partition"
    assert {a["tags"]["minidb.partition"] for a in adds.values()} == {str(p) for p in range(8)}
    metadata = next(a["metaData"] for a in commits(table)[0] if "metaData" in a)
    assert metadata["partitionColumns"] == []

    read, total, pruned, skipped = partition_counts(text, "SELECT * FROM h WHERE id = 42")
    assert (total, pruned, skipped) == (24, 21, 0) and read == 3
    assert rows_of(text, "SELECT id FROM h WHERE id = 42") == [["42"]]
    read, _, pruned, _ = partition_counts(text, "SELECT * FROM h WHERE id IN (42, 43, 44)")
    assert read in (3, 6, 9) and pruned == 24 - read
    assert rows_of(text, "SELECT id FROM h WHERE id IN (42, 43, 44) ORDER BY id") == [["42"], ["43"], ["44"]]
    # A range says nothing about hash partitions.
    assert partition_counts(text, "SELECT * FROM h WHERE id < 10")[2] == 0

    expected = sorted(((batch * 200 + i) * 7919 % 600, f"v{batch}-{i}") for batch in range(3) for i in range(200))
    for name, rows in peer_rows(table).items():
        assert sorted(rows) == expected, name
    at_42 = [[v] for i, v in expected if i == 42]
    assert read_delta_rs(table).column_names == ["id", "v"]
    assert read_duckdb(table).column_names == ["id", "v"]

    # Another engine appends a file without a partition tag: it is read by every scan.
    write_deltalake(
        str(table),
        pa.table({"id": pa.array([42], pa.int64()), "v": pa.array(["from delta-rs"])}),
        mode="append",
    )
    read, total, pruned, _ = partition_counts(text, "SELECT * FROM h WHERE id = 42")
    assert (read, total, pruned) == (4, 25, 21)
    assert rows_of(text, "SELECT v FROM h WHERE id = 42 ORDER BY v") == [["from delta-rs"]] + at_42

    # OPTIMIZE packs each partition's files and moves the untagged file's row to its partition
    # (a file of its own); the next OPTIMIZE packs that one with its partition's file.
    text.ok("OPTIMIZE h;")
    adds = live_adds(table)
    assert len(adds) == 9 and all("minidb.partition" in a["tags"] for a in adds.values())
    assert partition_counts(text, "SELECT * FROM h WHERE id = 42")[:3] == (2, 9, 7)
    text.ok("OPTIMIZE h;")
    assert len(live_adds(table)) == 8
    assert partition_counts(text, "SELECT * FROM h WHERE id = 42")[:3] == (1, 8, 7)
    assert rows_of(text, "SELECT v FROM h WHERE id = 42 ORDER BY v") == [["from delta-rs"]] + at_42
    assert len(read_delta_rs(table)) == 601

    # The declaration lives in the log: a restarted server prunes the same way.
    server.restart()
    with server.text() as again:
        assert partition_counts(again, "SELECT * FROM h WHERE id = 42")[:3] == (1, 8, 7)
        assert rows_of(again, "SELECT count(*) FROM h") == [["601"]]


def test_range_partitions_prune_ranges(server, text):
    text.ok(
        "CREATE TABLE r (id INT, v DOUBLE) PARTITION BY RANGE (id) ("
        "PARTITION p_low VALUES LESS THAN (100), PARTITION p_mid VALUES LESS THAN (200), "
        "PARTITION p_high VALUES LESS THAN (MAXVALUE));"
    )
    # Each INSERT covers the whole key range: statistics alone could not skip a file.
    for batch in range(4):
        values = ", ".join(f"({i * 4 + batch}, {i}.5)" for i in range(75))
        text.ok(f"INSERT INTO r VALUES {values};")
    assert partition_counts(text, "SELECT * FROM r WHERE id < 100") == (4, 12, 8, 0)
    assert partition_counts(text, "SELECT * FROM r WHERE id BETWEEN 150 AND 250") == (8, 12, 4, 0)
    assert partition_counts(text, "SELECT * FROM r WHERE id >= 200")[:3] == (4, 12, 8)
    assert partition_counts(text, "SELECT * FROM r WHERE id = 5 OR v > 1")[2] == 0
    assert rows_of(text, "SELECT count(*), min(id), max(id) FROM r WHERE id BETWEEN 150 AND 250") == [["101", "150", "250"]]
    _, files = parse_ascii_table(
        text.query("SELECT partition, count(*) FROM sys.table_files WHERE table_name = 'r' GROUP BY partition ORDER BY partition;")
    )
    assert files == [["p_high", "4"], ["p_low", "4"], ["p_mid", "4"]]
    table = server.data_dir / "default" / "r"
    for name, rows in peer_rows(table).items():
        assert [r[0] for r in rows] == list(range(300)), name


def test_automatic_ranges_become_disjoint_after_optimize(server, text):
    text.ok("CREATE TABLE a (id INT, pad VARCHAR) PARTITION BY RANGE (id) TBLPROPERTIES ('delta.targetFileSize' = '8192');")
    for batch in range(8):
        values = ", ".join(f"({i * 8 + batch}, 'pad-{i:04}-{batch}')" for i in range(250))
        text.ok(f"INSERT INTO a VALUES {values};")
    # Before: every file covers the whole range.
    read, total, pruned, _ = partition_counts(text, "SELECT * FROM a WHERE id < 100")
    assert (read, total, pruned) == (8, 8, 0)
    text.ok("OPTIMIZE a;")
    read, total, pruned, skipped = partition_counts(text, "SELECT * FROM a WHERE id < 100")
    assert total > 2 and pruned >= total - 2 and skipped == 0, (read, total, pruned)
    assert rows_of(text, "SELECT count(*), sum(id) FROM a WHERE id < 100") == [["100", str(sum(range(100)))]]
    table = server.data_dir / "default" / "a"
    for name, rows in peer_rows(table).items():
        assert [r[0] for r in rows] == list(range(2000)), name

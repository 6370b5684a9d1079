"""Checkpoints against the real server: written every `delta.checkpointInterval` commits,
readable by delta-rs and DuckDB with the commits before them deleted, used by MiniDB itself
after a restart, and log cleanup honours `delta.logRetentionDuration`."""

from __future__ import annotations

import json
import time

import pyarrow.parquet as pq
import pytest

from conftest import parse_ascii_table
from test_mor import execute, peer_rows, query


def wait_for(predicate, what: str, timeout: float = 20):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def last_checkpoint(table) -> dict | None:
    path = table / "_delta_log" / "_last_checkpoint"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def test_checkpoints_replace_deleted_commits_for_every_reader(server, conn):
    cur = conn.cursor()
    execute(cur, "CREATE TABLE c (id INT PRIMARY KEY, w VARCHAR)")
    for i in range(9):
        execute(cur, f"INSERT INTO c VALUES ({2 * i}, 'a{i}'), ({2 * i + 1}, 'b{i}')")
    execute(cur, "DELETE FROM c WHERE id IN (3, 4)")  # commit 10: deletion vectors
    table = server.data_dir / "default" / "c"
    log = table / "_delta_log"
    wait_for(lambda: (last_checkpoint(table) or {}).get("version") == 10, "checkpoint 10")
    checkpoint = log / "00000000000000000010.checkpoint.parquet"
    actions = pq.read_table(checkpoint).to_pylist()
    kinds = sorted(next(k for k, v in row.items() if v is not None) for row in actions)
    assert kinds.count("protocol") == 1 and kinds.count("metaData") == 1
    assert kinds.count("add") == 9  # every live file, two of them with a deletion vector
    assert kinds.count("remove") == 2  # tombstones: the two files as they were before
    assert "commitInfo" not in pq.read_schema(checkpoint).names
    dvs = [row["add"]["deletionVector"] for row in actions if row["add"] is not None]
    assert sum(dv is not None for dv in dvs) == 2
    assert last_checkpoint(table)["numOfAddFiles"] == 9

    execute(cur, "UPDATE c SET w = 'z' WHERE id = 17")  # commit 11, after the checkpoint
    expected = query(cur, "SELECT id, w FROM c ORDER BY id")
    assert len(expected) == 16

    # Commits 0-9 deleted (as log cleanup would): everyone reads checkpoint 10 + commit 11.
    for version in range(10):
        (log / f"{version:020}.json").unlink()
    peers = peer_rows(table)
    assert peers["delta-rs"] == peers["duckdb"] == sorted(expected), peers
    server.restart()
    cur = server.adbc().cursor()
    assert query(cur, "SELECT id, w FROM c ORDER BY id") == expected
    assert query(cur, "SELECT count(*) FROM c VERSION AS OF 10") == [(16,)]
    # The driver's error type varies; the message says what went wrong.
    with pytest.raises(Exception, match="log cleanup"):
        cur.execute("SELECT count(*) FROM c VERSION AS OF 5")
    # Writes go on from the checkpointed state; the primary key still holds.
    execute(cur, "INSERT INTO c VALUES (100, 'new')")
    with pytest.raises(Exception, match=r"duplicate key violates PRIMARY KEY"):
        cur.execute("INSERT INTO c VALUES (0, 'dup')")
    assert query(cur, "SELECT count(*) FROM c") == [(17,)]


def test_log_cleanup_follows_retention(server, text):
    text.ok(
        "CREATE TABLE r (id INT) TBLPROPERTIES ('delta.checkpointInterval' = '3', "
        "'delta.logRetentionDuration' = 'interval 0 hours');"
    )
    for i in range(7):
        text.ok(f"INSERT INTO r VALUES ({i});")
    table = server.data_dir / "default" / "r"
    log = table / "_delta_log"
    # Checkpoints at 3 and 6; with no retention, cleanup keeps only checkpoint 6 onwards.
    wait_for(
        lambda: sorted(p.name[:20] for p in log.glob("*.json")) == [f"{v:020}" for v in (6, 7)],
        "log cleanup",
    )
    assert sorted(p.name for p in log.glob("*.checkpoint.parquet")) == [
        "00000000000000000006.checkpoint.parquet"
    ]
    assert parse_ascii_table(text.query("SELECT count(*) AS n FROM r;"))[1] == [["7"]]
    header, history = parse_ascii_table(text.query("DESCRIBE HISTORY r;"))
    assert header[0] == "version"
    assert sorted(int(row[0]) for row in history) == [6, 7]
    assert sorted(peer_rows(table)["duckdb"]) == [(i,) for i in range(7)]

    # The default keeps 30 days of commits: nothing is cleaned up.
    text.ok("CREATE TABLE k (id INT) TBLPROPERTIES ('delta.checkpointInterval' = '2');")
    for i in range(4):
        text.ok(f"INSERT INTO k VALUES ({i});")
    klog = server.data_dir / "default" / "k" / "_delta_log"
    wait_for(lambda: (klog / "00000000000000000004.checkpoint.parquet").exists(), "checkpoint 4")
    assert len(list(klog.glob("*.json"))) == 5
    assert "must be a positive whole number" in text.query(
        "ALTER TABLE k SET TBLPROPERTIES ('delta.checkpointInterval' = '0');"
    )

"""CREATE TABLE … DEEP | SHALLOW CLONE and … AS SELECT: a clone reads as its source's version did,
in MiniDB and in the peers (a deep clone in delta-rs, DuckDB's delta_scan and polars; a shallow
clone in delta-rs); a deep clone keeps reading after the source is vacuumed and dropped, a
shallow clone until the source's VACUUM deletes files it names."""

from __future__ import annotations

import pytest

from test_delta_interop import read_delta_rs
from test_mor import execute, peer_rows, query


def rows(cur, sql: str) -> list[tuple]:
    return sorted(query(cur, sql), key=repr)


def make_source(cur, table: str) -> None:
    """A keyed, indexed table of 240 rows in three files, with deletion vectors."""
    execute(cur, f"CREATE TABLE {table} (id INT PRIMARY KEY, grp INT, v VARCHAR)")
    execute(cur, f"CREATE INDEX {table}_grp ON {table} (grp)")
    for start in range(0, 300, 100):
        values = ", ".join(f"({i}, {i % 7}, 'v{i}')" for i in range(start, start + 100))
        execute(cur, f"INSERT INTO {table} VALUES {values}")
    execute(cur, f"DELETE FROM {table} WHERE id % 5 = 0")


def test_deep_clones_read_like_their_source_version_after_vacuum_and_drop(server, conn):
    cur = conn.cursor()
    make_source(cur, "src")
    execute(cur, "UPDATE src SET v = 'updated' WHERE grp = 3")
    cur.execute("DESCRIBE HISTORY src")
    newest = max(cur.fetch_arrow_table().column("version").to_pylist())
    expected_now = rows(cur, "SELECT * FROM src")
    expected_v3 = rows(cur, "SELECT * FROM src VERSION AS OF 3")
    assert len(expected_v3) == 200 and len(expected_now) == 240

    execute(cur, "CREATE TABLE now DEEP CLONE src")
    execute(cur, "CREATE TABLE v3 CLONE src VERSION AS OF 3")
    assert rows(cur, "SELECT * FROM now") == expected_now
    assert rows(cur, "SELECT * FROM v3") == expected_v3
    assert rows(cur, "SELECT id FROM now WHERE grp = 3") == [r[:1] for r in expected_now if r[1] == 3]

    # The source rewrites and deletes every file it had; the clones hold copies.
    execute(cur, "ALTER TABLE src SET TBLPROPERTIES ('delta.deletedFileRetentionDuration' = 'interval 0 hours')")
    execute(cur, "OPTIMIZE src")
    execute(cur, "VACUUM src RETAIN 0 HOURS")
    execute(cur, "DROP TABLE src")
    assert rows(cur, "SELECT * FROM now") == expected_now
    assert rows(cur, "SELECT * FROM v3") == expected_v3
    data = server.data_dir / "default"
    for name, expected in [("now", expected_now), ("v3", expected_v3)]:
        for peer, got in peer_rows(data / name).items():
            assert sorted(got, key=repr) == expected, f"{peer} reads clone {name} otherwise"
    cur.execute("DESCRIBE HISTORY now")
    history = cur.fetch_arrow_table().to_pylist()
    assert [h["operation"] for h in history] == ["CLONE"]
    assert f'"sourceVersion":{newest}' in history[0]["operationParameters"]


def test_create_table_as_select_is_one_commit_and_a_failure_leaves_no_table(server, conn):
    cur = conn.cursor()
    execute(cur, "CREATE TABLE base (id INT PRIMARY KEY, v VARCHAR)")
    execute(cur, "INSERT INTO base VALUES " + ", ".join(f"({i}, 'v{i}')" for i in range(50)))
    assert execute(cur, "CREATE TABLE copy PARTITION BY HASH (id) PARTITIONS 3 AS SELECT * FROM base WHERE id < 30") == 30
    assert rows(cur, "SELECT * FROM copy") == sorted([(i, f"v{i}") for i in range(30)], key=repr)
    cur.execute("DESCRIBE HISTORY copy")
    assert [h["operation"] for h in cur.fetch_arrow_table().to_pylist()] == ["CREATE TABLE AS SELECT"]

    # A row that breaks the declared key fails the statement before any table exists.
    with pytest.raises(Exception, match="duplicate key"):
        cur.execute("CREATE TABLE keyed (k INT PRIMARY KEY) AS SELECT id % 10 FROM base")
    with pytest.raises(Exception, match="division by zero"):
        cur.execute("CREATE TABLE broken AS SELECT id / 0 AS x FROM base")
    cur.execute("SHOW TABLES")
    assert sorted(cur.fetch_arrow_table().column(0).to_pylist()) == ["base", "copy"]


def test_shallow_clones_read_like_their_source_version_until_the_source_is_vacuumed(server, conn):
    cur = conn.cursor()
    make_source(cur, "base")
    expected_now = rows(cur, "SELECT * FROM base")
    expected_v3 = rows(cur, "SELECT * FROM base VERSION AS OF 3")

    execute(cur, "CREATE TABLE thin SHALLOW CLONE base")
    execute(cur, "CREATE TABLE thin3 SHALLOW CLONE base VERSION AS OF 3")
    assert rows(cur, "SELECT * FROM thin") == expected_now
    assert rows(cur, "SELECT * FROM thin3") == expected_v3
    assert rows(cur, "SELECT id FROM thin WHERE grp = 3") == [r[:1] for r in expected_now if r[1] == 3]
    cur.execute("DESCRIBE HISTORY thin")
    history = cur.fetch_arrow_table().to_pylist()
    assert [h["operation"] for h in history] == ["CLONE"]
    assert '"isShallow":true' in history[0]["operationParameters"]

    # The clone's own writes stay its own: its deletion vectors go to its folder.
    assert execute(cur, "DELETE FROM thin WHERE grp = 1") == len([r for r in expected_now if r[1] == 1])
    expected_thin = [r for r in expected_now if r[1] != 1]
    assert rows(cur, "SELECT * FROM thin") == expected_thin
    assert rows(cur, "SELECT * FROM base") == expected_now

    # VACUUM on the source deletes the files it no longer uses once they are past its
    # retention, even those a shallow clone still names: the clone then fails, naming them.
    execute(cur, "ALTER TABLE base SET TBLPROPERTIES ('delta.deletedFileRetentionDuration' = 'interval 0 hours')")
    execute(cur, "OPTIMIZE base")
    assert rows(cur, "SELECT * FROM thin") == expected_thin
    execute(cur, "VACUUM base RETAIN 0 HOURS")
    assert rows(cur, "SELECT * FROM base") == expected_now
    # (A server may answer from the columns it has cached until it reads the files again.)
    cur.close()
    conn.close()
    server.restart()
    with server.text() as again:
        assert "is missing: the log lists it, storage has no such object" in again.query("SELECT * FROM thin;")
        assert "FSCK" not in again.query("SELECT count(*) FROM base;")


def test_peers_read_a_shallow_clone_like_its_source_version(server, conn):
    cur = conn.cursor()
    execute(cur, "CREATE TABLE base (id INT, v VARCHAR)")
    for start in range(0, 200, 50):
        values = ", ".join(f"({i}, 'v{i}')" for i in range(start, start + 50))
        execute(cur, f"INSERT INTO base VALUES {values}")
    execute(cur, "DELETE FROM base WHERE id % 3 = 0")
    execute(cur, "UPDATE base SET v = 'updated' WHERE id < 20")
    expected = rows(cur, "SELECT * FROM base")
    expected_v2 = rows(cur, "SELECT * FROM base VERSION AS OF 2")
    execute(cur, "CREATE TABLE thin SHALLOW CLONE base")
    execute(cur, "CREATE TABLE thin2 SHALLOW CLONE base VERSION AS OF 2")
    data = server.data_dir / "default"
    for name, want in [("thin", expected), ("thin2", expected_v2)]:
        # The clone's folder holds its log only: it names the source's files and vectors.
        assert [p.name for p in (data / name).iterdir()] == ["_delta_log"]
        # delta-rs resolves the absolute URIs; DuckDB's delta_scan 1.5 and polars join every
        # path to the table folder, so they cannot read a shallow clone (docs/sql.md).
        got = [tuple(r.values()) for r in read_delta_rs(data / name).to_pylist()]
        assert sorted(got, key=repr) == want, f"delta-rs reads shallow clone {name} otherwise"

"""UPDATE/DELETE as Merge-on-Read: deletion vectors on disk, counts over Flight SQL, and peers
(delta-rs, DuckDB, polars) reading exactly what MiniDB reads after random DML."""

from __future__ import annotations

import json
import random
import struct
import zlib

import polars as pl
import pyarrow as pa
import pytest
from deltalake import write_deltalake
from deltalake.writer import WriterProperties

from conftest import parse_ascii_table
from test_delta_interop import read_delta_rs, read_duckdb


def execute(cur, sql: str) -> int:
    cur.execute(sql)
    return cur.rowcount


def query(cur, sql: str) -> list[tuple]:
    cur.execute(sql)
    return [tuple(r.values()) for r in cur.fetch_arrow_table().to_pylist()]


def commits(table_dir) -> list[list[dict]]:
    log = sorted((table_dir / "_delta_log").glob("*.json"))
    return [[json.loads(line) for line in p.read_text().splitlines()] for p in log]


def peer_rows(table_dir) -> dict[str, list[tuple]]:
    key = lambda r: tuple((v is None, v) for v in r)  # noqa: E731
    as_rows = lambda t: sorted((tuple(r.values()) for r in t.to_pylist()), key=key)  # noqa: E731
    return {
        "delta-rs": as_rows(read_delta_rs(table_dir)),
        "duckdb": as_rows(read_duckdb(table_dir)),
        "polars": as_rows(pl.read_delta(str(table_dir)).to_arrow()),
    }


def test_update_and_delete_counts_over_flight(conn):
    cur = conn.cursor()
    execute(cur, "CREATE TABLE t (id INT NOT NULL, v INT)")
    assert execute(cur, "INSERT INTO t VALUES (1, 1), (2, 2), (3, 3), (4, NULL)") == 4
    assert execute(cur, "UPDATE t SET v = v + 10 WHERE id <= 2") == 2
    assert execute(cur, "UPDATE t SET v = 0 WHERE id = 99") == 0
    assert execute(cur, "DELETE FROM t WHERE v IS NULL") == 1
    assert query(cur, "SELECT id, v FROM t ORDER BY id") == [(1, 11), (2, 12), (3, 3)]
    with pytest.raises(Exception, match="NOT NULL"):
        cur.execute("UPDATE t SET id = NULL")
    assert query(cur, "SELECT count(*) FROM t") == [(3,)]


def test_delete_writes_a_deletion_vector_not_a_new_file(server, conn):
    cur = conn.cursor()
    execute(cur, "CREATE TABLE t (id BIGINT NOT NULL, pad VARCHAR)")
    execute(cur, "INSERT INTO t SELECT value, repeat('x', 100) FROM generate_series(0, 9999)")
    table = server.data_dir / "default" / "t"
    data_files = sorted(p.name for p in table.glob("*.parquet"))
    assert len(data_files) == 1

    assert execute(cur, "DELETE FROM t WHERE id IN (0, 4242, 9999)") == 3
    actions = commits(table)[-1]
    info = actions[0]["commitInfo"]
    assert info["operation"] == "DELETE" and info["isBlindAppend"] is False
    remove = next(a["remove"] for a in actions if "remove" in a)
    add = next(a["add"] for a in actions if "add" in a)
    assert remove["path"] == add["path"] == data_files[0]
    assert "deletionVector" not in remove
    stats = json.loads(add["stats"])
    assert stats["numRecords"] == 10000 and stats["tightBounds"] is False
    dv = add["deletionVector"]
    assert (dv["storageType"], dv["offset"], dv["cardinality"]) == ("u", 1, 3)

    # The DV file's bytes follow the protocol: version, BE size, LE magic + bitmap, BE CRC-32.
    dv_files = list(table.glob("deletion_vector_*.bin"))
    assert len(dv_files) == 1
    raw = dv_files[0].read_bytes()
    size = struct.unpack(">I", raw[1:5])[0]
    assert raw[0] == 1 and size == dv["sizeInBytes"] and len(raw) == 1 + 4 + size + 4
    assert struct.unpack("<I", raw[5:9])[0] == 1681511377
    assert struct.unpack(">I", raw[5 + size :])[0] == zlib.crc32(raw[5 : 5 + size])
    # No data file was rewritten.
    assert sorted(p.name for p in table.glob("*.parquet")) == data_files

    # A second DELETE on the same file replaces its DV with the union.
    assert execute(cur, "DELETE FROM t WHERE id < 3") == 2
    actions = commits(table)[-1]
    remove = next(a["remove"] for a in actions if "remove" in a)
    add = next(a["add"] for a in actions if "add" in a)
    assert remove["deletionVector"] == dv
    assert add["deletionVector"]["cardinality"] == 5
    assert query(cur, "SELECT count(*), min(id), max(id) FROM t") == [(9995, 3, 9998)]
    for peer, rows in peer_rows(table).items():
        assert len(rows) == 9995, peer


def test_deleting_every_row_of_a_file_removes_it(server, conn):
    cur = conn.cursor()
    execute(cur, "CREATE TABLE t (id INT)")
    execute(cur, "INSERT INTO t VALUES (1), (2)")
    execute(cur, "INSERT INTO t VALUES (3)")
    table = server.data_dir / "default" / "t"
    assert execute(cur, "DELETE FROM t WHERE id <= 2") == 2
    actions = commits(table)[-1]
    assert [next(iter(a)) for a in actions] == ["commitInfo", "remove"]
    assert not list(table.glob("deletion_vector_*.bin"))
    assert query(cur, "SELECT id FROM t") == [(3,)]


def test_deletion_vectors_are_cached_within_one_budget_for_all_tables(start_server):
    """Parsed deletion vectors are kept for the next statement, all tables' within the
    --deletion-vector-cache budget: reads hit it, the least recently used vector makes room,
    and answers stay right."""
    server = start_server(["--deletion-vector-cache", "40KiB"])

    def tier(t) -> dict[str, int]:
        header, rows = parse_ascii_table(t.ok(
            "SELECT capacity_bytes, used_bytes, blocks, hits, misses, evictions FROM sys.cache "
            "WHERE tier = 'deletion_vectors';"))
        return {name: int(value) for name, value in zip(header, rows[0])}

    with server.text() as t:
        assert tier(t)["capacity_bytes"] == 40 * 1024
        for table in ("a", "b", "c"):
            t.ok(f"CREATE TABLE {table} (id INT);")
            t.ok(f"INSERT INTO {table} SELECT value FROM generate_series(0, 99999);")
            # About 16 KB of bitmap each: two fit, the third evicts the oldest.
            assert t.query(f"DELETE FROM {table} WHERE id % 3 = 0;") == \
                f"Deleted 33334 row(s) from {table}"
        count = lambda table: parse_ascii_table(t.ok(
            f"SELECT count(*) FROM {table} WHERE id % 2 = 1;"))[1]
        assert count("a") == [["33333"]]
        first = tier(t)
        assert count("a") == [["33333"]]
        again = tier(t)
        assert again["hits"] > first["hits"] and again["misses"] == first["misses"], again
        for table in ("b", "c", "a"):
            assert count(table) == [["33333"]]
        last = tier(t)
        assert last["evictions"] > 0 and last["misses"] > again["misses"], last
        assert 0 < last["used_bytes"] <= last["capacity_bytes"], last


def test_row_positions_count_across_row_groups(server, conn):
    """A peer-written table with 10 row groups of 1000 rows, upgraded to deletion vectors by
    its first DELETE; filters that skip row groups still see the right rows everywhere."""
    cur = conn.cursor()
    execute(cur, "CREATE DATABASE lake")
    table = server.data_dir / "lake" / "groups"
    data = pa.table({"id": pa.array(range(10000), pa.int64())})
    write_deltalake(
        str(table), data, writer_properties=WriterProperties(max_row_group_size=1000)
    )
    assert execute(cur, "DELETE FROM lake.groups WHERE id IN (5, 1500, 9999)") == 3
    protocol = next(a["protocol"] for a in commits(table)[-1] if "protocol" in a)
    assert protocol["minReaderVersion"] == 3 and "deletionVectors" in protocol["readerFeatures"]
    checks = {
        "id >= 9000": 999,
        "id BETWEEN 1400 AND 1600": 200,
        "id < 10": 9,
        "id = 1500": 0,
        "true": 9997,
    }
    for predicate, expected in checks.items():
        assert query(cur, f"SELECT count(*) FROM lake.groups WHERE {predicate}") == [(expected,)]
    assert execute(cur, "UPDATE lake.groups SET id = -id WHERE id BETWEEN 1499 AND 1501") == 2
    expected = sorted(
        [(i,) for i in range(10000) if i not in (5, 1499, 1500, 1501, 9999)] + [(-1499,), (-1501,)]
    )
    assert sorted(query(cur, "SELECT id FROM lake.groups")) == expected
    for peer, rows in peer_rows(table).items():
        assert rows == expected, peer


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_dml_peers_agree(server, conn, seed):
    """Random INSERT/UPDATE/DELETE sequences; after every statement MiniDB matches a model of
    the table, and after every few the three peers read the same rows from the directory."""
    rng = random.Random(seed)
    cur = conn.cursor()
    execute(cur, "CREATE TABLE r (id INT PRIMARY KEY, grp INT, val DOUBLE, tag VARCHAR)")
    table = server.data_dir / "default" / "r"
    model: dict[int, tuple] = {}
    next_id = 0

    def literal(v):
        return "NULL" if v is None else (f"'{v}'" if isinstance(v, str) else repr(v))

    for step in range(40):
        op = rng.choices(["insert", "update", "delete"], weights=[4, 4, 2])[0]
        if op == "insert" or not model:
            rows = []
            for _ in range(rng.randint(1, 30)):
                next_id += 1
                row = (
                    next_id,
                    rng.randint(0, 5),
                    rng.choice([None, float(rng.randint(0, 100))]),
                    rng.choice([None, "a", "b", "c"]),
                )
                rows.append(row)
                model[row[0]] = row
            values = ", ".join("(" + ", ".join(literal(v) for v in r) + ")" for r in rows)
            assert execute(cur, f"INSERT INTO r VALUES {values}") == len(rows)
        elif op == "update":
            g, k = rng.randint(0, 5), rng.randint(1, 9)
            hit = [i for i, r in model.items() if r[1] == g]
            if rng.random() < 0.5:
                sql = f"UPDATE r SET val = val + {k}, tag = 'u{k}' WHERE grp = {g}"
                new = lambda r: (r[0], r[1], None if r[2] is None else r[2] + k, f"u{k}")  # noqa: E731
            else:
                sql = f"UPDATE r SET grp = (grp + {k}) % 6 WHERE grp = {g}"
                new = lambda r: (r[0], (r[1] + k) % 6, r[2], r[3])  # noqa: E731
            assert execute(cur, sql) == len(hit), sql
            for i in hit:
                model[i] = new(model[i])
        else:
            lo = rng.randint(0, next_id)
            hi = lo + rng.randint(0, 15)
            hit = [i for i in model if lo <= i <= hi]
            assert execute(cur, f"DELETE FROM r WHERE id BETWEEN {lo} AND {hi}") == len(hit)
            for i in hit:
                del model[i]

        expected = sorted(model.values())
        got = sorted(query(cur, "SELECT id, grp, val, tag FROM r"))
        assert got == expected, f"step {step}: MiniDB differs from the model"
        if step % 8 == 7 or step == 39:
            for peer, rows in peer_rows(table).items():
                assert sorted(rows) == expected, f"step {step}: {peer} differs"


def test_constraints_survive_restart_and_peers_read_the_table(server):
    with server.text() as text:
        text.ok(
            "CREATE TABLE c (id INT PRIMARY KEY, email VARCHAR UNIQUE, "
            "status VARCHAR NOT NULL DEFAULT 'new', UNIQUE (id, status));"
        )
        text.ok("INSERT INTO c (id, email) VALUES (1, 'a'), (2, NULL);")
    server.restart(hard=True)
    with server.text() as text:
        assert "UNIQUE (email): (a) already exists" in text.query(
            "INSERT INTO c (id, email) VALUES (3, 'a');"
        )
        assert "PRIMARY KEY (id): (2) already exists" in text.query(
            "UPDATE c SET id = 2 WHERE id = 1;"
        )
        text.ok("INSERT INTO c (id) VALUES (3);")
        text.ok("UPDATE c SET email = 'b' WHERE id = 2;")
    table = server.data_dir / "default" / "c"
    expected = [(1, "a", "new"), (2, "b", "new"), (3, None, "new")]
    for peer, rows in peer_rows(table).items():
        assert rows == expected, peer

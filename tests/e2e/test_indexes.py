"""Secondary indexes against the real server: EXPLAIN shows their use, answers stay exact under
random DML, they survive kill -9, peers still read indexed tables, and files written by another
engine (without segments) are read whole rather than missed."""

from __future__ import annotations

import json
import random
import re

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from conftest import parse_ascii_table
from test_mor import commits, execute, peer_rows, query

INDEX_RE = re.compile(r"index (\w+): (\d+) rows in (\d+) of (\d+) files(?:, (\d+) files read whole)?")


def index_use(text, sql: str):
    """(index, rows, files matched, files looked up, files read whole) from EXPLAIN, or None."""
    plan = text.query(f"EXPLAIN {sql};")
    assert "DeltaScanExec" in plan, plan
    m = INDEX_RE.search(plan)
    if not m:
        return None
    name, *counts = m.groups()
    return (name, *(int(c or 0) for c in counts))


def scrambled_table(text, files: int = 4, rows: int = 500):
    """Table s(id, k, v) whose k values are spread over every file (statistics cannot skip)."""
    text.ok("CREATE TABLE s (id INT PRIMARY KEY, k INT, v VARCHAR);")
    for f in range(files):
        values = ", ".join(
            f"({f * rows + i}, {((f * rows + i) * 7919) % (files * rows)}, 'v{f}-{i}')"
            for i in range(rows)
        )
        assert text.query(f"INSERT INTO s VALUES {values};") == f"Inserted {rows} row(s) into s"


def test_explain_shows_the_index_and_what_it_read(text):
    scrambled_table(text)
    key = (1234 * 7919) % 2000
    assert index_use(text, f"SELECT * FROM s WHERE k = {key}") is None
    assert text.query("CREATE INDEX idx_k ON s (k);") == "Index created: idx_k"
    assert index_use(text, f"SELECT * FROM s WHERE k = {key}") == ("idx_k", 1, 1, 4, 0)
    _, rows = parse_ascii_table(text.query(f"SELECT id, v FROM s WHERE k = {key};"))
    assert rows == [["1234", "v2-234"]]
    # A range over 20 keys finds 20 rows spread over the files; IN probes each value.
    assert index_use(text, "SELECT * FROM s WHERE k BETWEEN 100 AND 119")[:2] == ("idx_k", 20)
    assert index_use(text, "SELECT * FROM s WHERE k IN (1, 2, 3, 5000)")[:2] == ("idx_k", 3)
    # The primary key has its own index; a filter on another column uses none.
    assert index_use(text, "SELECT * FROM s WHERE id = 7")[:3] == ("s_pkey", 1, 1)
    assert index_use(text, "SELECT * FROM s WHERE v = 'v1-1'") is None
    # Deleted rows leave the answer: the lookup drops the positions the DV lists.
    text.ok(f"DELETE FROM s WHERE k = {key};")
    assert index_use(text, f"SELECT * FROM s WHERE k = {key}") == ("idx_k", 0, 0, 4, 0)
    # SHOW INDEXES lists the implicit key index and the new one.
    _, rows = parse_ascii_table(text.query("SHOW INDEXES ON s;"))
    assert [r[0] for r in rows] == ["s_pkey", "idx_k"]


@pytest.mark.parametrize("seed", [11, 12])
def test_index_answers_match_a_model_under_random_dml(server, conn, seed):
    rng = random.Random(seed)
    cur = conn.cursor()
    execute(cur, "CREATE TABLE r (id INT PRIMARY KEY, a INT, b VARCHAR)")
    execute(cur, "CREATE INDEX idx_ab ON r (a, b)")
    model: dict[int, tuple] = {}
    next_id = 0
    for step in range(30):
        op = rng.choices(["insert", "update", "delete"], weights=[4, 3, 2])[0]
        if op == "insert" or not model:
            rows = []
            for _ in range(rng.randint(1, 40)):
                next_id += 1
                rows.append((next_id, rng.randint(0, 9), rng.choice([None, "x", "y", "z"])))
            values = ", ".join(
                f"({i}, {a}, {'NULL' if b is None else repr(b)})" for i, a, b in rows
            )
            execute(cur, f"INSERT INTO r VALUES {values}")
            model.update({r[0]: r for r in rows})
        elif op == "update":
            a, to = rng.randint(0, 9), rng.randint(0, 9)
            hit = [i for i, r in model.items() if r[1] == a]
            assert execute(cur, f"UPDATE r SET a = {to}, b = 'u' WHERE a = {a}") == len(hit)
            for i in hit:
                model[i] = (i, to, "u")
        else:
            a = rng.randint(0, 9)
            hit = [i for i, r in model.items() if r[1] == a and r[2] == "x"]
            assert execute(cur, f"DELETE FROM r WHERE a = {a} AND b = 'x'") == len(hit)
            for i in hit:
                del model[i]
        a = rng.randint(0, 9)
        lo, hi = sorted((rng.randint(0, 9), rng.randint(0, 9)))
        checks = {
            f"a = {a}": lambda r: r[1] == a,
            f"a = {a} AND b = 'y'": lambda r: r[1] == a and r[2] == "y",
            f"a BETWEEN {lo} AND {hi}": lambda r: lo <= r[1] <= hi,
            f"a IN ({lo}, {hi}) AND b > 'x'": lambda r: r[1] in (lo, hi) and (r[2] or "") > "x",
            f"id = {rng.randint(1, next_id)}": None,
        }
        for where, keep in checks.items():
            if keep is None:
                wanted = int(where.split("= ")[1])
                keep = lambda r, wanted=wanted: r[0] == wanted  # noqa: E731
            got = sorted(query(cur, f"SELECT id, a, b FROM r WHERE {where}"))
            expected = sorted(r for r in model.values() if keep(r))
            assert got == expected, f"step {step}: WHERE {where}"


def test_indexes_survive_kill_and_keep_enforcing_uniqueness(server):
    with server.text() as text:
        scrambled_table(text, files=2, rows=200)
        text.ok("CREATE UNIQUE INDEX idx_k ON s (k);")
        text.ok("INSERT INTO s VALUES (1000, 1000, 'late');")
    server.restart(hard=True)
    with server.text() as text:
        # Statistics skip the files whose k range misses the key; the index answers the rest.
        assert index_use(text, "SELECT * FROM s WHERE k = 1000") == ("idx_k", 1, 1, 1, 0)
        assert index_use(text, "SELECT * FROM s WHERE k = 5") == ("idx_k", 1, 1, 2, 0)
        assert "duplicate key violates UNIQUE INDEX idx_k (k): (1000) already exists" in text.query(
            "INSERT INTO s VALUES (1001, 1000, 'again');"
        )
        assert "PRIMARY KEY (id): (5) already exists" in text.query(
            "INSERT INTO s VALUES (5, 5000, 'dup id');"
        )
        _, rows = parse_ascii_table(text.query("SHOW INDEXES FROM s;"))
        assert [(r[0], r[3]) for r in rows] == [("s_pkey", "true"), ("idx_k", "true")]


def test_peers_read_indexed_tables_and_segments_are_versioned(server):
    with server.text() as text:
        scrambled_table(text, files=2, rows=50)
        text.ok("CREATE INDEX idx_k ON s (k);")
        text.ok("UPDATE s SET v = 'changed' WHERE k = 7;")
    table = server.data_dir / "default" / "s"
    log = commits(table)
    create = log[-2]
    assert [a["commitInfo"]["operation"] for a in create if "commitInfo" in a] == ["CREATE INDEX"]
    definitions = next(a["metaData"] for a in create if "metaData" in a)["configuration"]
    index_id = next(i["id"] for i in json.loads(definitions["minidb.indexes"]) if i["name"] == "idx_k")
    readded = [a["add"] for a in create if "add" in a]
    assert len(readded) == 2 and all(not a["dataChange"] for a in readded)
    for add in readded:
        segment = table / add["tags"][f"minidb.index.{index_id}"]
        assert segment.is_file() and segment.parent.parent.name == "_minidb_index"
    # The UPDATE's new file has its own segment; the touched file keeps its tags.
    update = [a["add"] for a in log[-1] if "add" in a]
    assert all(f"minidb.index.{index_id}" in a["tags"] for a in update)
    for peer, rows in peer_rows(table).items():
        assert len(rows) == 100, peer
        assert [r[2] for r in rows if r[1] == 7] == ["changed"], peer


def test_files_without_segments_are_read_whole(server, tmp_path):
    table = server.data_dir / "default" / "peer"
    first = pa.table({"id": pa.array(range(100), pa.int64()), "k": pa.array([i % 10 for i in range(100)], pa.int64())})
    write_deltalake(str(table), first)
    with server.text() as text:
        text.ok("CREATE INDEX idx_k ON peer (k);")
        assert index_use(text, "SELECT * FROM peer WHERE k = 3") == ("idx_k", 10, 1, 1, 0)
    # Another engine appends a file that has no segment: it is read whole, never missed.
    write_deltalake(str(table), pa.table({"id": pa.array([100], pa.int64()), "k": pa.array([3], pa.int64())}), mode="append")
    with server.text() as text:
        assert index_use(text, "SELECT * FROM peer WHERE k = 3") == ("idx_k", 10, 1, 1, 1)
        _, rows = parse_ascii_table(text.query("SELECT count(*) FROM peer WHERE k = 3;"))
        assert rows == [["11"]]


def index_tier(text) -> dict[str, int]:
    header, rows = parse_ascii_table(
        text.ok(
            "SELECT capacity_bytes, used_bytes, blocks, hits, misses, evictions "
            "FROM sys.cache WHERE tier = 'index';"
        )
    )
    assert len(rows) == 1, rows
    return dict(zip(header, map(int, rows[0])))


def keyed_files(text, table: str, files: int = 10, rows: int = 500) -> dict[int, int]:
    """Indexed table (id, k) of `files` files with k spread over every file; k -> id."""
    text.ok(f"CREATE TABLE {table} (id INT, k INT);")
    text.ok(f"CREATE INDEX {table}_k ON {table} (k);")
    ids = {}
    for f in range(files):
        batch = [(f * rows + i, (f * rows + i) * 7919 % (files * rows)) for i in range(rows)]
        ids.update({k: i for i, k in batch})
        text.ok(f"INSERT INTO {table} VALUES " + ", ".join(f"({i}, {k})" for i, k in batch) + ";")
    return ids


def test_lookups_keep_segments_in_the_index_cache(text):
    ids = keyed_files(text, "cached")
    before = index_tier(text)
    _, rows = parse_ascii_table(text.ok("SELECT id FROM cached WHERE k = 42;"))
    assert rows == [[str(ids[42])]]
    first = index_tier(text)
    assert first["misses"] > before["misses"] and first["used_bytes"] > 0, first
    # The same lookup again reads footers and leaves from memory.
    _, rows = parse_ascii_table(text.ok("SELECT id FROM cached WHERE k = 42;"))
    assert rows == [[str(ids[42])]]
    second = index_tier(text)
    assert second["hits"] >= first["hits"] + 10 and second["misses"] == first["misses"], second


def test_the_index_cache_has_one_budget_for_all_tables(start_server):
    server = start_server(["--index-cache", "64KiB"])
    text = server.text()
    keys = {table: keyed_files(text, table) for table in ("a", "b", "c")}
    for key in (1, 2, 3, 4999):
        for table, ids in keys.items():
            _, rows = parse_ascii_table(text.ok(f"SELECT id FROM {table} WHERE k = {key};"))
            assert rows == [[str(ids[key])]], (table, key)
    tier = index_tier(text)
    # 30 files' footers and leaves do not fit: the oldest made way, the budget held.
    assert tier["capacity_bytes"] == 64 * 1024, tier
    assert 0 < tier["used_bytes"] <= tier["capacity_bytes"], tier
    assert tier["evictions"] > 0, tier

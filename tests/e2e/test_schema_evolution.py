"""Schema evolution: random sequences of ADD, DROP and RENAME COLUMN and type widening, mixed
with INSERT, UPDATE, DELETE, MERGE and OPTIMIZE. After each step MiniDB reads the rows a model
of the table holds, and the peers read them too: DuckDB's delta_scan always; delta-rs (its
DataFusion reader) until a type is widened, since delta-rs 1.6 refuses the typeWidening
feature; polars until column mapping or type widening is on, since polars refuses both
features.
Time travel shows each past version's columns and rows."""

from __future__ import annotations

import copy
import random
from decimal import Decimal

import polars as pl
import pytest
from deltalake import DeltaTable

from conftest import TEST_STORAGE
from test_delta_interop import read_delta_rs, read_duckdb
from test_mor import execute, query

TYPES = {
    "SMALLINT": lambda rng: rng.randint(-300, 300),
    "INT": lambda rng: rng.randint(-1000, 1000),
    "BIGINT": lambda rng: rng.randint(-(10**12), 10**12),
    "VARCHAR": lambda rng: rng.choice(["x", "yy", "zzz", "é"]),
    "REAL": lambda rng: float(rng.randint(-100, 100)) / 4,
    "DOUBLE": lambda rng: float(rng.randint(-100, 100)) / 4,
    "BOOLEAN": lambda rng: rng.choice([True, False]),
    "DECIMAL(6,2)": lambda rng: Decimal(rng.randint(-9999, 9999)) / 100,
}

# The wider type each type may change to.
WIDER = {"SMALLINT": "INT", "INT": "BIGINT", "REAL": "DOUBLE", "DECIMAL(6,2)": "DECIMAL(10,3)"}
TYPES["DECIMAL(10,3)"] = TYPES["DECIMAL(6,2)"]


def literal(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, str):
        return f"'{v}'"
    return str(v)


def sort_key(row):
    return tuple((v is None, repr(v)) for v in row)


class Model:
    """The table as it should read: its columns (name, type, DEFAULT) and rows by id."""

    def __init__(self):
        self.columns: list[list] = [["id", "INT", None], ["v", "VARCHAR", None], ["n", "SMALLINT", None]]
        self.rows: dict[int, dict] = {}
        self.next_id = 0
        self.mapped = False
        self.widened = False

    def names(self) -> list[str]:
        return [c[0] for c in self.columns]

    def expected(self) -> list[tuple]:
        names = self.names()
        return sorted((tuple(r[c] for c in names) for r in self.rows.values()), key=sort_key)


def step(cur, rng: random.Random, model: Model, dropped: list[str], serial: list[int]) -> str:
    """Runs one random statement against the table `e` and applies it to the model."""
    data = model.columns[1:]

    def value(column_type: str):
        return None if rng.random() < 0.2 else TYPES[column_type](rng)

    op = rng.choices(
        ["add", "drop", "rename", "widen", "insert", "update", "delete", "merge", "optimize"],
        [3, 2, 2, 3, 4, 2, 1, 2, 1],
    )[0]
    widenable = [c for c in data if c[1] in WIDER]
    if op == "add" and len(model.columns) < 9:
        serial[0] += 1
        name = dropped.pop() if dropped and rng.random() < 0.5 else f"c{serial[0]}"
        column_type = rng.choice(list(WIDER) + ["VARCHAR", "BOOLEAN"])
        default = TYPES[column_type](rng) if rng.random() < 0.5 else None
        clause = f" DEFAULT {literal(default)}" if default is not None else ""
        execute(cur, f"ALTER TABLE e ADD COLUMN {name} {column_type}{clause}")
        model.columns.append([name, column_type, default])
        for row in model.rows.values():
            row[name] = None
        return op
    if op == "drop" and len(data) > 1:
        column = rng.choice(data)
        execute(cur, f"ALTER TABLE e DROP COLUMN {column[0]}")
        model.columns.remove(column)
        dropped.append(column[0])
        for row in model.rows.values():
            del row[column[0]]
        model.mapped = True
        return op
    if op == "rename" and data:
        column = rng.choice(data)
        serial[0] += 1
        new = f"r{serial[0]}"
        execute(cur, f"ALTER TABLE e RENAME COLUMN {column[0]} TO {new}")
        for row in model.rows.values():
            row[new] = row.pop(column[0])
        column[0] = new
        model.mapped = True
        return op
    if op == "widen" and widenable:
        column = rng.choice(widenable)
        column[1] = WIDER[column[1]]
        execute(cur, f"ALTER TABLE e ALTER COLUMN {column[0]} TYPE {column[1]}")
        model.widened = True
        return op
    if op == "update" and model.rows and data:
        name, column_type, _ = rng.choice(data)
        new = TYPES[column_type](rng)
        lo = rng.randint(0, model.next_id)
        hit = [i for i in model.rows if lo <= i <= lo + 10]
        sql = f"UPDATE e SET {name} = {literal(new)} WHERE id BETWEEN {lo} AND {lo + 10}"
        assert execute(cur, sql) == len(hit)
        for i in hit:
            model.rows[i][name] = new
        return op
    if op == "delete" and model.rows:
        lo = rng.randint(0, model.next_id)
        hit = [i for i in model.rows if lo <= i <= lo + 5]
        assert execute(cur, f"DELETE FROM e WHERE id BETWEEN {lo} AND {lo + 5}") == len(hit)
        for i in hit:
            del model.rows[i]
        return op
    if op == "merge" and model.rows and data:
        name, column_type, _ = rng.choice(data)
        new = TYPES[column_type](rng)
        ids = rng.sample(range(1, model.next_id + 6), min(5, model.next_id))
        source = " UNION ALL ".join(f"SELECT {i} AS id" for i in ids)
        sql = (
            f"MERGE INTO e USING ({source}) AS s ON e.id = s.id "
            f"WHEN MATCHED THEN UPDATE SET {name} = {literal(new)} "
            f"WHEN NOT MATCHED THEN INSERT (id) VALUES (s.id)"
        )
        assert execute(cur, sql) == len(ids)
        for i in ids:
            if i in model.rows:
                model.rows[i][name] = new
            else:
                model.rows[i] = {c: d for c, _, d in data} | {"id": i}
        model.next_id = max([model.next_id, *ids])
        return op
    if op == "optimize":
        execute(cur, "OPTIMIZE e")
        return op
    named = ["id"] + [c for c, _, _ in data if rng.random() < 0.6]
    rows = []
    for _ in range(rng.randint(1, 20)):
        model.next_id += 1
        row = {c: (value(t) if c in named else d) for c, t, d in data}
        row["id"] = model.next_id
        rows.append(row)
        model.rows[model.next_id] = row
    values = ", ".join("(" + ", ".join(literal(r[c]) for c in named) + ")" for r in rows)
    assert execute(cur, f"INSERT INTO e ({', '.join(named)}) VALUES {values}") == len(rows)
    return "insert"


def peers_agree(table_dir, model: Model, where: str):
    readers = {"duckdb": read_duckdb}
    if not model.widened:
        readers["delta-rs"] = read_delta_rs
    if not model.mapped and not model.widened:
        readers["polars"] = lambda path: pl.read_delta(str(path)).to_arrow()
    for peer, read in readers.items():
        table = read(table_dir)
        assert table.column_names == model.names(), f"{where}: {peer}"
        rows = sorted((tuple(r.values()) for r in table.to_pylist()), key=sort_key)
        assert rows == model.expected(), f"{where}: {peer}"


@pytest.mark.parametrize("seed", range(1, 21))
def test_random_schema_changes_agree_with_model_and_peers(server, conn, seed):
    rng = random.Random(seed)
    cur = conn.cursor()
    execute(cur, "CREATE TABLE e (id INT PRIMARY KEY, v VARCHAR, n SMALLINT)")
    model = Model()
    dropped: list[str] = []
    serial = [0]
    past: list[tuple[int, list[str], list[tuple]]] = []
    steps = 14
    for n in range(steps):
        op = step(cur, rng, model, dropped, serial)
        where = f"seed {seed} step {n} ({op})"
        cur.execute("SELECT * FROM e")
        got = cur.fetch_arrow_table()
        assert got.column_names == model.names(), where
        rows = sorted((tuple(r.values()) for r in got.to_pylist()), key=sort_key)
        assert rows == model.expected(), where
        version = query(cur, "SELECT max(version) FROM sys.delta_log WHERE table_name = 'e'")[0][0]
        past.append((version, list(model.names()), copy.deepcopy(model.expected())))
        # Peers read local folders; over S3 MiniDB is checked against the model only.
        if (n % 5 == 4 or n == steps - 1) and TEST_STORAGE != "s3":
            peers_agree(server.data_dir / "default" / "e", model, where)
    # Each past version reads with the columns and rows it had.
    for version, names, expected in rng.sample(past, 4):
        cur.execute(f"SELECT * FROM e VERSION AS OF {version}")
        got = cur.fetch_arrow_table()
        assert got.column_names == names, f"seed {seed} version {version}"
        assert sorted((tuple(r.values()) for r in got.to_pylist()), key=sort_key) == expected


def test_dropped_and_renamed_columns_rewrite_no_file(server, conn):
    cur = conn.cursor()
    execute(cur, "CREATE TABLE m (id INT, a VARCHAR, b INT)")
    execute(cur, "INSERT INTO m VALUES (1, 'x', 10), (2, 'y', 20)")
    if TEST_STORAGE != "s3":
        table = server.data_dir / "default" / "m"
        files = sorted(p.name for p in table.glob("*.parquet"))
    execute(cur, "ALTER TABLE m RENAME COLUMN a TO label")
    execute(cur, "ALTER TABLE m DROP COLUMN b")
    execute(cur, "ALTER TABLE m ADD COLUMN b BIGINT")
    assert query(cur, "SELECT * FROM m ORDER BY id") == [(1, "x", None), (2, "y", None)]
    # Clients see the columns without the mapping's bookkeeping.
    cur.execute("SELECT * FROM m")
    assert [f.metadata for f in cur.fetch_arrow_table().schema] == [None, None, None]
    assert all(f.metadata is None for f in conn.adbc_get_table_schema("m"))
    cur.execute("DESCRIBE HISTORY m")
    history = cur.fetch_arrow_table().select(["version", "operation"]).to_pylist()
    assert history[:3] == [
        {"version": 4, "operation": "ADD COLUMNS"},
        {"version": 3, "operation": "DROP COLUMNS"},
        {"version": 2, "operation": "RENAME COLUMN"},
    ]
    if TEST_STORAGE == "s3":
        return
    assert sorted(p.name for p in table.glob("*.parquet")) == files
    latest = DeltaTable(str(table))
    assert "columnMapping" in (latest.protocol().reader_features or [])
    assert latest.metadata().configuration["delta.columnMapping.mode"] == "name"
    fields = latest.schema().to_arrow()
    assert fields.names == ["id", "label", "b"]
    # The new b has a physical name of its own: the dropped b's values stay unread.
    physical = [f.metadata[b"delta.columnMapping.physicalName"].decode() for f in fields]
    assert physical[:2] == ["id", "a"] and physical[2].startswith("col-")
    for peer in (read_delta_rs, read_duckdb):
        assert peer(table).to_pylist() == [
            {"id": 1, "label": "x", "b": None},
            {"id": 2, "label": "y", "b": None},
        ]


def test_time_travel_keeps_each_versions_columns(server, conn):
    cur = conn.cursor()
    execute(cur, "CREATE TABLE h (id INT, v VARCHAR)")
    execute(cur, "INSERT INTO h VALUES (1, 'a')")
    execute(cur, "ALTER TABLE h ADD COLUMN n BIGINT DEFAULT 9, ADD COLUMN t TIMESTAMP")
    execute(cur, "INSERT INTO h (id, v, t) VALUES (2, 'b', '2026-01-02 03:04:05')")
    table = server.data_dir / "default" / "h"

    cur.execute("SELECT * FROM h VERSION AS OF 1")
    assert cur.fetch_arrow_table().column_names == ["id", "v"]
    assert query(cur, "SELECT id, v, n FROM h ORDER BY id") == [(1, "a", None), (2, "b", 9)]
    assert DeltaTable(str(table), version=1).schema().to_arrow().names == ["id", "v"]
    latest = DeltaTable(str(table))
    assert latest.schema().to_arrow().names == ["id", "v", "n", "t"]
    assert "timestampNtz" in (latest.protocol().reader_features or [])
    cur.execute("DESCRIBE HISTORY h")
    history = cur.fetch_arrow_table().select(["version", "operation"]).to_pylist()
    assert {"version": 2, "operation": "ADD COLUMNS"} in history

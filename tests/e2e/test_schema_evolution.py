"""ALTER TABLE … ADD COLUMN: random sequences of added columns mixed with INSERT, UPDATE,
DELETE, MERGE and OPTIMIZE, after each of which MiniDB and the peers (delta-rs, DuckDB's
delta_scan, polars) read the rows a model of the table holds; time travel keeps each version's
columns."""

from __future__ import annotations

import random

import pytest
from deltalake import DeltaTable

from conftest import TEST_STORAGE
from test_mor import execute, peer_rows, query

TYPES = {
    "INT": lambda rng: rng.randint(-1000, 1000),
    "BIGINT": lambda rng: rng.randint(-(10**12), 10**12),
    "VARCHAR": lambda rng: rng.choice(["x", "yy", "zzz", "é"]),
    "DOUBLE": lambda rng: float(rng.randint(-100, 100)) / 4,
    "BOOLEAN": lambda rng: rng.choice([True, False]),
}


def literal(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, str):
        return f"'{v}'"
    return repr(v)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_added_columns_agree_with_model_and_peers(server, conn, seed):
    rng = random.Random(seed)
    cur = conn.cursor()
    execute(cur, "CREATE TABLE e (id INT PRIMARY KEY, v VARCHAR)")
    columns: list[tuple[str, str | None, object]] = [("id", None, None), ("v", "VARCHAR", None)]
    model: dict[int, dict] = {}
    next_id = 0

    def value(column_type: str):
        return None if rng.random() < 0.2 else TYPES[column_type](rng)

    for step in range(16):
        op = rng.choices(["add", "insert", "update", "delete", "merge", "optimize"], [3, 4, 2, 1, 2, 1])[0]
        if op == "add" and len(columns) < 9:
            name = f"c{len(columns)}"
            column_type = rng.choice(list(TYPES))
            default = TYPES[column_type](rng) if rng.random() < 0.5 else None
            clause = f" DEFAULT {literal(default)}" if default is not None else ""
            execute(cur, f"ALTER TABLE e ADD COLUMN {name} {column_type}{clause}")
            columns.append((name, column_type, default))
            for row in model.values():
                row[name] = None
        elif op in ("insert", "add") or not model:
            named = ["id"] + [c for c, _, _ in columns[1:] if rng.random() < 0.6]
            rows = []
            for _ in range(rng.randint(1, 20)):
                next_id += 1
                row = {c: (value(t) if c in named else d) for c, t, d in columns[1:]}
                row["id"] = next_id
                rows.append(row)
                model[next_id] = row
            values = ", ".join("(" + ", ".join(literal(r[c]) for c in named) + ")" for r in rows)
            assert execute(cur, f"INSERT INTO e ({', '.join(named)}) VALUES {values}") == len(rows)
        elif op == "update":
            name, column_type, _ = rng.choice(columns[1:])
            new = TYPES[column_type](rng)
            lo = rng.randint(0, next_id)
            hit = [i for i in model if lo <= i <= lo + 10]
            assert execute(cur, f"UPDATE e SET {name} = {literal(new)} WHERE id BETWEEN {lo} AND {lo + 10}") == len(hit)
            for i in hit:
                model[i][name] = new
        elif op == "delete":
            lo = rng.randint(0, next_id)
            hit = [i for i in model if lo <= i <= lo + 5]
            assert execute(cur, f"DELETE FROM e WHERE id BETWEEN {lo} AND {lo + 5}") == len(hit)
            for i in hit:
                del model[i]
        elif op == "merge":
            name, column_type, default = rng.choice(columns[1:])
            new = TYPES[column_type](rng)
            ids = rng.sample(range(1, next_id + 6), min(5, next_id))
            source = " UNION ALL ".join(f"SELECT {i} AS id" for i in ids)
            sql = (
                f"MERGE INTO e USING ({source}) AS s ON e.id = s.id "
                f"WHEN MATCHED THEN UPDATE SET {name} = {literal(new)} "
                f"WHEN NOT MATCHED THEN INSERT (id) VALUES (s.id)"
            )
            assert execute(cur, sql) == len(ids)
            for i in ids:
                if i in model:
                    model[i][name] = new
                else:
                    model[i] = {c: d for c, _, d in columns[1:]} | {"id": i}
            next_id = max([next_id, *ids])
        else:
            execute(cur, "OPTIMIZE e")

        names = [c for c, _, _ in columns]
        expected = sorted((tuple(row[c] for c in names) for row in model.values()), key=repr)
        got = sorted(query(cur, f"SELECT {', '.join(names)} FROM e"), key=repr)
        assert got == expected, f"seed {seed} step {step} ({op})"
        # Peers read local folders; over S3 MiniDB is checked against the model only.
        if (step % 5 == 4 or step == 15) and TEST_STORAGE != "s3":
            for peer, rows in peer_rows(server.data_dir / "default" / "e").items():
                assert sorted(rows, key=repr) == expected, f"seed {seed} step {step}: {peer}"


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

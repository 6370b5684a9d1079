"""MERGE and upsert touching 1% of a 5 M-row table: MiniDB (Merge-on-Read) beside delta-rs's
`merge` (copy-on-write) on a byte-identical copy of the same table, with DuckDB running the same
statements in process to check the answer.

The table `t (id BIGINT PRIMARY KEY, grp INT, val BIGINT, txt VARCHAR)` holds ids 1..rows. Each
statement's source holds rows x 1% rows: four fifths of them existing ids spread over the whole
table (updates), one fifth new ids (inserts). The MERGE updates two columns and inserts; the
upsert is `INSERT … ON CONFLICT (id) DO UPDATE`, which delta-rs runs as the equivalent merge.
Reported per statement: seconds, and bytes added to the table folder (data files, deletion
vectors, log). After both, MiniDB's table and DuckDB's must agree on count and column sums.

    .venv/bin/python tests/bench/merge.py [--rows 5000000]

Uses MINIDB_BIN (default: target/debug/minidb, whose dependencies are optimised).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from deltalake import DeltaTable  # noqa: E402

import conftest  # noqa: E402
from test_delta_interop import duckdb_con  # noqa: E402
from update_one_row import added_bytes, files  # noqa: E402

TABLE = "CREATE TABLE t (id BIGINT PRIMARY KEY, grp INT, val BIGINT, txt VARCHAR)"
ROWS = "SELECT value, CAST(value % 100 AS INT), value * 7, md5(CAST(value AS VARCHAR)) FROM {series}"
MERGE = (
    "MERGE INTO t USING src AS s ON t.id = s.id "
    "WHEN MATCHED THEN UPDATE SET val = s.val, txt = s.txt "
    "WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.grp, s.val, s.txt)"
)
UPSERT = "INSERT INTO t SELECT * FROM src ON CONFLICT (id) DO UPDATE SET val = excluded.val"
CHECK = "SELECT count(*), sum(id), sum(grp), sum(val), sum(length(txt)) FROM t"


def source(rows: int, touched: int, seed: int) -> tuple[str, int, int]:
    """The source query with `{s1}` and `{s2}` for two series of 1..n, and their lengths:
    `touched` rows, four fifths existing ids spread over the table (a different spread per
    seed), one fifth new ids above `rows`."""
    updates = touched * 4 // 5
    inserts = touched - updates
    step = rows // updates
    text = (
        f"SELECT value * {step} - {seed} AS id, 1 AS grp, -value AS val, 'merged' AS txt FROM {{s1}} "
        f"UNION ALL SELECT {rows} + {seed} * {touched} + value, 2, value, 'new' FROM {{s2}}"
    )
    return text, updates, inserts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--fraction", type=float, default=0.01)
    args = parser.parse_args()
    touched = int(args.rows * args.fraction)
    print(f"binary: {conftest.MINIDB_BIN}")

    work = Path(tempfile.mkdtemp(prefix="minidb-bench-"))
    (work / "logs").mkdir()
    server = conftest.MiniDBServer(work / "data", work / "logs").start()
    duck = duckdb.connect()
    try:
        conn = server.adbc()
        cur = conn.cursor()
        cur.execute(TABLE)
        duck.execute(TABLE)
        cur.execute("INSERT INTO t " + ROWS.format(series=f"generate_series(1, {args.rows})"))
        duck.execute("INSERT INTO t " + ROWS.format(series=f"range(1, {args.rows} + 1) AS r(value)"))
        table = server.data_dir / "default" / "t"
        size = sum(files(table).values())
        print(f"table: {args.rows} rows, {size / 1e6:.1f} MB; each statement touches {touched} rows")

        # delta-rs works on a byte-identical copy of MiniDB's table.
        peer = work / "delta-rs"
        shutil.copytree(table, peer)

        print(f"{'statement':<8} {'minidb s':>9} {'delta-rs s':>11} {'minidb MB':>10} {'delta-rs MB':>12} {'bytes ratio':>12}")
        for seed, (name, statement) in enumerate([("MERGE", MERGE), ("upsert", UPSERT)], start=1):
            text, updates, inserts = source(args.rows, touched, seed)
            mini = text.format(s1=f"generate_series(1, {updates})", s2=f"generate_series(1, {inserts})")
            cur.execute("DROP TABLE IF EXISTS src")
            cur.execute("CREATE TABLE src AS " + mini)
            duck.execute("DROP TABLE IF EXISTS src")
            duck.execute(
                "CREATE TABLE src AS "
                + text.format(s1=f"range(1, {updates} + 1) AS a(value)", s2=f"range(1, {inserts} + 1) AS b(value)")
            )
            cur.execute("SELECT * FROM src")
            rows = cur.fetch_arrow_table()

            before = files(table)
            started = time.perf_counter()
            cur.execute(statement)
            minidb_s = time.perf_counter() - started
            assert cur.rowcount == touched, (name, cur.rowcount, touched)
            minidb_bytes = added_bytes(before, files(table))
            duck.execute(statement)

            before = files(peer)
            started = time.perf_counter()
            merge = DeltaTable(str(peer)).merge(
                source=rows, predicate="t.id = s.id", source_alias="s", target_alias="t"
            )
            updates_set = {"val": "s.val", "txt": "s.txt"} if name == "MERGE" else {"val": "s.val"}
            merge.when_matched_update(updates=updates_set).when_not_matched_insert_all().execute()
            delta_s = time.perf_counter() - started
            delta_bytes = added_bytes(before, files(peer))
            print(
                f"{name:<8} {minidb_s:>9.2f} {delta_s:>11.2f} {minidb_bytes / 1e6:>10.2f} "
                f"{delta_bytes / 1e6:>12.2f} {delta_bytes / max(minidb_bytes, 1):>11.0f}x"
            )

        cur.execute(CHECK)
        minidb = tuple(cur.fetchone())
        duck_check = tuple(duck.execute(CHECK).fetchone())
        reader = duckdb_con()
        delta_check = reader.sql(CHECK.replace("FROM t", f"FROM delta_scan('{peer}')")).fetchone()
        reader.close()
        print(f"MiniDB {minidb}\nDuckDB {duck_check}\ndelta-rs (read by DuckDB) {tuple(delta_check)}")
        assert minidb == duck_check, "MiniDB and DuckDB disagree"
        assert tuple(delta_check) == duck_check, "delta-rs's table disagrees"
        print("MiniDB, DuckDB and delta-rs agree")
        conn.close()
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

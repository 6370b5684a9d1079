"""Files skipped per single-column predicate before and after OPTIMIZE … ZORDER BY, beside
delta-rs's Z-order of the same table.

Builds a table of --rows rows in --files INSERTs (one file each) with three independent
columns a, b, c (unrelated permutations of 0..rows-1), so that file statistics skip almost
nothing. For a point predicate and a narrow range (0.1% of the values) on each column alone,
it reads the share of files skipped from EXPLAIN, then runs `OPTIMIZE TABLE t ZORDER BY
(a, b, c)` with `delta.targetFileSize` set for about --files files and reads EXPLAIN again.
delta-rs (`DeltaTable.optimize.z_order`, same target size) rewrites a copy of the original
table; its share is computed from the min/max statistics its log records (what any Delta
reader skips by).

    .venv/bin/python tests/bench/zorder.py [--rows 5000000] [--files 64]

Uses MINIDB_BIN (default: target/debug/minidb, whose dependencies are optimised).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from deltalake import DeltaTable  # noqa: E402

import conftest  # noqa: E402

SCAN_RE = re.compile(r"files=(\d+)/(\d+) \((\d+) skipped by statistics\)")
# Multipliers coprime with every row count used here, so value -> value * m mod rows permutes.
MULTIPLIERS = {"a": 7919, "b": 104729, "c": 1299709}


def explain_skipped(cur, sql: str) -> tuple[int, int]:
    cur.execute(f"EXPLAIN {sql}")
    plan = " ".join(str(v) for row in cur.fetchall() for v in row)
    m = SCAN_RE.search(plan)
    assert m, plan
    read, total, skipped = (int(g) for g in m.groups())
    return skipped, total


def stats_skipped(table: Path, column: str, low: int, high: int) -> tuple[int, int]:
    """Files whose recorded [min, max] of `column` misses [low, high], among live files."""
    live: dict[str, dict] = {}
    for path in sorted((table / "_delta_log").glob("*.json")):
        for line in path.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                live[action["add"]["path"]] = json.loads(action["add"]["stats"])
            elif "remove" in action:
                live.pop(action["remove"]["path"], None)
    skipped = sum(
        1 for s in live.values() if s["maxValues"][column] < low or s["minValues"][column] > high
    )
    return skipped, len(live)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--files", type=int, default=64)
    args = parser.parse_args()
    assert all(args.rows % m for m in MULTIPLIERS.values())
    print(f"binary: {conftest.MINIDB_BIN}")
    rows, per_file = args.rows, args.rows // args.files
    point = rows // 3
    width = max(1, rows // 1000)
    predicates = [
        (f"{c} = {point}", c, point, point) for c in MULTIPLIERS
    ] + [(f"{c} BETWEEN {point} AND {point + width - 1}", c, point, point + width - 1) for c in MULTIPLIERS]

    work = Path(tempfile.mkdtemp(prefix="minidb-bench-"))
    (work / "logs").mkdir()
    server = conftest.MiniDBServer(work / "data", work / "logs").start()
    try:
        conn = server.adbc()
        cur = conn.cursor()
        cur.execute("CREATE TABLE t (id BIGINT NOT NULL, a BIGINT, b BIGINT, c BIGINT)")
        started = time.perf_counter()
        for f in range(args.files):
            end = rows - 1 if f == args.files - 1 else (f + 1) * per_file - 1
            cur.execute(
                f"INSERT INTO t SELECT value, (value * {MULTIPLIERS['a']}) % {rows}, "
                f"(value * {MULTIPLIERS['b']}) % {rows}, (value * {MULTIPLIERS['c']}) % {rows} "
                f"FROM generate_series({f * per_file}, {end})"
            )
        table = server.data_dir / "default" / "t"
        size = sum(p.stat().st_size for p in table.glob("*.parquet"))
        print(
            f"table: {rows:,} rows in {args.files} files, {size / 1e6:.1f} MB, "
            f"loaded in {time.perf_counter() - started:.1f} s"
        )
        copy = work / "delta-rs"
        shutil.copytree(table, copy)

        before = [explain_skipped(cur, f"SELECT * FROM t WHERE {sql}") for sql, *_ in predicates]
        target = size // args.files
        cur.execute(f"ALTER TABLE t SET TBLPROPERTIES ('delta.targetFileSize' = '{target}')")
        started = time.perf_counter()
        cur.execute("OPTIMIZE TABLE t ZORDER BY (a, b, c)")
        report = cur.fetch_arrow_table().to_pylist()[0]
        minidb_s = time.perf_counter() - started
        after = [explain_skipped(cur, f"SELECT * FROM t WHERE {sql}") for sql, *_ in predicates]
        cur.execute("SELECT count(*), sum(a), sum(b), sum(c) FROM t")
        assert cur.fetchone() == (rows, rows * (rows - 1) // 2, rows * (rows - 1) // 2, rows * (rows - 1) // 2)
        conn.close()

        started = time.perf_counter()
        DeltaTable(str(copy)).optimize.z_order(["a", "b", "c"], target_size=target)
        delta_s = time.perf_counter() - started
        delta = [stats_skipped(copy, c, low, high) for _, c, low, high in predicates]
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"OPTIMIZE ZORDER BY (a, b, c): {report['files_removed']} files -> {report['files_added']} "
        f"in {minidb_s:.1f} s; delta-rs z_order: {delta[0][1]} files in {delta_s:.1f} s"
    )
    print(f"{'predicate':<36} {'before':>8} {'after':>8} {'delta-rs':>9}   (files skipped)")
    for (sql, *_), b, a, d in zip(predicates, before, after, delta):
        share = lambda s: f"{100 * s[0] / s[1]:.0f}%"  # noqa: E731
        print(f"{sql:<36} {share(b):>8} {share(a):>8} {share(d):>9}")
    worst = min(100 * s / t for s, t in after)
    print(f"target: >= 70% of files skipped after Z-ORDER for each column alone (worst: {worst:.0f}%)")


if __name__ == "__main__":
    main()

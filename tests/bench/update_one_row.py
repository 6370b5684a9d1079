"""Write amplification of a one-row UPDATE: MiniDB (Merge-on-Read) beside delta-rs (copy-on-write).

Builds one table whose single data file is at least 50 MB, then updates one row at a time,
measuring the bytes each engine adds to the table folder (data files, deletion vectors, log) and
the latency. delta-rs runs `DeltaTable.update` on a byte-identical copy of the same table.

    .venv/bin/python tests/bench/update_one_row.py [--rows 1500000] [--updates 5]

Uses MINIDB_BIN (default: target/debug/minidb, whose dependencies are optimised).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from deltalake import DeltaTable  # noqa: E402

import conftest  # noqa: E402


def files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def added_bytes(before: dict[str, int], after: dict[str, int]) -> int:
    return sum(size for path, size in after.items() if path not in before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_500_000)
    parser.add_argument("--updates", type=int, default=5)
    args = parser.parse_args()
    print(f"binary: {conftest.MINIDB_BIN}")

    work = Path(tempfile.mkdtemp(prefix="minidb-bench-"))
    (work / "logs").mkdir()
    server = conftest.MiniDBServer(work / "data", work / "logs").start()
    try:
        conn = server.adbc()
        cur = conn.cursor()
        cur.execute("CREATE TABLE wide (id BIGINT NOT NULL, a BIGINT, s VARCHAR)")
        cur.execute(
            "INSERT INTO wide SELECT value, value * 7, md5(CAST(value AS VARCHAR)) || md5(CAST(-value AS VARCHAR)) "
            f"FROM generate_series(1, {args.rows})"
        )
        table = server.data_dir / "default" / "wide"
        data_files = list(table.glob("*.parquet"))
        size = data_files[0].stat().st_size
        print(f"table: {args.rows} rows in {len(data_files)} file(s), {size / 1e6:.1f} MB")
        assert len(data_files) == 1 and size >= 50_000_000, "the data file must be >= 50 MB"

        copy = work / "delta-rs-copy"
        shutil.copytree(table, copy)
        ids = [1 + (i * 7919) % args.rows for i in range(args.updates)]

        minidb_bytes, minidb_ms = [], []
        for row in ids:
            before = files(table)
            started = time.perf_counter()
            cur.execute(f"UPDATE wide SET a = -1 WHERE id = {row}")
            minidb_ms.append((time.perf_counter() - started) * 1000)
            assert cur.rowcount == 1
            minidb_bytes.append(added_bytes(before, files(table)))
        cur.execute("SELECT count(*) FROM wide WHERE a = -1")
        assert cur.fetchone()[0] == len(ids)
        conn.close()

        delta_bytes, delta_ms = [], []
        for row in ids:
            before = files(copy)
            started = time.perf_counter()
            metrics = DeltaTable(str(copy)).update(predicate=f"id = {row}", updates={"a": "-1"})
            delta_ms.append((time.perf_counter() - started) * 1000)
            assert metrics["num_updated_rows"] == 1, metrics
            delta_bytes.append(added_bytes(before, files(copy)))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    m_bytes, d_bytes = statistics.median(minidb_bytes), statistics.median(delta_bytes)
    m_ms, d_ms = statistics.median(minidb_ms), statistics.median(delta_ms)
    print(f"{'engine':<10} {'bytes written (median)':>24} {'latency ms (median)':>21}")
    print(f"{'MiniDB':<10} {m_bytes:>24,.0f} {m_ms:>21.1f}")
    print(f"{'delta-rs':<10} {d_bytes:>24,.0f} {d_ms:>21.1f}")
    print(f"ratio delta-rs/MiniDB: bytes {d_bytes / m_bytes:,.0f}x, latency {d_ms / m_ms:.1f}x")
    print(f"MiniDB bytes per update: {minidb_bytes} (target <= 16384)")
    assert max(minidb_bytes) <= 16 * 1024, "MiniDB wrote more than 16 KiB for a one-row UPDATE"


if __name__ == "__main__":
    main()

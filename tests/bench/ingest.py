"""Bulk ingest rate: TPC-H lineitem through ADBC `adbc_ingest` into MiniDB, beside delta-rs
`write_deltalake` writing the same batches to a local Delta table.

Generates lineitem with tpchgen-cli (SF1 = 6 001 215 rows) and streams it from the Parquet file
in batches, so neither client holds the table in memory. The server's peak resident memory
(VmHWM) is read from /proc after the ingest, to show that it streams too.

    .venv/bin/python tests/bench/ingest.py [--scale 1]

Uses MINIDB_BIN (default: target/debug/minidb).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from deltalake import DeltaTable, write_deltalake  # noqa: E402

import conftest  # noqa: E402

BATCH_ROWS = 65_536


def batches(path: Path) -> pa.RecordBatchReader:
    file = pq.ParquetFile(path)
    return pa.RecordBatchReader.from_batches(
        file.schema_arrow, file.iter_batches(batch_size=BATCH_ROWS)
    )


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1)
    args = parser.parse_args()
    print(f"binary: {conftest.MINIDB_BIN}")

    work = Path(tempfile.mkdtemp(prefix="minidb-bench-"))
    try:
        subprocess.run(
            [str(REPO / ".venv" / "bin" / "tpchgen-cli"), "parquet", "-s", str(args.scale),
             "--tables=lineitem", f"--output-dir={work / 'tpch'}"],
            check=True,
        )
        source = work / "tpch" / "lineitem.parquet"
        rows = pq.ParquetFile(source).metadata.num_rows
        arrow_mb = sum(b.nbytes for b in batches(source)) / 1e6
        print(f"lineitem SF{args.scale:g}: {rows} rows, {arrow_mb:.0f} MB as Arrow, "
              f"{source.stat().st_size / 1e6:.0f} MB as Parquet")

        (work / "logs").mkdir()
        server = conftest.MiniDBServer(work / "data", work / "logs").start()
        try:
            before_mb = peak_rss_mb(server.proc.pid)
            conn = server.adbc()
            cur = conn.cursor()
            started = time.perf_counter()
            written = cur.adbc_ingest("lineitem", batches(source), mode="create")
            minidb_s = time.perf_counter() - started
            assert written == rows, (written, rows)
            cur.execute("SELECT count(*), sum(l_quantity) FROM lineitem")
            count, _ = cur.fetchone()
            assert count == rows
            peak_mb = peak_rss_mb(server.proc.pid)
            conn.close()
        finally:
            server.stop()
        minidb_mb = sum(p.stat().st_size for p in (work / "data").rglob("*.parquet")) / 1e6

        target = work / "delta-rs"
        started = time.perf_counter()
        write_deltalake(str(target), batches(source))
        delta_s = time.perf_counter() - started
        assert DeltaTable(str(target)).to_pyarrow_dataset().count_rows() == rows
        delta_mb = sum(p.stat().st_size for p in target.rglob("*.parquet")) / 1e6

        print(f"MiniDB adbc_ingest: {minidb_s:.1f} s, {rows / minidb_s / 1e6:.2f} M rows/s, "
              f"{arrow_mb / minidb_s:.0f} MB/s of Arrow; {minidb_mb:.0f} MB of Parquet written")
        print(f"  server peak RSS {peak_mb:.0f} MB (at start {before_mb:.0f} MB) "
              f"for {arrow_mb:.0f} MB of Arrow data")
        print(f"delta-rs write_deltalake: {delta_s:.1f} s, {rows / delta_s / 1e6:.2f} M rows/s; "
              f"{delta_mb:.0f} MB of Parquet written")
        print(f"ratio MiniDB/delta-rs time: {minidb_s / delta_s:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

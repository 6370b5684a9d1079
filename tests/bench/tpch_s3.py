"""TPC-H over S3 with the read cache: the 22 queries on a MiniDB over a SeaweedFS bucket, first
with an empty cache and then warm, beside the same queries on a MiniDB over a local directory,
in one run, every answer checked.

Generates the data with tpchgen-cli (as tpch.py does), starts SeaweedFS on loopback and two
servers — one over a bucket prefix with a disk tier (`--cache-dir`, 20 GiB) and the default
memory tier, one over a local directory — and loads both through ADBC. The S3 server is then
restarted, which empties its cache. The first pass runs each query once on it (every block
comes from the bucket); the next rounds run each query on both servers, interleaved, and keep
the medians. Prints per-query times, the warm S3 time over the local one, the geometric means,
and the S3 server's `sys.cache`.

    .venv/bin/python tests/bench/tpch_s3.py [--scale 1] [--runs 3] [--queries 1,3,18]
        [--uncached] [--server-arg=--cache-memory=1GiB ...]

Uses MINIDB_BIN (build with `cargo build --release`).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import tpch

conftest = tpch.conftest


def timed(conn, sql: str) -> tuple[float, list[tuple]]:
    cur = conn.cursor()
    try:
        started = time.perf_counter()
        cur.execute(sql)
        table = cur.fetch_arrow_table()
        return time.perf_counter() - started, tpch.rows_of(table)
    finally:
        cur.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1)
    parser.add_argument("--runs", type=int, default=3, help="warm rounds (medians are kept)")
    parser.add_argument("--queries", default="1-22", help="e.g. 1-22 or 1,3,18")
    parser.add_argument("--data", type=Path,
                        default=Path(tempfile.gettempdir()) / "minidb-tpch",
                        help="where generated Parquet files are kept between runs")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="an extra `minidb serve` argument for the S3 server (repeatable)")
    parser.add_argument("--uncached", action="store_true",
                        help="run the S3 server without a read cache, for comparison")
    args = parser.parse_args()
    numbers = []
    for part in args.queries.split(","):
        low, _, high = part.partition("-")
        numbers.extend(range(int(low), int(high or low) + 1))

    tables = tpch.generate(args.data, args.scale)
    work = Path(tempfile.mkdtemp(prefix="minidb-tpch-s3-"))
    for folder in ("weed", "s3-logs", "local-logs", "local-data"):
        (work / folder).mkdir()
    print(f"binary: {conftest.MINIDB_BIN} {' '.join(args.server_arg)}")
    failures: list[str] = []
    cold: dict[int, float] = {}
    warm: dict[int, list[float]] = {}
    local: dict[int, list[float]] = {}
    with conftest.seaweedfs(work / "weed") as s3:
        cache = (["--cache-memory", "0"] if args.uncached
                 else ["--cache-dir", str(work / "cache"), "--cache-size", "20GiB"])
        remote = conftest.MiniDBServer(
            work / "s3-logs", work / "s3-logs", [*s3.server_args(), *cache, *args.server_arg],
            data=s3.location())
        disk = conftest.MiniDBServer(work / "local-data", work / "local-logs")
        try:
            for server in (remote.start(), disk.start()):
                conn = server.adbc()
                tpch.load(conn, tables)
                conn.close()
            remote.stop()
            remote.start()
            s3_conn, local_conn = remote.adbc(), disk.adbc()
            for number in numbers:
                elapsed, rows = timed(s3_conn, tpch.query_text(number))
                cold[number] = elapsed
                expected = tpch.reference(number) if args.scale == 1 else None
                if expected is not None and (wrong := tpch.same(rows, expected)):
                    failures.append(f"q{number} s3: wrong answer: {wrong}")
            for _ in range(args.runs):
                for number in numbers:
                    sql = tpch.query_text(number)
                    elapsed, rows = timed(s3_conn, sql)
                    warm.setdefault(number, []).append(elapsed)
                    elapsed, local_rows = timed(local_conn, sql)
                    local.setdefault(number, []).append(elapsed)
                    if wrong := tpch.same(rows, local_rows):
                        failures.append(f"q{number}: S3 and local answers differ: {wrong}")
            cur = s3_conn.cursor()
            cur.execute("SELECT tier, capacity_bytes, used_bytes, blocks, hits, misses, "
                        "hit_bytes, evictions FROM sys.cache ORDER BY tier")
            cache = cur.fetch_arrow_table().to_pylist()
            cur.close()
            s3_conn.close()
            local_conn.close()
        finally:
            remote.stop()
            disk.stop()
    shutil.rmtree(work, ignore_errors=True)

    print(f"\nTPC-H SF{args.scale:g} (ms): S3 first pass (empty cache), S3 warm and local disk "
          f"(medians of {args.runs})")
    print(f"{'query':>5} {'s3 cold':>9} {'s3 warm':>9} {'local':>9} {'cold/local':>10} "
          f"{'warm/local':>10}")
    ratios: dict[str, list[float]] = {"cold": [], "warm": []}
    for number in numbers:
        w = statistics.median(warm[number]) * 1000
        lo = statistics.median(local[number]) * 1000
        c = cold[number] * 1000
        ratios["cold"].append(c / lo)
        ratios["warm"].append(w / lo)
        print(f"{'q' + str(number):>5} {c:9.1f} {w:9.1f} {lo:9.1f} {c / lo:10.2f} {w / lo:10.2f}")
    print(f"geomean cold/local: {tpch.geomean(ratios['cold']):.2f}  "
          f"warm/local: {tpch.geomean(ratios['warm']):.2f}  "
          f"worst warm/local: {max(ratios['warm']):.2f}")
    print("\nsys.cache of the S3 server:")
    for tier in cache:
        print("  " + ", ".join(f"{k}={v}" for k, v in tier.items()))
    if failures:
        print("\nFAILURES:")
        for failure in failures:
            print(f"  {failure}")
        sys.exit(1)
    print("every answer matches" + (" the reference" if args.scale == 1 else " across storage"))


if __name__ == "__main__":
    main()

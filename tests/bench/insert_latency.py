"""Durable single-row INSERT latency: MiniDB over :7205 and through ADBC (`cursor.execute` and
`execute_update`), beside DuckDB and SQLite (WAL, `synchronous=FULL`) in process on the same
disk, and the disk's own floor (create a small file, fsync it and its directory).

Each engine runs --calls autocommit INSERTs of one new row into `t (id BIGINT, note VARCHAR)`
after --warm-up untimed ones, each acknowledged only once durable; the script prints p50 and
p99 in milliseconds.

    .venv/bin/python tests/bench/insert_latency.py [--calls 2000] [--warm-up 200]

Uses MINIDB_BIN (build with `cargo build --release`).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import duckdb  # noqa: E402

import conftest  # noqa: E402

CREATE = "CREATE TABLE t (id BIGINT, note VARCHAR)"


def timed(call, calls: int, warm_up: int) -> list[float]:
    for _ in range(warm_up):
        call()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def percentile(samples: list[float], p: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[int(p) - 1]


def disk_floor(directory: Path, calls: int, warm_up: int) -> list[float]:
    """Create a 100-byte file, fsync it and fsync its directory: one durable object write."""
    counter = itertools.count()

    def call():
        path = directory / f"f{next(counter)}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b"x" * 100)
        os.fsync(fd)
        os.close(fd)
        dir_fd = os.open(directory, os.O_RDONLY)
        os.fsync(dir_fd)
        os.close(dir_fd)

    return timed(call, calls, warm_up)


def sqlite_wal(path: Path, calls: int, warm_up: int) -> list[float]:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(CREATE)
    ids = itertools.count()
    samples = timed(lambda: db.execute("INSERT INTO t VALUES (?, 'x')", (next(ids),)), calls, warm_up)
    db.close()
    return samples


def duckdb_file(path: Path, calls: int, warm_up: int) -> list[float]:
    db = duckdb.connect(str(path))
    db.execute(CREATE)
    ids = itertools.count()
    samples = timed(lambda: db.execute(f"INSERT INTO t VALUES ({next(ids)}, 'x')"), calls, warm_up)
    db.close()
    return samples


def minidb(work: Path, calls: int, warm_up: int) -> dict[str, list[float]]:
    server = conftest.MiniDBServer(work / "minidb", work / "logs").start()
    try:
        results = {}
        with server.text() as text:
            text.ok(CREATE + ";")
            ids = itertools.count()
            results["MiniDB :7205"] = timed(
                lambda: text.ok(f"INSERT INTO t VALUES ({next(ids)}, 'x');"), calls, warm_up
            )
        conn = server.adbc()
        cur = conn.cursor()
        ids = itertools.count(10_000_000)
        results["MiniDB ADBC cursor.execute"] = timed(
            lambda: cur.execute(f"INSERT INTO t VALUES ({next(ids)}, 'x')"), calls, warm_up
        )
        statement = cur.adbc_statement

        def execute_update():
            statement.set_sql_query(f"INSERT INTO t VALUES ({next(ids)}, 'x')")
            statement.execute_update()

        results["MiniDB ADBC execute_update"] = timed(execute_update, calls, warm_up)
        cur.close()
        conn.close()
        return results
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warm-up", type=int, default=200)
    args = parser.parse_args()
    print(f"binary: {conftest.MINIDB_BIN}")

    work = Path(tempfile.mkdtemp(prefix="minidb-bench-"))
    (work / "logs").mkdir()
    (work / "floor").mkdir()
    results = minidb(work, args.calls, args.warm_up)
    results["DuckDB (file)"] = duckdb_file(work / "duck.db", args.calls, args.warm_up)
    results["SQLite WAL, synchronous=FULL"] = sqlite_wal(work / "lite.db", args.calls, args.warm_up)
    results["disk: create + fsync + dir fsync"] = disk_floor(work / "floor", args.calls, args.warm_up)

    print(f"{'single-row INSERT':36} {'p50 ms':>8} {'p99 ms':>8}")
    for name, samples in results.items():
        print(f"{name:36} {statistics.median(samples):8.2f} {percentile(samples, 99):8.2f}")


if __name__ == "__main__":
    main()

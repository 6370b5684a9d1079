"""Concurrent writers: 1, 4, 16 and 64 clients sending single-row autocommit INSERTs over :7205
into one table for --seconds each: statements per second, rows per second, p50 and p99 latency,
conflicts, and the number of data files the table is left with (background compaction off, so
the files are the writes' own; the count is of the table's live files).

    .venv/bin/python tests/bench/writers.py [--clients 1,4,16,64] [--seconds 30]

Uses MINIDB_BIN (build with `cargo build --release`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import conftest  # noqa: E402


def run(server: conftest.MiniDBServer, table: str, clients: int, seconds: float) -> dict:
    with server.text() as text:
        text.ok(f"CREATE TABLE {table} (id BIGINT, client INT, note VARCHAR);")
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures = [0] * clients
    start = threading.Barrier(clients + 1)
    stop = threading.Event()

    def writer(me: int) -> None:
        with server.text(timeout=120) as text:
            n = 0
            start.wait()
            while not stop.is_set():
                n += 1
                began = time.perf_counter()
                answer = text.query(f"INSERT INTO {table} VALUES ({n}, {me}, 'x');")
                latencies[me].append((time.perf_counter() - began) * 1000)
                if answer.startswith("ERROR"):
                    failures[me] += 1

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    samples = [ms for per_client in latencies for ms in per_client]
    statements = len(samples)
    failed = sum(failures)
    with server.text() as text:
        _, answer = conftest.parse_ascii_table(text.ok(f"SELECT count(*) AS n FROM {table};"))
        _, live = conftest.parse_ascii_table(
            text.ok(
                "SELECT count(*) AS n FROM sys.table_files "
                f"WHERE table_name = '{table}' AND status = 'active';"
            )
        )
    rows, files = int(answer[0][0]), int(live[0][0])
    assert rows == statements - failed, (rows, statements, failed)
    return {
        "statements/s": statements / elapsed,
        "rows/s": rows / elapsed,
        "p50 ms": statistics.median(samples),
        "p99 ms": statistics.quantiles(samples, n=100, method="inclusive")[98],
        "failed": failed,
        "data files": files,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,4,16,64")
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    print(f"binary: {conftest.MINIDB_BIN}")

    work = Path(tempfile.mkdtemp(prefix="minidb-bench-"))
    (work / "data").mkdir()
    server = conftest.MiniDBServer(work / "data", work, ["--compaction-interval-ms", "0"]).start()
    try:
        columns = ["statements/s", "rows/s", "p50 ms", "p99 ms", "failed", "data files"]
        print(f"{'clients':>7} " + " ".join(f"{c:>12}" for c in columns))
        single = None
        for clients in (int(c) for c in args.clients.split(",")):
            result = run(server, f"w{clients}", clients, args.seconds)
            single = single or result["statements/s"]
            cells = " ".join(
                f"{result[c]:12.2f}" if isinstance(result[c], float) else f"{result[c]:12}" for c in columns
            )
            print(f"{clients:7} {cells}  ({result['statements/s'] / single:.2f}x one client)", flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()

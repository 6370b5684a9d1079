"""Opening a table with a long transaction log: MiniDB (checkpoint + the commits after it)
beside a full replay of every commit, delta-rs and DuckDB.

Builds one table with --commits single-row INSERT commits through the text protocol (the
server writes a checkpoint every 10 commits, the default `delta.checkpointInterval`), then
restarts the server --runs times and times the first query that needs the table, which opens
it: `SELECT count(*) … WHERE id < 0` (statistics skip every file, so the time is the log's).
The same query run again on the warm server is subtracted. Before it, the same query on a
one-row table warms the server's code (a new process first runs each code path from a cold
page cache mapping), so the figure is the log's, as the peers' are in a warm process. Then it removes the checkpoints
from a copy of the table and times the same first query there (a replay of every commit),
and times opening the original table with delta-rs (`DeltaTable`) and DuckDB (`delta_scan`).

    .venv/bin/python tests/bench/open_log.py [--commits 10000] [--runs 5]

Uses MINIDB_BIN (default: target/debug/minidb, whose dependencies are optimised).
"""

from __future__ import annotations

import argparse
import json
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
from test_delta_interop import duckdb_con  # noqa: E402

PROBE = "SELECT count(*) AS n FROM {table} WHERE id < 0;"
WARM_UP = "warm_up"


def first_query_ms(data_dir: Path, logs: Path, table: str, runs: int) -> tuple[float, float]:
    """Median first-query and warm-query latency over `runs` fresh servers."""
    first, warm = [], []
    for _ in range(runs):
        server = conftest.MiniDBServer(data_dir, logs).start()
        try:
            with server.text() as text:
                text.query(PROBE.format(table=WARM_UP))
                started = time.perf_counter()
                answer = text.query(PROBE.format(table=table))
                first.append((time.perf_counter() - started) * 1000)
                assert "| 0 " in answer, answer
                started = time.perf_counter()
                text.query(PROBE.format(table=table))
                warm.append((time.perf_counter() - started) * 1000)
        finally:
            server.stop()
    return statistics.median(first), statistics.median(warm)


def timed_ms(run, runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"binary: {conftest.MINIDB_BIN}")

    work = Path(tempfile.mkdtemp(prefix="minidb-bench-"))
    (work / "logs").mkdir()
    data = work / "data"
    table = data / "default" / "t"
    try:
        server = conftest.MiniDBServer(data, work / "logs").start()
        try:
            with server.text() as text:
                text.ok("CREATE TABLE t (id BIGINT NOT NULL, v VARCHAR);")
                text.ok(f"CREATE TABLE {WARM_UP} (id BIGINT NOT NULL, v VARCHAR);")
                text.ok(f"INSERT INTO {WARM_UP} VALUES (1, 'one');")
                started = time.perf_counter()
                for i in range(args.commits):
                    text.ok(f"INSERT INTO t VALUES ({i}, 'row {i}');")
                load_s = time.perf_counter() - started
            last = table / "_delta_log" / "_last_checkpoint"
            deadline = time.time() + 120
            while json.loads(last.read_text())["version"] < args.commits // 10 * 10:
                assert time.time() < deadline, "the last checkpoint never appeared"
                time.sleep(0.1)
        finally:
            server.stop()
        checkpoint = json.loads(last.read_text())
        print(
            f"table: {args.commits:,} commits in {load_s:.1f} s; newest checkpoint at version "
            f"{checkpoint['version']} ({checkpoint['numOfAddFiles']:,} files, "
            f"{checkpoint['sizeInBytes'] / 1e6:.1f} MB)"
        )

        replay = data / "default" / "replay"
        shutil.copytree(table, replay)
        for path in (replay / "_delta_log").iterdir():
            if "checkpoint" in path.name:
                path.unlink()

        cold, warm = first_query_ms(data, work / "logs", "t", args.runs)
        cold_replay, warm_replay = first_query_ms(data, work / "logs", "replay", args.runs)
        delta_rs = timed_ms(lambda: DeltaTable(str(table)), args.runs)
        duck = duckdb_con()
        duckdb = timed_ms(
            lambda: duck.sql(f"SELECT count(*) FROM delta_scan('{table}') WHERE id < 0").fetchall(),
            args.runs,
        )
        duck.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    opened = cold - warm
    rows = [
        ("MiniDB, checkpoint", opened),
        ("MiniDB, replay of every commit", cold_replay - warm_replay),
        ("delta-rs DeltaTable()", delta_rs),
        ("DuckDB delta_scan count", duckdb),
    ]
    print(f"{'open':<34} {'median ms':>10}")
    for name, ms in rows:
        print(f"{name:<34} {ms:>10.1f}")
    for name, ms in rows[1:]:
        print(f"ratio {name} / MiniDB: {ms / opened:.1f}x")
    print(f"target: <= 200 ms ({opened:.1f} ms)")


if __name__ == "__main__":
    main()

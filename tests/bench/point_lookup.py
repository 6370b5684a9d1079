"""Point SELECT by an indexed key over Flight SQL: p50/p99 with the index, without it, and beside
DuckDB (`delta_scan`) and delta-rs (`QueryBuilder`) reading the same table directory.

Builds one table of --rows rows whose key column `k` holds the even numbers below 2 * rows in
scrambled order (statistics cannot skip anything), times `SELECT * FROM big WHERE k = ?` for
random keys, then runs CREATE UNIQUE INDEX on k and times the same queries again, after a
warm-up pass (the steady state of a server whose index leaves are cached). Each lookup is one
Flight SQL GetFlightInfo + DoGet from pyarrow's Flight client (C++ gRPC); the indexed lookups
are also timed through the ADBC Flight SQL driver. Finally it times single-row INSERTs of new
odd keys, each checked for uniqueness against every existing key through the index.

    .venv/bin/python tests/bench/point_lookup.py [--rows 5000000] [--lookups 300]

Uses MINIDB_BIN (default: target/debug/minidb, whose dependencies are optimised).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import pyarrow as pa  # noqa: E402
import pyarrow.flight as flight  # noqa: E402
from deltalake import DeltaTable, QueryBuilder  # noqa: E402

import conftest  # noqa: E402
from test_delta_interop import duckdb_con  # noqa: E402
from test_flight_pyarrow import statement_query  # noqa: E402

STEP = 7919  # prime, so id -> (id * STEP) mod rows is a permutation when rows is not its multiple


def percentiles(samples_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(samples_ms)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def timed(run, keys) -> list[float]:
    samples = []
    for key in keys:
        started = time.perf_counter()
        rows = run(key)
        samples.append((time.perf_counter() - started) * 1000)
        assert rows == 1, f"key {key}: {rows} rows"
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--lookups", type=int, default=300)
    parser.add_argument("--scans", type=int, default=20, help="lookups without the index")
    parser.add_argument("--warm-up", type=int, default=2000, help="lookups before timing")
    parser.add_argument("--inserts", type=int, default=50)
    args = parser.parse_args()
    assert args.rows % STEP != 0
    print(f"binary: {conftest.MINIDB_BIN}")
    rng = random.Random(7)

    work = Path(tempfile.mkdtemp(prefix="minidb-bench-"))
    (work / "logs").mkdir()
    server = conftest.MiniDBServer(work / "data", work / "logs").start()
    try:
        conn = server.adbc()
        cur = conn.cursor()
        cur.execute("CREATE TABLE big (id BIGINT NOT NULL, k BIGINT NOT NULL, pad VARCHAR)")
        started = time.perf_counter()
        cur.execute(
            f"INSERT INTO big SELECT value, (value * {STEP}) % {args.rows} * 2, "
            f"md5(CAST(value AS VARCHAR)) FROM generate_series(0, {args.rows - 1})"
        )
        load_s = time.perf_counter() - started
        table = server.data_dir / "default" / "big"
        data = list(table.glob("*.parquet"))
        size = sum(p.stat().st_size for p in data)
        print(f"table: {args.rows:,} rows in {len(data)} file(s), {size / 1e6:.1f} MB, loaded in {load_s:.1f} s")

        client = flight.connect(f"grpc://127.0.0.1:{server.flight_port}")

        def minidb(key: int) -> int:
            command = statement_query(f"SELECT * FROM big WHERE k = {key}")
            info = client.get_flight_info(flight.FlightDescriptor.for_command(command))
            return client.do_get(info.endpoints[0].ticket).read_all().num_rows

        def minidb_adbc(key: int) -> int:
            cur.execute(f"SELECT * FROM big WHERE k = {key}")
            return cur.fetch_arrow_table().num_rows

        keys = [2 * rng.randrange(args.rows) for _ in range(args.lookups)]
        minidb(keys[0])  # warm the footer cache
        scan_ms = timed(minidb, keys[: args.scans])

        started = time.perf_counter()
        cur.execute("CREATE UNIQUE INDEX idx_k ON big (k)")
        index_s = time.perf_counter() - started
        segments = list((table / "_minidb_index").rglob("*.parquet"))
        index_mb = sum(p.stat().st_size for p in segments) / 1e6
        print(f"CREATE INDEX: {index_s:.1f} s, {len(segments)} segment(s), {index_mb:.1f} MB")
        cur.execute(f"EXPLAIN SELECT * FROM big WHERE k = {keys[0]}")
        plan = " ".join(str(v) for row in cur.fetchall() for v in row)
        assert "index idx_k: 1 rows" in plan, plan
        warm_up = [2 * rng.randrange(args.rows) for _ in range(args.warm_up)]
        cold_ms = timed(minidb, warm_up)
        index_ms = timed(minidb, keys)
        adbc_ms = timed(minidb_adbc, keys)

        inserted = iter(range(args.rows, 2 * args.rows))

        def insert(key: int) -> int:
            cur.execute(f"INSERT INTO big VALUES ({next(inserted)}, {key}, 'new')")
            return cur.rowcount

        insert_ms = timed(insert, [2 * rng.randrange(args.rows) + 1 for _ in range(args.inserts)])
        client.close()
        conn.close()

        duck = duckdb_con()
        path = str(table)

        def duckdb(key: int) -> int:
            return len(duck.sql(f"SELECT * FROM delta_scan('{path}') WHERE k = {key}").fetchall())

        duckdb(keys[0])
        duck_ms = timed(duckdb, keys[: args.scans])
        duck.close()

        builder = QueryBuilder().register("big", DeltaTable(path))

        def delta_rs(key: int) -> int:
            return pa.table(builder.execute(f"SELECT * FROM big WHERE k = {key}").read_all()).num_rows

        delta_rs(keys[0])
        delta_ms = timed(delta_rs, keys[: args.scans])
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    rows = [
        ("MiniDB, index", index_ms),
        ("MiniDB, index, warm-up", cold_ms),
        ("MiniDB, index, ADBC", adbc_ms),
        ("MiniDB, no index", scan_ms),
        ("DuckDB delta_scan", duck_ms),
        ("delta-rs QueryBuilder", delta_ms),
    ]
    print(f"{'engine':<24} {'lookups':>8} {'p50 ms':>9} {'p99 ms':>9}")
    for name, samples in rows:
        p50, p99 = percentiles(samples)
        print(f"{name:<24} {len(samples):>8} {p50:>9.2f} {p99:>9.2f}")
    p50, p99 = percentiles(index_ms)
    for name, samples in rows[3:]:
        other = statistics.median(samples)
        print(f"p50 ratio {name} / MiniDB with index: {other / p50:,.0f}x")
    p50_insert, p99_insert = percentiles(insert_ms)
    print(f"single-row INSERT with its UNIQUE check: p50 {p50_insert:.2f} ms, p99 {p99_insert:.2f} ms")
    print(f"targets: >= 50x faster than without the index, p50 <= 2 ms (p50 {p50:.2f} ms)")


if __name__ == "__main__":
    main()

"""TPC-H over Flight SQL: MiniDB through ADBC beside DuckDB and plain DataFusion on the same
Parquet files, in one run, with every answer checked against the reference answers.

Generates the data with tpchgen-cli (kept in --data for the next run), starts the server,
loads each table through ADBC `adbc_ingest` in 65,536-row batches, then runs the 22 queries of
../shared/corpora/tpch/queries, interleaved (each round runs every query on every system), and
prints each query's median time per system, its ratio to DuckDB and the geometric means. Every
answer of every system is compared with ../shared/corpora/tpch/answers-sf1 at SF1 (text and
integers exactly, other numbers within a cent or one part in a million); at other scales the
systems' answers are compared with DuckDB's. Queries 2, 3, 10, 18 and 21 get the row limits of
the TPC-H specification; q15 defines a view, and runs here with the view inlined as a WITH
clause on every system.

DuckDB runs with threads = cores over `read_parquet` views; DataFusion is the Python binding of
the engine MiniDB embeds, over the same files.

    .venv/bin/python tests/bench/tpch.py [--scale 1] [--runs 3] [--queries 1,3,18]
        [--server-arg=--engine-setting=KEY=VALUE ...]

Uses MINIDB_BIN (build with `cargo build --release`).
"""

from __future__ import annotations

import argparse
import datetime
import decimal
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import datafusion  # noqa: E402
import duckdb  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

import conftest  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpora" / "tpch"
TABLES = ["region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"]
BATCH_ROWS = 65_536
SYSTEMS = ["minidb", "duckdb", "datafusion"]
# The rows the TPC-H specification returns of the queries whose texts here have no LIMIT.
ROW_LIMITS = {2: 100, 3: 10, 10: 20, 18: 100, 21: 100}


def query_text(number: int) -> str:
    """The query's SQL as one statement, with the specification's row limit: q15's view
    becomes a WITH clause."""
    sql = (CORPUS / "queries" / f"q{number}.sql").read_text()
    view = re.search(
        r"create view (\w+) \(([^)]*)\) as(.*?);\s*(select.*?);\s*drop view",
        sql,
        re.IGNORECASE | re.DOTALL,
    )
    if view:
        name, columns, body, select = view.groups()
        sql = f"with {name} ({columns}) as ({body.strip()})\n{select}"
    sql = sql.strip().rstrip(";")
    if number in ROW_LIMITS:
        sql += f"\nlimit {ROW_LIMITS[number]}"
    return sql


def generate(data: Path, scale: float) -> Path:
    tables = data / f"sf{scale:g}"
    if not all((tables / f"{t}.parquet").exists() for t in TABLES):
        tables.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [str(REPO / ".venv" / "bin" / "tpchgen-cli"), "parquet", "-s", f"{scale:g}",
             "-o", str(tables)],
            check=True,
        )
    return tables


def load(conn, tables: Path) -> None:
    cur = conn.cursor()
    for table in TABLES:
        file = pq.ParquetFile(tables / f"{table}.parquet")
        reader = pa.RecordBatchReader.from_batches(
            file.schema_arrow, file.iter_batches(batch_size=BATCH_ROWS)
        )
        started = time.perf_counter()
        rows = cur.adbc_ingest(table, reader, mode="create")
        print(f"  loaded {table}: {rows} rows in {time.perf_counter() - started:.1f} s")
    cur.close()


def normalise(value) -> object:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()[:10]
    if isinstance(value, str):
        return value.strip()
    return value


def rows_of(table: pa.Table) -> list[tuple]:
    return [tuple(normalise(v) for v in row.values()) for row in table.to_pylist()]


def reference(number: int) -> list[tuple]:
    lines = (CORPUS / "answers-sf1" / f"q{number}.out").read_text().splitlines()[1:]
    rows = []
    for line in lines:
        if not line.strip():
            continue
        rows.append(tuple(cell.strip() for cell in line.split("|")))
    return rows


def agrees(got, want) -> bool:
    if isinstance(got, (int, float)) and not isinstance(got, bool):
        try:
            want = float(want)
        except ValueError:
            return False
        if isinstance(got, int):
            return float(got) == want
        return math.isclose(got, want, rel_tol=1e-6, abs_tol=0.0101)
    return str(got) == str(want)


def same(actual: list[tuple], expected: list[tuple]) -> str | None:
    """None when the rows agree, else what differs. Integers and text must be equal, other
    numbers within a cent or one part in a million (the reference rounds some averages
    differently), as the TPC-H specification's answer checks allow."""
    if len(actual) != len(expected):
        return f"{len(actual)} rows, expected {len(expected)}"
    for i, (got, want) in enumerate(zip(actual, expected)):
        if len(got) != len(want):
            return f"row {i}: {len(got)} columns, expected {len(want)}"
        for g, w in zip(got, want):
            if not agrees(g, w):
                return f"row {i}: {got} != {want}"
    return None


class Systems:
    """The three systems, each answering a query as an Arrow table."""

    def __init__(self, server: conftest.MiniDBServer, tables: Path):
        self.adbc = server.adbc()
        self.duck = duckdb.connect()
        self.duck.execute(f"SET threads = {os.cpu_count()}")
        config = datafusion.SessionConfig().with_target_partitions(os.cpu_count())
        self.fusion = datafusion.SessionContext(config)
        for table in TABLES:
            path = tables / f"{table}.parquet"
            self.duck.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{path}')")
            self.fusion.register_parquet(table, str(path))

    def run(self, system: str, sql: str) -> pa.Table:
        if system == "minidb":
            cur = self.adbc.cursor()
            try:
                cur.execute(sql)
                return cur.fetch_arrow_table()
            finally:
                cur.close()
        if system == "duckdb":
            return self.duck.sql(sql).arrow().read_all()
        return self.fusion.sql(sql).to_arrow_table()


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1)
    parser.add_argument("--runs", type=int, default=3, help="timed rounds (medians are kept)")
    parser.add_argument("--queries", default="1-22", help="e.g. 1-22 or 1,3,18")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(tempfile.gettempdir()) / "minidb-tpch",
        help="where generated Parquet files are kept between runs",
    )
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="an extra `minidb serve` argument (repeatable), e.g. --server-arg=--engine-setting=K=V",
    )
    args = parser.parse_args()
    numbers = []
    for part in args.queries.split(","):
        low, _, high = part.partition("-")
        numbers.extend(range(int(low), int(high or low) + 1))

    print(f"binary: {conftest.MINIDB_BIN} {' '.join(args.server_arg)}")
    print(f"cores: {os.cpu_count()}, duckdb {duckdb.__version__}, datafusion {datafusion.__version__}")
    tables = generate(args.data, args.scale)
    work = Path(tempfile.mkdtemp(prefix="minidb-tpch-"))
    (work / "logs").mkdir()
    server = conftest.MiniDBServer(work / "data", work / "logs", args.server_arg).start()
    failures = []
    try:
        conn = server.adbc()
        load(conn, tables)
        conn.close()
        systems = Systems(server, tables)
        times: dict[tuple[int, str], list[float]] = {}
        answers: dict[tuple[int, str], list[tuple]] = {}
        for round_ in range(args.runs + 1):
            for number in numbers:
                sql = query_text(number)
                for system in SYSTEMS:
                    started = time.perf_counter()
                    try:
                        table = systems.run(system, sql)
                    except Exception as e:  # noqa: BLE001 - reported below, the run goes on
                        failures.append(f"q{number} {system}: {str(e).splitlines()[0]}")
                        times[(number, system)] = [math.nan]
                        continue
                    elapsed = time.perf_counter() - started
                    if round_ == 0:
                        # The first round warms caches and checks answers; it is not timed.
                        answers[(number, system)] = rows_of(table)
                    else:
                        times.setdefault((number, system), []).append(elapsed)
        for number in numbers:
            expected = reference(number) if args.scale == 1 else answers.get((number, "duckdb"))
            for system in SYSTEMS:
                got = answers.get((number, system))
                if got is None or expected is None:
                    continue
                wrong = same(got, expected)
                if wrong:
                    failures.append(f"q{number} {system}: wrong answer: {wrong}")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nTPC-H SF{args.scale:g}, median of {args.runs} runs (ms); ratios to DuckDB")
    print(f"{'query':>5} {'minidb':>9} {'duckdb':>9} {'datafusion':>10} {'minidb/duck':>11} "
          f"{'df/duck':>8}")
    ratios: dict[str, list[float]] = {"minidb": [], "datafusion": []}
    for number in numbers:
        median = {s: statistics.median(times.get((number, s), [math.nan])) * 1000
                  for s in SYSTEMS}
        ratio = {s: median[s] / median["duckdb"] for s in ratios}
        for s, r in ratio.items():
            if not math.isnan(r):
                ratios[s].append(r)
        print(f"{'q' + str(number):>5} {median['minidb']:9.1f} {median['duckdb']:9.1f} "
              f"{median['datafusion']:10.1f} {ratio['minidb']:11.2f} {ratio['datafusion']:8.2f}")
    print(f"geomean minidb/duckdb: {geomean(ratios['minidb']):.2f}  "
          f"datafusion/duckdb: {geomean(ratios['datafusion']):.2f}")
    if failures:
        print("\nFAILURES:")
        for failure in failures:
            print(f"  {failure}")
        sys.exit(1)
    print("every answer matches the reference")


if __name__ == "__main__":
    main()

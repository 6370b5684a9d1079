"""Streaming a large result: `SELECT * FROM lineitem` (TPC-H SF1, 6 M rows) from MiniDB to ADBC
and to a plain pyarrow.flight client, beside a minimal Flight SQL server (pyarrow.flight,
roundtrip.py's) sending the same Arrow table from memory, in 65,536-row batches, to the same
two clients. Reports
GB/s of Arrow data received (the table's in-memory size over the wall time of the call, best
of --runs), the ratio to the reference server, and the CPU time MiniDB's process spent on one
stream (median of --runs; the client and the server share the machine's cores).

    .venv/bin/python tests/bench/stream.py [--scale 1] [--runs 3]

Uses MINIDB_BIN (build with `cargo build --release`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq
from adbc_driver_flightsql import dbapi

import roundtrip
import tpch

conftest = tpch.conftest
SQL = "SELECT * FROM lineitem"
BATCH_ROWS = 65_536


def cpu_seconds(pid: int | None) -> float:
    """The user and system CPU time process `pid` has used (0 for none)."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def best(call, runs: int, pid: int | None = None) -> tuple[float, int, float]:
    """The shortest wall time of `runs` calls, the bytes the last call received, and the median
    CPU time process `pid` (the server) spent on one call."""
    times, cpu, size = [], [], 0
    for _ in range(runs):
        before = cpu_seconds(pid)
        started = time.perf_counter()
        table = call()
        times.append(time.perf_counter() - started)
        cpu.append(cpu_seconds(pid) - before)
        size = table.nbytes
        del table
    return min(times), size, statistics.median(cpu)


def adbc_reader(uri: str):
    def call():
        conn = dbapi.connect(uri, autocommit=True)
        try:
            cur = conn.cursor()
            cur.execute(SQL)
            return cur.fetch_arrow_table()
        finally:
            conn.close()

    return call


def flight_reader(uri: str):
    def call():
        client = flight.connect(uri)
        try:
            descriptor = flight.FlightDescriptor.for_command(
                roundtrip.statement_query(SQL))
            info = client.get_flight_info(descriptor)
            return client.do_get(info.endpoints[0].ticket).read_all()
        finally:
            client.close()

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--server-arg", action="append", default=[],
                        help="an extra `minidb serve` argument (repeatable)")
    parser.add_argument("--data", type=Path,
                        default=Path(tempfile.gettempdir()) / "minidb-tpch",
                        help="where generated Parquet files are kept between runs")
    args = parser.parse_args()

    tables = tpch.generate(args.data, args.scale)
    # In 65,536-row batches (about 14 MB each): the ADBC driver refuses messages over 16 MiB.
    file = pq.ParquetFile(tables / "lineitem.parquet")
    lineitem = pa.Table.from_batches(file.iter_batches(batch_size=BATCH_ROWS), file.schema_arrow)
    reference = roundtrip.MinimalServer(roundtrip.Counter(), lineitem)
    reference_uri = f"grpc://127.0.0.1:{reference.port}"
    threading.Thread(target=reference.serve, daemon=True).start()

    work = Path(tempfile.mkdtemp(prefix="minidb-stream-"))
    (work / "logs").mkdir()
    server = conftest.MiniDBServer(work / "data", work / "logs", args.server_arg).start()
    results = {}
    try:
        conn = server.adbc()
        cur = conn.cursor()
        cur.adbc_ingest("lineitem", lineitem, mode="create")
        cur.close()
        conn.close()
        for client, reader in (("ADBC", adbc_reader), ("pyarrow.flight", flight_reader)):
            for name, uri, pid in (("reference", reference_uri, None),
                                   ("MiniDB", server.flight_uri, server.proc.pid)):
                results[(client, name)] = best(reader(uri), args.runs, pid)
    finally:
        server.stop()
        reference.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    print(f"{SQL} (SF{args.scale:g}, {lineitem.num_rows} rows, {lineitem.nbytes / 1e9:.2f} GB "
          f"of Arrow), best of {args.runs}")
    print(f"{'client':16} {'reference GB/s':>14} {'MiniDB GB/s':>12} {'MiniDB/reference':>16} "
          f"{'MiniDB CPU s':>12}")
    for client in ("ADBC", "pyarrow.flight"):
        speeds = {}
        for name in ("reference", "MiniDB"):
            seconds, size, _ = results[(client, name)]
            speeds[name] = size / seconds / 1e9
        server_cpu = results[(client, "MiniDB")][2]
        print(f"{client:16} {speeds['reference']:14.2f} {speeds['MiniDB']:12.2f} "
              f"{speeds['MiniDB'] / speeds['reference']:16.2f} {server_cpu:12.2f}")


if __name__ == "__main__":
    sys.exit(main())

"""Flight SQL round trips at the client's floor: the ADBC driver's p50 for `SELECT 1` and a
one-row INSERT against MiniDB, beside the same calls against a minimal Flight SQL server that
answers at once (written here with pyarrow.flight), and an indexed point lookup through ADBC
beside the same lookup through a plain pyarrow.flight client. The minimal server also counts
the RPCs each client call costs.

    .venv/bin/python tests/bench/roundtrip.py [--calls 500] [--rows 200000]

Uses MINIDB_BIN (build with `cargo build --release`).
"""

from __future__ import annotations

import argparse
import collections
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import pyarrow as pa  # noqa: E402
import pyarrow.flight as flight  # noqa: E402
from adbc_driver_flightsql import dbapi  # noqa: E402
from flightsql import flightsql_pb2 as pb  # noqa: E402
from google.protobuf import any_pb2  # noqa: E402

import conftest  # noqa: E402
from test_flight_pyarrow import statement_query  # noqa: E402

ONE = pa.table({"one": pa.array([1], pa.int64())})


def packed(message) -> bytes:
    wrapper = any_pb2.Any()
    wrapper.Pack(message)
    return wrapper.SerializeToString()


def unpacked(command: bytes):
    wrapper = any_pb2.Any()
    wrapper.ParseFromString(command)
    name = wrapper.TypeName().rsplit(".", 1)[-1]
    message = getattr(pb, name)()
    wrapper.Unpack(message)
    return message


class Counter(flight.ServerMiddlewareFactory):
    """Counts the RPCs the server receives, by method."""

    def __init__(self):
        self.calls: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()

    def start_call(self, info, headers):
        with self.lock:
            self.calls[info.method.name] += 1
        return None

    def take(self) -> dict[str, int]:
        with self.lock:
            calls, self.calls = dict(self.calls), collections.Counter()
        return calls


class MinimalServer(flight.FlightServerBase):
    """A Flight SQL server that answers every query with `table` (one row of `1` by default)
    and every update with one affected row, doing no other work: the floor a client's round
    trips can reach."""

    def __init__(self, counter: Counter, table: pa.Table = ONE):
        super().__init__("grpc://127.0.0.1:0", middleware={"count": counter})
        self.table = table

    def get_flight_info(self, context, descriptor):
        command = unpacked(descriptor.command)
        if isinstance(command, pb.CommandPreparedStatementQuery):
            schema = self.table.schema
        elif not isinstance(command, pb.CommandStatementQuery):
            # GetSqlInfo and the other metadata: the driver copes without them.
            raise NotImplementedError(type(command).__name__)
        elif command.query.lstrip().upper().startswith("INSERT"):
            schema = pa.schema([])
        else:
            schema = self.table.schema
        ticket = flight.Ticket(packed(pb.TicketStatementQuery(statement_handle=b"q")))
        return flight.FlightInfo(schema, descriptor, [flight.FlightEndpoint(ticket, [])], -1, -1)

    def do_get(self, context, ticket):
        return flight.RecordBatchStream(self.table)

    def do_put(self, context, descriptor, reader, writer):
        for _ in reader:
            pass
        writer.write(pa.py_buffer(pb.DoPutUpdateResult(record_count=1).SerializeToString()))

    def do_action(self, context, action):
        if action.type == "CreatePreparedStatement":
            result = pb.ActionCreatePreparedStatementResult(
                prepared_statement_handle=b"p",
                dataset_schema=self.table.schema.serialize().to_pybytes(),
            )
            return [flight.Result(packed(result))]
        return []


def p50(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed(call, calls: int, warm_up: int = 50) -> list[float]:
    for _ in range(warm_up):
        call()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def adbc_calls(uri: str, calls: int, table: str) -> dict[str, list[float]]:
    """Each ADBC call sequence's timings; `table` takes one-row INSERTs."""
    conn = dbapi.connect(uri, autocommit=True)
    counter = iter(range(10**9))
    try:
        cur = conn.cursor()

        def select_one():
            cur.execute("SELECT 1")
            cur.fetch_arrow_table()

        def insert_execute():
            cur.execute(f"INSERT INTO {table} VALUES ({next(counter)})")

        def select_new_text():
            # A new statement text each time, as a point lookup by literal key is: ADBC
            # prepares it anew (ClosePreparedStatement, CreatePreparedStatement first).
            cur.execute(f"SELECT {next(counter)}")
            cur.fetch_arrow_table()

        def insert_update():
            statement = cur.adbc_statement
            statement.set_sql_query(f"INSERT INTO {table} VALUES ({next(counter)})")
            statement.execute_update()

        return {
            "SELECT 1, cursor.execute + fetch": timed(select_one, calls),
            "SELECT <new text>, execute + fetch": timed(select_new_text, calls),
            "INSERT, cursor.execute": timed(insert_execute, calls),
            "INSERT, execute_update": timed(insert_update, calls),
        }
    finally:
        conn.close()


def plain_query(uri: str, text):
    """A pyarrow.flight client's GetFlightInfo + DoGet of the statement `text()` gives."""
    client = flight.connect(uri)

    def call():
        info = client.get_flight_info(
            flight.FlightDescriptor.for_command(statement_query(text())))
        assert client.do_get(info.endpoints[0].ticket).read_all().num_rows == 1

    return call


def rpcs_per_call(counter: Counter, uri: str) -> dict[str, dict[str, int]]:
    """The RPCs one call of each sequence costs, as the minimal server sees them."""
    conn = dbapi.connect(uri, autocommit=True)
    cur = conn.cursor()
    cur.execute("SELECT 1")
    cur.fetch_arrow_table()
    counter.take()
    counts = {}
    cur.execute("SELECT 1")
    cur.fetch_arrow_table()
    counts["SELECT 1, cursor.execute + fetch"] = counter.take()
    cur.execute("SELECT 2")
    cur.fetch_arrow_table()
    counts["SELECT <new text>, execute + fetch"] = counter.take()
    cur.execute("INSERT INTO t VALUES (1)")
    counts["INSERT, cursor.execute"] = counter.take()
    cur.adbc_statement.set_sql_query("INSERT INTO t VALUES (1)")
    cur.adbc_statement.execute_update()
    counts["INSERT, execute_update"] = counter.take()
    conn.close()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="timed calls per sequence")
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the lookup table")
    args = parser.parse_args()

    counter = Counter()
    floor_server = MinimalServer(counter)
    floor_uri = f"grpc://127.0.0.1:{floor_server.port}"
    threading.Thread(target=floor_server.serve, daemon=True).start()
    rpcs = rpcs_per_call(counter, floor_uri)

    work = Path(tempfile.mkdtemp(prefix="minidb-roundtrip-"))
    (work / "logs").mkdir()
    server = conftest.MiniDBServer(work / "data", work / "logs").start()
    try:
        conn = server.adbc()
        cur = conn.cursor()
        cur.execute("CREATE TABLE t (id BIGINT)")
        cur.execute("CREATE TABLE big (k BIGINT, v VARCHAR)")
        keys = list(range(args.rows))
        random.Random(7).shuffle(keys)
        batch = pa.table({"k": pa.array(keys, pa.int64()),
                          "v": pa.array([f"value {k}" for k in keys])})
        cur.adbc_ingest("big", batch, mode="append")
        cur.execute("CREATE UNIQUE INDEX big_k ON big (k)")
        cur.close()
        conn.close()

        floor = adbc_calls(floor_uri, args.calls, "t")
        floor_plain = timed(plain_query(floor_uri, lambda: "SELECT 1"), args.calls)
        minidb = adbc_calls(server.flight_uri, args.calls, "t")

        lookups = [random.Random(11).randrange(args.rows) for _ in range(args.calls)]
        adbc = dbapi.connect(server.flight_uri, autocommit=True)
        adbc_cur = adbc.cursor()
        adbc_keys, plain_keys = iter(lookups * 2), iter(lookups * 2)

        def lookup_adbc():
            adbc_cur.execute(f"SELECT * FROM big WHERE k = {next(adbc_keys) % args.rows}")
            assert adbc_cur.fetch_arrow_table().num_rows == 1

        via_plain = timed(plain_query(
            server.flight_uri,
            lambda: f"SELECT * FROM big WHERE k = {next(plain_keys) % args.rows}"), args.calls)
        via_adbc = timed(lookup_adbc, args.calls)
        adbc.close()
    finally:
        server.stop()
        floor_server.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    print(f"ADBC Flight SQL driver, p50 of {args.calls} calls (ms), autocommit")
    print(f"{'call':36} {'floor':>7} {'minidb':>7} {'minidb-floor':>12}  RPCs per call")
    for name, samples in floor.items():
        ours = minidb[name]
        calls = ", ".join(f"{method} {n}" for method, n in sorted(rpcs[name].items()))
        print(f"{name:36} {p50(samples):7.2f} {p50(ours):7.2f} {p50(ours) - p50(samples):12.2f}"
              f"  {calls}")
    floor_adbc = floor["SELECT <new text>, execute + fetch"]
    print(f"\nindexed point lookup on {args.rows} rows, a new key each time, p50 (ms)")
    print(f"{'client':38} {'floor':>7} {'minidb':>7} {'minidb-floor':>12}")
    for name, ours, theirs in (
        ("pyarrow.flight GetFlightInfo + DoGet", via_plain, floor_plain),
        ("ADBC cursor.execute + fetch", via_adbc, floor_adbc),
    ):
        print(f"{name:38} {p50(theirs):7.2f} {p50(ours):7.2f} {p50(ours) - p50(theirs):12.2f}")
    print(f"ADBC - pyarrow.flight on MiniDB: {p50(via_adbc) - p50(via_plain):.2f}")


if __name__ == "__main__":
    main()

"""Garbage on both sockets of a running server while a well-behaved client works.

Fuzzers send mutated Flight SQL messages (commands, tickets, action bodies and DoPut streams,
mutated from valid ones: bits flipped, bytes inserted, removed, repeated, cut short, spliced
with another message) through every Flight RPC, and mutated statements, shorthand, control
bytes, invalid UTF-8, over-long lines and abrupt disconnects over :7205. Meanwhile a client on
each protocol keeps inserting into and reading its own database and must never see an error
or a wrong count. The server must neither panic nor stop answering, and it answers garbage with
the client's error, never an internal one.

The test command runs it for `MINIDB_SOCKET_FUZZ_SECONDS` (20 s by default); a campaign runs it
longer (see tests/README.md)."""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from collections import Counter

import pyarrow as pa
import pyarrow.flight as flight
from flightsql import flightsql_pb2 as pb

from conftest import parse_ascii_table
from test_flight_ingest import ingest_command
from test_flight_jdbc_replay import packed, unpacked

SECONDS = float(os.environ.get("MINIDB_SOCKET_FUZZ_SECONDS", "20"))

#: Statements the fuzzers mutate: they name only the fuzzers' own tables.
SQL_SEEDS = [
    "CREATE TABLE fz (a INT, b VARCHAR)",
    "INSERT INTO fz VALUES (1, 'one'), (2, 'two')",
    "SELECT a, b FROM fz WHERE a > 1 ORDER BY a",
    "SELECT count(*), max(b) FROM fz GROUP BY a HAVING count(*) > 0",
    "UPDATE fz SET b = 'x' WHERE a = 1",
    "DELETE FROM fz WHERE a = 2",
    "SELECT * FROM fz AS x JOIN fz AS y ON x.a = y.a",
    "SELECT CAST('2024-01-01' AS DATE), 1.5 * 2, 'it''s', NULL",
    "SELECT * FROM fz VERSION AS OF 1",
    "DESCRIBE fz",
    "SHOW TABLES",
    "EXPLAIN SELECT * FROM fz",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SET statement_timeout = '2s'",
    "CREATE INDEX fz_a ON fz (a)",
    "OPTIMIZE fz",
    "SELECT * FROM sys.queries",
]

#: :7205-only forms.
TEXT_SEEDS = [
    "CREATE TABLE fz_short id,name",
    "INSERT INTO fz_short id=1 name=Alice",
    "\\d",
    "LOGIN alice secret",
    "quit",
]

FLIGHT_ACTIONS = [
    "CreatePreparedStatement",
    "ClosePreparedStatement",
    "BeginTransaction",
    "EndTransaction",
    "CancelQuery",
    "CancelFlightInfo",
    "SetSessionOptions",
    "GetSessionOptions",
    "CloseSession",
    "RenewFlightEndpoint",
]


def mutate(rng: random.Random, seed: bytes, others: list[bytes]) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(len(data) + 1)
        kind = rng.randrange(7)
        if kind == 0 and at < len(data):
            data[at] ^= 1 << rng.randrange(8)
        elif kind == 1:
            data[at:at] = bytes([rng.randrange(256)])
        elif kind == 2:
            del data[at : at + rng.randint(1, 8)]
        elif kind == 3:
            del data[at:]
        elif kind == 4:
            chunk = data[at : at + rng.randint(1, 16)]
            data[at:at] = chunk * rng.randint(1, 4)
        elif kind == 5:
            other = rng.choice(others)
            data[at:] = other[rng.randrange(len(other) + 1) :]
        else:
            data[at:at] = rng.randbytes(rng.randint(1, 16))
    return bytes(data)


class Fuzzer(threading.Thread):
    """Sends inputs until `stop` is set; counts them and keeps what must not happen."""

    def __init__(self, name: str, stop: threading.Event, seed: int):
        super().__init__(name=name, daemon=True)
        self.stop = stop
        self.rng = random.Random(seed)
        self.sent = 0
        self.outcomes: Counter[str] = Counter()
        self.problems: list[str] = []

    def run(self):
        try:
            while not self.stop.is_set():
                self.one()
                self.sent += 1
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.problems.append(f"{self.name} stopped: {e!r}")

    def one(self):
        raise NotImplementedError


class FlightFuzzer(Fuzzer):
    def __init__(self, server, stop, seed):
        super().__init__("flight fuzzer", stop, seed)
        self.client = flight.FlightClient(server.flight_uri)
        self.options = flight.FlightCallOptions(timeout=10)
        self.seeds = self.valid_messages()

    def valid_messages(self) -> list[bytes]:
        seeds = [packed(pb.CommandStatementQuery(query=sql)) for sql in SQL_SEEDS]
        seeds += [packed(pb.CommandStatementUpdate(query=sql)) for sql in SQL_SEEDS]
        seeds += [
            packed(pb.CommandGetSqlInfo(info=[0, 1, 500])),
            packed(pb.CommandGetTables(include_schema=True, table_name_filter_pattern="fz%")),
            packed(pb.CommandGetDbSchemas()),
            packed(pb.CommandGetCatalogs()),
            packed(pb.CommandGetTableTypes()),
            packed(pb.CommandGetPrimaryKeys(table="fz")),
            packed(pb.CommandGetXdbcTypeInfo(data_type=4)),
            packed(pb.ActionCreatePreparedStatementRequest(query="SELECT * FROM fz WHERE a = ?")),
            packed(pb.ActionBeginTransactionRequest()),
            ingest_command("fz_ingest", "default", b"", 1, 2),
        ]
        # Handles and tickets as the server makes them.
        prepared = self.action("CreatePreparedStatement", seeds[-3])
        if prepared:
            result = unpacked(prepared[0], pb.ActionCreatePreparedStatementResult)
            handle = result.prepared_statement_handle
            seeds.append(packed(pb.CommandPreparedStatementQuery(prepared_statement_handle=handle)))
            seeds.append(packed(pb.CommandPreparedStatementUpdate(prepared_statement_handle=handle)))
            seeds.append(packed(pb.ActionClosePreparedStatementRequest(prepared_statement_handle=handle)))
        try:
            info = self.client.get_flight_info(
                flight.FlightDescriptor.for_command(seeds[2]), self.options
            )
            seeds.append(info.endpoints[0].ticket.ticket)
        except (flight.FlightError, pa.ArrowException):
            pass
        return seeds

    def action(self, kind: str, body: bytes) -> list[bytes] | None:
        try:
            return [r.body.to_pybytes() for r in self.client.do_action(flight.Action(kind, body), self.options)]
        except (flight.FlightError, pa.ArrowException):
            return None

    def one(self):
        rng = self.rng
        message = mutate(rng, rng.choice(self.seeds), self.seeds)
        descriptor = flight.FlightDescriptor.for_command(message)
        call = rng.randrange(6)
        try:
            if call == 0:
                info = self.client.get_flight_info(descriptor, self.options)
                for endpoint in info.endpoints:
                    self.client.do_get(endpoint.ticket, self.options).read_all()
            elif call == 1:
                self.client.get_schema(descriptor, self.options)
            elif call == 2:
                self.client.do_get(flight.Ticket(message), self.options).read_all()
            elif call == 3:
                kind = rng.choice(FLIGHT_ACTIONS)
                if rng.random() < 0.1:
                    kind = mutate(rng, kind.encode(), [a.encode() for a in FLIGHT_ACTIONS]).decode("latin-1")
                list(self.client.do_action(flight.Action(kind, message), self.options))
            elif call == 4:
                batch = pa.record_batch([pa.array([rng.randrange(100)]), pa.array(["v"])], names=["a", "b"])
                writer, reader = self.client.do_put(descriptor, batch.schema, self.options)
                writer.write_batch(batch)
                writer.done_writing()
                reader.read()
                writer.close()
            else:
                # A stream cut off: the server sees the client go away mid-call.
                info = self.client.get_flight_info(descriptor, self.options)
                for endpoint in info.endpoints:
                    self.client.do_get(endpoint.ticket, self.options).cancel()
            self.outcomes["ok"] += 1
        except flight.FlightError as e:
            self.classify(type(e).__name__, str(e))
        except pa.ArrowException as e:
            self.classify(type(e).__name__, str(e))

    def classify(self, kind: str, message: str):
        self.outcomes[kind] += 1
        if kind == "FlightInternalError":
            # Garbage is the client's mistake, and the answer must say so.
            self.problems.append(f"an internal error for bad input: {message[:300]}")
        if "panic" in message.lower():
            self.problems.append(f"panic over Flight: {message[:300]}")
        if kind == "FlightUnavailableError" and "Connection refused" in message:
            self.problems.append(f"the server stopped answering: {message[:300]}")


class TextFuzzer(Fuzzer):
    def __init__(self, server, stop, seed):
        super().__init__("text fuzzer", stop, seed)
        self.address = ("127.0.0.1", server.text_port)
        self.seeds = [s.encode() for s in SQL_SEEDS + TEXT_SEEDS]
        self.conn: socket.socket | None = None
        self.drain: threading.Thread | None = None
        self.answers = bytearray()

    def connect(self):
        self.conn = socket.create_connection(self.address, timeout=10)
        conn = self.conn

        def drain():
            # Answers are read and searched for panics, never awaited: the fuzzer pipelines.
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                if b"panic" in chunk.lower():
                    self.problems.append(f"panic over :7205: {chunk[:300]!r}")

        self.drain = threading.Thread(target=drain, daemon=True)
        self.drain.start()
        self.conn.sendall(b"SET statement_timeout = '2s';\n")

    def one(self):
        rng = self.rng
        kind = rng.randrange(20)
        if kind == 0:
            data = rng.randbytes(rng.randint(1, 512))
        elif kind == 1 and rng.random() < 0.05:
            data = b"x" * ((1 << 20) + rng.randint(1, 1000)) + b"\n"
        else:
            data = mutate(rng, rng.choice(self.seeds), self.seeds)
            data += rng.choice([b";\n", b";", b"\n", b";\r\n", b""])
        try:
            if self.conn is None:
                self.connect()
            if kind == 2:
                # Gone mid-statement.
                self.conn.sendall(data[: rng.randint(0, 20)])
                self.close()
                self.outcomes["disconnects"] += 1
                return
            self.conn.sendall(data)
            self.outcomes["statements"] += 1
        except OSError:
            # The server hung up (QUIT, too many failed logins): a new session.
            self.close()
            self.outcomes["closed by server"] += 1

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
        self.conn = None


class WellBehaved(threading.Thread):
    """Inserts and counts rows of its own database, over one protocol, until `stop`."""

    def __init__(self, name: str, stop: threading.Event, work):
        super().__init__(name=name, daemon=True)
        self.stop = stop
        self.work = work
        self.rounds = 0
        self.problems: list[str] = []

    def run(self):
        try:
            while not self.stop.is_set():
                self.work(self.rounds)
                self.rounds += 1
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.problems.append(f"{self.name} failed in round {self.rounds}: {e!r}")


def test_garbage_on_both_sockets_leaves_a_good_client_unharmed(server, text):
    text.ok("CREATE TABLE fz (a INT, b VARCHAR);")
    text.ok("INSERT INTO fz VALUES (1, 'one'), (2, 'two');")
    text.ok("CREATE DATABASE probe;")
    text.ok("CREATE TABLE probe.flight_rows (n BIGINT);")
    text.ok("CREATE TABLE probe.text_rows (n BIGINT);")
    stop = threading.Event()

    conn = server.adbc(database="probe")
    cur = conn.cursor()

    def over_flight(n: int):
        cur.execute("INSERT INTO flight_rows VALUES (?)", (n,))
        cur.execute("SELECT count(*), sum(n) FROM flight_rows")
        assert cur.fetchall() == [(n + 1, n * (n + 1) // 2)]

    good_text = server.text()

    def over_text(n: int):
        good_text.ok(f"INSERT INTO probe.text_rows VALUES ({n});")
        _, rows = parse_ascii_table(good_text.ok("SELECT count(*), sum(n) FROM probe.text_rows;"))
        assert rows == [[str(n + 1), str(n * (n + 1) // 2)]]

    good = [WellBehaved("ADBC client", stop, over_flight), WellBehaved(":7205 client", stop, over_text)]
    fuzzers = [FlightFuzzer(server, stop, 1), FlightFuzzer(server, stop, 2), TextFuzzer(server, stop, 3)]
    for thread in good + fuzzers:
        thread.start()
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline and server.alive() and all(t.is_alive() for t in good):
        time.sleep(0.2)
    stop.set()
    for thread in good + fuzzers:
        thread.join(60)
    for fuzzer in fuzzers:
        if isinstance(fuzzer, TextFuzzer):
            fuzzer.close()
    cur.close()
    conn.close()
    good_text.close()

    report = {f.name + str(i): (f.sent, dict(f.outcomes)) for i, f in enumerate(fuzzers)}
    print(f"socket fuzz for {SECONDS:.0f} s: {report}; good rounds {[g.rounds for g in good]}")
    problems = [p for t in good + fuzzers for p in t.problems]
    assert server.alive(), server.stderr_text()[-3000:]
    assert problems == [], problems
    assert "panicked" not in server.stderr_text()
    assert all(g.rounds > 10 for g in good), [g.rounds for g in good]
    assert all(f.sent > 100 for f in fuzzers), report
    # The good clients' rows are all there, and the server still answers a new client.
    with server.text() as fresh:
        _, rows = parse_ascii_table(fresh.ok("SELECT count(*) FROM probe.flight_rows;"))
        assert rows == [[str(good[0].rounds)]]
        _, rows = parse_ascii_table(fresh.ok("SELECT count(*) FROM probe.text_rows;"))
        assert rows == [[str(good[1].rounds)]]

"""End-to-end tests of Flight SQL with plain `pyarrow.flight` and hand-encoded protobuf messages.

Only the few Flight SQL messages needed are encoded here (protobuf wire format by hand), so this
exercises the server exactly as any generic Flight client would.
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight
import pytest

# pyarrow maps gRPC status codes to Arrow exceptions (ArrowInvalid, ArrowNotImplementedError…)
# or FlightError subclasses.
FLIGHT_ERRORS = (flight.FlightError, pa.ArrowException)

SQL_PACKAGE = "type.googleapis.com/arrow.flight.protocol.sql."


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _any(message: str, value: bytes) -> bytes:
    return _field_bytes(1, (SQL_PACKAGE + message).encode()) + _field_bytes(2, value)


def statement_query(sql: str) -> bytes:
    """google.protobuf.Any{CommandStatementQuery{query = sql}}."""
    return _any("CommandStatementQuery", _field_bytes(1, sql.encode()))


def statement_update(sql: str) -> bytes:
    """google.protobuf.Any{CommandStatementUpdate{query = sql}}."""
    return _any("CommandStatementUpdate", _field_bytes(1, sql.encode()))


def _parse_fields(buf: bytes) -> dict[int, list]:
    fields: dict[int, list] = {}
    i = 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(buf, i)
        elif wire == 2:
            n, i = _read_varint(buf, i)
            value, i = buf[i : i + n], i + n
        else:
            raise ValueError(f"unexpected wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, i


@pytest.fixture
def client(server):
    c = flight.FlightClient(server.flight_uri)
    try:
        yield c
    finally:
        c.close()


def call_options(database: str | None = None) -> flight.FlightCallOptions:
    headers = [] if database is None else [(b"x-minidb-database", database.encode())]
    return flight.FlightCallOptions(headers=headers, timeout=60)


def query(client, sql: str, database: str | None = None) -> tuple[flight.FlightInfo, pa.Table]:
    """GetFlightInfo then DoGet on every endpoint; checks the streams' schema matches."""
    options = call_options(database)
    info = client.get_flight_info(flight.FlightDescriptor.for_command(statement_query(sql)), options)
    tables = []
    for endpoint in info.endpoints:
        reader = client.do_get(endpoint.ticket, options)
        table = reader.read_all()
        assert table.schema == info.schema, (
            f"DoGet schema differs from FlightInfo schema for {sql!r}:\n"
            f"FlightInfo: {info.schema}\nDoGet: {table.schema}"
        )
        tables.append(table)
    return info, pa.concat_tables(tables) if tables else info.schema.empty_table()


def update(client, sql: str, database: str | None = None) -> int:
    """CommandStatementUpdate over DoPut; returns DoPutUpdateResult.record_count."""
    descriptor = flight.FlightDescriptor.for_command(statement_update(sql))
    writer, reader = client.do_put(descriptor, pa.schema([]), call_options(database))
    writer.done_writing()
    metadata = reader.read()
    writer.close()
    assert metadata is not None, "no DoPutUpdateResult"
    fields = _parse_fields(metadata.to_pybytes())
    return fields.get(1, [0])[0]


def test_get_flight_info_and_do_get(client):
    info, table = query(client, "SELECT 1 AS one, 'x' AS s, CAST(2.5 AS DOUBLE) AS d")
    assert len(info.endpoints) >= 1
    assert table.to_pylist() == [{"one": 1, "s": "x", "d": 2.5}]
    assert table.schema.field("s").type == pa.utf8()


def test_updates_via_do_put_and_query(client):
    assert update(client, "CREATE DATABASE pf") == 0
    assert update(client, "CREATE TABLE pf.t (id INT NOT NULL, amount DECIMAL(8,3), day DATE, at TIMESTAMP, name VARCHAR(8))") == 0
    n = update(
        client,
        "INSERT INTO pf.t VALUES (1, 1.125, '2020-02-29', '2020-02-29 12:00:00', 'leap'),"
        " (2, -3.5, '1999-12-31', '1999-12-31 23:59:59.999999', NULL)",
    )
    assert n == 2
    info, table = query(client, "SELECT * FROM t ORDER BY id", database="pf")
    assert table.schema == pa.schema(
        [
            pa.field("id", pa.int32(), nullable=False),
            ("amount", pa.decimal128(8, 3)),
            ("day", pa.date32()),
            ("at", pa.timestamp("us")),
            ("name", pa.utf8()),
        ]
    )
    assert table.to_pylist() == [
        {"id": 1, "amount": Decimal("1.125"), "day": dt.date(2020, 2, 29),
         "at": dt.datetime(2020, 2, 29, 12), "name": "leap"},
        {"id": 2, "amount": Decimal("-3.500"), "day": dt.date(1999, 12, 31),
         "at": dt.datetime(1999, 12, 31, 23, 59, 59, 999999), "name": None},
    ]


def test_large_result_streams_completely(client):
    _, table = query(client, "SELECT value AS v FROM generate_series(1, 300000) AS g(value)")
    assert table.num_rows == 300000
    assert pc.sum(table.column("v")).as_py() == 300000 * 300001 // 2


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_a_slow_reader_keeps_server_memory_bounded(server, client):
    """A result of about 1 GB read one batch every 0.3 s: the server produces only as fast as
    the client reads (gRPC flow control reaches the query), so its memory stays flat; dropping
    the stream midway stops the query and the server goes on serving."""
    sql = ("SELECT value AS v, repeat('x', 500) AS pad "
           "FROM generate_series(1, 2000000) AS g(value)")
    info = client.get_flight_info(flight.FlightDescriptor.for_command(statement_query(sql)))
    reader = client.do_get(info.endpoints[0].ticket)
    first = reader.read_chunk().data
    assert first.num_rows > 0
    baseline = rss_mb(server.proc.pid)
    highest, rows = baseline, first.num_rows
    for _ in range(8):
        time.sleep(0.3)
        rows += reader.read_chunk().data.num_rows
        highest = max(highest, rss_mb(server.proc.pid))
    assert rows < 2_000_000
    assert highest - baseline < 150, f"RSS grew from {baseline:.0f} to {highest:.0f} MB"
    reader.cancel()
    _, table = query(client, "SELECT 1 AS one")
    assert table.to_pylist() == [{"one": 1}]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1 AS a",
        "SHOW DATABASES",
        "SHOW TABLES",
        "DESCRIBE fs.t",
        "SELECT * FROM fs.t",
        "SELECT count(*) AS n, sum(id) AS s FROM fs.t",
        "EXPLAIN SELECT * FROM fs.t",
    ],
)
def test_do_get_schema_matches_flight_info_schema(client, sql):
    update(client, "CREATE DATABASE IF NOT EXISTS fs")
    update(client, "CREATE TABLE fs.t (id INT, s TEXT, d DATE)")
    update(client, "INSERT INTO fs.t VALUES (1, 'a', '2024-01-01')")
    query(client, sql, database="fs")  # asserts the schemas are equal


def test_bad_sql_gives_flight_error_with_cause(client):
    with pytest.raises(FLIGHT_ERRORS) as err:
        query(client, "SELEC 1")
    assert "SELEC" in str(err.value)
    with pytest.raises(FLIGHT_ERRORS) as err:
        query(client, "SELECT * FROM nope.nothing")
    assert "nothing" in str(err.value)
    _, table = query(client, "SELECT 7 AS seven")
    assert table.to_pylist() == [{"seven": 7}]


def test_unknown_command_is_rejected(client):
    descriptor = flight.FlightDescriptor.for_command(_any("CommandGetNothing", b""))
    with pytest.raises(FLIGHT_ERRORS):
        client.get_flight_info(descriptor, call_options())
    with pytest.raises(FLIGHT_ERRORS):
        client.get_flight_info(flight.FlightDescriptor.for_command(b"\xff\xfe garbage"), call_options())
    _, table = query(client, "SELECT 1 AS ok")
    assert table.num_rows == 1


def test_a_ticket_reads_the_snapshot_of_its_flight_info_and_can_be_read_again(client):
    # GetFlightInfo starts the query on the snapshot of that moment; DoGet reads it. A second
    # DoGet of the same ticket plans the query again, on the newest snapshot.
    assert update(client, "CREATE TABLE tickets (id INT NOT NULL)") == 0
    assert update(client, "INSERT INTO tickets VALUES (1), (2)") == 2
    info = client.get_flight_info(
        flight.FlightDescriptor.for_command(statement_query("SELECT count(*) AS n FROM tickets"))
    )
    assert update(client, "INSERT INTO tickets VALUES (3)") == 1
    ticket = info.endpoints[0].ticket
    assert client.do_get(ticket).read_all().to_pylist() == [{"n": 2}]
    assert client.do_get(ticket).read_all().to_pylist() == [{"n": 3}]
    # A FlightInfo nobody reads costs nothing visible: the next query runs normally.
    for _ in range(5):
        client.get_flight_info(
            flight.FlightDescriptor.for_command(statement_query("SELECT * FROM tickets"))
        )
    _, table = query(client, "SELECT id FROM tickets ORDER BY id")
    assert table.column("id").to_pylist() == [1, 2, 3]

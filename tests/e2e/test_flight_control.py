"""The core Flight calls around Flight SQL statements: GetSchema, PollFlightInfo, cancelling a
running query (CancelFlightInfo, the older CancelQuery action, a client that goes away), the
session options ``catalog``/``schema``, ListActions, and the setting that sends string views
as plain strings.

Cancellation is checked by the server's CPU time: a cancelled query must stop computing, not
merely stop being sent.
"""

from __future__ import annotations

import os
import threading
import time

import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from conftest import MiniDBServer
from test_flight_jdbc_replay import packed, unpacked

# Billions of rows: far longer than any test waits, so only cancellation ends it.
ENDLESS_QUERY = "SELECT sum(value % 7) AS s FROM generate_series(1, 50000000000)"


def command(message) -> flight.FlightDescriptor:
    return flight.FlightDescriptor.for_command(packed(message))


def statement(sql: str) -> flight.FlightDescriptor:
    return command(pb.CommandStatementQuery(query=sql))


# CancelFlightInfoResult.status values (Flight.proto's CancelStatus).
CANCELLED, NOT_CANCELLABLE = 1, 3


def cancel_flight_info(client: flight.FlightClient, info: flight.FlightInfo) -> int:
    """The CancelFlightInfo action (pyarrow has no call for it): the request is a
    CancelFlightInfoRequest{info = 1}, the result a CancelFlightInfoResult{status = 1}, both
    plain protobuf, encoded here by hand."""
    body = info.serialize()
    request = b"\x0a" + varint(len(body)) + body
    (result,) = client.do_action(flight.Action("CancelFlightInfo", request))
    answer = result.body.to_pybytes()
    assert answer[:1] == b"\x08", answer
    return answer[1]


def varint(n: int) -> bytes:
    out = b""
    while n >= 0x80:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])


def read_table(reader: flight.FlightStreamReader) -> pa.Table:
    """The whole stream, read batch by batch. (pyarrow's ``read_all`` turns a server's
    CANCELLED status into a KeyboardInterrupt of the main thread, as if Ctrl-C was pressed.)"""
    return pa.Table.from_batches([chunk.data for chunk in reader], schema=reader.schema)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_used_within(pid: int, seconds: float) -> float:
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return cpu_seconds(pid) - before


def wait_until_busy(pid: int):
    """Waits until the server computes at full speed (the query has started)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if cpu_used_within(pid, 0.5) > 0.3:
            return
    pytest.fail("the query never started computing")


def wait_until_idle(pid: int):
    """Waits (up to 10 s) until the server stops computing; fails if it never does."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if cpu_used_within(pid, 1.0) < 0.2:
            return
    pytest.fail("the server kept computing after the query was cancelled")


class Fetch(threading.Thread):
    """A DoGet read in the background; keeps what it raised."""

    def __init__(self, client: flight.FlightClient, ticket: flight.Ticket):
        super().__init__(daemon=True)
        self.client, self.ticket = client, ticket
        self.error: BaseException | None = None
        self.table = None

    def run(self):
        try:
            self.table = read_table(self.client.do_get(self.ticket))
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            self.error = e


def test_get_schema_plans_without_running(server, conn):
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE prices (id INT PRIMARY KEY, name VARCHAR, price DECIMAL(10,2), "
            "day DATE, at TIMESTAMP)"
        )
    client = flight.FlightClient(server.flight_uri)

    schema = client.get_schema(statement("SELECT id, name, price, day, at FROM prices")).schema
    assert schema.names == ["id", "name", "price", "day", "at"]
    assert schema.types == [
        pa.int32(), pa.string(), pa.decimal128(10, 2), pa.date32(), pa.timestamp("us"),
    ]
    info = client.get_flight_info(statement("SELECT id, name, price, day, at FROM prices"))
    assert info.schema == schema

    # Statements that return no rows have an empty schema and do not run.
    assert client.get_schema(statement("INSERT INTO prices (id) VALUES (1)")).schema.names == []
    assert client.get_schema(command(pb.CommandStatementUpdate(query="DELETE FROM prices"))).schema.names == []
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM prices")
        assert cur.fetchone() == (0,)

    # A prepared statement's schema is its dataset schema.
    result = list(client.do_action(flight.Action(
        "CreatePreparedStatement",
        packed(pb.ActionCreatePreparedStatementRequest(query="SELECT name FROM prices WHERE id = ?")),
    )))
    prepared = unpacked(result[0].body.to_pybytes(), pb.ActionCreatePreparedStatementResult)
    handle = pb.CommandPreparedStatementQuery(prepared_statement_handle=prepared.prepared_statement_handle)
    assert client.get_schema(command(handle)).schema == pa.ipc.read_schema(
        pa.py_buffer(prepared.dataset_schema)
    )

    # Catalog commands: the schema their FlightInfo announces.
    tables = pb.CommandGetTables(include_schema=True)
    assert client.get_schema(command(tables)).schema == client.get_flight_info(command(tables)).schema
    assert client.get_schema(command(pb.CommandGetCatalogs())).schema.names == ["catalog_name"]

    # Errors name their cause; the server goes on.
    with pytest.raises(pa.ArrowKeyError, match="table 'default.nope' does not exist"):
        client.get_schema(statement("SELECT * FROM nope"))
    with pytest.raises(pa.ArrowInvalid, match="not a Flight SQL command"):
        client.get_schema(flight.FlightDescriptor.for_command(b"\x00garbage"))


def test_adbc_execute_schema_uses_get_schema(conn):
    with conn.cursor() as cur:
        statement_ = cur.adbc_statement
        statement_.set_sql_query("SELECT 1 AS one, 'x' AS letter")
        handle = statement_.execute_schema()
        schema = pa.Schema._import_from_c(handle.address)
    assert schema.names == ["one", "letter"]
    assert schema.types == [pa.int64(), pa.string()]


def test_poll_flight_info_answers_complete(conn):
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE polled (v INT)")
        cur.execute("INSERT INTO polled VALUES (1), (2), (3)")
        cur.adbc_statement.set_options(**{"adbc.statement.exec.incremental": "true"})
        partitions, schema = cur.adbc_execute_partitions("SELECT v FROM polled ORDER BY v")
        assert schema.names == ["v"]
        assert len(partitions) == 1
        cur.adbc_read_partition(partitions[0])
        assert cur.fetchall() == [(1,), (2,), (3,)]


def test_cancel_flight_info_stops_a_running_query(server):
    client = flight.FlightClient(server.flight_uri)
    info = client.get_flight_info(statement(ENDLESS_QUERY))
    fetch = Fetch(client, info.endpoints[0].ticket)
    fetch.start()
    wait_until_busy(server.proc.pid)

    assert cancel_flight_info(client, info) == CANCELLED
    fetch.join(timeout=10)
    assert not fetch.is_alive(), "the DoGet did not end when its query was cancelled"
    assert isinstance(fetch.error, flight.FlightCancelledError), fetch.error
    assert "cancelled" in str(fetch.error)
    wait_until_idle(server.proc.pid)

    # Cancelling again is answered the same; the ticket is refused from now on.
    assert cancel_flight_info(client, info) == CANCELLED
    with pytest.raises(flight.FlightCancelledError):
        read_table(client.do_get(info.endpoints[0].ticket))
    assert client.do_get(client.get_flight_info(statement("SELECT 42 AS x")).endpoints[0].ticket).read_all()["x"].to_pylist() == [42]


def test_cancel_before_do_get_and_cancel_query_action(server):
    client = flight.FlightClient(server.flight_uri)
    # GetFlightInfo starts the query; cancelling before any DoGet stops it there.
    info = client.get_flight_info(statement(ENDLESS_QUERY))
    wait_until_busy(server.proc.pid)
    request = pb.ActionCancelQueryRequest(info=info.serialize())
    result = list(client.do_action(flight.Action("CancelQuery", packed(request))))
    answer = unpacked(result[0].body.to_pybytes(), pb.ActionCancelQueryResult)
    assert answer.result == pb.ActionCancelQueryResult.CANCEL_RESULT_CANCELLED
    wait_until_idle(server.proc.pid)
    with pytest.raises(flight.FlightCancelledError):
        read_table(client.do_get(info.endpoints[0].ticket))

    # A finished query is no longer known; a statement that already ran cannot be cancelled.
    done = client.get_flight_info(statement("SELECT 1"))
    client.do_get(done.endpoints[0].ticket).read_all()
    with pytest.raises(Exception, match="no such query"):
        cancel_flight_info(client, done)
    ddl = client.get_flight_info(statement("CREATE TABLE cancelled_too_late (v INT)"))
    assert cancel_flight_info(client, ddl) == NOT_CANCELLABLE


def test_adbc_cancel_stops_the_query(server, conn):
    cur = conn.cursor()
    failure: list[BaseException] = []

    def run():
        try:
            cur.execute(ENDLESS_QUERY)
            cur.fetchall()
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            failure.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    wait_until_busy(server.proc.pid)
    cur.adbc_cancel()
    worker.join(timeout=10)
    assert not worker.is_alive(), "execute did not return after adbc_cancel"
    assert failure and "cancel" in str(failure[0]).lower(), failure
    wait_until_idle(server.proc.pid)
    cur.close()


def test_a_client_that_goes_away_stops_its_query(server):
    client = flight.FlightClient(server.flight_uri)
    info = client.get_flight_info(statement(ENDLESS_QUERY))
    # The call's deadline passes while the query computes: gRPC cancels the call.
    with pytest.raises(flight.FlightTimedOutError):
        read_table(client.do_get(info.endpoints[0].ticket, flight.FlightCallOptions(timeout=3)))
    wait_until_idle(server.proc.pid)
    assert client.do_get(client.get_flight_info(statement("SELECT 1 AS x")).endpoints[0].ticket).read_all().num_rows == 1


def test_session_options_move_the_current_database(server, conn):
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE shop")
        cur.execute("CREATE TABLE shop.items (v INT)")
        cur.execute("INSERT INTO shop.items VALUES (7)")
    assert conn.adbc_current_catalog == "minidb"
    assert conn.adbc_current_db_schema == "default"

    conn.adbc_current_db_schema = "shop"
    assert conn.adbc_current_db_schema == "shop"
    with conn.cursor() as cur:
        cur.execute("SELECT v FROM items")
        assert cur.fetchall() == [(7,)]

    with pytest.raises(adbc_driver_manager.ProgrammingError, match="'nope' does not exist") as err:
        conn.adbc_current_db_schema = "nope"
    assert err.value.status_code == adbc_driver_manager.AdbcStatusCode.NOT_FOUND
    assert conn.adbc_current_db_schema == "shop"
    conn.adbc_current_catalog = "minidb"
    with pytest.raises(Exception, match="catalog"):
        conn.adbc_current_catalog = "elsewhere"

    # CloseSession puts the client back in default (pyarrow keeps no cookies: raw check).
    client = flight.FlightClient(server.flight_uri)
    options = flight.FlightCallOptions(headers=[(b"cookie", b"minidb_database=shop")])
    result = list(client.do_action(flight.Action("CloseSession", b""), options))
    assert result[0].body.to_pybytes() == b"\x08\x01"  # CloseSessionResult{status: CLOSED}


def test_list_actions_names_every_action(server):
    client = flight.FlightClient(server.flight_uri)
    names = {action.type for action in client.list_actions()}
    assert {
        "CreatePreparedStatement", "ClosePreparedStatement", "BeginTransaction", "EndTransaction",
        "CancelQuery", "CancelFlightInfo", "SetSessionOptions", "GetSessionOptions", "CloseSession",
    } <= names
    with pytest.raises(pa.ArrowInvalid, match="unknown action 'Frobnicate'"):
        list(client.do_action(flight.Action("Frobnicate", b"")))


def test_string_views_are_sent_plain_unless_configured(tmp_path, server, conn):
    sql = "SELECT arrow_cast('x', 'Utf8View') AS v, arrow_cast('y', 'Utf8') AS s"
    with conn.cursor() as cur:
        cur.execute(sql)
        table = cur.fetch_arrow_table()
    assert table.schema.types == [pa.string(), pa.string()]
    assert table.to_pylist() == [{"v": "x", "s": "y"}]

    data = tmp_path / "views"
    data.mkdir()
    views = MiniDBServer(data, tmp_path, ["--flight-plain-strings", "false"]).start()
    try:
        client = flight.FlightClient(views.flight_uri)
        info = client.get_flight_info(statement(sql))
        assert info.schema.types == [pa.string_view(), pa.string()]
        got = client.do_get(info.endpoints[0].ticket).read_all()
        assert got.schema.types == [pa.string_view(), pa.string()]
        assert got.to_pylist() == [{"v": "x", "s": "y"}]
    finally:
        views.stop()

"""Statement timeouts, `sys.queries` and `CANCEL QUERY` on both protocols: a statement past its
timeout (the server's `--statement-timeout-ms` or the session's `SET statement_timeout`) or
cancelled from another session stops with its cause, the server stops computing it, and a
stopped write leaves no trace."""

from __future__ import annotations

import re
import socket
import threading
import time
import urllib.request

import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import parse_ascii_table
from test_flight_control import cpu_used_within, wait_until_busy, wait_until_idle
from test_flight_ingest import ingest_command
from test_flight_pyarrow import FLIGHT_ERRORS, statement_query

#: A query that keeps two cores busy for minutes.
HEAVY = "SELECT count(*) FROM generate_series(1, 5000000000) t WHERE value % 7 = 3"


class Background(threading.Thread):
    """Runs `work` in the background and keeps what it returned or raised, and how long it
    took."""

    def __init__(self, work):
        super().__init__(daemon=True)
        self.work = work
        self.result = self.error = None
        self.seconds = None

    def run(self):
        started = time.monotonic()
        try:
            self.result = self.work()
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            self.error = e
        self.seconds = time.monotonic() - started


def running_ids(text, like: str) -> list[int]:
    header, rows = parse_ascii_table(
        text.query("SELECT query_id, protocol, state, query_text FROM sys.queries ORDER BY query_id;")
    )
    assert header == ["query_id", "protocol", "state", "query_text"]
    return [int(r[0]) for r in rows if r[3].startswith(like)]


def test_a_session_timeout_stops_a_query_over_text_and_the_server_goes_idle(server, text):
    assert text.ok("SET statement_timeout = '1s';").startswith("Set statement_timeout = 1s")
    started = time.monotonic()
    answer = text.query(HEAVY + ";")
    assert "ERROR 57014: canceling statement due to statement timeout (1s" in answer, answer
    assert time.monotonic() - started < 10
    wait_until_idle(server.proc.pid)
    header, rows = parse_ascii_table(text.query("SHOW statement_timeout;"))
    assert rows == [["1s"]]
    # The session goes on, and RESET goes back to the server's (none).
    text.ok("RESET statement_timeout;")
    assert parse_ascii_table(text.query("SHOW statement_timeout;"))[1] == [["0"]]
    assert "ERROR" in text.query("SET statement_timeout = '5 parsecs';")


def test_the_servers_timeout_applies_to_flight_and_a_session_can_lift_it(start_server):
    server = start_server(["--statement-timeout-ms=1000"])
    conn = server.adbc()
    try:
        with conn.cursor() as cur:
            with pytest.raises(adbc_driver_manager.OperationalError) as err:
                cur.execute(HEAVY)
                cur.fetchall()
            assert err.value.status_code == adbc_driver_manager.AdbcStatusCode.TIMEOUT
            assert "canceling statement due to statement timeout (1s" in str(err.value)
            wait_until_idle(server.proc.pid)
            # The session's own setting (kept by cookie) wins over the server's.
            cur.execute("SET statement_timeout = 0")
            cur.execute("SHOW statement_timeout")
            assert cur.fetchall() == [("0",)]
            cur.execute("SELECT count(*) FROM generate_series(1, 20000000) t WHERE value % 7 = 3")
            assert cur.fetchall() == [(2857143,)]
    finally:
        conn.close()


def test_a_timed_out_write_leaves_no_trace(server, text):
    text.ok("CREATE TABLE t (v BIGINT);")
    text.ok("INSERT INTO t VALUES (1);")
    text.ok("SET statement_timeout = '1s';")
    answer = text.query("INSERT INTO t SELECT value FROM generate_series(1, 5000000000) t WHERE value % 7 = 3;")
    assert "canceling statement due to statement timeout" in answer, answer
    text.ok("RESET statement_timeout;")
    assert parse_ascii_table(text.query("SELECT count(*) AS n FROM t;"))[1] == [["1"]]
    header, rows = parse_ascii_table(text.query("DESCRIBE HISTORY t;"))
    assert len(rows) == 2, rows


def test_sys_queries_lists_a_flight_query_and_cancel_query_stops_it(server, text):
    conn = server.adbc()
    try:
        def heavy():
            with conn.cursor() as cur:
                cur.execute(HEAVY)
                return cur.fetchall()

        query = Background(heavy)
        query.start()
        wait_until_busy(server.proc.pid)
        header, rows = parse_ascii_table(
            text.query("SELECT query_id, protocol, db_name, state, query_text, elapsed_ms FROM sys.queries;")
        )
        mine = [r for r in rows if r[4] == HEAVY]
        assert len(mine) == 1, rows
        query_id, protocol, database, state, _, elapsed = mine[0]
        assert (protocol, database, state) == ("flight", "default", "running")
        assert int(elapsed) > 0
        assert text.ok(f"CANCEL QUERY {query_id};").startswith(f"Query {query_id} cancelled")
        query.join(30)
        assert isinstance(query.error, adbc_driver_manager.Error), query.result
        assert query.error.status_code == adbc_driver_manager.AdbcStatusCode.CANCELLED
        assert f"canceling statement due to user request (CANCEL QUERY {query_id})" in str(query.error)
        wait_until_idle(server.proc.pid)
        assert running_ids(text, HEAVY) == []
        # The connection goes on.
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchall() == [(1,)]
    finally:
        conn.close()


def test_sys_queries_shows_the_memory_a_statement_holds(server, text):
    # A sort holds every row before its first one leaves; the client reads one batch and waits.
    sort = "SELECT value FROM generate_series(1, 3000000) t ORDER BY value DESC"
    client = flight.FlightClient(server.flight_uri)
    try:
        info = client.get_flight_info(flight.FlightDescriptor.for_command(statement_query(sort)))
        reader = client.do_get(info.endpoints[0].ticket)
        assert reader.read_chunk().data.column(0)[0].as_py() == 3000000

        def reserved() -> list[int]:
            _, rows = parse_ascii_table(text.query("SELECT reserved_bytes, query_text FROM sys.queries;"))
            return [int(r[0]) for r in rows if r[1] == sort]

        # 3 M BIGINTs are 24 MB, more with the sort's buffers.
        assert reserved()[0] > 20_000_000, reserved()
        # The statement reading sys.queries holds nothing in the pool: a scan of a listing.
        _, rows = parse_ascii_table(text.query("SELECT reserved_bytes FROM sys.queries WHERE query_text LIKE '%reserved_bytes%';"))
        assert rows == [["0"]]
        reader.cancel()
    finally:
        client.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and running_ids(text, sort):
        time.sleep(0.1)
    assert running_ids(text, sort) == []


def test_cancel_query_stops_a_text_session_from_flight(server, text):
    query = Background(lambda: text.query(HEAVY + ";", timeout=120))
    query.start()
    wait_until_busy(server.proc.pid)
    conn = server.adbc()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT query_id FROM sys.queries WHERE protocol = 'text'")
            [(query_id,)] = cur.fetchall()
            cur.execute(f"CANCEL QUERY {query_id}")
            query.join(30)
            assert f"ERROR 57014: canceling statement due to user request (CANCEL QUERY {query_id})" in query.result
            with pytest.raises(adbc_driver_manager.ProgrammingError, match="no running statement has query_id"):
                cur.execute(f"CANCEL QUERY {query_id}")
    finally:
        conn.close()
    wait_until_idle(server.proc.pid)


def test_closing_a_text_connection_stops_its_statement_within_a_second(server, text):
    text.ok("CREATE TABLE after_hangup (id INT);")
    gone = socket.create_connection(("127.0.0.1", server.text_port))
    gone.recv(4096)
    # A statement pipelined behind the heavy one must not run once the client is gone.
    gone.sendall(f"{HEAVY};\nINSERT INTO after_hangup VALUES (1);\n".encode())
    wait_until_busy(server.proc.pid)
    assert len(running_ids(text, HEAVY)) == 1
    gone.close()
    time.sleep(1.0)
    assert running_ids(text, HEAVY) == []
    assert cpu_used_within(server.proc.pid, 1.0) < 0.2
    assert parse_ascii_table(text.query("SELECT count(*) FROM after_hangup;"))[1] == [["0"]]


def test_session_options_carry_the_statement_timeout(server):
    conn = server.adbc()
    try:
        conn.adbc_connection.set_options(**{"adbc.flight.sql.session.option.statement_timeout": "1s"})
        with conn.cursor() as cur:
            cur.execute("SHOW statement_timeout")
            assert cur.fetchall() == [("1s",)]
            with pytest.raises(adbc_driver_manager.OperationalError, match=re.escape("statement timeout (1s")):
                cur.execute(HEAVY)
                cur.fetchall()
    finally:
        conn.close()
    wait_until_idle(server.proc.pid)


def metric(server, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics").read().decode()
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    assert values, f"{name} not exported"
    return values[0]


def test_a_full_server_queues_then_refuses_and_still_answers_sys_queries_and_cancel(start_server):
    server = start_server([
        "--max-concurrent-queries=1", "--max-queued-queries=1", "--queue-timeout-ms=3000",
        "--metrics-addr=127.0.0.1:0",
    ])
    first, second = server.text(), server.text()
    conn = server.adbc()
    try:
        running = Background(lambda: first.query(HEAVY + ";", timeout=120))
        running.start()
        wait_until_busy(server.proc.pid)

        def queued_query():
            with conn.cursor() as cur:
                cur.execute("SELECT 41 + 1")
                return cur.fetchall()

        waiting = Background(queued_query)
        waiting.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            # sys.queries needs no slot, so a full server can still be watched.
            header, rows = parse_ascii_table(
                second.query("SELECT query_id, protocol, state, query_text FROM sys.queries ORDER BY query_id;")
            )
            states = {r[3]: (r[1], r[2]) for r in rows}
            if states.get("SELECT 41 + 1") == ("flight", "queued"):
                break
            time.sleep(0.1)
        assert states[HEAVY] == ("text", "running"), rows
        assert states["SELECT 41 + 1"] == ("flight", "queued"), rows
        assert metric(server, "minidb_statements_queued") == 1

        # The queue is full: refused at once, naming the limits.
        answer = second.query("SELECT 1;")
        assert answer.startswith(
            "ERROR 53300: server busy: 1 statements running (--max-concurrent-queries) and the queue "
            "is full (--max-queued-queries 1)"
        ), answer
        # The queued query gives up after --queue-timeout-ms.
        waiting.join(30)
        assert isinstance(waiting.error, adbc_driver_manager.Error), waiting.result
        assert "no slot came free within 3s" in str(waiting.error)
        assert metric(server, "minidb_statements_refused_total") == 2

        # CANCEL QUERY needs no slot either; then the server takes statements again.
        [heavy_id] = running_ids(second, HEAVY)
        second.ok(f"CANCEL QUERY {heavy_id};")
        running.join(30)
        assert "canceling statement due to user request" in running.result
        assert parse_ascii_table(second.query("SELECT 1 AS one;"))[1] == [["1"]]
        assert queued_query() == [(42,)]
        assert metric(server, "minidb_statements_running") == 0
    finally:
        conn.close()
        first.close()
        second.close()


def test_sessions_beyond_max_sessions_are_told_and_closed(start_server):
    server = start_server(["--max-sessions=2"])
    first, second = server.text(), server.text()
    try:
        with socket.create_connection(("127.0.0.1", server.text_port), timeout=10) as third:
            refusal = b""
            while chunk := third.recv(4096):
                refusal += chunk
        assert refusal == b"ERROR 53300: too many sessions: 2 are open (--max-sessions); try again later\n"
        assert parse_ascii_table(first.query("SELECT 1 AS one;"))[1] == [["1"]]
        second.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                again = server.text()
            except ConnectionError:
                time.sleep(0.1)
                continue
            with again:
                assert parse_ascii_table(again.query("SELECT 2 AS two;"))[1] == [["2"]]
            break
        else:
            pytest.fail("a session that closed never made room")
    finally:
        first.close()


def cancel_an_ingest(server, text, table: str) -> None:
    """Starts a bulk ingest creating `table`, cancels it from `text` once sys.queries lists
    it, and checks that the ingest's stream ended with the cancellation."""
    client = flight.FlightClient(server.flight_uri)
    schema = pa.schema([("id", pa.int64())])
    command = ingest_command(table, "default", b"", 1, 1)  # create; fail if it exists
    writer, reader = client.do_put(flight.FlightDescriptor.for_command(command), schema)
    try:
        writer.write_batch(pa.record_batch([pa.array([1, 2, 3])], schema=schema))
        deadline = time.monotonic() + 10
        while not (ids := running_ids(text, f"INGEST INTO default.{table}")):
            assert time.monotonic() < deadline, "the ingest never showed in sys.queries"
            time.sleep(0.1)
        text.ok(f"CANCEL QUERY {ids[0]};")
        deadline = time.monotonic() + 30
        while running_ids(text, "INGEST"):
            assert time.monotonic() < deadline, "the cancelled ingest kept running"
            time.sleep(0.1)
        with pytest.raises(FLIGHT_ERRORS, match="canceling statement due to user request"):
            writer.write_batch(pa.record_batch([pa.array([4])], schema=schema))
            writer.close()
    finally:
        client.close()


def test_an_ingest_is_listed_and_cancel_query_stops_it(server, text):
    cancel_an_ingest(server, text, "slow")


def test_a_cancelled_ingest_takes_the_table_it_created_with_it(server, text):
    cancel_an_ingest(server, text, "slow")
    assert "table 'default.slow' does not exist" in text.query("SELECT * FROM slow;")
    assert not list((server.data_dir / "default" / "slow").glob("_delta_log/*.json"))

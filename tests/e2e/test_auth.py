"""Authentication and TLS: a users file with hashed passwords, Basic → Bearer handshakes for
pyarrow, ADBC and flightsql-dbapi, every gRPC call refused without a token, LOGIN on the text
protocol, and gRPC over TLS."""

from __future__ import annotations

import subprocess

import pyarrow as pa
import pyarrow.flight as flight
import pytest
from adbc_driver_flightsql import dbapi as adbc_flightsql
from adbc_driver_manager import dbapi as adbc_dbapi
from flightsql import flightsql_pb2 as pb

from conftest import MINIDB_BIN, MiniDBServer, parse_ascii_table, self_signed_cert
from test_flight_jdbc_replay import packed
from test_flight_pyarrow import statement_query, statement_update

# "alice:secret1" is 13 bytes: its base64 is padded, and ADBC sends it unpadded.
USERS = {"alice": "secret1", "bob": "pw"}


def hashed_line(user: str, password: str) -> str:
    done = subprocess.run(
        [MINIDB_BIN, "hash-password", user], input=password + "\n", capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def users_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("auth") / "users"
    lines = [hashed_line(user, password) for user, password in USERS.items()]
    path.write_text("# MiniDB users\n" + "\n".join(lines) + "\n")
    return path


@pytest.fixture
def secured(tmp_path, users_file):
    (tmp_path / "data").mkdir()
    server = MiniDBServer(tmp_path / "data", tmp_path, args=["--users-file", str(users_file)]).start()
    try:
        yield server
    finally:
        server.stop()


def test_users_file_holds_hashes_and_rejects_clear_passwords(tmp_path, users_file):
    text = users_file.read_text()
    assert "secret1" not in text and "$argon2id$" in text
    bad = tmp_path / "bad"
    bad.write_text("alice:secret1\n")
    (tmp_path / "data").mkdir()
    done = subprocess.run(
        [MINIDB_BIN, "serve", "--data", str(tmp_path / "data"), "--flight-addr", "127.0.0.1:0",
         "--text-addr", "127.0.0.1:0", "--users-file", str(bad)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    assert "not a password hash" in done.stderr and "hash-password" in done.stderr


def test_every_grpc_call_without_a_token_is_refused(secured):
    client = flight.FlightClient(secured.flight_uri)
    descriptor = flight.FlightDescriptor.for_command(statement_query("SELECT 1"))
    calls = {
        "GetFlightInfo": lambda: client.get_flight_info(descriptor),
        "GetSchema": lambda: client.get_schema(descriptor),
        "DoGet": lambda: client.do_get(flight.Ticket(statement_query("SELECT 1"))).read_all(),
        "DoPut": lambda: do_put(client, statement_update("CREATE TABLE t (a INT)")),
        "DoAction": lambda: list(client.do_action(flight.Action(
            "CreatePreparedStatement", packed(pb.ActionCreatePreparedStatementRequest(query="SELECT 1"))))),
        "BeginTransaction": lambda: list(client.do_action(flight.Action(
            "BeginTransaction", packed(pb.ActionBeginTransactionRequest())))),
        "ListActions": lambda: list(client.list_actions()),
        "ListFlights": lambda: list(client.list_flights()),
        "DoExchange": lambda: client.do_exchange(descriptor)[1].read_all(),
        "GetSqlInfo": lambda: client.get_flight_info(flight.FlightDescriptor.for_command(packed(pb.CommandGetSqlInfo()))),
    }
    for name, call in calls.items():
        # pyarrow maps the status to FlightUnauthenticatedError for most calls, OSError for some.
        with pytest.raises((OSError, flight.FlightError), match="unauthenticated error") as refused:
            call()
        assert "authentication required" in str(refused.value), name
    # A forged token is no better than none.
    forged = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer YWxpY2U.9999999999.AAAA")])
    with pytest.raises(flight.FlightUnauthenticatedError, match="invalid or expired token"):
        client.get_flight_info(descriptor, forged)
    client.close()
    assert not (secured.data_dir / "default" / "t").exists()


def do_put(client, command: bytes) -> None:
    writer, reader = client.do_put(flight.FlightDescriptor.for_command(command), pa.schema([]))
    writer.done_writing()
    reader.read()
    writer.close()


def test_basic_handshake_gives_a_bearer_token_for_pyarrow(secured):
    client = flight.FlightClient(secured.flight_uri)
    with pytest.raises(flight.FlightUnauthenticatedError, match="invalid user name or password"):
        client.authenticate_basic_token("alice", "wrong")
    header = client.authenticate_basic_token("alice", "secret1")
    assert header[0] == b"authorization" and header[1].startswith(b"Bearer ")
    options = flight.FlightCallOptions(headers=[header])
    info = client.get_flight_info(flight.FlightDescriptor.for_command(statement_query("SELECT 41 + 1 AS x")), options)
    assert client.do_get(info.endpoints[0].ticket, options).read_all().to_pylist() == [{"x": 42}]
    client.close()


def test_adbc_logs_in_with_unpadded_basic_credentials(secured):
    kwargs = {"username": "alice", "password": "secret1"}
    with adbc_flightsql.connect(secured.flight_uri, db_kwargs=kwargs, autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE t (a INT)")
            cur.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
            cur.execute("SELECT sum(a) FROM t")
            assert cur.fetchone() == (3,)
            assert conn.adbc_get_info()["vendor_name"] == "MiniDB"
    with pytest.raises(adbc_dbapi.Error, match="(?i)unauthenticated|invalid user name"):
        with adbc_flightsql.connect(secured.flight_uri, db_kwargs={"username": "alice", "password": "nope"}) as conn:
            conn.cursor().execute("SELECT 1")


def test_flightsql_dbapi_logs_in(secured):
    from flightsql import FlightSQLClient, connect

    client = FlightSQLClient(host="127.0.0.1", port=secured.flight_port, user="bob", password="pw", insecure=True)
    try:
        cur = connect(client).cursor()
        cur.execute("SELECT ? * 2 AS x", (21,))
        assert cur.fetchall() == [[42]]
    finally:
        client.close()
    # Its default without credentials is "Bearer None": refused.
    anonymous = FlightSQLClient(host="127.0.0.1", port=secured.flight_port, insecure=True)
    with pytest.raises(flight.FlightUnauthenticatedError):
        connect(anonymous).cursor().execute("SELECT 1")
    anonymous.close()


def test_text_protocol_requires_login(secured):
    with secured.text() as c:
        assert "LOGIN" in c.greeting
        assert c.query("SELECT 1;").startswith("ERROR 28000: authentication required")
        assert c.query("LOGIN alice;").startswith("ERROR 42601: usage")
        assert c.query("LOGIN alice wrong;") == "ERROR 28P01: invalid user name or password"
        assert c.query("LOGIN alice 'secret1';") == "Logged in as alice"
        assert "2" in c.ok("SELECT 1 + 1;")
    with secured.text() as c:
        for _ in range(2):
            assert c.query("LOGIN bob nope;").startswith("ERROR 28P01: invalid")
        c.send_raw(b"LOGIN bob nope;\n")
        assert b"too many failed logins" in c.read_to_eof()


def test_sys_queries_names_the_user_on_both_protocols(secured):
    # Sorts hold their statements open while the clients read one batch each.
    sort = "SELECT value FROM generate_series(1, 2000000) t ORDER BY value DESC -- {}"
    client = flight.FlightClient(secured.flight_uri)
    options = flight.FlightCallOptions(headers=[client.authenticate_basic_token("alice", "secret1")])
    descriptor = flight.FlightDescriptor.for_command(statement_query(sort.format("pyarrow")))
    info = client.get_flight_info(descriptor, options)
    reader = client.do_get(info.endpoints[0].ticket, options)
    assert reader.read_chunk().data.num_rows > 0
    # ADBC prepares the statement, then runs it.
    with adbc_flightsql.connect(secured.flight_uri, db_kwargs={"username": "bob", "password": "pw"}) as conn:
        with conn.cursor() as cur:
            cur.execute(sort.format("ADBC"))
            assert cur.fetchmany(1) == [(2000000,)]
            with secured.text() as c:
                assert c.query("LOGIN alice 'secret1';") == "Logged in as alice"
                _, rows = parse_ascii_table(
                    c.ok("SELECT user_name, protocol, query_text FROM sys.queries ORDER BY query_id;")
                )
    assert rows == [
        ["alice", "flight", sort.format("pyarrow")],
        ["bob", "flight", sort.format("ADBC")],
        ["alice", "text", "SELECT user_name, protocol, query_text FROM sys.queries ORDER BY query_id"],
    ]
    reader.cancel()
    client.close()


def test_login_on_a_server_without_users_says_so(server, text):
    assert text.query("LOGIN alice secret1;") == "ERROR 0A000: authentication is not enabled on this server"


def test_grpc_over_tls(tmp_path, users_file):
    cert, key = self_signed_cert(tmp_path)
    (tmp_path / "data").mkdir()
    server = MiniDBServer(
        tmp_path / "data", tmp_path,
        args=["--users-file", str(users_file), "--tls-cert", str(cert), "--tls-key", str(key)],
    ).start()
    try:
        uri = f"grpc+tls://127.0.0.1:{server.flight_port}"
        client = flight.FlightClient(uri, tls_root_certs=cert.read_bytes())
        options = flight.FlightCallOptions(headers=[client.authenticate_basic_token("alice", "secret1")])
        info = client.get_flight_info(flight.FlightDescriptor.for_command(statement_query("SELECT 7 AS x")), options)
        assert client.do_get(info.endpoints[0].ticket, options).read_all().to_pylist() == [{"x": 7}]
        client.close()

        kwargs = {
            "username": "alice",
            "password": "secret1",
            "adbc.flight.sql.client_option.tls_root_certs": cert.read_text(),
        }
        with adbc_flightsql.connect(uri, db_kwargs=kwargs, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT 8 AS x")
            assert cur.fetchall() == [(8,)]

        # A plaintext client gets no answer from the TLS listener.
        plain = flight.FlightClient(f"grpc://127.0.0.1:{server.flight_port}")
        with pytest.raises(flight.FlightError):
            plain.authenticate_basic_token("alice", "secret1")
        plain.close()
    finally:
        server.stop()

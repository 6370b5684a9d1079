"""Bulk ingest over Flight SQL (CommandStatementIngest) with ADBC's adbc_ingest: every mode,
type mapping, name matching, failures that leave nothing behind, transactions, and a large
ingest that crosses gRPC's default message size."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pyarrow.flight as flight
import pytest
from adbc_driver_manager import AdbcStatusCode
from adbc_driver_manager import dbapi as adbc_dbapi
from flightsql import flightsql_pb2 as pb

from test_flight_adbc import run
from test_flight_jdbc_replay import packed, unpacked
from test_flight_pyarrow import _any, _field_bytes


def rows_of(cur, sql: str) -> list[dict]:
    return run(cur, sql).to_pylist()


def test_create_append_replace_and_fail_modes(conn):
    data = pa.table({"id": pa.array([1, 2], pa.int64()), "name": ["a", "b"]})
    with conn.cursor() as cur:
        assert cur.adbc_ingest("people", data, mode="create") == 2
        assert rows_of(cur, "SELECT * FROM people ORDER BY id") == [
            {"id": 1, "name": "a"},
            {"id": 2, "name": "b"},
        ]
        with pytest.raises(adbc_dbapi.Error, match="already exists"):
            cur.adbc_ingest("people", data, mode="create")
        assert cur.adbc_ingest("people", data, mode="append") == 2
        assert rows_of(cur, "SELECT count(*) AS n FROM people") == [{"n": 4}]
        more = pa.table({"id": pa.array([7], pa.int64()), "name": ["z"]})
        assert cur.adbc_ingest("people", more, mode="replace") == 1
        assert rows_of(cur, "SELECT * FROM people") == [{"id": 7, "name": "z"}]
        # Replacing is one commit: the old rows stay readable at the version before it.
        history = rows_of(cur, "DESCRIBE HISTORY people")
        assert len(history) == 4
        old = rows_of(cur, f"SELECT count(*) AS n FROM people VERSION AS OF {history[0]['version'] - 1}")
        assert old == [{"n": 4}]
        with pytest.raises(adbc_dbapi.Error, match="not found|does not exist"):
            cur.adbc_ingest("nobody", data, mode="append")
        assert cur.adbc_ingest("nobody", data, mode="create_append") == 2
        assert cur.adbc_ingest("nobody", data, mode="create_append") == 2
        assert rows_of(cur, "SELECT count(*) AS n FROM nobody") == [{"n": 4}]


def test_types_map_to_stored_types(conn):
    data = pa.table(
        {
            "i8": pa.array([1], pa.int8()),
            "u32": pa.array([4_000_000_000], pa.uint32()),
            "f": pa.array([1.5], pa.float32()),
            "big": pa.array(["x" * 10], pa.large_string()),
            "dec": pa.array([Decimal("12.34")], pa.decimal128(6, 2)),
            "day": pa.array([dt.date(2024, 2, 29)], pa.date32()),
            "at": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, 123456)], pa.timestamp("ns")),
            "utc": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)], pa.timestamp("ms", tz="UTC")),
            "ok": [True],
            "raw": pa.array([b"\x00\x01"], pa.binary()),
            "cat": pa.array(["red"]).dictionary_encode(),
        }
    )
    with conn.cursor() as cur:
        cur.adbc_ingest("typed", data, mode="create")
        table = run(cur, "SELECT * FROM typed")
        assert table.schema.types == [
            pa.int8(), pa.int64(), pa.float32(), pa.utf8(), pa.decimal128(6, 2), pa.date32(),
            pa.timestamp("us"), pa.timestamp("us", tz="UTC"), pa.bool_(), pa.binary(), pa.utf8(),
        ]
        row = table.to_pylist()[0]
        assert row["u32"] == 4_000_000_000 and row["dec"] == Decimal("12.34")
        assert row["at"] == dt.datetime(2024, 1, 2, 3, 4, 5, 123456)
        assert row["cat"] == "red" and row["raw"] == b"\x00\x01"
        with pytest.raises(adbc_dbapi.Error, match="not supported: ingesting column 't'"):
            cur.adbc_ingest("timeless", pa.table({"t": pa.array([1], pa.time64("us"))}), mode="create")
        with pytest.raises(adbc_dbapi.Error, match="does not exist|not found"):
            run(cur, "SELECT * FROM timeless")


def test_columns_match_by_name_and_bad_rows_change_nothing(conn):
    with conn.cursor() as cur:
        run(cur, "CREATE TABLE t (id INT NOT NULL, v TINYINT, note TEXT)")
        run(cur, "INSERT INTO t VALUES (1, 1, 'one')")
        # Columns in another order, one missing (NULL), Int64 values cast to the columns' types.
        cur.adbc_ingest("t", pa.table({"v": pa.array([2], pa.int64()), "id": pa.array([2], pa.int64())}), mode="append")
        assert rows_of(cur, "SELECT * FROM t ORDER BY id") == [
            {"id": 1, "v": 1, "note": "one"},
            {"id": 2, "v": 2, "note": None},
        ]
        with pytest.raises(adbc_dbapi.Error, match="no column 'extra'"):
            cur.adbc_ingest("t", pa.table({"id": [3], "extra": [1]}), mode="append")
        with pytest.raises(adbc_dbapi.Error, match="300.*'v'"):
            cur.adbc_ingest("t", pa.table({"id": [3, 4], "v": [3, 300]}), mode="append")
        with pytest.raises(adbc_dbapi.Error, match="id"):
            cur.adbc_ingest("t", pa.table({"id": pa.array([5, None], pa.int64())}), mode="append")
        assert rows_of(cur, "SELECT count(*) AS n FROM t") == [{"n": 2}]


def test_what_delta_cannot_hold_is_refused_and_mismatches_are_already_exists(conn):
    with conn.cursor() as cur:
        nested = pa.table(
            {
                "k": pa.array([1], pa.int64()),
                "tags": pa.array([["a", None]], pa.large_list(pa.string_view())),
                "pt": pa.array([{"x": 1.5, "y": None}], pa.struct([("x", pa.float64()), ("y", pa.uint32())])),
                "attrs": pa.array([[("n", [1, 2])]], pa.map_(pa.string(), pa.list_(pa.int16()))),
            }
        )
        cur.adbc_ingest("nested", nested, mode="create")
        table = run(cur, "SELECT * FROM nested")
        assert table.schema.types == [
            pa.int64(),
            pa.list_(pa.field("element", pa.utf8())),
            pa.struct([("x", pa.float64()), ("y", pa.int64())]),
            pa.map_(pa.utf8(), pa.list_(pa.field("element", pa.int16()))),
        ]
        assert table.to_pylist() == [
            {"k": 1, "tags": ["a", None], "pt": {"x": 1.5, "y": None}, "attrs": [("n", [1, 2])]}
        ]

        # Nanoseconds convert when they are whole microseconds, and are refused otherwise.
        exact = pa.array([1_700_000_000_123_456_000], pa.timestamp("ns"))
        cur.adbc_ingest("nanos", pa.table({"at": exact}), mode="create")
        assert rows_of(cur, "SELECT at FROM nanos") == [
            {"at": dt.datetime(2023, 11, 14, 22, 13, 20, 123456)}
        ]
        finer = pa.array([1_700_000_000_123_456_789], pa.timestamp("ns"))
        with pytest.raises(adbc_dbapi.Error, match="fraction of a microsecond") as err:
            cur.adbc_ingest("nanos", pa.table({"at": finer}), mode="append")
        assert err.value.status_code == AdbcStatusCode.INVALID_ARGUMENT
        with pytest.raises(adbc_dbapi.Error, match="fraction of a microsecond"):
            cur.adbc_ingest("finer", pa.table({"at": finer}), mode="create")
        assert rows_of(cur, "SELECT count(*) AS n FROM nanos") == [{"n": 1}]

        with pytest.raises(adbc_dbapi.Error, match=r"negative scale .* DECIMAL\(7, 0\)") as err:
            cur.adbc_ingest("scaled", pa.table({"d": pa.array([Decimal("12300")], pa.decimal128(5, -2))}), mode="create")
        assert err.value.status_code == AdbcStatusCode.NOT_IMPLEMENTED
        with pytest.raises(adbc_dbapi.Error, match="Delta has no time-of-day type"):
            cur.adbc_ingest("clock", pa.table({"t": pa.array([1], pa.time32("s"))}), mode="create")
        for name in ("finer", "scaled", "clock"):
            with pytest.raises(adbc_dbapi.Error, match="not found|does not exist"):
                run(cur, f"SELECT * FROM {name}")

        # Appending rows whose columns do not match is ADBC's ALREADY_EXISTS.
        with pytest.raises(adbc_dbapi.Error, match="has no column 'extra'") as err:
            cur.adbc_ingest("nested", pa.table({"k": [2], "extra": [1]}), mode="append")
        assert err.value.status_code == AdbcStatusCode.ALREADY_EXISTS
        with pytest.raises(adbc_dbapi.Error, match=r"column 'pt' of table 'nested' is STRUCT<x DOUBLE, y BIGINT>; the rows carry Int64") as err:
            cur.adbc_ingest("nested", pa.table({"k": [2], "pt": [1]}), mode="append")
        assert err.value.status_code == AdbcStatusCode.ALREADY_EXISTS
        assert rows_of(cur, "SELECT count(*) AS n FROM nested") == [{"n": 1}]


def ingest_command(table: str, schema: str, transaction: bytes, if_missing: int, if_exists: int) -> bytes:
    """Any{CommandStatementIngest} (not in the protobufs flightsql-dbapi ships); an empty
    `transaction` sends none."""
    options = _field_bytes(1, bytes([0x08, if_missing, 0x10, if_exists]))
    body = options + _field_bytes(2, table.encode()) + _field_bytes(3, schema.encode())
    if transaction:
        body += _field_bytes(6, transaction)
    return _any("CommandStatementIngest", body)


def test_ingest_into_another_database_and_inside_a_transaction(server, conn):
    data = pa.table({"id": pa.array([1, 2, 3], pa.int32())})
    with conn.cursor() as cur:
        run(cur, "CREATE DATABASE shop")
        cur.adbc_ingest("orders", data, mode="create", db_schema_name="shop")

    # ADBC 1.13 sends no transaction_id with an ingest, so the transaction is driven by hand.
    client = flight.FlightClient(server.flight_uri)

    def begin() -> bytes:
        (result,) = client.do_action(flight.Action("BeginTransaction", packed(pb.ActionBeginTransactionRequest())))
        return unpacked(result.body.to_pybytes(), pb.ActionBeginTransactionResult).transaction_id

    def end(transaction: bytes, action: int) -> None:
        request = pb.ActionEndTransactionRequest(transaction_id=transaction, action=action)
        list(client.do_action(flight.Action("EndTransaction", packed(request))))

    def ingest(transaction: bytes, rows: pa.Table, if_exists: int) -> None:
        command = ingest_command("orders", "shop", transaction, 1, if_exists)
        writer, reader = client.do_put(flight.FlightDescriptor.for_command(command), rows.schema)
        writer.write_table(rows)
        writer.done_writing()
        reader.read()
        writer.close()

    def count() -> int:
        return rows_of(cur, "SELECT count(*) AS n FROM shop.orders")[0]["n"]

    try:
        with conn.cursor() as cur:
            transaction = begin()
            ingest(transaction, data, if_exists=2)  # APPEND
            assert count() == 3  # not visible outside the transaction
            end(transaction, pb.ActionEndTransactionRequest.END_TRANSACTION_ROLLBACK)
            assert count() == 3
            transaction = begin()
            ingest(transaction, data.slice(0, 1), if_exists=3)  # REPLACE
            assert count() == 3
            end(transaction, pb.ActionEndTransactionRequest.END_TRANSACTION_COMMIT)
            assert rows_of(cur, "SELECT id FROM shop.orders") == [{"id": 1}]
            transaction = begin()
            with pytest.raises(pa.ArrowNotImplementedError, match="inside a transaction"):
                command = ingest_command("fresh", "shop", transaction, 1, 1)
                writer, reader = client.do_put(flight.FlightDescriptor.for_command(command), data.schema)
                writer.write_table(data)
                writer.done_writing()
                reader.read()
                writer.close()
            end(transaction, pb.ActionEndTransactionRequest.END_TRANSACTION_ROLLBACK)
    finally:
        client.close()


def test_large_ingest_streams_in_many_messages(conn):
    n = 1_000_000
    data = pa.table(
        {
            "k": pa.array(range(n), pa.int64()),
            "text": pa.array([f"row number {i:09d} with some padding" for i in range(n)]),
        }
    )
    assert data.nbytes > 32 * 1024 * 1024
    # ADBC sends each batch as one message and caps messages at 16 MiB.
    data = pa.Table.from_batches(data.to_batches(max_chunksize=100_000))
    with conn.cursor() as cur:
        assert cur.adbc_ingest("big", data, mode="create") == n
        got = rows_of(cur, "SELECT count(*) AS n, sum(k) AS s, max(text) AS m FROM big")
        assert got == [{"n": n, "s": n * (n - 1) // 2, "m": f"row number {n - 1:09d} with some padding"}]

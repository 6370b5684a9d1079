"""Exact numbers over Flight SQL: a DECIMAL(38, 10) value keeps every digit whether it arrives
as a SQL literal, a bound parameter or a bulk ingest, reads back the same through ADBC and
delta-rs, and fractional values stored into integer columns round half away from zero."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa

from test_delta_interop import read_delta_rs
from test_flight_adbc import run

BIG = Decimal("12345678901234567890.0123456789")


def test_decimal_38_10_round_trips_through_literal_parameter_and_ingest(server, conn):
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE exact (id INT, v DECIMAL(38, 10))")
        cur.execute(f"INSERT INTO exact VALUES (1, {BIG})")
        cur.execute("INSERT INTO exact VALUES (?, ?)", (2, BIG))
        cur.execute("INSERT INTO exact VALUES (?, ?)", (3, -BIG))
        ingested = pa.table(
            {
                "id": pa.array([4], pa.int32()),
                "v": pa.array([BIG], pa.decimal128(38, 10)),
            }
        )
        assert cur.adbc_ingest("exact", ingested, mode="append") == 1

        got = run(cur, "SELECT id, v FROM exact ORDER BY id")
        assert got.schema.field("v").type == pa.decimal128(38, 10)
        assert got.to_pylist() == [
            {"id": 1, "v": BIG},
            {"id": 2, "v": BIG},
            {"id": 3, "v": -BIG},
            {"id": 4, "v": BIG},
        ]
        # The literal compares exactly with what was stored, and with the bound parameter.
        cur.execute(f"SELECT count(*) FROM exact WHERE v = {BIG}")
        assert cur.fetchall() == [(3,)]
        cur.execute("SELECT count(*) FROM exact WHERE v = ?", (BIG,))
        assert cur.fetchall() == [(3,)]
        cur.execute("SELECT 0.1 + 0.2 = 0.3, 0.1 + 0.2")
        assert cur.fetchall() == [(True, Decimal("0.3"))]

    # Another Delta reader sees the same digits.
    assert read_delta_rs(server.data_dir / "default" / "exact").column("v").to_pylist() == [
        BIG,
        BIG,
        -BIG,
        BIG,
    ]


def test_fractions_into_integer_columns_round_half_away_from_zero(conn):
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE whole (id INT, n INT)")
        cur.execute("INSERT INTO whole VALUES (1, 2.5), (2, -2.5), (3, 2.4)")
        cur.execute("INSERT INTO whole VALUES (?, ?)", (4, 7.5))
        cur.execute("INSERT INTO whole VALUES (?, ?)", (5, Decimal("-0.5")))
        ingested = pa.table(
            {"id": pa.array([6], pa.int32()), "n": pa.array([9.5], pa.float64())}
        )
        cur.adbc_ingest("whole", ingested, mode="append")
        cur.execute("UPDATE whole SET n = n + 0.5 WHERE id = 3")
        got = run(cur, "SELECT id, n FROM whole ORDER BY id").to_pylist()
        assert [(r["id"], r["n"]) for r in got] == [
            (1, 3),
            (2, -3),
            (3, 3),
            (4, 8),
            (5, -1),
            (6, 10),
        ]

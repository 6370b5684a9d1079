"""The type matrix: for every column type, values at its edges (min, max, NULL, empty, nested
NULLs, unicode) written through every path — a SQL literal over :7205, ADBC parameters, bulk
ingest, INSERT … SELECT and UPDATE with a parameter — read back equal through every client:
the text protocol, ADBC, pyarrow.flight, delta-rs, DuckDB and polars. Values a column cannot
hold are refused on each write path by the rule docs/sql.md documents, naming the column."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal

import adbc_driver_manager
import polars as pl
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import parse_ascii_table
from test_delta_interop import read_delta_rs, read_duckdb
from test_flight_pyarrow import query

UTC = dt.timezone.utc
F32_MAX = 3.4028234663852886e38
F32_TINY = 1.401298464324817e-45
DEC_MAX = Decimal("9999999999999999999999999999.9999999999")
# Spelled out: negating DEC_MAX would round it to Python's default 28 digits.
DEC_MIN = Decimal("-9999999999999999999999999999.9999999999")


@dataclass
class Case:
    """One column type: its SQL name, the Arrow type clients send, the edge values with how
    :7205 prints each, and a value the column refuses with the message's pattern."""

    sql: str
    arrow: pa.DataType
    values: list[tuple[object, str]]
    refused: tuple[object, str] | None = None


CASES = [
    Case("BOOLEAN", pa.bool_(), [(True, "true"), (False, "false"), (None, "NULL")]),
    Case(
        "TINYINT",
        pa.int8(),
        [(-128, "-128"), (127, "127"), (None, "NULL")],
        (128, r"value 128 does not fit column 'v' \(TINYINT\)"),
    ),
    Case(
        "SMALLINT",
        pa.int16(),
        [(-32768, "-32768"), (32767, "32767")],
        (32768, r"value 32768 does not fit column 'v' \(SMALLINT\)"),
    ),
    Case(
        "INT",
        pa.int32(),
        [(-(2**31), str(-(2**31))), (2**31 - 1, str(2**31 - 1))],
        (2**31, rf"value {2**31} does not fit column 'v' \(INT\)"),
    ),
    Case("BIGINT", pa.int64(), [(-(2**63), str(-(2**63))), (2**63 - 1, str(2**63 - 1))]),
    Case(
        "REAL",
        pa.float32(),
        [(F32_MAX, "3.4028235e38"), (-F32_TINY, "-1e-45"), (-1.5, "-1.5"), (None, "NULL")],
    ),
    Case(
        "DOUBLE",
        pa.float64(),
        [
            (1.7976931348623157e308, "1.7976931348623157e308"),
            (5e-324, "5e-324"),
            (0.1, "0.1"),
        ],
    ),
    Case(
        "DECIMAL(38, 10)",
        pa.decimal128(38, 10),
        [
            (DEC_MAX, str(DEC_MAX)),
            (DEC_MIN, str(DEC_MIN)),
            (Decimal("0.0000000001"), "0.0000000001"),
            (None, "NULL"),
        ],
        (
            Decimal("10000000000000000000000000000"),
            r"value 10000000000000000000000000000 does not fit column 'v' \(DECIMAL\(38,10\)\)",
        ),
    ),
    Case(
        "VARCHAR",
        pa.string(),
        [("", ""), ("it's ünïcödé €😀", "it's ünïcödé €😀"), (None, "NULL")],
    ),
    Case(
        "VARCHAR(5)",
        pa.string(),
        [("😀😀😀😀😀", "😀😀😀😀😀"), ("a", "a")],
        ("abcdef", r"value 'abcdef' is too long for column 'v' \(VARCHAR\(5\)\): 6 characters"),
    ),
    Case("BINARY", pa.binary(), [(b"", ""), (b"\x00\xff'", "00ff27"), (None, "NULL")]),
    Case(
        "DATE",
        pa.date32(),
        [(dt.date(1, 1, 1), "0001-01-01"), (dt.date(9999, 12, 31), "9999-12-31")],
    ),
    Case(
        "TIMESTAMP",
        pa.timestamp("us"),
        [
            (dt.datetime(1, 1, 1), "0001-01-01T00:00:00"),
            (dt.datetime(9999, 12, 31, 23, 59, 59, 999999), "9999-12-31T23:59:59.999999"),
            (None, "NULL"),
        ],
    ),
    Case(
        "TIMESTAMP WITH TIME ZONE",
        pa.timestamp("us", tz="UTC"),
        [
            (dt.datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00Z"),
            (
                dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                "9999-12-31T23:59:59.999999Z",
            ),
        ],
    ),
    Case(
        "INT[]",
        pa.list_(pa.int32()),
        [([], "[]"), ([None], "[NULL]"), ([1, None, -3], "[1, NULL, -3]"), (None, "NULL")],
    ),
    Case(
        "BIGINT[][]",
        pa.list_(pa.list_(pa.int64())),
        [([[]], "[[]]"), ([None, [2**63 - 1]], f"[NULL, [{2**63 - 1}]]")],
    ),
    Case(
        "STRUCT<a INT, b VARCHAR>",
        pa.struct([("a", pa.int32()), ("b", pa.string())]),
        [
            ({"a": None, "b": "ü"}, "{a: NULL, b: ü}"),
            ({"a": 1, "b": None}, "{a: 1, b: NULL}"),
            (None, "NULL"),
        ],
    ),
    Case(
        "MAP(VARCHAR, INT)",
        pa.map_(pa.string(), pa.int32()),
        [([], "{}"), ([("k", None)], "{k: NULL}"), ([("a", 1), ("b", 2)], "{a: 1, b: 2}")],
    ),
    Case(
        "STRUCT<l DATE[], s STRUCT<x DOUBLE>>",
        pa.struct(
            [("l", pa.list_(pa.date32())), ("s", pa.struct([("x", pa.float64())]))]
        ),
        [
            ({"l": [dt.date(2024, 2, 29), None], "s": {"x": 0.5}}, "{l: [2024-02-29, NULL], s: {x: 0.5}}"),
            ({"l": None, "s": None}, "{l: NULL, s: NULL}"),
        ],
    ),
]

#: The first id of the rows each write path adds.
PATHS = {"literal": 0, "parameter": 100, "ingest": 200, "insert_select": 300, "update": 400}


def sql_literal(value, arrow: pa.DataType) -> str:
    """`value` of Arrow type `arrow` as a SQL literal, as a user would type it."""
    if value is None:
        return "NULL"
    if pa.types.is_boolean(arrow):
        return "TRUE" if value else "FALSE"
    if pa.types.is_integer(arrow) or pa.types.is_decimal(arrow):
        return str(value)
    if pa.types.is_float32(arrow):
        return f"CAST('{value!r}' AS REAL)"
    if pa.types.is_float64(arrow):
        return f"CAST('{value!r}' AS DOUBLE)"
    if pa.types.is_string(arrow):
        return "'" + value.replace("'", "''") + "'"
    if pa.types.is_binary(arrow):
        return f"X'{value.hex()}'"
    if pa.types.is_date(arrow):
        return f"DATE '{value.isoformat()}'"
    if pa.types.is_timestamp(arrow):
        if arrow.tz is None:
            return f"TIMESTAMP '{value.isoformat(' ')}'"
        return f"TIMESTAMPTZ '{value.isoformat(' ')}'"
    if pa.types.is_list(arrow):
        return "[" + ", ".join(sql_literal(v, arrow.value_type) for v in value) + "]"
    if pa.types.is_struct(arrow):
        parts = []
        for field in arrow:
            parts += [f"'{field.name}'", sql_literal(value[field.name], field.type)]
        return f"named_struct({', '.join(parts)})"
    if pa.types.is_map(arrow):
        pairs = [
            f"{sql_literal(k, arrow.key_type)}: {sql_literal(v, arrow.item_type)}"
            for k, v in value
        ]
        return "MAP {" + ", ".join(pairs) + "}"
    raise AssertionError(f"no literal for {arrow}")


def expected_rows(case: Case) -> list[dict]:
    return [
        {"id": first + j, "v": value}
        for first in PATHS.values()
        for j, (value, _) in enumerate(case.values)
    ]


def write_every_path(case: Case, table: str, text, conn) -> None:
    values = [v for v, _ in case.values]
    ids = lambda path: pa.array([PATHS[path] + j for j in range(len(values))], pa.int32())
    rows = ", ".join(
        f"({PATHS['literal'] + j}, {sql_literal(v, case.arrow)})" for j, v in enumerate(values)
    )
    text.ok(f"INSERT INTO {table} VALUES {rows};")
    with conn.cursor() as cur:
        params = pa.record_batch([ids("parameter"), pa.array(values, case.arrow)], ["id", "v"])
        cur.execute(f"INSERT INTO {table} VALUES (?, ?)", parameters=params)
        ingest = pa.table({"id": ids("ingest"), "v": pa.array(values, case.arrow)})
        assert cur.adbc_ingest(table, ingest, mode="append") == len(values)
    text.ok(
        f"INSERT INTO {table} SELECT id + {PATHS['insert_select']}, v FROM {table} "
        f"WHERE id < {PATHS['parameter']};"
    )
    placeholders = ", ".join(f"({PATHS['update'] + j}, NULL)" for j in range(len(values)))
    text.ok(f"INSERT INTO {table} VALUES {placeholders};")
    with conn.cursor() as cur:
        updates = pa.record_batch([pa.array(values, case.arrow), ids("update")], ["v", "id"])
        cur.executemany(f"UPDATE {table} SET v = ? WHERE id = ?", updates)


@pytest.mark.parametrize("case", CASES, ids=[c.sql for c in CASES])
def test_every_path_and_every_reader_agree(case, server, text, conn):
    table = "m"
    text.ok(f"CREATE TABLE {table} (id INT, v {case.sql});")
    write_every_path(case, table, text, conn)
    expected = expected_rows(case)
    select = f"SELECT id, v FROM {table} ORDER BY id"

    with conn.cursor() as cur:
        cur.execute(select)
        got = cur.fetch_arrow_table()
    assert got.schema.field("v").type == case.arrow
    assert got.to_pylist() == expected, "ADBC"

    client = flight.FlightClient(server.flight_uri)
    try:
        _, got = query(client, select)
    finally:
        client.close()
    assert got.to_pylist() == expected, "pyarrow.flight"

    header, cells = parse_ascii_table(text.query(select + ";"))
    assert header == ["id", "v"]
    shown = [text for first in PATHS.values() for _, text in case.values]
    assert [c[1] for c in cells] == shown, "text protocol"

    path = server.data_dir / "default" / table
    assert read_delta_rs(path).to_pylist() == expected, "delta-rs"
    assert read_duckdb(path).to_pylist() == expected, "DuckDB"
    assert pl.read_delta(str(path)).sort("id").to_arrow().to_pylist() == expected, "polars"


REFUSING = [c for c in CASES if c.refused is not None]


@pytest.mark.parametrize("case", REFUSING, ids=[c.sql for c in REFUSING])
def test_values_a_column_cannot_hold_are_refused_on_every_path(case, text, conn):
    bad, message = case.refused
    text.ok(f"CREATE TABLE r (id INT, v {case.sql});")
    text.ok(f"INSERT INTO r VALUES (0, {sql_literal(case.values[0][0], case.arrow)});")
    answer = text.query(f"INSERT INTO r VALUES (1, {sql_literal(bad, case.arrow)});")
    assert answer.startswith("ERROR"), answer
    assert re.search(message, answer), answer

    # ADBC sends the value in the type a client would use for it: wider when the column's own
    # type cannot hold it.
    wide = pa.array([bad], pa.decimal128(38, 0)) if isinstance(bad, Decimal) else pa.array([bad])
    with conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.ProgrammingError, match=message):
            params = pa.record_batch([pa.array([1], pa.int32()), wide], ["id", "v"])
            cur.execute("INSERT INTO r VALUES (?, ?)", parameters=params)
        with pytest.raises(adbc_driver_manager.ProgrammingError, match=message):
            cur.adbc_ingest("r", pa.table({"id": pa.array([2], pa.int32()), "v": wide}), mode="append")
        with pytest.raises(adbc_driver_manager.ProgrammingError, match=message):
            params = pa.record_batch([wide, pa.array([0], pa.int32())], ["v", "id"])
            cur.execute("UPDATE r SET v = ? WHERE id = ?", parameters=params)
        # Nothing of the refused statements was written.
        cur.execute("SELECT id, v FROM r")
        assert cur.fetch_arrow_table().to_pylist() == [{"id": 0, "v": case.values[0][0]}]


def test_nested_columns_after_update_delete_and_optimize_read_the_same_everywhere(server, text, conn):
    text.ok("CREATE TABLE nest (id INT, a INT[], s STRUCT<x INT, y VARCHAR>, m MAP(VARCHAR, INT[]));")
    text.ok(
        "INSERT INTO nest VALUES (1, [1, 2], {'x': 1, 'y': 'a'}, MAP {'k': [1]}), "
        "(2, NULL, NULL, NULL), (3, [NULL], {'x': NULL, 'y': 'ü'}, MAP {'e': [], 'n': NULL});"
    )
    text.ok("INSERT INTO nest VALUES (4, [4], {'x': 4, 'y': NULL}, MAP {});")
    text.ok("UPDATE nest SET a = array_append(a, 3), s = named_struct('x', s.x * 10, 'y', s.y) WHERE id = 1;")
    text.ok("DELETE FROM nest WHERE id = 2;")
    expected = [
        {"id": 1, "a": [1, 2, 3], "s": {"x": 10, "y": "a"}, "m": [("k", [1])]},
        {"id": 3, "a": [None], "s": {"x": None, "y": "ü"}, "m": [("e", []), ("n", None)]},
        {"id": 4, "a": [4], "s": {"x": 4, "y": None}, "m": []},
    ]
    path = server.data_dir / "default" / "nest"
    for step in ("after DML", "after OPTIMIZE"):
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM nest ORDER BY id")
            assert cur.fetch_arrow_table().to_pylist() == expected, step
        assert read_delta_rs(path).to_pylist() == expected, step
        assert read_duckdb(path).to_pylist() == expected, step
        assert pl.read_delta(str(path)).sort("id").to_arrow().to_pylist() == expected, step
        text.ok("OPTIMIZE nest;")

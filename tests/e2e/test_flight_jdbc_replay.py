"""Replays of the Flight SQL JDBC driver's call sequences (arrow-java flight-sql-jdbc-core, as
DBeaver drives it), with the driver's own messages built from the Flight SQL protobufs that
flightsql-dbapi ships. The driver jar itself is not available to these tests.

What the driver does, and what each test holds the server to:
- connect: GetSqlInfo with no ids, cached; every key must be there, each value in the union
  member the driver casts it to (a missing key or another member throws in DatabaseMetaData);
- every statement is prepared: CreatePreparedStatement, then an empty ``dataset_schema`` means
  DoPut(CommandPreparedStatementUpdate) (always with a batch, even one without columns) and a
  non-empty one means GetFlightInfo(CommandPreparedStatementQuery) + DoGet; parameters follow
  ``parameter_schema`` (one nullable field per ``?``); executeBatch sends all rows in one DoPut;
- getColumns: GetTables with include_schema, columns read as VarChar/VarBinary vectors and
  ``table_schema`` as an IPC schema message; getPrimaryKeys/getImportedKeys/getExportedKeys/
  getCrossReference and getTables with ``%``/``_`` patterns and the ``\\`` escape.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb
from google.protobuf import any_pb2

# SqlInfo ids and the union member (type code) JDBC 18.x casts each to.
STRING, BOOL, BIGINT, INT32, STRING_LIST, INT_MAP = range(6)
JDBC_TYPES = {
    STRING: [
        "FLIGHT_SQL_SERVER_NAME", "FLIGHT_SQL_SERVER_VERSION", "FLIGHT_SQL_SERVER_ARROW_VERSION",
        "SQL_IDENTIFIER_QUOTE_CHAR", "SQL_SEARCH_STRING_ESCAPE", "SQL_EXTRA_NAME_CHARACTERS",
        "SQL_SCHEMA_TERM", "SQL_PROCEDURE_TERM", "SQL_CATALOG_TERM",
    ],
    BOOL: [
        "FLIGHT_SQL_SERVER_READ_ONLY", "SQL_SUPPORTS_COLUMN_ALIASING", "SQL_NULL_PLUS_NULL_IS_NULL",
        "SQL_SUPPORTS_TABLE_CORRELATION_NAMES", "SQL_SUPPORTS_DIFFERENT_TABLE_CORRELATION_NAMES",
        "SQL_SUPPORTS_EXPRESSIONS_IN_ORDER_BY", "SQL_SUPPORTS_ORDER_BY_UNRELATED",
        "SQL_SUPPORTS_LIKE_ESCAPE_CLAUSE", "SQL_SUPPORTS_NON_NULLABLE_COLUMNS",
        "SQL_SUPPORTS_INTEGRITY_ENHANCEMENT_FACILITY", "SQL_CATALOG_AT_START",
        "SQL_SELECT_FOR_UPDATE_SUPPORTED", "SQL_STORED_PROCEDURES_SUPPORTED",
        "SQL_CORRELATED_SUBQUERIES_SUPPORTED", "SQL_MAX_ROW_SIZE_INCLUDES_BLOBS",
        "SQL_TRANSACTIONS_SUPPORTED", "SQL_DATA_DEFINITION_CAUSES_TRANSACTION_COMMIT",
        "SQL_DATA_DEFINITIONS_IN_TRANSACTIONS_IGNORED", "SQL_BATCH_UPDATES_SUPPORTED",
        "SQL_SAVEPOINTS_SUPPORTED", "SQL_NAMED_PARAMETERS_SUPPORTED", "SQL_LOCATORS_UPDATE_COPY",
        "SQL_STORED_FUNCTIONS_USING_CALL_SYNTAX_SUPPORTED", "SQL_ALL_TABLES_ARE_SELECTABLE",
    ],
    INT32: [
        "SQL_SUPPORTED_GROUP_BY", "SQL_SUPPORTED_GRAMMAR", "SQL_ANSI92_SUPPORTED_LEVEL",
        "SQL_OUTER_JOINS_SUPPORT_LEVEL", "SQL_SCHEMAS_SUPPORTED_ACTIONS",
        "SQL_CATALOGS_SUPPORTED_ACTIONS", "SQL_SUPPORTED_POSITIONED_COMMANDS",
        "SQL_SUPPORTED_SUBQUERIES", "SQL_SUPPORTED_UNIONS", "SQL_SUPPORTED_RESULT_SET_TYPES",
        "SQL_SUPPORTED_TRANSACTIONS_ISOLATION_LEVELS", "SQL_IDENTIFIER_CASE",
        "SQL_QUOTED_IDENTIFIER_CASE", "SQL_NULL_ORDERING", "FLIGHT_SQL_SERVER_TRANSACTION",
    ],
    BIGINT: [
        "SQL_MAX_BINARY_LITERAL_LENGTH", "SQL_MAX_CHAR_LITERAL_LENGTH", "SQL_MAX_COLUMN_NAME_LENGTH",
        "SQL_MAX_COLUMNS_IN_GROUP_BY", "SQL_MAX_COLUMNS_IN_INDEX", "SQL_MAX_COLUMNS_IN_ORDER_BY",
        "SQL_MAX_COLUMNS_IN_SELECT", "SQL_MAX_COLUMNS_IN_TABLE", "SQL_MAX_CONNECTIONS",
        "SQL_MAX_CURSOR_NAME_LENGTH", "SQL_MAX_INDEX_LENGTH", "SQL_DB_SCHEMA_NAME_LENGTH",
        "SQL_MAX_PROCEDURE_NAME_LENGTH", "SQL_MAX_CATALOG_NAME_LENGTH", "SQL_MAX_ROW_SIZE",
        "SQL_MAX_STATEMENT_LENGTH", "SQL_MAX_STATEMENTS", "SQL_MAX_TABLE_NAME_LENGTH",
        "SQL_MAX_TABLES_IN_SELECT", "SQL_MAX_USERNAME_LENGTH", "SQL_DEFAULT_TRANSACTION_ISOLATION",
    ],
    STRING_LIST: [
        "SQL_KEYWORDS", "SQL_NUMERIC_FUNCTIONS", "SQL_STRING_FUNCTIONS", "SQL_SYSTEM_FUNCTIONS",
        "SQL_DATETIME_FUNCTIONS",
    ],
    INT_MAP: ["SQL_SUPPORTS_CONVERT"],
}

KEYS_SCHEMA = pa.schema(
    [
        ("pk_catalog_name", pa.utf8()),
        ("pk_db_schema_name", pa.utf8()),
        pa.field("pk_table_name", pa.utf8(), nullable=False),
        pa.field("pk_column_name", pa.utf8(), nullable=False),
        ("fk_catalog_name", pa.utf8()),
        ("fk_db_schema_name", pa.utf8()),
        pa.field("fk_table_name", pa.utf8(), nullable=False),
        pa.field("fk_column_name", pa.utf8(), nullable=False),
        pa.field("key_sequence", pa.int32(), nullable=False),
        ("fk_key_name", pa.utf8()),
        ("pk_key_name", pa.utf8()),
        pa.field("update_rule", pa.uint8(), nullable=False),
        pa.field("delete_rule", pa.uint8(), nullable=False),
    ]
)


def packed(message) -> bytes:
    wrapper = any_pb2.Any()
    wrapper.Pack(message)
    return wrapper.SerializeToString()


def unpacked(data: bytes, message_type):
    wrapper = any_pb2.Any()
    wrapper.ParseFromString(data)
    message = message_type()
    assert wrapper.Unpack(message), wrapper.type_url
    return message


class Jdbc:
    """The calls the JDBC driver makes, over one pyarrow Flight client."""

    def __init__(self, server):
        self.client = flight.FlightClient(server.flight_uri)

    def close(self):
        self.client.close()

    def read(self, command) -> tuple[flight.FlightInfo, pa.Table]:
        info = self.client.get_flight_info(flight.FlightDescriptor.for_command(packed(command)))
        tables = [self.client.do_get(e.ticket).read_all() for e in info.endpoints]
        table = pa.concat_tables(tables) if tables else info.schema.empty_table()
        return info, table

    def action(self, name: str, message) -> list[bytes]:
        return [r.body.to_pybytes() for r in self.client.do_action(flight.Action(name, packed(message)))]

    def prepare(self, sql: str) -> pb.ActionCreatePreparedStatementResult:
        (result,) = self.action("CreatePreparedStatement", pb.ActionCreatePreparedStatementRequest(query=sql))
        return unpacked(result, pb.ActionCreatePreparedStatementResult)

    def close_prepared(self, prepared) -> None:
        self.action(
            "ClosePreparedStatement",
            pb.ActionClosePreparedStatementRequest(prepared_statement_handle=prepared.prepared_statement_handle),
        )

    def put(self, command, batch: pa.RecordBatch) -> bytes:
        descriptor = flight.FlightDescriptor.for_command(packed(command))
        writer, reader = self.client.do_put(descriptor, batch.schema)
        writer.write_batch(batch)
        writer.done_writing()
        answer = reader.read()
        writer.close()
        return answer.to_pybytes()

    def execute(self, sql: str, parameters: pa.RecordBatch | None = None):
        """Statement.execute as the driver runs it: returns (dataset_schema, rows or count)."""
        prepared = self.prepare(sql)
        dataset = pa.ipc.read_schema(pa.py_buffer(prepared.dataset_schema))
        handle = prepared.prepared_statement_handle
        try:
            if len(dataset) == 0:
                batch = parameters if parameters is not None else pa.RecordBatch.from_pydict({})
                answer = self.put(pb.CommandPreparedStatementUpdate(prepared_statement_handle=handle), batch)
                result = pb.DoPutUpdateResult()
                result.ParseFromString(answer)
                return dataset, result.record_count
            if parameters is not None:
                answer = self.put(pb.CommandPreparedStatementQuery(prepared_statement_handle=handle), parameters)
                handle = bound_handle(answer)
            _, table = self.read(pb.CommandPreparedStatementQuery(prepared_statement_handle=handle))
            return dataset, table
        finally:
            self.close_prepared(prepared)


def bound_handle(answer: bytes) -> bytes:
    """DoPutPreparedStatementResult.prepared_statement_handle (field 1; not in these protobufs)."""
    assert answer[0] == 0x0A, "field 1, length-delimited"
    length, shift, i = 0, 0, 1
    while True:
        byte = answer[i]
        length |= (byte & 0x7F) << shift
        i += 1
        if byte < 0x80:
            break
        shift += 7
    return answer[i : i + length]


@pytest.fixture
def jdbc(server):
    j = Jdbc(server)
    try:
        yield j
    finally:
        j.close()


def test_connect_caches_every_sql_info_key_in_the_type_jdbc_casts_to(jdbc):
    info, table = jdbc.read(pb.CommandGetSqlInfo())
    assert info.schema.field("info_name").type == pa.uint32()
    values = table.column("value").combine_chunks()
    members = dict(zip(table.column("info_name").to_pylist(), values.type_codes.to_pylist()))
    unsupported = {pb.FLIGHT_SQL_SERVER_SUBSTRAIT_MIN_VERSION, pb.FLIGHT_SQL_SERVER_SUBSTRAIT_MAX_VERSION}
    missing = [
        pb.SqlInfo.Name(v) for v in pb.SqlInfo.values() if v not in members and v not in unsupported
    ]
    assert missing == []
    for member, names in JDBC_TYPES.items():
        for name in names:
            assert members[pb.SqlInfo.Value(name)] == member, name
    by_id = dict(zip(table.column("info_name").to_pylist(), values.to_pylist()))
    assert by_id[pb.SQL_IDENTIFIER_QUOTE_CHAR] == '"'
    assert by_id[pb.FLIGHT_SQL_SERVER_NAME] == "MiniDB"
    assert "SELECT" in by_id[pb.SQL_KEYWORDS]
    assert "ABS" in by_id[pb.SQL_NUMERIC_FUNCTIONS]
    assert "UPPER" in by_id[pb.SQL_STRING_FUNCTIONS]
    assert "NOW" in by_id[pb.SQL_DATETIME_FUNCTIONS]
    # No ids older drivers do not know (they key an EnumMap by them): bulk-ingest support (10,
    # 11), newer than these protobufs, is answered only when asked for.
    assert set(members) <= set(pb.SqlInfo.values())
    _, ingest = jdbc.read(pb.CommandGetSqlInfo(info=[10, 11]))
    assert ingest.column("info_name").to_pylist() == [10, 11]
    # A filtered request answers exactly the ids asked for.
    _, some = jdbc.read(pb.CommandGetSqlInfo(info=[pb.FLIGHT_SQL_SERVER_NAME, pb.SQL_DDL_TABLE]))
    assert sorted(some.column("info_name").to_pylist()) == [pb.FLIGHT_SQL_SERVER_NAME, pb.SQL_DDL_TABLE]


def test_every_statement_is_prepared_and_dml_is_told_by_an_empty_dataset_schema(jdbc):
    schema, count = jdbc.execute("CREATE TABLE people (id INT NOT NULL, name VARCHAR, born DATE)")
    assert len(schema) == 0 and count == 0

    prepared = jdbc.prepare("INSERT INTO people VALUES (?, ?, ?)")
    parameters = pa.ipc.read_schema(pa.py_buffer(prepared.parameter_schema))
    assert [(f.type, f.nullable) for f in parameters] == [
        (pa.int32(), True), (pa.utf8(), True), (pa.date32(), True)
    ]
    jdbc.close_prepared(prepared)

    # executeBatch: every bound row in one DoPut, typed as parameter_schema says.
    rows = pa.RecordBatch.from_arrays(
        [
            pa.array([1, 2, 3], pa.int32()),
            pa.array(["ada", None, "cy"], pa.utf8()),
            pa.array([0, 365, None], pa.date32()),
        ],
        schema=parameters,
    )
    schema, count = jdbc.execute("INSERT INTO people VALUES (?, ?, ?)", rows)
    assert len(schema) == 0 and count == 3

    schema, table = jdbc.execute("SELECT id, name, born FROM people ORDER BY id")
    assert schema.names == ["id", "name", "born"]
    assert table.schema.types == [pa.int32(), pa.utf8(), pa.date32()]
    assert table.column("name").to_pylist() == ["ada", None, "cy"]

    one = pa.RecordBatch.from_arrays([pa.array([2], pa.int32())], names=["$1"])
    schema, table = jdbc.execute("SELECT name IS NULL AS nameless FROM people WHERE id = ?", one)
    assert table.to_pylist() == [{"nameless": True}]

    schema, count = jdbc.execute("UPDATE people SET name = ? WHERE id = ?",
                                 pa.RecordBatch.from_pydict({"$1": ["bo"], "$2": [2]}))
    assert count == 1
    schema, count = jdbc.execute("DELETE FROM people WHERE id > 1")
    assert len(schema) == 0 and count == 2
    schema, table = jdbc.execute("SELECT count(*) AS n FROM people")
    assert table.column("n").to_pylist() == [1]


def test_database_metadata_calls(jdbc):
    jdbc.execute("CREATE TABLE my_table (id BIGINT PRIMARY KEY, note TEXT)")
    jdbc.execute("CREATE TABLE myxtable (id INT)")

    # getColumns: GetTables with include_schema and no table types.
    info, table = jdbc.read(pb.CommandGetTables(include_schema=True))
    assert table.schema.types == [pa.utf8(), pa.utf8(), pa.utf8(), pa.utf8(), pa.binary()]
    row = [r for r in table.to_pylist() if r["table_name"] == "my_table"][0]
    assert row["catalog_name"] == "minidb" and row["db_schema_name"] == "default"
    columns = pa.ipc.read_schema(pa.py_buffer(row["table_schema"]))
    assert [(f.name, f.type, f.nullable) for f in columns] == [
        ("id", pa.int64(), False), ("note", pa.utf8(), True)
    ]

    # getTables: `_` is a wildcard unless escaped with SQL_SEARCH_STRING_ESCAPE.
    _, table = jdbc.read(pb.CommandGetTables(db_schema_filter_pattern="def%", table_name_filter_pattern="my_table"))
    assert sorted(table.column("table_name").to_pylist()) == ["my_table", "myxtable"]
    _, table = jdbc.read(pb.CommandGetTables(table_name_filter_pattern="my\\_table", table_types=["TABLE"]))
    assert table.column("table_name").to_pylist() == ["my_table"]

    _, table = jdbc.read(pb.CommandGetPrimaryKeys(db_schema="default", table="my_table"))
    assert table.select(["column_name", "key_sequence"]).to_pylist() == [{"column_name": "id", "key_sequence": 1}]

    for command in (
        pb.CommandGetImportedKeys(table="my_table"),
        pb.CommandGetExportedKeys(table="my_table"),
        pb.CommandGetCrossReference(pk_table="my_table", fk_table="myxtable"),
    ):
        info, table = jdbc.read(command)
        assert info.schema == KEYS_SCHEMA
        assert table.schema == KEYS_SCHEMA and table.num_rows == 0

    _, table = jdbc.read(pb.CommandGetTableTypes())
    assert sorted(table.column("table_type").to_pylist()) == ["SYSTEM TABLE", "TABLE", "VIEW"]


def test_xdbc_type_info_lists_the_column_types(jdbc):
    _, table = jdbc.read(pb.CommandGetXdbcTypeInfo())
    names = table.column("type_name").to_pylist()
    for name in ("BOOLEAN", "INTEGER", "BIGINT", "DOUBLE", "DECIMAL", "VARCHAR", "DATE", "TIMESTAMP"):
        assert name in names
    decimal = [r for r in table.to_pylist() if r["type_name"] == "DECIMAL"][0]
    assert decimal["data_type"] == pb.XDBC_DECIMAL and decimal["maximum_scale"] == 38
    # Every listed type can be created.
    for i, name in enumerate(names):
        _, count = jdbc.execute(f"CREATE TABLE t{i} (c {name})")
        assert count == 0
    _, only = jdbc.read(pb.CommandGetXdbcTypeInfo(data_type=pb.XDBC_BIGINT))
    assert only.column("type_name").to_pylist() == ["BIGINT"]

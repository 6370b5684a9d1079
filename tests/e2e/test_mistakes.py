"""Everyday mistakes and what MiniDB answers them, on both protocols: the exact message (the
same over :7205 and Flight SQL), the gRPC status it travels with, and none of the engine's
internals (its error categories, Arrow's type names, Rust debug formatting, the catalog name)."""

from __future__ import annotations

import pytest

from conftest import flight_error, module_server, text_answer

SETUP = [
    "CREATE DATABASE shop;",
    "CREATE TABLE shop.orders (id INT PRIMARY KEY, qty INT NOT NULL, note VARCHAR(5));",
    "INSERT INTO shop.orders VALUES (1, 2, 'a');",
]

#: (statement, message, gRPC status as ADBC reports it, SQLSTATE). A message ending in `…` is a
#: prefix.
MISTAKES = [
    ("SELEC * FROM shop.orders",
     "syntax error at line 1, column 1: expected an SQL statement, found SELEC\nSELEC * FROM shop.orders\n^",
     "INVALID_ARGUMENT", "42601"),
    ("SELECT 1 FROM",
     "syntax error at line 1, column 14: expected identifier, found the end of the statement\nSELECT 1 FROM\n             ^",
     "INVALID_ARGUMENT", "42601"),
    ("SELECT 'unterminated",
     "syntax error at line 1, column 8: unterminated string literal\nSELECT 'unterminated\n       ^",
     "INVALID_ARGUMENT", "42601"),
    ("CREATE TABLE 1bad (id INT)",
     "syntax error at line 1, column 14: expected identifier, found 1\nCREATE TABLE 1bad (id INT)\n             ^",
     "INVALID_ARGUMENT", "42601"),
    ("SELECT 1/0", "division by zero", "INVALID_ARGUMENT", "22012"),
    ("SELECT * FROM shop.ordrs", "table 'shop.ordrs' does not exist", "NOT_FOUND", "42P01"),
    ("SELECT * FROM nosuchdb.t", "table 'nosuchdb.t' does not exist", "NOT_FOUND", "42P01"),
    ("SELECT * FROM shop.ordrs VERSION AS OF 1", "table 'shop.ordrs' does not exist", "NOT_FOUND", "42P01"),
    ("DROP TABLE shop.nothing", "table 'shop.nothing' does not exist", "NOT_FOUND", "42P01"),
    ("USE nosuchdb", "database 'nosuchdb' does not exist", "NOT_FOUND", "3D000"),
    ("SELECT nope FROM shop.orders", "column 'nope' does not exist (did you mean 'note'?)", "INVALID_ARGUMENT", "42703"),
    ("DELETE FROM shop.orders WHERE nope = 1", "column 'nope' does not exist (did you mean 'note'?)",
     "INVALID_ARGUMENT", "42703"),
    ("INSERT INTO shop.orders (id, nope) VALUES (9, 1)", "column 'nope' does not exist (did you mean 'note'?)",
     "INVALID_ARGUMENT", "42703"),
    ("SELECT nosuchfn(1)", "function 'nosuchfn' does not exist…", "INVALID_ARGUMENT", "42883"),
    ("SELECT sum(note) FROM shop.orders",
     "function sum(VARCHAR) does not exist: no form of sum takes VARCHAR arguments", "INVALID_ARGUMENT", "42883"),
    ("SELECT 'a' + 1", "cannot coerce arithmetic expression VARCHAR + BIGINT to valid types", "INVALID_ARGUMENT", "42883"),
    ("SELECT id FROM shop.orders GROUP BY qty",
     "column 'id' must appear in the GROUP BY clause or be used in an aggregate function", "INVALID_ARGUMENT", "42803"),
    ("SELECT CAST('x' AS BIGINT)", "invalid value 'x' for BIGINT", "INVALID_ARGUMENT", "22P02"),
    ("SELECT * FROM shop.orders WHERE id = 'abc'", "invalid value 'abc' for INT", "INVALID_ARGUMENT", "22P02"),
    ("SELECT DATE '2024-13-45'", "invalid value '2024-13-45' for DATE", "INVALID_ARGUMENT", "22P02"),
    ("INSERT INTO shop.orders VALUES (1, 3, 'b')", "duplicate key violates PRIMARY KEY (id): (1) already exists",
     "INVALID_ARGUMENT", "23505"),
    ("INSERT INTO shop.orders VALUES (2, NULL, 'b')", "column 'qty' is NOT NULL: NULL not allowed",
     "INVALID_ARGUMENT", "23502"),
    ("INSERT INTO shop.orders VALUES ('x', 1, 'c')", "value x does not fit column 'id' (INT)", "INVALID_ARGUMENT", "22P02"),
    ("INSERT INTO shop.orders VALUES (3, 1, 'toolongvalue')",
     "value 'toolongvalue' is too long for column 'note' (VARCHAR(5)): 12 characters", "INVALID_ARGUMENT", "22001"),
    ("UPDATE shop.orders SET qty = 'many'", "value many does not fit column 'qty' (INT)", "INVALID_ARGUMENT", "22P02"),
    ("CREATE TABLE shop.orders (id INT)", "table 'shop.orders' already exists", "ALREADY_EXISTS", "42P07"),
    ("CREATE DATABASE shop", "database 'shop' already exists", "ALREADY_EXISTS", "42P04"),
    ("CREATE TABLE shop.bad (id INTEGR)", "not supported: column type INTEGR", "NOT_IMPLEMENTED", "0A000"),
    ("INSERT INTO shop.orders (id, qty) VALUES (5, 1) ON DUPLICATE KEY UPDATE qty = 2",
     "not supported: INSERT … ON DUPLICATE KEY UPDATE (use ON CONFLICT)", "NOT_IMPLEMENTED", "0A000"),
    ("MERGE INTO shop.orders o USING (SELECT 1 AS id UNION ALL SELECT 1) AS s ON o.id = s.id "
     "WHEN MATCHED THEN DELETE",
     "MERGE cannot affect a row a second time: a row of shop.orders matches more than one source "
     "row (make the source unique on the ON columns)", "INVALID_ARGUMENT", "21000"),
    ("ALTER TABLE shop.orders RENAME TO purchases",
     "not supported: ALTER TABLE shop.orders RENAME TO purchases (ALTER TABLE supports SET TBLPROPERTIES, "
     "ADD COLUMN, DROP COLUMN, RENAME COLUMN and ALTER COLUMN … TYPE, SET/DROP NOT NULL, SET/DROP DEFAULT)",
     "NOT_IMPLEMENTED", "0A000"),
    ("ALTER TABLE shop.orders DROP COLUMN id",
     "cannot drop column 'id' of shop.orders: it is in the table's PRIMARY KEY", "INVALID_ARGUMENT", "42000"),
    ("ALTER TABLE shop.orders ALTER COLUMN qty TYPE SMALLINT",
     "column 'qty' of shop.orders cannot change from INT to SMALLINT: a type changes only to a wider one "
     "(a smaller integer to a larger one, to DOUBLE or to a DECIMAL with room for its digits; REAL to "
     "DOUBLE; DECIMAL to more digits; DATE to TIMESTAMP)", "INVALID_ARGUMENT", "42000"),
    ("SELECT * FROM shop.orders VERSION AS OF 99", "table 'shop.orders' has no version 99: versions 0 to 1",
     "NOT_FOUND", "22023"),
    ("CREATE INDEX i ON shop.orders (nope)", "cannot create index i on orders: column 'nope' does not exist",
     "INVALID_ARGUMENT", "42703"),
    ("CANCEL QUERY 99999", "no running statement has query_id 99999 (sys.queries lists them)", "INVALID_ARGUMENT", "42000"),
    ("INSERT INTO sys.db_metadata VALUES ('x', 1)",
     "'sys.db_metadata' is a system table: it can be read, not changed", "INVALID_ARGUMENT", "42501"),
    ("DROP DATABASE default", "the default database cannot be dropped", "INVALID_ARGUMENT", "42000"),
    ("SELECT * FROM shop.orders LIMIT -1", "LIMIT must be >= 0, '-1' was provided", "INVALID_ARGUMENT", "42000"),
]

#: What never reaches a user: engine error categories, Arrow type names, debug formatting.
INTERNALS = ["Error(", "Arrow error", "DataFusion", "Error during planning", "Execution error", "Schema error",
             "Int64(", "Utf8", "minidb.", "ParserError", "External error", "internal error"]


def matches(message: str, expected: str) -> bool:
    if expected.endswith("…"):
        return message.startswith(expected[:-1])
    return message == expected


@pytest.fixture(scope="module")
def shop(tmp_path_factory, request):
    """One server for the whole table of mistakes (none of them changes anything)."""
    with module_server(tmp_path_factory, request, "mistakes", SETUP) as server:
        yield server


@pytest.mark.parametrize("sql,expected,status,sqlstate", MISTAKES, ids=[m[0][:40] for m in MISTAKES])
def test_a_mistake_is_answered_in_the_users_words_on_both_protocols(shop, sql, expected, status, sqlstate):
    answer = ""
    # Over :7205 an open quote continues the statement onto the next line instead.
    if sql.count("'") % 2 == 0:
        answer = text_answer(shop, sql)
        assert answer.startswith(f"ERROR {sqlstate}: "), answer
        assert matches(answer[len(f"ERROR {sqlstate}: "):], expected), answer

    error = flight_error(shop, sql)
    reported = str(error)
    # ADBC's text: `<STATUS>: [FlightSQL] <message> (<code>; <call>)`.
    assert reported.startswith(f"{status}: [FlightSQL] "), reported
    message = reported[len(f"{status}: [FlightSQL] "):].rsplit(" (", 1)[0]
    assert matches(message, expected), reported
    assert (b"sqlstate", sqlstate.encode()) in error.details, error.details
    for internal in INTERNALS:
        assert internal not in answer and internal not in message, (internal, answer, reported)


def test_version_names_minidb_and_its_engine(shop):
    text = shop.text()
    try:
        answer = text.ok("SELECT version();")
    finally:
        text.close()
    assert "MiniDB 0.1.0 (Apache DataFusion " in answer, answer

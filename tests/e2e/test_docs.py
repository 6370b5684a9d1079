"""What docs/sql.md says MiniDB does not support, checked against the server on both protocols.

The page's list "Not supported yet (each answers `not supported: …`): …" is parsed and must name
exactly the claims this test has statements for, so the two cannot drift apart; the other
"not supported" sentences of the page are named here by a phrase each, and every occurrence of
"not supported" on the page must belong to one of them. Each statement must be refused over
:7205 with `ERROR 0A000: not supported: …` and over Flight SQL with the same message, gRPC
UNIMPLEMENTED and SQLSTATE 0A000 in the error's details. The few claims the server refuses with
another error are listed apart and only checked to be refused."""

from __future__ import annotations

import re

import pytest

from conftest import REPO, flight_error, module_server, text_answer

SQL_MD = REPO / "docs" / "sql.md"

SETUP = [
    "CREATE DATABASE docs;",
    "CREATE TABLE docs.t (id INT PRIMARY KEY, v VARCHAR);",
    "CREATE TABLE docs.u (id INT, w VARCHAR);",
    "INSERT INTO docs.t VALUES (1, 'a');",
    "INSERT INTO docs.u VALUES (1, 'b');",
    "CREATE VIEW docs.v AS SELECT * FROM docs.t;",
]

#: The list "Not supported yet (each answers `not supported: …`): …" of docs/sql.md, item by
#: item as written there, with statements that use each item.
NOT_SUPPORTED_YET = {
    "`CHECK` constraints": [
        "CREATE TABLE docs.c1 (id INT CHECK (id > 0))",
        "CREATE TABLE docs.c2 (id INT, CHECK (id > 0))",
    ],
    "`ALTER TABLE … ADD FOREIGN KEY` (foreign keys are declared by `CREATE TABLE`)": [
        "ALTER TABLE docs.u ADD FOREIGN KEY (id) REFERENCES docs.t (id)",
        "ALTER TABLE docs.u ADD CONSTRAINT u_t FOREIGN KEY (id) REFERENCES docs.t (id)",
    ],
    "deferrable constraints": [
        "CREATE TABLE docs.f1 (id INT, FOREIGN KEY (id) REFERENCES docs.t (id) DEFERRABLE INITIALLY DEFERRED)",
        "CREATE TABLE docs.f2 (id INT REFERENCES docs.t (id) DEFERRABLE)",
    ],
    "partitioning by several columns": [
        "CREATE TABLE docs.p1 (a INT, b INT) PARTITION BY HASH (a, b)",
        "CREATE TABLE docs.p2 (a INT, b INT) PARTITION BY RANGE (a, b)",
    ],
    "partitioning by LIST": ["CREATE TABLE docs.p3 (a INT) PARTITION BY LIST (a)"],
    "`INSERT … RETURNING`": ["INSERT INTO docs.t VALUES (9, 'r') RETURNING id"],
    "savepoints": ["SAVEPOINT s1", "RELEASE SAVEPOINT s1", "ROLLBACK TO SAVEPOINT s1"],
}

#: The other sentences of docs/sql.md that say something is not supported (a phrase of each, as
#: the page words it), with statements it must refuse with `not supported: …` and 0A000.
NOT_SUPPORTED_ELSEWHERE = {
    "Not supported, with the reason in the error: `TIME`": [
        "CREATE TABLE docs.time1 (a TIME)",
        "CREATE TABLE docs.uuid1 (a UUID)",
        "CREATE TABLE docs.unsigned1 (a INT UNSIGNED)",
        "CREATE TABLE docs.unsigned2 (a BIGINT UNSIGNED)",
        "CREATE TABLE docs.interval1 (a INTERVAL)",
    ],
    "Not supported: materialized and temporary views": [
        "CREATE MATERIALIZED VIEW docs.mv AS SELECT * FROM docs.t",
        "CREATE TEMPORARY VIEW docs.tv AS SELECT * FROM docs.t",
        "SELECT * FROM docs.v VERSION AS OF 0",
        "SELECT * FROM docs.v TIMESTAMP AS OF '2026-01-01 00:00:00'",
    ],
    "`UPDATE … FROM`, `DELETE … USING` and `RETURNING` are not supported": [
        "UPDATE docs.t SET v = u.w FROM docs.u AS u WHERE t.id = u.id",
        "DELETE FROM docs.t USING docs.u WHERE t.id = docs.u.id",
        "UPDATE docs.t SET v = 'x' RETURNING id",
        "DELETE FROM docs.t WHERE id = 5 RETURNING id",
    ],
    "`ON CONFLICT ON CONSTRAINT` and MySQL's `ON DUPLICATE KEY UPDATE` are not supported": [
        "INSERT INTO docs.t VALUES (1, 'b') ON CONFLICT ON CONSTRAINT t_pkey DO NOTHING",
        "INSERT INTO docs.t VALUES (1, 'b') ON DUPLICATE KEY UPDATE v = 'b'",
    ],
    "Other `ALTER TABLE` forms (`RENAME TO`, `ADD CONSTRAINT`, …) are not supported": [
        "ALTER TABLE docs.t RENAME TO t2",
        "ALTER TABLE docs.t ADD CONSTRAINT v_unique UNIQUE (v)",
    ],
    "`DROP COLUMN … CASCADE` is not supported": ["ALTER TABLE docs.t DROP COLUMN v CASCADE"],
    "a second one is not supported by `CREATE TABLE`": [
        "CREATE TABLE docs.two (a INT REFERENCES docs.t ON DELETE CASCADE, b INT REFERENCES docs.t ON DELETE SET NULL)",
    ],
    "a table referencing itself is not supported": [
        "CREATE TABLE docs.tree (id INT PRIMARY KEY, parent INT REFERENCES docs.tree (id))",
    ],
}

#: What the page says is not supported but the server refuses with another error (the page says
#: so, or names no message): only checked to be refused.
REFUSED_OTHERWISE = {
    "the `CREATE RECURSIVE VIEW` form (a syntax error": [
        "CREATE RECURSIVE VIEW docs.rv (n) AS SELECT 1",
    ],
}

#: Phrases with "not supported" that claim no refusal of their own.
NO_CLAIM = [
    "## Not supported yet",  # the heading of the list
    "Not supported yet (each answers `not supported: …`):",  # the list, parsed below
    "`0A000` not supported",  # the table of SQLSTATE codes
]


def normalized(text: str) -> str:
    """Whitespace (line breaks and indentation included) as single spaces."""
    return " ".join(text.split())


def page() -> str:
    return normalized(SQL_MD.read_text(encoding="utf-8"))


def parsed_not_supported_yet() -> list[str]:
    """The items of the page's "Not supported yet (each answers …): a, b, c." sentence."""
    found = re.findall(r"Not supported yet \(each answers `not supported: …`\): (.*?)\.(?: |$)",
                       page())
    assert len(found) == 1, f"docs/sql.md should have one 'Not supported yet' list: {found}"
    return [item.strip() for item in found[0].split(", ")]


def test_the_not_supported_list_of_the_docs_is_the_one_tested():
    assert set(parsed_not_supported_yet()) == set(NOT_SUPPORTED_YET)


def test_every_not_supported_sentence_of_the_docs_is_tested():
    text = page()
    phrases = [*NOT_SUPPORTED_ELSEWHERE, *REFUSED_OTHERWISE, *NO_CLAIM]
    for phrase in phrases:
        assert text.count(normalized(phrase)) == 1, f"docs/sql.md no longer says: {phrase}"
    covered = sum(normalized(p).lower().count("not supported") for p in phrases)
    assert text.lower().count("not supported") == covered, (
        "docs/sql.md says 'not supported' somewhere this test does not check")


def cases(claims: dict[str, list[str]]) -> list[tuple[str, str]]:
    return [(claim, sql) for claim, statements in claims.items() for sql in statements]


REFUSED = cases(NOT_SUPPORTED_YET) + cases(NOT_SUPPORTED_ELSEWHERE)


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory, request):
    """One server for every claim (none of the statements changes anything)."""
    with module_server(tmp_path_factory, request, "docs", SETUP) as server:
        yield server


@pytest.mark.parametrize("claim,sql", REFUSED, ids=[sql[:50] for _, sql in REFUSED])
def test_what_the_docs_call_not_supported_is_refused_as_such_on_both_protocols(
        docs_server, claim, sql):
    answer = text_answer(docs_server, sql)
    assert answer.startswith("ERROR 0A000: not supported: "), (claim, answer)

    error = flight_error(docs_server, sql)
    reported = str(error)
    # ADBC's text: `<STATUS>: [FlightSQL] <message> (<code>; <call>)`.
    assert reported.startswith("NOT_IMPLEMENTED: [FlightSQL] not supported: "), (claim, reported)
    message = reported[len("NOT_IMPLEMENTED: [FlightSQL] "):].rsplit(" (", 1)[0]
    assert message == answer[len("ERROR 0A000: "):], (answer, reported)
    assert (b"sqlstate", b"0A000") in error.details, error.details


@pytest.mark.parametrize("claim,sql", cases(REFUSED_OTHERWISE),
                         ids=[sql[:50] for _, sql in cases(REFUSED_OTHERWISE)])
def test_what_the_docs_call_not_supported_otherwise_is_refused(docs_server, claim, sql):
    assert text_answer(docs_server, sql).startswith("ERROR "), claim
    flight_error(docs_server, sql)

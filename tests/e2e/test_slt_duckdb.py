"""MiniDB's sqllogictest files whose SQL is standard, run through DuckDB in process: their
expected results are DuckDB's answers too, so they check MiniDB against DuckDB (the harness in
tests/sqllogictest.rs checks MiniDB against the same files)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

SLT = Path(__file__).resolve().parents[1] / "slt"

#: Files written in SQL both engines speak.
STANDARD_FILES = ["subqueries.slt"]


def records(path: Path):
    """(kind, header, sql, expected lines) per record: kind is `statement` or `query`."""
    blocks = path.read_text().split("\n\n")
    for block in blocks:
        lines = [l for l in block.strip("\n").split("\n") if not l.startswith("#")]
        if not lines:
            continue
        header, body = lines[0].split(), lines[1:]
        if header[0] == "statement":
            yield header, "\n".join(body), []
        elif header[0] == "query":
            split = body.index("----")
            yield header, "\n".join(body[:split]), body[split + 1 :]


def render(value, letter: str) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if letter == "R":
        return f"{float(value):.3f}"
    if isinstance(value, (float, Decimal)) and letter == "I":
        return str(int(value))
    return str(value)


@pytest.mark.parametrize("name", STANDARD_FILES)
def test_expected_results_are_duckdbs(name):
    db = duckdb.connect()
    checked = 0
    for header, sql, expected in records(SLT / name):
        if header[0] == "statement":
            if header[1] == "ok":
                db.execute(sql)
            else:
                with pytest.raises(duckdb.Error):
                    db.execute(sql).fetchall()
            continue
        letters = header[1]
        rows = [
            " ".join(render(v, letters[i]) for i, v in enumerate(row))
            for row in db.execute(sql).fetchall()
        ]
        if "rowsort" in header:
            rows.sort()
        assert rows == expected, f"DuckDB answers differently:\n{sql}"
        checked += 1
    assert checked > 10

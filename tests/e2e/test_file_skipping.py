"""File skipping: per-file min/max statistics in the Delta log let scans skip whole files."""

from __future__ import annotations

import re

import pytest

from conftest import parse_ascii_table

FILES = 10
ROWS_PER_FILE = 20
SCAN_RE = re.compile(r"DeltaScanExec: .*files=(\d+)/(\d+) \((\d+) skipped by statistics\)")


@pytest.fixture
def ranged(text):
    text.ok("CREATE DATABASE skip;")
    text.ok("USE skip;")
    text.ok("CREATE TABLE t (id INT NOT NULL, label VARCHAR(20), day DATE);")
    for f in range(FILES):
        values = ", ".join(
            f"({f * 1000 + i}, 'file{f}-row{i}', DATE '2024-01-01' + INTERVAL '{f} day')"
            for i in range(ROWS_PER_FILE)
        )
        assert text.query(f"INSERT INTO t VALUES {values};") == f"Inserted {ROWS_PER_FILE} row(s) into t"
    return text


def scan_counts(text, sql: str) -> tuple[int, int, int]:
    plan = text.query(f"EXPLAIN {sql};")
    m = SCAN_RE.search(plan)
    assert m, f"no DeltaScanExec line in plan:\n{plan}"
    return tuple(int(g) for g in m.groups())


def test_each_insert_is_one_file(ranged, server):
    assert len(list((server.data_dir / "skip" / "t").glob("*.parquet"))) == FILES
    assert scan_counts(ranged, "SELECT * FROM t") == (FILES, FILES, 0)


def test_point_lookup_reads_one_file(ranged):
    assert scan_counts(ranged, "SELECT * FROM t WHERE id = 7013") == (1, FILES, FILES - 1)
    header, rows = parse_ascii_table(ranged.query("SELECT * FROM t WHERE id = 7013;"))
    assert header == ["id", "label", "day"]
    assert rows == [["7013", "file7-row13", "2024-01-08"]]


def test_range_and_misses(ranged):
    # File f holds ids f*1000 .. f*1000+19, so only files 3 and 4 overlap 2500..4005.
    assert scan_counts(ranged, "SELECT id FROM t WHERE id BETWEEN 2500 AND 4005") == (2, FILES, 8)
    _, rows = parse_ascii_table(ranged.query("SELECT count(*) FROM t WHERE id BETWEEN 2500 AND 4005;"))
    assert rows == [["26"]]  # 3000..3019 and 4000..4005
    # Between two files' ranges, and beyond all of them: nothing to read.
    assert scan_counts(ranged, "SELECT * FROM t WHERE id = 5500") == (0, FILES, FILES)
    assert scan_counts(ranged, "SELECT * FROM t WHERE id > 100000") == (0, FILES, FILES)
    _, rows = parse_ascii_table(ranged.query("SELECT count(*) FROM t WHERE id = 5500;"))
    assert rows == [["0"]]


def test_skipping_on_dates_and_strings(ranged):
    assert scan_counts(ranged, "SELECT * FROM t WHERE day = DATE '2024-01-05'") == (1, FILES, 9)
    assert scan_counts(ranged, "SELECT * FROM t WHERE label = 'file9-row0'") == (1, FILES, 9)
    _, rows = parse_ascii_table(ranged.query("SELECT id FROM t WHERE label = 'file9-row0';"))
    assert rows == [["9000"]]


def test_timestamps_at_the_ends_of_their_range(text, conn):
    """Timestamps from year 1 to 9999 (microseconds, as Delta stores them) reach the files'
    statistics and skip files, and travel as ADBC parameters both ways."""
    import datetime as dt

    text.ok("CREATE TABLE edges (id INT, t TIMESTAMP);")
    for i, literal in enumerate(["0001-01-01 00:00:00", "2024-06-01 12:00:00", "9999-12-31 23:59:59.999999"]):
        assert text.query(f"INSERT INTO edges VALUES ({i}, TIMESTAMP '{literal}');") == "Inserted into edges"
    assert scan_counts(text, "SELECT id FROM edges WHERE t > TIMESTAMP '9000-01-01'") == (1, 3, 2)
    assert scan_counts(text, "SELECT id FROM edges WHERE t < TIMESTAMP '1000-01-01'") == (1, 3, 2)
    with conn.cursor() as cur:
        latest = dt.datetime(9999, 12, 31, 23, 59, 59, 999999)
        earliest = dt.datetime(1, 1, 1)
        cur.execute("INSERT INTO edges VALUES (?, ?)", parameters=(3, latest))
        cur.execute("SELECT id FROM edges WHERE t = ? ORDER BY id", parameters=(latest,))
        assert cur.fetchall() == [(2,), (3,)]
        cur.execute("SELECT min(t), max(t) FROM edges")
        assert cur.fetchall() == [(earliest, latest)]
        cur.execute("SELECT id FROM edges WHERE t < ?", parameters=(dt.datetime(2, 1, 1),))
        assert cur.fetchall() == [(0,)]

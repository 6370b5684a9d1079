"""Damaged tables: a data file, deletion vector, checkpoint or commit that storage no longer
holds as the log describes it fails its own table with the object and the problem named (gRPC
DATA_LOSS over Flight SQL), leaves every other table serving, is refused by OPTIMIZE, and
`FSCK REPAIR TABLE [DRY RUN]` reports it and repairs what can be repaired, after which delta-rs
reads what MiniDB reads.

The damage is done to files on local disk; the object store behaves alike on S3."""

from __future__ import annotations

import json
import time

import adbc_driver_manager
import pytest

from conftest import parse_ascii_table
from test_delta_interop import read_delta_rs


def rows(text, sql: str) -> list[list[str]]:
    answer = text.query(sql)
    assert not answer.startswith("ERROR"), f"{sql!r} failed: {answer}"
    return parse_ascii_table(answer)[1]


def added_file(table_dir, version: int) -> str:
    """The data file commit `version` of the table added."""
    commit = table_dir / "_delta_log" / f"{version:020}.json"
    adds = [json.loads(line)["add"] for line in commit.read_text().splitlines() if '"add"' in line]
    assert len(adds) == 1, adds
    return adds[0]["path"]


def wait_for(condition, what: str, seconds: float = 10) -> None:
    """Checkpoints are written in the background, just after their commit."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {seconds} s"
        time.sleep(0.05)


def flip(path, start: int, length: int) -> None:
    data = bytearray(path.read_bytes())
    for i in range(start, start + length):
        data[i] ^= 0xA5
    path.write_bytes(bytes(data))


def truncate(path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def damage_footer(path) -> None:
    # The footer's Thrift just before its 4-byte length and the closing magic.
    flip(path, path.stat().st_size - 60, 50)


def damage_page(path) -> None:
    # Compressed page bytes a third of the way in: the footer stays intact.
    flip(path, path.stat().st_size // 3, 200)


DAMAGES = {
    "missing": (lambda path: path.unlink(), "is missing: the log lists it, storage has no such object"),
    "truncated": (truncate, "bytes where the log says"),
    "footer": (damage_footer, "does not read as Parquet"),
    "page": (damage_page, "does not decode"),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_data_file_is_named_refused_by_optimize_and_removed_by_fsck(server, damage):
    with server.text() as text:
        text.ok("CREATE TABLE t (id BIGINT, s VARCHAR);")
        text.ok("INSERT INTO t SELECT value, 'row ' || value FROM generate_series(1, 50000);")
        text.ok("INSERT INTO t VALUES (-1, 'kept');")
        text.ok("CREATE TABLE other (x INT);")
        text.ok("INSERT INTO other VALUES (7);")
    table_dir = server.data_dir / "default" / "t"
    damaged = added_file(table_dir, 1)
    do, problem = DAMAGES[damage]
    do(table_dir / damaged)
    server.restart(hard=False)

    with server.text() as text:
        answer = text.query("SELECT count(*), sum(id) FROM t;")
        assert answer.startswith(f"ERROR XX001: data file '{damaged}' of table default.t "), answer
        assert problem in answer, answer
        assert "FSCK REPAIR TABLE default.t removes it (and its rows) from the table" in answer
        assert rows(text, "SELECT x FROM other;") == [["7"]]
        # OPTIMIZE reads past the column cache, with DataFusion's Parquet reader: it names the
        # file too.
        optimize = text.query("OPTIMIZE t;")
        assert optimize.startswith(f"ERROR XX001: data file '{damaged}' of table default.t "), optimize
        assert problem in optimize, optimize
        delete = text.query("DELETE FROM t WHERE id % 7 = 100;")
        assert delete.startswith(f"ERROR XX001: data file '{damaged}' of table default.t "), delete
        assert rows(text, "SELECT version FROM sys.table_metadata WHERE table_name = 't';") == [["2"]]

        report = rows(text, "FSCK REPAIR TABLE t DRY RUN;")
        assert len(report) == 1 and report[0][0] == damaged and report[0][2] == "would remove"
        assert problem in report[0][1]
        assert text.query("SELECT sum(id), max(s) FROM t;").startswith("ERROR XX001: data file")

        report = rows(text, "FSCK REPAIR TABLE t;")
        assert [r[0] for r in report] == [damaged] and report[0][2] == "removed"
        assert rows(text, "SELECT id, s FROM t;") == [["-1", "kept"]]
        assert rows(text, "FSCK REPAIR TABLE t;") == []
        assert rows(text, "DESCRIBE HISTORY t;")[0][:3:2] == ["3", "FSCK"]
    assert read_delta_rs(table_dir).to_pylist() == [{"id": -1, "s": "kept"}]


def test_a_damaged_file_fails_a_flight_query_with_data_loss(server):
    with server.text() as text:
        text.ok("CREATE TABLE t (x INT);")
        text.ok("INSERT INTO t VALUES (1);")
    table_dir = server.data_dir / "default" / "t"
    (table_dir / added_file(table_dir, 1)).unlink()
    conn = server.adbc()
    try:
        with conn.cursor() as cur:
            with pytest.raises(adbc_driver_manager.Error, match="of table default.t is missing") as err:
                cur.execute("SELECT * FROM t")
                cur.fetchall()
            assert err.value.status_code == adbc_driver_manager.AdbcStatusCode.IO
    finally:
        conn.close()


@pytest.mark.parametrize("damage", ["checksum", "missing"])
def test_a_damaged_deletion_vector_names_its_data_file(server, damage):
    with server.text() as text:
        text.ok("CREATE TABLE t (id INT);")
        text.ok("INSERT INTO t VALUES (1), (2), (3);")
        text.ok("INSERT INTO t VALUES (4);")
        text.ok("DELETE FROM t WHERE id = 2;")
    table_dir = server.data_dir / "default" / "t"
    first = added_file(table_dir, 1)
    [vector] = table_dir.glob("deletion_vector_*.bin")
    if damage == "checksum":
        flip(vector, vector.stat().st_size - 6, 1)
        problem = f"has a damaged deletion vector '{vector.name}': checksum mismatch"
    else:
        vector.unlink()
        problem = f"has a damaged deletion vector '{vector.name}': the file is missing"
    server.restart(hard=False)

    with server.text() as text:
        answer = text.query("SELECT id FROM t;")
        assert answer.startswith(f"ERROR XX001: data file '{first}' of table default.t {problem}"), answer
        assert rows(text, "FSCK REPAIR TABLE t DRY RUN;") == [[first, problem, "would remove"]]
        assert rows(text, "FSCK REPAIR TABLE t;") == [[first, problem, "removed"]]
        assert rows(text, "SELECT id FROM t;") == [["4"]]
    assert read_delta_rs(table_dir).to_pylist() == [{"id": 4}]


def test_a_damaged_checkpoint_is_read_around_and_fsck_removes_it(server):
    """A checkpoint only summarises commits: while they are in the log, a damaged one (or a
    `_last_checkpoint` that does not parse) is replayed around, and FSCK deletes it so that
    other readers need not; later checkpoints are written as before."""
    with server.text() as text:
        text.ok("CREATE TABLE t (x INT) TBLPROPERTIES ('delta.checkpointInterval' = '3');")
        for x in range(1, 5):
            text.ok(f"INSERT INTO t VALUES ({x});")
        text.ok("CREATE TABLE other (x INT);")
    log = server.data_dir / "default" / "t" / "_delta_log"
    checkpoint = log / f"{3:020}.checkpoint.parquet"
    last = log / "_last_checkpoint"
    wait_for(checkpoint.exists, "the checkpoint of version 3")
    # `_last_checkpoint` is written after the checkpoint: garbage written before it would be
    # overwritten.
    wait_for(last.exists, "_last_checkpoint")
    flip(checkpoint, checkpoint.stat().st_size - 40, 20)
    last.write_text("{garbage")
    server.restart(hard=False)

    with server.text() as text:
        assert rows(text, "SELECT sum(x) FROM t;") == [["10"]]
        report = rows(text, "FSCK REPAIR TABLE t DRY RUN;")
        assert [(r[0], r[2]) for r in report] == [
            (f"_delta_log/{checkpoint.name}", "would delete"),
            ("_delta_log/_last_checkpoint", "would delete"),
        ]
        assert report[0][1].startswith("is a damaged checkpoint: ")
        assert report[1][1].startswith("does not parse: ")
        assert checkpoint.exists() and last.exists()
        assert [r[2] for r in rows(text, "FSCK REPAIR TABLE t;")] == ["deleted", "deleted"]
        assert not checkpoint.exists() and not last.exists()
        assert [x["x"] for x in read_delta_rs(log.parent).to_pylist()] == [1, 2, 3, 4]
        for x in range(5, 7):
            text.ok(f"INSERT INTO t VALUES ({x});")
        assert rows(text, "FSCK REPAIR TABLE t;") == []
        assert rows(text, "SELECT sum(x) FROM t;") == [["21"]]
    wait_for(last.exists, "_last_checkpoint")
    assert json.loads(last.read_text())["version"] == 6
    assert (log / f"{6:020}.checkpoint.parquet").exists()


def test_a_damaged_newest_commit_is_set_aside_by_fsck(server):
    """Nothing rebuilds a damaged commit; when it is the newest, FSCK sets it aside (keeping a
    copy) and the table reads as of the version before, without that commit's changes."""
    with server.text() as text:
        text.ok("CREATE TABLE t (x INT);")
        text.ok("INSERT INTO t VALUES (1);")
        text.ok("INSERT INTO t VALUES (2);")
        text.ok("CREATE TABLE other (x INT);")
        text.ok("INSERT INTO other VALUES (7);")
    table = server.data_dir / "default" / "t"
    commit = table / "_delta_log" / f"{2:020}.json"
    damaged = commit.read_bytes()[:40]
    commit.write_bytes(damaged)
    server.restart(hard=False)
    with server.text() as text:
        for sql in ("SELECT * FROM t;", "OPTIMIZE t;", "VACUUM t;"):
            answer = text.query(sql)
            assert answer.startswith(f"ERROR XX001: corrupt Delta log at 'default/t/_delta_log/{commit.name}'"), answer
            assert "FSCK REPAIR TABLE sets a damaged newest commit aside" in answer, answer
        report = rows(text, "FSCK REPAIR TABLE t DRY RUN;")
        assert [r[0] for r in report] == [f"_delta_log/{commit.name}"]
        assert report[0][1].startswith("is a damaged commit: "), report
        assert report[0][2].startswith("would set aside in _fsck/"), report
        assert commit.read_bytes() == damaged
        report = rows(text, "FSCK REPAIR TABLE t;")
        assert report[0][2].startswith("set aside in _fsck/: the table reads as of the version before"), report
        assert rows(text, "SELECT x FROM t;") == [["1"]]
        assert rows(text, "SELECT x FROM other;") == [["7"]]
        assert rows(text, "FSCK REPAIR TABLE t;") == []
        # Writes go on from the version before; VACUUM keeps the copy.
        text.ok("INSERT INTO t VALUES (3);")
        text.ok("VACUUM t;")
    # The INSERT took the version the damaged commit had.
    assert '"operation":"WRITE"' in commit.read_text()
    assert (table / "_fsck" / commit.name).read_bytes() == damaged
    assert sorted(x["x"] for x in read_delta_rs(table).to_pylist()) == [1, 3]


def test_a_damaged_earlier_commit_cannot_be_repaired_and_says_so(server):
    with server.text() as text:
        text.ok("CREATE TABLE t (x INT);")
        text.ok("INSERT INTO t VALUES (1);")
        text.ok("INSERT INTO t VALUES (2);")
    commit = server.data_dir / "default" / "t" / "_delta_log" / f"{1:020}.json"
    commit.write_bytes(commit.read_bytes()[:40])
    server.restart(hard=False)
    with server.text() as text:
        for sql in ("SELECT * FROM t;", "OPTIMIZE t;", "VACUUM t;"):
            answer = text.query(sql)
            assert answer.startswith(f"ERROR XX001: corrupt Delta log at 'default/t/_delta_log/{commit.name}'"), answer
            assert "an earlier one must be restored from a copy of the table" in answer, answer
        report = rows(text, "FSCK REPAIR TABLE t;")
        assert [(r[0], r[2]) for r in report] == [
            (f"_delta_log/{commit.name}", "kept: later commits build on it; restore it from a copy of the table")
        ]
        assert text.query("SELECT * FROM t;").startswith("ERROR XX001: corrupt Delta log")
    assert commit.stat().st_size == 40

"""OPTIMIZE against the real server: small files and deletion vectors are rewritten without
changing a row, indexes keep answering, peers read the result, and concurrent writers lose
nothing."""

from __future__ import annotations

import threading
import time

from conftest import parse_ascii_table
from test_file_skipping import scan_counts
from test_indexes import index_use
from test_mor import commits, execute, peer_rows, query


def optimize(text, table: str) -> dict[str, str]:
    header, rows = parse_ascii_table(text.query(f"OPTIMIZE TABLE {table};"))
    assert len(rows) == 1, rows
    return dict(zip(header, rows[0]))


def live_files(table_dir) -> set[str]:
    live: set[str] = set()
    for actions in commits(table_dir):
        for action in actions:
            if "add" in action:
                live.add(action["add"]["path"])
            elif "remove" in action:
                live.discard(action["remove"]["path"])
    return live


def test_optimize_packs_files_purges_deletion_vectors_and_keeps_every_row(server, text, conn):
    text.ok("CREATE TABLE t (id INT PRIMARY KEY, k INT, v VARCHAR);")
    text.ok("CREATE INDEX idx_k ON t (k);")
    for f in range(6):
        values = ", ".join(f"({f * 100 + i}, {(f * 100 + i) * 7 % 600}, 'v{i}')" for i in range(100))
        text.ok(f"INSERT INTO t VALUES {values};")
    assert text.query("DELETE FROM t WHERE id % 10 = 3;") == "Deleted 60 row(s) from t"
    assert text.query("UPDATE t SET v = 'new' WHERE id < 50;") == "Updated 45 row(s) in t"
    cur = conn.cursor()
    before = query(cur, "SELECT id, k, v FROM t ORDER BY id")
    table = server.data_dir / "default" / "t"
    assert len(live_files(table)) == 7
    assert "deletion vectors applied in 6 files" in text.query("EXPLAIN SELECT * FROM t;")

    report = optimize(text, "t")
    assert report["table_name"] == "default.t"
    assert (report["files_removed"], report["files_added"]) == ("7", "1")
    assert report["rows_purged"] == "105"  # 60 deleted + 45 old versions of updated rows
    assert report["deletion_vectors_removed"] == "6"

    assert query(cur, "SELECT id, k, v FROM t ORDER BY id") == before
    assert len(live_files(table)) == 1
    assert "deletion vectors" not in text.query("EXPLAIN SELECT * FROM t;")
    actions = commits(table)[-1]
    info = actions[0]["commitInfo"]
    assert info["operation"] == "OPTIMIZE" and info["operationMetrics"]["numRemovedFiles"] == 7
    changes = [a[kind]["dataChange"] for a in actions for kind in ("add", "remove") if kind in a]
    assert changes and not any(changes)
    add = next(a["add"] for a in actions if "add" in a)
    assert "deletionVector" not in add or add["deletionVector"] is None
    assert add["tags"] and any(t.startswith("minidb.index.") for t in add["tags"])

    # The new file has segments: the index answers from it, and keys stay unique.
    key = (124 * 7) % 600
    assert index_use(text, f"SELECT * FROM t WHERE k = {key}") == ("idx_k", 1, 1, 1, 0)
    assert query(cur, f"SELECT id FROM t WHERE k = {key}") == [(124,)]
    assert "duplicate" in text.query("INSERT INTO t VALUES (1, 0, 'dup');").lower()

    # Peers read the optimized table with the same rows.
    for name, rows in peer_rows(table).items():
        assert sorted(rows) == sorted(before), name

    # Nothing left to do: no commit.
    version = len(commits(table))
    assert optimize(text, "t")["files_removed"] == "0"
    assert len(commits(table)) == version


def test_optimize_survives_restart_and_concurrent_inserts(server, text):
    text.ok("CREATE TABLE c (id INT, w INT);")
    for i in range(20):
        text.ok(f"INSERT INTO c VALUES ({i}, 0);")
    stop = threading.Event()
    inserted: list[int] = []
    errors: list[str] = []

    def writer():
        with server.text() as other:
            n = 1000
            while not stop.is_set():
                answer = other.query(f"INSERT INTO c VALUES ({n}, 1);")
                if answer == "Inserted into c":
                    inserted.append(n)
                else:
                    errors.append(answer)
                n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(3):
            report = optimize(text, "c")
            assert int(report["files_removed"]) >= 2, report
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    assert inserted
    expected = sorted(list(range(20)) + inserted)
    server.restart()
    with server.text() as again:
        _, rows = parse_ascii_table(again.query("SELECT id FROM c ORDER BY id;"))
    assert [int(r[0]) for r in rows] == expected


def test_optimize_and_a_delete_of_the_same_rows_never_both_win(server, text, conn):
    """A DELETE racing OPTIMIZE either lands before it (OPTIMIZE then fails or purges the rows)
    or after it (on the new file); the rows are gone either way and nothing else is."""
    text.ok("CREATE TABLE d (id INT);")
    for i in range(10):
        text.ok(f"INSERT INTO d VALUES ({2 * i}), ({2 * i + 1});")
    results: list[str] = []

    def deleter():
        with server.text() as other:
            results.append(other.query("DELETE FROM d WHERE id % 2 = 0;"))

    thread = threading.Thread(target=deleter)
    thread.start()
    answer = text.query("OPTIMIZE TABLE d;")
    thread.join()
    assert results == ["Deleted 10 row(s) from d"]
    assert "files_removed" in answer or "conflict" in answer, answer
    cur = conn.cursor()
    assert query(cur, "SELECT id FROM d ORDER BY id") == [(i,) for i in range(1, 20, 2)]
    assert execute(cur, "DELETE FROM d WHERE id = 1") == 1


def test_optimize_carries_over_deletes_committed_while_it_rewrote(server, text, conn):
    """A DELETE committed between OPTIMIZE's read and its commit does not make OPTIMIZE fail:
    the rows it deleted are marked deleted in the new file too (a file it emptied, entirely),
    and the next OPTIMIZE purges them."""
    text.ok("CREATE TABLE r (id INT PRIMARY KEY, v VARCHAR);")
    for f in range(4):
        values = ", ".join(f"({f * 100 + i}, 'v{i}')" for i in range(100))
        text.ok(f"INSERT INTO r VALUES {values};")
    text.ok("DELETE FROM r WHERE id % 10 = 1;")

    # The transaction holds the table's writer lock from its DELETE until COMMIT, so OPTIMIZE
    # rewrites the files as they were and waits to commit.
    with server.text() as tx, server.text() as watcher:
        tx.ok("BEGIN;")
        assert tx.query("DELETE FROM r WHERE id < 100 OR id % 7 = 0;") == \
            "Deleted 129 row(s) from r"
        answers: list[str] = []
        optimizer = threading.Thread(target=lambda: answers.append(text.query("OPTIMIZE TABLE r;")))
        optimizer.start()
        deadline = time.monotonic() + 30
        while "OPTIMIZE" not in watcher.query("SELECT query_text FROM sys.queries;"):
            assert time.monotonic() < deadline, "OPTIMIZE never started"
            time.sleep(0.05)
        time.sleep(1.0)
        assert tx.query("COMMIT;") == "Transaction committed"
        optimizer.join()
    header, rows = parse_ascii_table(answers[0])
    report = dict(zip(header, rows[0]))
    assert (report["files_removed"], report["files_added"]) == ("3", "1"), report
    assert report["rows_purged"] == "30", report  # the first DELETE's; the second's carry over

    expected = [(i, f"v{i % 100}") for i in range(100, 400) if i % 10 != 1 and i % 7 != 0]
    cur = conn.cursor()
    assert query(cur, "SELECT id, v FROM r ORDER BY id") == expected
    assert "deletion vectors applied in 1 files" in text.query("EXPLAIN SELECT * FROM r;")
    assert query(cur, "SELECT id FROM r WHERE id = 106") == [(106,)]  # by the primary key
    assert query(cur, "SELECT id FROM r WHERE id = 105") == []
    for name, peer in peer_rows(server.data_dir / "default" / "r").items():
        assert sorted(peer) == expected, name

    report = optimize(text, "r")
    assert (report["files_removed"], report["files_added"]) == ("1", "1"), report
    assert query(cur, "SELECT id, v FROM r ORDER BY id") == expected
    assert "deletion vectors" not in text.query("EXPLAIN SELECT * FROM r;")


def test_zorder_clusters_every_column_so_statistics_skip_files(server, text, conn):
    """Three independent columns: before Z-ORDER a point predicate on any column reads nearly
    every file; after (~66 files, two bits of clustering per column), statistics skip most
    files for each column alone."""
    text.ok("CREATE TABLE z (a INT, b INT, c INT, pad VARCHAR) TBLPROPERTIES ('delta.targetFileSize' = '16000');")
    cur = conn.cursor()
    # a, b, c: three unrelated permutations of 0..63999, so no column predicts another.
    for part in range(16):
        execute(
            cur,
            "INSERT INTO z SELECT (value * 4001 + 3) % 64000, (value * 1031) % 64000, "
            f"(value * 2027 + 7) % 64000, 'p' || value FROM generate_series({part * 4000}, {part * 4000 + 3999})",
        )
    execute(cur, "INSERT INTO z SELECT (value * 3) % 64000, (value * 7) % 64000, (value * 11) % 64000, 'q' "
                 "FROM generate_series(0, 2999)")
    before = query(cur, "SELECT a, b, c, pad FROM z ORDER BY pad, a")
    predicates = ["a = 12345", "b = 23456", "c = 34567"]
    skipped_before = [scan_counts(text, f"SELECT * FROM z WHERE {p}") for p in predicates]

    report = optimize(text, "z ZORDER BY (a, b, c)")
    assert int(report["files_removed"]) == 17
    files = int(report["files_added"])
    assert files >= 60, report
    assert query(cur, "SELECT a, b, c, pad FROM z ORDER BY pad, a") == before
    info = commits(server.data_dir / "default" / "z")[-1][0]["commitInfo"]
    assert info["operationParameters"]["zOrderBy"] == ["a", "b", "c"]
    for predicate, (_, total_before, skipped) in zip(predicates, skipped_before):
        assert skipped <= total_before // 4, (predicate, skipped_before)
        read, total, skipped = scan_counts(text, f"SELECT * FROM z WHERE {predicate}")
        assert total == files
        assert skipped >= 0.6 * files, (predicate, read, total)
        assert query(cur, f"SELECT count(*) FROM z WHERE {predicate}") == query(
            cur, f"SELECT count(*) FROM (SELECT a, b, c FROM z) WHERE {predicate}"
        )
    assert "not a column" in text.query("OPTIMIZE TABLE z ZORDER BY (nope);")

"""Background compaction against the real server: under concurrent inserts, updates and
deletes it compacts the table again and again without losing or duplicating a row, user
statements never fail because of it, peers read the result, and SIGTERM stops it cleanly."""

from __future__ import annotations

import random
import threading
import time

from conftest import parse_ascii_table
from test_mor import peer_rows

WRITERS, STEPS = 4, 120


def successful_compactions(text) -> int:
    _, rows = parse_ascii_table(
        text.query("SELECT count(*) AS n FROM sys.compactions WHERE error IS NULL AND version IS NOT NULL;")
    )
    return int(rows[0][0])


def test_background_compaction_loses_nothing_under_concurrent_writes(start_server):
    args = [
        "--compaction-interval-ms", "100",
        "--compaction-min-small-files", "3",
        "--compaction-deleted-ratio", "0.05",
    ]  # fmt: skip
    server = start_server(args)
    try:
        with server.text() as setup:
            setup.ok("CREATE TABLE t (k INT PRIMARY KEY, v INT NOT NULL, w VARCHAR);")
        models: list[dict[int, int]] = [{} for _ in range(WRITERS)]
        failures: list[BaseException] = []

        def work(n: int) -> None:
            rng = random.Random(n)
            model = models[n]
            try:
                with server.text() as text:
                    for step in range(STEPS):
                        key = n * 100_000 + step
                        text.ok(f"INSERT INTO t VALUES ({key}, 0, 'w{key}');")
                        model[key] = 0
                        if step % 3 == 0:
                            k = rng.choice(list(model))
                            text.ok(f"UPDATE t SET v = v + 1 WHERE k = {k};")
                            model[k] += 1
                        if step % 5 == 0:
                            k = rng.choice(list(model))
                            text.ok(f"DELETE FROM t WHERE k = {k};")
                            del model[k]
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                failures.append(e)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(WRITERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        assert not failures, failures[0]

        expected = sorted((k, v) for model in models for k, v in model.items())
        with server.text() as text:
            # Compaction ran during the writes, more than once.
            during = successful_compactions(text)
            assert during >= 2, text.query("SELECT * FROM sys.compactions;")
            _, rows = parse_ascii_table(text.query("SELECT k, v FROM t ORDER BY k;"))
            assert [(int(k), int(v)) for k, v in rows] == expected
            # Once writes stop, the next passes leave few small files and no deleted rows.
            deadline = time.time() + 30
            while True:
                _, files = parse_ascii_table(
                    text.query(
                        "SELECT count(*) AS n, sum(deleted_rows) AS d FROM sys.table_files "
                        "WHERE table_name = 't' AND status = 'active';"
                    )
                )
                if int(files[0][0]) < 3 and files[0][1] in ("0", "NULL", ""):
                    break
                assert time.time() < deadline, files
                time.sleep(0.2)
            _, rows = parse_ascii_table(text.query("SELECT k, v FROM t ORDER BY k;"))
            assert [(int(k), int(v)) for k, v in rows] == expected
        table = server.data_dir / "default" / "t"
        peers = peer_rows(table)
        assert [r[:2] for r in peers["delta-rs"]] == expected
        assert [r[:2] for r in peers["duckdb"]] == expected

        # SIGTERM while passes keep running: a clean exit, and the table as it was.
        assert server.stop() == 0
        assert "background compaction" in server.stderr_text()
        server.start()
        with server.text() as text:
            _, rows = parse_ascii_table(text.query("SELECT k, v FROM t ORDER BY k;"))
            assert [(int(k), int(v)) for k, v in rows] == expected
    finally:
        server.stop()


def test_auto_compact_false_opts_a_table_out(start_server):
    args = ["--compaction-interval-ms", "50", "--compaction-min-small-files", "2"]
    server = start_server(args)
    try:
        with server.text() as text:
            text.ok(
                "CREATE TABLE keep (id INT) TBLPROPERTIES ('delta.autoOptimize.autoCompact' = 'false');"
            )
            text.ok("CREATE TABLE pack (id INT);")
            for i in range(4):
                text.ok(f"INSERT INTO keep VALUES ({i});")
                text.ok(f"INSERT INTO pack VALUES ({i});")
            deadline = time.time() + 20
            while successful_compactions(text) < 1:
                assert time.time() < deadline, "no compaction of pack"
                time.sleep(0.1)
            time.sleep(0.3)  # several more passes
            _, rows = parse_ascii_table(
                text.query(
                    "SELECT table_name, count(*) AS files FROM sys.table_files "
                    "WHERE status = 'active' GROUP BY table_name ORDER BY table_name;"
                )
            )
            assert rows == [["keep", "4"], ["pack", "1"]]
            _, runs = parse_ascii_table(text.query("SELECT DISTINCT table_name FROM sys.compactions;"))
            assert runs == [["pack"]]
    finally:
        server.stop()

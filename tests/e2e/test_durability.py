"""Durability: acknowledged writes survive kill -9, crash leftovers stay invisible, and a full
disk fails writes without losing or tearing anything."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import pytest

from conftest import TEST_STORAGE, MiniDBServer, parse_ascii_table
from test_delta_interop import read_delta_rs


def count(text, table: str) -> int:
    _, rows = parse_ascii_table(text.query(f"SELECT count(*) FROM {table};"))
    return int(rows[0][0])


def test_acknowledged_writes_survive_kill_9(server):
    with server.text() as text:
        assert text.query("CREATE DATABASE dur;") == "Database created: dur"
        assert text.query("CREATE DATABASE empty_db;") == "Database created: empty_db"
        text.ok("USE dur;")
        text.ok("CREATE TABLE t (id INT NOT NULL, who VARCHAR(10), at TIMESTAMP, amount DECIMAL(9,2));")
        text.ok("CREATE TABLE untouched (x INT);")
        text.ok("CREATE TABLE gone (x INT);")
        assert text.query("DROP TABLE gone;") == "Dropped table: gone"
        for i in range(5):
            answer = text.query(f"INSERT INTO t VALUES ({i}, 'text', '2024-05-0{i + 1} 10:00:00', {i}.25);")
            assert answer == "Inserted into t"
    conn = server.adbc()
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO dur.t VALUES (100, 'flight', NULL, 1.5), (101, 'flight', NULL, NULL)")
            assert cur.rowcount == 2
    finally:
        conn.close()

    server.restart(hard=True)  # SIGKILL right after the acknowledgements

    with server.text() as text:
        assert text.query("SHOW DATABASES;") == "Databases:\n - default\n - dur\n - empty_db"
        text.ok("USE dur;")
        assert text.query("SHOW TABLES;") == "Tables in dur:\n - t\n - untouched"
        header, rows = parse_ascii_table(text.query("SELECT id, who, at, amount FROM t ORDER BY id;"))
        assert header == ["id", "who", "at", "amount"]
        assert rows == [
            [str(i), "text", f"2024-05-0{i + 1}T10:00:00", f"{i}.25"] for i in range(5)
        ] + [["100", "flight", "NULL", "1.50"], ["101", "flight", "NULL", "NULL"]]
        assert count(text, "untouched") == 0
        assert text.query("SHOW TABLES FROM empty_db;") == "(no tables left)"
        # Writable after the crash, and the new write survives another one.
        assert text.query("INSERT INTO t VALUES (200, 'after', NULL, NULL);") == "Inserted into t"

    server.restart(hard=True)
    with server.text() as text:
        assert count(text, "dur.t") == 8


def test_graceful_restart_keeps_everything(server):
    with server.text() as text:
        text.ok("CREATE DATABASE g;")
        text.ok("USE g;")
        text.ok("CREATE TABLE t id,v;")
        text.ok("INSERT INTO t id=1 v=x;")
    server.restart(hard=False)
    with server.text() as text:
        _, rows = parse_ascii_table(text.query("SELECT * FROM g.t;"))
        assert rows == [["1", "x"]]


def test_orphan_parquet_file_is_invisible(server):
    with server.text() as text:
        text.ok("CREATE DATABASE orph;")
        text.ok("USE orph;")
        text.ok("CREATE TABLE t (id INT, v VARCHAR(5));")
        text.ok("INSERT INTO t VALUES (1, 'a'), (2, 'b');")
        table_dir = server.data_dir / "orph" / "t"
        (committed,) = table_dir.glob("*.parquet")
        # A data file written by an INSERT whose commit never happened (crash in between).
        orphan = table_dir / f"part-00000-{uuid.uuid4()}-c000.snappy.parquet"
        shutil.copyfile(committed, orphan)
        assert count(text, "t") == 2
        text.ok("INSERT INTO t VALUES (3, 'c');")
        assert count(text, "t") == 3
    server.restart(hard=True)
    with server.text() as text:
        _, rows = parse_ascii_table(text.query("SELECT id, v FROM orph.t ORDER BY id;"))
        assert rows == [["1", "a"], ["2", "b"], ["3", "c"]]
    assert orphan.exists()


def test_leftover_staged_commit_file_is_ignored(server):
    """A kill -9 while the commit file was being written leaves a staging file next to the log
    (object_store's local `put` writes `<name>#<n>` and then links it in place)."""
    with server.text() as text:
        text.ok("CREATE DATABASE stage;")
        text.ok("CREATE TABLE stage.t (id INT);")
        text.ok("INSERT INTO stage.t VALUES (1);")
    log = server.data_dir / "stage" / "t" / "_delta_log"
    (log / "00000000000000000002.json#1").write_text('{"add":{"path":"missing.parq')
    server.restart(hard=True)
    with server.text() as text:
        assert count(text, "stage.t") == 1
        assert text.query("INSERT INTO stage.t VALUES (2);") == "Inserted into t"
        _, rows = parse_ascii_table(text.query("SELECT id FROM stage.t ORDER BY id;"))
        assert rows == [["1"], ["2"]]


def test_kill_9_during_concurrent_updates_and_deletes(server):
    """Four clients change their own rows (INSERT/UPDATE/DELETE, several in transactions) while
    the server is killed. After restart every client's rows equal a replay of its acknowledged
    statements, plus possibly the one statement that was in flight; peers read the same rows."""
    import random
    import threading
    import time

    from test_mor import peer_rows

    with server.text() as text:
        text.ok("CREATE TABLE crash (id INT PRIMARY KEY, owner INT NOT NULL, v BIGINT);")
    clients = 4
    models: list[dict[int, int]] = [{} for _ in range(clients)]
    pending: list[list | None] = [None] * clients
    failures: list[BaseException] = []
    stop = threading.Event()

    def apply(model: dict[int, int], op: tuple) -> None:
        kind, key, value = op
        if kind == "insert":
            model[key] = value
        elif kind == "update" and key in model:
            model[key] += value
        elif kind == "delete":
            model.pop(key, None)

    def work(n: int) -> None:
        rng = random.Random(n)
        client = server.text(timeout=10)
        next_key = n * 1_000_000
        try:
            while not stop.is_set():
                model = models[n]
                ops = []
                for _ in range(rng.choice([1, 1, 3])):
                    keys = list(model) + [k for (kind, k, _) in ops if kind == "insert"]
                    if not keys or rng.random() < 0.4:
                        next_key += 1
                        ops.append(("insert", next_key, rng.randint(0, 100)))
                    elif rng.random() < 0.7:
                        ops.append(("update", rng.choice(keys), rng.randint(1, 9)))
                    else:
                        ops.append(("delete", rng.choice(keys), 0))
                sql = []
                for kind, key, value in ops:
                    if kind == "insert":
                        sql.append(f"INSERT INTO crash VALUES ({key}, {n}, {value});")
                    elif kind == "update":
                        sql.append(f"UPDATE crash SET v = v + {value} WHERE id = {key};")
                    else:
                        sql.append(f"DELETE FROM crash WHERE id = {key};")
                if len(sql) > 1:
                    sql = ["BEGIN;", *sql, "COMMIT;"]
                pending[n] = ops
                answers = [client.query(s) for s in sql]
                assert not any(a.startswith("ERROR") for a in answers), answers
                for op in ops:
                    apply(model, op)
                pending[n] = None
        except (OSError, TimeoutError):
            pass  # the server died under us
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            failures.append(e)
        finally:
            client.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    time.sleep(3)
    server.kill()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not failures, failures[0]
    assert sum(len(m) for m in models) > 20, "too little traffic before the kill"
    server.start()

    with server.text() as text:
        _, got_rows = parse_ascii_table(text.query("SELECT id, owner, v FROM crash ORDER BY id;"))
    got: list[dict[int, int]] = [{} for _ in range(clients)]
    for key, owner, v in got_rows:
        got[int(owner)][int(key)] = int(v)
    for n in range(clients):
        acknowledged = dict(models[n])
        with_pending = dict(acknowledged)
        for op in pending[n] or []:
            apply(with_pending, op)
        assert got[n] in (acknowledged, with_pending), f"client {n} lost or invented a write"
    expected = sorted((k, n, v) for n in range(clients) for k, v in got[n].items())
    for peer, rows in peer_rows(server.data_dir / "default" / "crash").items():
        assert sorted(rows) == expected, peer


def test_staged_files_of_killed_writes_are_removed_at_start_once_old(server):
    """A put killed mid-write leaves `name#<n>` behind (listings hide it, so VACUUM never sees
    it); a start removes those older than 15 minutes and leaves young ones to a put that may
    still be running."""
    with server.text() as text:
        text.ok("CREATE TABLE t (x INT);")
        text.ok("INSERT INTO t VALUES (1), (2);")
    table = server.data_dir / "default" / "t"
    old_commit = table / "_delta_log" / "00000000000000000002.json#17"
    old_data = table / f"part-00000-{uuid.uuid4()}-c000.snappy.parquet#3"
    young = table / f"part-00001-{uuid.uuid4()}-c000.snappy.parquet#4"
    not_staged = table / "notes#draft"
    for path in (old_commit, old_data, young, not_staged):
        path.write_bytes(b"half a write")
    an_hour_ago = time.time() - 3600
    for path in (old_commit, old_data, not_staged):
        os.utime(path, (an_hour_ago, an_hour_ago))

    server.restart(hard=True)

    assert not old_commit.exists() and not old_data.exists()
    assert young.exists() and not_staged.exists()
    with server.text() as text:
        assert count(text, "t") == 2
        text.ok("INSERT INTO t VALUES (3);")
        assert count(text, "t") == 3


def test_a_corrupt_table_fails_alone_and_system_tables_name_it(server):
    """A garbage commit breaks its own table, clearly, and nothing else: the other tables, the
    system tables (sys.table_metadata lists it with its error) and the catalog RPCs go on."""
    with server.text() as text:
        text.ok("CREATE TABLE broken (x INT);")
        text.ok("INSERT INTO broken VALUES (1);")
        text.ok("CREATE TABLE fine (x INT);")
        text.ok("INSERT INTO fine VALUES (7);")
    commit = server.data_dir / "default" / "broken" / "_delta_log" / "00000000000000000002.json"
    commit.write_bytes(b'{"add": garbage')
    with server.text() as text:
        answer = text.query("SELECT * FROM broken;")
        assert answer.startswith(
            "ERROR XX001: corrupt Delta log at 'default/broken/_delta_log/00000000000000000002.json'"
        ), answer
        assert parse_ascii_table(text.query("SELECT x FROM fine;"))[1] == [["7"]]
        header, rows = parse_ascii_table(
            text.query("SELECT table_name, version, error FROM sys.table_metadata ORDER BY table_name;")
        )
        assert rows[0][0] == "broken" and rows[0][1] == "NULL"
        assert rows[0][2].startswith("corrupt Delta log at 'default/broken/_delta_log/")
        assert rows[1] == ["fine", "1", "NULL"]
        columns = parse_ascii_table(text.query("SELECT table_name FROM sys.columns_metadata;"))[1]
        assert columns == [["fine"]]
    conn = server.adbc()
    try:
        objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
        tables = {
            t["table_name"]: len(t["table_columns"] or [])
            for s in objects[0]["catalog_db_schemas"]
            if s["db_schema_name"] == "default"
            for t in s["db_schema_tables"] or []
        }
        assert tables == {"broken": 0, "fine": 1}
    finally:
        conn.close()


def test_a_full_disk_fails_writes_and_loses_nothing(tmp_path):
    """The data directory on a 3 MB tmpfs: inserts fail with the cause once it is full, no
    commit or staged file is left of them, reads go on, and writes succeed again once there is
    room — no restart needed."""
    if TEST_STORAGE == "s3":
        pytest.skip("fills a local disk (covered by the local-disk run)")
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(small)], check=True)
    server = MiniDBServer(small, tmp_path)
    try:
        server.start()
        with server.text() as text:
            text.ok("CREATE TABLE t (id BIGINT, pad VARCHAR);")
            acknowledged = 0
            failures = []
            for _ in range(6):
                answer = text.query(
                    "INSERT INTO t SELECT value, md5(CAST(value AS VARCHAR)) || "
                    "md5(CAST(value + 1 AS VARCHAR)) FROM generate_series(1, 30000);"
                )
                if answer.startswith("ERROR"):
                    failures.append(answer)
                else:
                    acknowledged += 30000
            assert failures and acknowledged, (failures, acknowledged)
            assert all("No space left on device" in f for f in failures), failures
            assert count(text, "t") == acknowledged
            assert not [p for p in small.rglob("*") if "#" in p.name]
            commits = sorted((small / "default" / "t" / "_delta_log").glob("*.json"))
            assert len(commits) == 1 + acknowledged // 30000

            subprocess.run(["mount", "-o", "remount,size=64m", str(small)], check=True)
            text.ok("INSERT INTO t VALUES (-1, 'room again');")
            assert count(text, "t") == acknowledged + 1
        server.restart(hard=True)
        with server.text() as text:
            assert count(text, "t") == acknowledged + 1
        assert read_delta_rs(small / "default" / "t").num_rows == acknowledged + 1
    finally:
        server.kill()
        subprocess.run(["umount", "-l", str(small)], check=False)

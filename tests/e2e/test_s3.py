"""MiniDB over an S3 bucket (SeaweedFS on loopback): tables live in the bucket, survive a
crash, are read by delta-rs and DuckDB straight from the bucket, several servers share one
bucket without losing or duplicating a commit, and the read cache answers repeated reads
without ever serving a stale row.
"""

from __future__ import annotations

import os
import threading
import time
from decimal import Decimal

import duckdb
import duckdb_extension_delta
import duckdb_extension_httpfs
import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from deltalake import DeltaTable, QueryBuilder

from conftest import MiniDBServer, SeaweedFS, parse_ascii_table
from test_operations import scrape


def load_duckdb_extension(con, module, name: str):
    path = os.path.join(
        os.path.dirname(module.__file__), "extensions", "v" + duckdb.__version__,
        f"{name}.duckdb_extension",
    )
    con.execute(f"LOAD '{path}'")


def duckdb_over(s3):
    con = duckdb.connect()
    load_duckdb_extension(con, duckdb_extension_httpfs, "httpfs")
    load_duckdb_extension(con, duckdb_extension_delta, "delta")
    host = s3.endpoint.split("://", 1)[1]
    con.execute(
        f"CREATE SECRET bucket (TYPE S3, KEY_ID '{s3.access_key}', SECRET '{s3.secret_key}', "
        f"ENDPOINT '{host}', URL_STYLE 'path', USE_SSL false, REGION '{s3.region}')"
    )
    return con


def objects_under(s3, location: str) -> list[str]:
    """Keys of every object below an ``s3://`` location, relative to it."""
    root = location.removeprefix("s3://")
    infos = s3.filesystem().get_file_info(pafs.FileSelector(root, recursive=True))
    return sorted(i.path[len(root) + 1:] for i in infos if i.type == pafs.FileType.File)


def test_tables_live_in_the_bucket_and_survive_a_crash(s3, s3_server):
    with s3_server.text() as t:
        t.ok("CREATE DATABASE shop;")
        t.ok("CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR, price DECIMAL(10,2));")
        t.ok("INSERT INTO shop.items VALUES (1, 'apple', 1.50), (2, 'pear', 2.25), (3, 'fig', 9.99);")
        t.ok("UPDATE shop.items SET price = 1.75 WHERE id = 1;")
        t.ok("DELETE FROM shop.items WHERE id = 3;")

    keys = objects_under(s3, s3_server.data)
    assert "shop/items/_delta_log/00000000000000000000.json" in keys
    assert any(k.startswith("shop/items/") and k.endswith(".parquet") for k in keys)
    # The delete wrote a deletion vector rather than rewriting the file.
    assert any(k.startswith("shop/items/deletion_vector_") for k in keys), keys

    s3_server.restart(hard=True)
    with s3_server.text() as t:
        answer = t.ok("SELECT id, name, price FROM shop.items ORDER BY id;")
    assert "apple" in answer and "1.75" in answer and "pear" in answer and "fig" not in answer

    uri = f"{s3_server.data}/shop/items"
    table = DeltaTable(uri, storage_options=s3.storage_options())
    got = QueryBuilder().register("t", table).execute("SELECT id, name, price FROM t ORDER BY id")
    assert pa.table(got.read_all()).to_pylist() == [
        {"id": 1, "name": "apple", "price": Decimal("1.75")},
        {"id": 2, "name": "pear", "price": Decimal("2.25")},
    ]

    con = duckdb_over(s3)
    try:
        rows = con.sql(f"SELECT id, name FROM delta_scan('{uri}') ORDER BY id").fetchall()
    finally:
        con.close()
    assert rows == [(1, "apple"), (2, "pear")]


def test_a_wrong_secret_stops_the_server_from_starting(tmp_path, s3):
    args = s3.server_args()
    args[args.index("--s3-secret-access-key") + 1] = "not-the-secret"
    srv = MiniDBServer(tmp_path, tmp_path, args, data=s3.location())
    with pytest.raises(RuntimeError, match="did not start"):
        srv.start()
    log = srv.stderr_text()
    assert "minidb: cannot start" in log and "403 Forbidden" in log, log[-3000:]


def test_three_servers_share_one_bucket(tmp_path, s3):
    location = s3.location()
    servers = []
    try:
        for i in range(3):
            log_dir = tmp_path / f"server{i}"
            log_dir.mkdir()
            # Background compaction runs on all three at once, racing the writers and itself.
            args = [*s3.server_args(), "--compaction-interval-ms", "300",
                    "--compaction-min-small-files", "5"]
            servers.append(MiniDBServer(log_dir, log_dir, args, data=location).start())
        a, b, c = servers

        with a.text() as t:
            t.ok("CREATE TABLE events (server INT, n INT);")
            t.ok("CREATE TABLE counter (id INT, hits INT);")
            t.ok("INSERT INTO counter VALUES (1, 0), (2, 0);")
            t.ok("CREATE TABLE ledger (server INT, k INT);")
        # A table created through one server is seen by the others at once.
        with b.text() as t:
            assert parse_ascii_table(t.ok("SELECT hits FROM counter;"))[1] == [["0"], ["0"]]

        rows_per_writer, bumps_per_writer, transactions_per_writer = 15, 10, 4
        done = {"bumps": 0, "conflicts": 0, "transactions": 0}
        failures: list[str] = []
        lock = threading.Lock()

        def write(index: int, server: MiniDBServer):
            with server.text(timeout=120) as t:
                for n in range(rows_per_writer):
                    answer = t.query(f"INSERT INTO events VALUES ({index}, {n});")
                    if answer.startswith("ERROR"):
                        failures.append(answer)
                bumps = 0
                while bumps < bumps_per_writer:
                    answer = t.query("UPDATE counter SET hits = hits + 1 WHERE id = 1;")
                    if answer.startswith("ERROR"):
                        # Only conflicts may fail a statement, and they say to retry.
                        if "conflict" not in answer or "retry" not in answer:
                            failures.append(answer)
                            return
                        with lock:
                            done["conflicts"] += 1
                        continue
                    bumps += 1
                with lock:
                    done["bumps"] += bumps
                # Transactions: a ledger row and a counter bump commit together or not at all;
                # a conflict rolls the whole transaction back, and it is run again.
                committed = 0
                while committed < transactions_per_writer:
                    t.ok("BEGIN;")
                    for sql in (f"INSERT INTO ledger VALUES ({index}, {committed});",
                                "UPDATE counter SET hits = hits + 1 WHERE id = 2;", "COMMIT;"):
                        answer = t.query(sql)
                        if answer.startswith("ERROR"):
                            if "conflict" not in answer or "rolled back" not in answer:
                                failures.append(answer)
                                return
                            break
                    else:
                        committed += 1
                with lock:
                    done["transactions"] += committed

        writers = [threading.Thread(target=write, args=(i, s)) for i, s in enumerate(servers)]
        for w in writers:
            w.start()
        for w in writers:
            w.join(timeout=300)
        assert not any(w.is_alive() for w in writers), "a writer hung"
        assert failures == []
        assert done["bumps"] == 3 * bumps_per_writer
        assert done["transactions"] == 3 * transactions_per_writer

        for server in servers:
            with server.text() as t:
                answer = t.ok("SELECT count(*) AS c, count(DISTINCT server * 1000 + n) AS d FROM events;")
                assert parse_ascii_table(answer)[1] == [[str(3 * rows_per_writer)] * 2], answer
                answer = t.ok("SELECT id, hits FROM counter ORDER BY id;")
                assert parse_ascii_table(answer)[1] == [
                    ["1", str(3 * bumps_per_writer)], ["2", str(3 * transactions_per_writer)],
                ], answer
                answer = t.ok("SELECT count(*), count(DISTINCT server * 1000 + k) FROM ledger;")
                assert parse_ascii_table(answer)[1] == [[str(3 * transactions_per_writer)] * 2], answer

        # The log is one unbroken chain of versions: every insert committed exactly once, and
        # compactions (of whichever server won each race) only rearranged the rows.
        table = DeltaTable(f"{location}/default/events", storage_options=s3.storage_options())
        history = table.history()
        assert len(history) == table.version() + 1
        operations = [commit["operation"] for commit in history]
        assert operations.count("WRITE") == 3 * rows_per_writer, operations
        assert set(operations) <= {"CREATE TABLE", "WRITE", "OPTIMIZE"}, operations
        assert "OPTIMIZE" in operations, "background compaction never compacted the table"
        peer = QueryBuilder().register("t", table).execute("SELECT count(*) AS c FROM t").read_all()
        assert peer.column("c").to_pylist() == [3 * rows_per_writer]
    finally:
        for server in servers:
            server.stop()


def test_read_cache_answers_repeat_reads_and_stays_correct_across_commits(tmp_path, s3):
    """A reader whose memory tier holds one of the table's files (4 KiB) and whose disk tier
    holds them all answers repeated scans from the disk tier, and a reader with a column cache
    (and no read cache) answers them from decoded chunks, while another server rewrites the
    table under them (updates with deletion vectors, deletes, inserts, OPTIMIZE): every read
    sees a consistent version, and the final state equals the writer's and delta-rs's."""
    location = s3.location()
    cache_dir = tmp_path / "cache"
    reader_dir, writer_dir = tmp_path / "reader", tmp_path / "writer"
    reader_dir.mkdir()
    writer_dir.mkdir()
    reader = MiniDBServer(reader_dir, reader_dir, [
        *s3.server_args(), "--cache-dir", str(cache_dir), "--cache-size", "64MiB",
        "--cache-memory", "4KiB", "--metrics-addr", "127.0.0.1:0", "--column-cache", "0",
    ], data=location).start()
    columns_dir = tmp_path / "columns"
    columns_dir.mkdir()
    columns_reader = MiniDBServer(columns_dir, columns_dir, [
        *s3.server_args(), "--cache-memory", "0", "--column-cache", "64MiB",
    ], data=location).start()
    writer = MiniDBServer(writer_dir, writer_dir, [
        *s3.server_args(), "--cache-memory", "0", "--compaction-interval-ms", "0",
    ], data=location).start()
    try:
        accounts, total, padding = 200, 200 * 100, "x" * 200
        with writer.text() as t:
            t.ok("CREATE TABLE accounts (id INT, balance BIGINT, note VARCHAR);")
            for start in range(0, accounts, 50):
                values = ", ".join(f"({i}, 100, 'account {i} {padding}')"
                                   for i in range(start, start + 50))
                t.ok(f"INSERT INTO accounts VALUES {values};")

        check = "SELECT count(*) AS n, sum(balance) AS total FROM accounts;"
        with reader.text() as t:
            for _ in range(2):
                assert parse_ascii_table(t.ok(check))[1] == [[str(accounts), str(total)]]
            tiers = {row[0]: row for row in parse_ascii_table(t.ok(
                "SELECT tier, hits, misses, blocks, used_bytes, capacity_bytes FROM sys.cache "
                "ORDER BY tier;"))[1]}
        assert set(tiers) == {"deletion_vectors", "disk", "footers", "index", "memory"}, tiers
        disk = tiers["disk"]
        assert int(disk[1]) > 0 and int(disk[2]) > 0, f"the second scan read from disk: {disk}"
        assert int(disk[3]) > 0 and 0 < int(disk[4]) <= 64 * 1024 * 1024, disk
        assert any(p.suffix == ".block" for p in cache_dir.iterdir())
        samples = scrape(reader)
        assert samples['minidb_cache_hits_total{tier="disk"}'] > 0, samples

        # Transfers keep the total; a delete and an insert keep the count. The writer commits
        # them while the reader scans the table again and again.
        failures: list[str] = []
        stop = threading.Event()

        def write():
            with writer.text(timeout=120) as t:
                for step in range(30):
                    a, b = (step * 7) % accounts, (step * 13 + 1) % accounts
                    if a == b:
                        continue
                    statements = [
                        "UPDATE accounts SET balance = balance + CASE WHEN id = "
                        f"{a} THEN 5 ELSE -5 END WHERE id IN ({a}, {b});",
                    ]
                    if step % 5 == 0:
                        # Moves account b to a new file, with its balance, in one transaction.
                        note = f"reopened {step}"
                        statements = [
                            "BEGIN;",
                            f"INSERT INTO accounts SELECT id, balance, '{note}' FROM accounts "
                            f"WHERE id = {b};",
                            f"DELETE FROM accounts WHERE id = {b} AND note <> '{note}';",
                            "COMMIT;",
                        ]
                    if step % 10 == 9:
                        statements.append("OPTIMIZE accounts;")
                    for sql in statements:
                        answer = t.query(sql)
                        if answer.startswith("ERROR"):
                            failures.append(f"{sql} -> {answer}")
            stop.set()

        thread = threading.Thread(target=write)
        thread.start()
        seen = 0
        with reader.text(timeout=120) as t, columns_reader.text(timeout=120) as c:
            while not stop.is_set() or seen == 0:
                for client in (t, c):
                    rows = parse_ascii_table(client.ok(check))[1]
                    assert rows == [[str(accounts), str(total)]], f"after {seen} reads: {rows}"
                seen += 1
            hits = parse_ascii_table(c.ok("SELECT hits FROM sys.cache WHERE tier = 'columns';"))
            assert int(hits[1][0][0]) > 0, hits
        thread.join(timeout=300)
        assert not thread.is_alive(), "the writer hung"
        assert failures == []

        everything = "SELECT id, balance, note FROM accounts ORDER BY id;"
        with reader.text() as t, columns_reader.text() as c, writer.text() as w:
            assert t.ok(everything) == w.ok(everything)
            assert c.ok(everything) == w.ok(everything)
            assert parse_ascii_table(t.ok(check))[1] == [[str(accounts), str(total)]]
        table = DeltaTable(f"{location}/default/accounts", storage_options=s3.storage_options())
        peer = QueryBuilder().register("t", table).execute(
            "SELECT count(*) AS n, sum(balance) AS total FROM t").read_all()
        assert peer.column("n").to_pylist() == [accounts]
        assert peer.column("total").to_pylist() == [total]
    finally:
        reader.stop()
        columns_reader.stop()
        writer.stop()


def test_an_outage_of_the_store_fails_statements_clearly_and_the_server_recovers(tmp_path):
    """SeaweedFS stops under a running server: a write fails (after the configured retries)
    with the store's error and lands nothing; once the store is back the same server writes and
    reads again, no restart needed."""
    (tmp_path / "weed").mkdir()
    weed = SeaweedFS(tmp_path / "weed").start()
    server = MiniDBServer(
        tmp_path / "data", tmp_path,
        [*weed.service.server_args(), "--s3-max-retries=3", "--s3-retry-timeout-ms=2000"],
        data=weed.service.location(),
    )
    try:
        server.start()
        with server.text() as text:
            text.ok("CREATE TABLE t (x INT);")
            text.ok("INSERT INTO t VALUES (1), (2);")
            weed.stop()
            started = time.monotonic()
            answer = text.query("INSERT INTO t VALUES (3);", timeout=60)
            assert answer.startswith("ERROR XX000: "), answer
            assert "error sending request" in answer or "Connection refused" in answer, answer
            assert time.monotonic() - started < 30
            answer = text.query("CREATE TABLE u (x INT);", timeout=60)
            assert answer.startswith("ERROR XX000: "), answer

            weed.start()
            text.ok("INSERT INTO t VALUES (4);")
            assert parse_ascii_table(text.query("SELECT x FROM t ORDER BY x;"))[1] == [
                ["1"], ["2"], ["4"]
            ]
            text.ok("CREATE TABLE u (x INT);")
        server.restart(hard=True)
        with server.text() as text:
            assert parse_ascii_table(text.query("SELECT sum(x) FROM t;"))[1] == [["7"]]
    finally:
        server.kill()
        weed.stop()

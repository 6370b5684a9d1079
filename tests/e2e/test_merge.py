"""MERGE INTO and INSERT … ON CONFLICT: random statements agree with DuckDB running the same
text, the peers (delta-rs, DuckDB's delta_scan, polars) read what MiniDB reads, counts and
messages on both protocols, and a failing MERGE or a rolled-back one writes nothing."""

from __future__ import annotations

import random
import threading

import duckdb
import pytest

from conftest import TEST_STORAGE
from test_mor import commits, execute, peer_rows, query

TABLE = "CREATE TABLE m (id INT PRIMARY KEY, grp INT, val INT, tag VARCHAR)"


def literal(v) -> str:
    return "NULL" if v is None else (f"'{v}'" if isinstance(v, str) else str(v))


def source_rows(rng: random.Random, ids: range) -> str:
    """A VALUES source of distinct ids (so no target row is matched twice), as `s`."""
    chosen = rng.sample(list(ids), rng.randint(1, 12))
    rows = [
        (i, rng.randint(0, 4), rng.choice([None, rng.randint(-50, 50)]), rng.choice([None, "a", "b"]))
        for i in chosen
    ]
    values = ", ".join("(" + ", ".join(literal(v) for v in r) + ")" for r in rows)
    return values


def random_statement(rng: random.Random, next_ids: range) -> str:
    values = source_rows(rng, next_ids)
    kind = rng.choice(["merge", "merge", "merge", "nothing", "update"])
    if kind == "nothing":
        return f"INSERT INTO m VALUES {values} ON CONFLICT (id) DO NOTHING"
    if kind == "update":
        where = rng.choice(["", " WHERE m.grp <> excluded.grp", " WHERE m.val IS NOT NULL"])
        return (
            f"INSERT INTO m VALUES {values} ON CONFLICT (id) DO UPDATE SET "
            f"val = excluded.val, tag = coalesce(excluded.tag, m.tag){where}"
        )
    clauses = []
    if rng.random() < 0.5:
        clauses.append(f"WHEN MATCHED AND s.grp = {rng.randint(0, 4)} THEN DELETE")
    if rng.random() < 0.8:
        clauses.append(
            rng.choice([
                "WHEN MATCHED THEN UPDATE SET val = coalesce(m.val, 0) + coalesce(s.val, 0)",
                "WHEN MATCHED AND s.val > 0 THEN UPDATE SET grp = s.grp, tag = 'upd'",
            ])
        )
    if rng.random() < 0.7:
        clauses.append(
            rng.choice([
                "WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.grp, s.val, s.tag)",
                "WHEN NOT MATCHED AND s.val IS NOT NULL THEN INSERT (id, val) VALUES (s.id, s.val)",
            ])
        )
    if rng.random() < 0.3:
        clauses.append(
            rng.choice([
                f"WHEN NOT MATCHED BY SOURCE AND m.grp = {rng.randint(0, 4)} THEN DELETE",
                "WHEN NOT MATCHED BY SOURCE AND m.val < -20 THEN UPDATE SET val = -20",
            ])
        )
    if not clauses:
        clauses.append("WHEN MATCHED THEN DELETE")
    return (
        f"MERGE INTO m USING (VALUES {values}) AS s(id, grp, val, tag) ON m.id = s.id "
        + " ".join(clauses)
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_random_merges_agree_with_duckdb_and_peers(server, conn, seed):
    """After every random MERGE or upsert MiniDB holds the rows DuckDB holds after the same
    statement, with the same count; every few statements the peers read those rows too."""
    rng = random.Random(seed)
    cur = conn.cursor()
    duck = duckdb.connect()
    for db in (cur, duck):
        db.execute(TABLE)
    cur.execute("CREATE INDEX m_tag ON m (tag)")
    changed = 0
    for step in range(30):
        sql = random_statement(rng, range(0, 40))
        count = execute(cur, sql)
        expected_count = duck.execute(sql).fetchone()[0]
        assert count == expected_count, f"step {step}: {sql}"
        changed += count
        expected = sorted(duck.execute("SELECT * FROM m").fetchall(), key=repr)
        got = sorted(query(cur, "SELECT * FROM m"), key=repr)
        assert got == expected, f"step {step}: {sql}"
        # The index on tag follows every MERGE (lookups answer from its segments).
        for tag in ("a", "upd"):
            by_index = sorted(query(cur, f"SELECT * FROM m WHERE tag = '{tag}'"), key=repr)
            assert by_index == [r for r in expected if r[3] == tag], f"step {step}: index on tag"
        # Peers read local folders; over S3 the statements are checked against DuckDB only.
        if step % 10 == 9 and TEST_STORAGE != "s3":
            for peer, rows in peer_rows(server.data_dir / "default" / "m").items():
                assert sorted(rows, key=repr) == expected, f"step {step}: {peer} differs"
    assert changed > 60, "the random statements should change rows"


def test_merge_answers_on_both_protocols_and_failures_write_nothing(server, conn):
    cur = conn.cursor()
    execute(cur, TABLE)
    execute(cur, "INSERT INTO m VALUES (1, 0, 10, 'a'), (2, 0, 20, 'b'), (3, 1, 30, 'c')")
    merge = (
        "MERGE INTO m USING (VALUES (1, 5), (3, -30), (7, 70)) AS s(id, val) ON m.id = s.id "
        "WHEN MATCHED AND m.val + s.val <= 0 THEN DELETE "
        "WHEN MATCHED THEN UPDATE SET val = m.val + s.val "
        "WHEN NOT MATCHED THEN INSERT (id, val) VALUES (s.id, s.val)"
    )
    with server.text() as text:
        assert text.query(merge + ";").strip() == "Merged into m: 1 row(s) inserted, 1 updated, 1 deleted"
    assert query(cur, "SELECT id, val FROM m ORDER BY id") == [(1, 15), (2, 20), (7, 70)]
    upsert = "INSERT INTO m (id, val) VALUES (2, 1), (8, 80) ON CONFLICT (id) DO UPDATE SET val = val + excluded.val"
    assert execute(cur, upsert) == 2
    assert query(cur, "SELECT id, val FROM m ORDER BY id") == [(1, 15), (2, 21), (7, 70), (8, 80)]

    # A failing MERGE leaves no commit behind.
    log = server.data_dir / "default" / "m"
    versions = len(commits(log))
    with pytest.raises(Exception, match="cannot affect a row a second time"):
        cur.execute("MERGE INTO m USING (VALUES (1), (1)) AS s(id) ON m.id = s.id WHEN MATCHED THEN DELETE")
    with pytest.raises(Exception, match=r"duplicate key violates PRIMARY KEY \(id\): \(9\)"):
        cur.execute("INSERT INTO m (id, val) VALUES (9, 1), (9, 2) ON CONFLICT (id) DO UPDATE SET val = excluded.val")
    assert len(commits(log)) == versions
    assert query(cur, "SELECT id, val FROM m ORDER BY id") == [(1, 15), (2, 21), (7, 70), (8, 80)]

    # In a transaction (ADBC with autocommit off): visible to it, gone after a rollback.
    tx = server.adbc(autocommit=False)
    try:
        tcur = tx.cursor()
        assert execute(tcur, "MERGE INTO m USING (VALUES (1)) AS s(id) ON m.id = s.id WHEN MATCHED THEN DELETE") == 1
        assert query(tcur, "SELECT count(*) FROM m") == [(3,)]
        tx.rollback()
    finally:
        tx.close()
    assert query(cur, "SELECT count(*) FROM m") == [(4,)]


@pytest.mark.parametrize("mode", ["pessimistic", "optimistic"])
def test_concurrent_upserts_lose_no_update(start_server, mode):
    """Clients upserting one counter row at once: in pessimistic mode they take turns and every
    statement counts; in optimistic mode a statement that loses a race fails with a conflict and
    changes nothing. Either way the counter equals the statements that succeeded."""
    server = start_server(["--concurrency", mode])
    with server.text() as setup:
        setup.ok("CREATE TABLE hits (page INT PRIMARY KEY, n BIGINT NOT NULL);")
    clients, rounds = 4, 15
    succeeded = [0] * clients
    failures: list[BaseException] = []

    def work(i: int) -> None:
        conn = server.adbc()
        try:
            cur = conn.cursor()
            for _ in range(rounds):
                try:
                    cur.execute(
                        "INSERT INTO hits VALUES (1, 1) ON CONFLICT (page) DO UPDATE SET n = n + 1"
                    )
                    succeeded[i] += 1
                except Exception as e:  # noqa: BLE001 - conflicts are expected when optimistic
                    if mode == "pessimistic" or "conflict" not in str(e).lower():
                        failures.append(e)
        finally:
            conn.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not failures, failures[0]
    conn = server.adbc()
    try:
        assert query(conn.cursor(), "SELECT n FROM hits") == [(sum(succeeded),)]
    finally:
        conn.close()
    if mode == "pessimistic":
        assert sum(succeeded) == clients * rounds

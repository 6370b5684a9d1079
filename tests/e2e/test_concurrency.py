"""Concurrent sessions: racing CREATE TABLE has one winner, racing INSERTs lose nothing."""

from __future__ import annotations

import threading

from conftest import parse_ascii_table


def run_concurrently(server, statements: list[str]) -> list[str]:
    """Sends each statement from its own connection, all released at once; returns answers."""
    clients = [server.text() for _ in statements]
    barrier = threading.Barrier(len(statements))
    answers: list[str | None] = [None] * len(statements)

    def work(i: int) -> None:
        barrier.wait()
        answers[i] = clients[i].query(statements[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(statements))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for c in clients:
        c.close()
    assert all(a is not None for a in answers), answers
    return answers  # type: ignore[return-value]


def test_racing_create_table_has_exactly_one_winner(server, text):
    for round_ in range(5):
        answers = run_concurrently(server, [f"CREATE TABLE race{round_} (id INT);"] * 4)
        created = [a for a in answers if a == f"Table created: race{round_}"]
        refused = [a for a in answers if a.startswith("ERROR") and "already exists" in a]
        assert len(created) == 1, answers
        assert len(refused) == 3, answers
    assert text.query("SHOW TABLES;").count(" - race") == 5


def test_racing_inserts_are_all_committed(server, text):
    text.ok("CREATE TABLE counter (writer INT, n INT);")
    writers, rows_each = 4, 10

    def insert_many(i: int) -> None:
        with server.text() as client:
            for n in range(rows_each):
                assert client.query(f"INSERT INTO counter VALUES ({i}, {n});") == "Inserted into counter"

    threads = [threading.Thread(target=insert_many, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    _, rows = parse_ascii_table(text.query("SELECT count(*), count(DISTINCT writer * 100 + n) FROM counter;"))
    assert rows == [[str(writers * rows_each), str(writers * rows_each)]]

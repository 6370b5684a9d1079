"""Transactions on both protocols: isolation, rollback on disconnect, conflicts, and the
bank-transfer invariant under concurrent clients in both concurrency modes."""

from __future__ import annotations

import random
import threading
import time

import pytest

from conftest import MiniDBServer, parse_ascii_table


def rows(answer: str) -> list[list[str]]:
    return parse_ascii_table(answer)[1]


def balances(client) -> list[list[str]]:
    return rows(client.query("SELECT id, bal FROM acct ORDER BY id;"))


@pytest.fixture
def accounts(server, text):
    text.ok("CREATE TABLE acct (id INT PRIMARY KEY, bal BIGINT NOT NULL);")
    text.ok("INSERT INTO acct VALUES (1, 100), (2, 100);")
    return text


def test_uncommitted_writes_are_invisible_to_other_sessions(server, accounts):
    with server.text() as other:
        assert accounts.query("BEGIN;") == "Transaction started"
        accounts.ok("UPDATE acct SET bal = bal - 10 WHERE id = 1;")
        accounts.ok("INSERT INTO acct VALUES (3, 10);")
        assert balances(accounts) == [["1", "90"], ["2", "100"], ["3", "10"]]
        assert balances(other) == [["1", "100"], ["2", "100"]]
        assert accounts.query("COMMIT;") == "Transaction committed"
        assert balances(other) == [["1", "90"], ["2", "100"], ["3", "10"]]


def test_a_transaction_reads_one_snapshot(server, accounts):
    accounts.ok("CREATE TABLE events (x INT);")
    count = "SELECT count(*) FROM events;"
    with server.text() as other:
        accounts.ok("BEGIN;")
        assert rows(accounts.query(count)) == [["0"]]
        # A blind append does not wait for the transaction's lock...
        other.ok("INSERT INTO events VALUES (1);")
        # ...and the transaction still reads the snapshot taken at its first read.
        assert rows(accounts.query(count)) == [["0"]]
        accounts.ok("COMMIT;")
        assert rows(accounts.query(count)) == [["1"]]


def test_dropped_connection_rolls_back_and_releases_the_table(server, accounts):
    client = server.text()
    client.ok("BEGIN;")
    client.ok("UPDATE acct SET bal = 0 WHERE id = 1;")
    client.close()
    started = time.monotonic()
    assert accounts.query("UPDATE acct SET bal = bal + 1 WHERE id = 1;") == "Updated 1 row(s) in acct"
    assert time.monotonic() - started < 5, "the dropped session's lock was not released"
    assert balances(accounts) == [["1", "101"], ["2", "100"]]


def optimistic_server(start_server) -> MiniDBServer:
    return start_server(["--concurrency", "optimistic"])


def test_optimistic_stale_transaction_conflicts_at_commit(start_server):
    server = optimistic_server(start_server)
    try:
        with server.text() as tx, server.text() as other:
            tx.ok("CREATE TABLE acct (id INT PRIMARY KEY, bal BIGINT NOT NULL);")
            tx.ok("INSERT INTO acct VALUES (1, 100), (2, 100);")
            tx.ok("BEGIN;")
            assert balances(tx)[0] == ["1", "100"]
            other.ok("UPDATE acct SET bal = 50 WHERE id = 1;")
            tx.ok("UPDATE acct SET bal = bal + 1 WHERE id = 1;")
            answer = tx.query("COMMIT;")
            assert "conflict" in answer and "retry" in answer and "rolled back" in answer, answer
            assert tx.query("COMMIT;") == "No transaction is open, nothing done"
            assert balances(tx)[0] == ["1", "50"]
    finally:
        server.stop()


def test_pessimistic_writers_wait_for_the_transaction(server, accounts):
    """A transaction locks the tables it uses; another writer waits and then goes on top."""
    accounts.ok("BEGIN;")
    assert balances(accounts)[0] == ["1", "100"]
    result: list[str] = []
    with server.text() as other:
        waiter = threading.Thread(
            target=lambda: result.append(other.query("UPDATE acct SET bal = bal * 2 WHERE id = 1;"))
        )
        waiter.start()
        time.sleep(0.5)
        assert not result, "the writer did not wait for the transaction"
        accounts.ok("UPDATE acct SET bal = bal + 1 WHERE id = 1;")
        assert accounts.query("COMMIT;") == "Transaction committed"
        waiter.join(timeout=30)
        assert result == ["Updated 1 row(s) in acct"]
    assert balances(accounts)[0] == ["1", "202"]


def test_a_held_table_times_out_with_a_retryable_conflict(start_server):
    server = start_server(["--lock-timeout-ms", "300"])
    try:
        with server.text() as holder, server.text() as waiter:
            holder.ok("CREATE TABLE t (id INT, v INT);")
            holder.ok("INSERT INTO t VALUES (1, 1);")
            holder.ok("BEGIN;")
            holder.ok("UPDATE t SET v = 2;")
            answer = waiter.query("UPDATE t SET v = 3;")
            assert "locked by another transaction" in answer and "retry" in answer, answer
            holder.ok("COMMIT;")
            assert waiter.query("UPDATE t SET v = 3;") == "Updated 1 row(s) in t"
    finally:
        server.stop()


def test_adbc_commit_and_rollback(server, accounts):
    conn = server.adbc(autocommit=False)
    try:
        cur = conn.cursor()
        cur.execute("UPDATE acct SET bal = bal - 5 WHERE id = 1")
        cur.execute("UPDATE acct SET bal = bal + 5 WHERE id = 2")
        cur.execute("SELECT sum(bal) FROM acct WHERE id = 1")
        assert cur.fetchone() == (95,)
        assert balances(accounts) == [["1", "100"], ["2", "100"]]
        conn.commit()
        assert balances(accounts) == [["1", "95"], ["2", "105"]]
        cur.execute("DELETE FROM acct")
        conn.rollback()
        assert balances(accounts) == [["1", "95"], ["2", "105"]]
    finally:
        conn.close()


def test_begin_as_a_statement_over_flight_is_refused_not_faked(server, accounts):
    """Each Flight SQL call is a session of its own: a BEGIN statement could not hold the
    statements after it, so it is refused with the way to get a transaction instead."""
    import adbc_driver_manager

    conn = server.adbc()
    try:
        cur = conn.cursor()
        for begin in ("BEGIN", "START TRANSACTION"):
            try:
                cur.execute(begin)
                raise AssertionError(f"{begin} over Flight SQL succeeded")
            except adbc_driver_manager.NotSupportedError as e:
                assert "not supported: BEGIN as a statement over Flight SQL" in str(e), e
                assert "autocommit off" in str(e)
                assert (b"sqlstate", b"0A000") in e.details
        # The connection goes on, outside any transaction.
        cur.execute("UPDATE acct SET bal = bal + 1 WHERE id = 1")
        assert balances(accounts) == [["1", "101"], ["2", "100"]]
    finally:
        conn.close()


ACCOUNTS = 10
START = 1000


def transfer_text(client, a: int, b: int, amount: int) -> bool:
    """One transfer over the text protocol; False when it hit a retryable conflict."""
    def ok(answer: str) -> bool:
        if answer.startswith("ERROR"):
            assert "conflict" in answer and "retry" in answer, answer
            return False
        return True

    if not ok(client.query("BEGIN;")):
        return False
    got = client.query(f"SELECT id, bal FROM acct WHERE id IN ({a}, {b}) ORDER BY id;")
    if not ok(got):
        client.query("ROLLBACK;")
        return False
    bal = {int(i): int(v) for i, v in rows(got)}
    for sql in (
        f"UPDATE acct SET bal = {bal[a] - amount} WHERE id = {a};",
        f"UPDATE acct SET bal = {bal[b] + amount} WHERE id = {b};",
        "COMMIT;",
    ):
        if not ok(client.query(sql)):
            client.query("ROLLBACK;")
            return False
    return True


def transfer_adbc(conn, a: int, b: int, amount: int) -> bool:
    """One transfer over Flight SQL (ADBC, autocommit off); False on a retryable conflict."""
    from adbc_driver_manager import dbapi

    cur = conn.cursor()
    try:
        cur.execute(f"SELECT id, bal FROM acct WHERE id IN ({a}, {b}) ORDER BY id")
        bal = dict(cur.fetchall())
        cur.execute(f"UPDATE acct SET bal = {bal[a] - amount} WHERE id = {a}")
        cur.execute(f"UPDATE acct SET bal = {bal[b] + amount} WHERE id = {b}")
        conn.commit()
        return True
    except dbapi.Error as e:
        message = str(e)
        assert "conflict" in message and "retry" in message, message
        return False
    finally:
        cur.close()


@pytest.mark.parametrize("mode", ["pessimistic", "optimistic"])
def test_bank_transfers_preserve_the_total(start_server, mode):
    server = start_server(["--concurrency", mode])
    clients, transfers = 8, 250
    try:
        with server.text() as setup:
            setup.ok("CREATE TABLE acct (id INT PRIMARY KEY, bal BIGINT NOT NULL);")
            values = ", ".join(f"({i}, {START})" for i in range(1, ACCOUNTS + 1))
            setup.ok(f"INSERT INTO acct VALUES {values};")
        done = [0] * clients
        conflicts = [0] * clients
        failures: list[BaseException] = []

        def work(n: int) -> None:
            rng = random.Random(n)
            use_text = n % 2 == 0
            client = server.text() if use_text else server.adbc(autocommit=False)
            try:
                while done[n] < transfers:
                    a, b = rng.sample(range(1, ACCOUNTS + 1), 2)
                    amount = rng.randint(1, 50)
                    moved = (
                        transfer_text(client, a, b, amount)
                        if use_text
                        else transfer_adbc(client, a, b, amount)
                    )
                    if moved:
                        done[n] += 1
                    else:
                        conflicts[n] += 1
                        if not use_text:
                            # The server rolled the transaction back; the ADBC driver's
                            # transaction state is not worth trusting after that.
                            client.close()
                            client = server.adbc(autocommit=False)
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                failures.append(e)
            finally:
                client.close()

        threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=1200)
        assert not failures, failures[0]
        assert done == [transfers] * clients
        with server.text() as check:
            got = rows(check.query("SELECT count(*), sum(bal) FROM acct;"))
            assert got == [[str(ACCOUNTS), str(ACCOUNTS * START)]], (got, conflicts)
        print(f"{mode}: {clients * transfers} transfers, {sum(conflicts)} conflicts retried")
    finally:
        server.stop()


def test_flight_prepared_statements_run_in_the_transaction(server, accounts):
    """ADBC prepares statements with the transaction id; the handle keeps it."""
    conn = server.adbc(autocommit=False)
    try:
        cur = conn.cursor()
        cur.adbc_prepare("UPDATE acct SET bal = bal + 1 WHERE id = 2")
        cur.execute("UPDATE acct SET bal = bal + 1 WHERE id = 2")
        cur.execute("UPDATE acct SET bal = bal + 1 WHERE id = 2")
        cur.adbc_prepare("SELECT bal FROM acct WHERE id = 2")
        cur.execute("SELECT bal FROM acct WHERE id = 2")
        assert cur.fetchone() == (102,)
        assert balances(accounts)[1] == ["2", "100"]
        conn.rollback()
        assert balances(accounts)[1] == ["2", "100"]
    finally:
        conn.close()

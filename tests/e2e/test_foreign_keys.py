"""FOREIGN KEY through the real clients: the Flight SQL key RPCs describe them, violations fail
with the constraint's name on both protocols, and concurrent clients inserting children while
others delete parents never leave a child whose parent is gone."""

from __future__ import annotations

import random
import threading

import pyarrow as pa

from conftest import parse_ascii_table
from test_flight_catalog import flight_read
from test_flight_pyarrow import _any, _field_bytes


def test_key_rpcs_describe_foreign_keys(server, text):
    text.ok("CREATE DATABASE shop;")
    text.ok("CREATE TABLE shop.customers (id INT PRIMARY KEY, email VARCHAR UNIQUE);")
    text.ok(
        "CREATE TABLE orders (id INT PRIMARY KEY, customer INT REFERENCES shop.customers "
        "ON DELETE CASCADE, email VARCHAR, region VARCHAR, "
        "CONSTRAINT order_email FOREIGN KEY (email) REFERENCES shop.customers (email));"
    )
    imported = flight_read(
        server, _any("CommandGetImportedKeys", _field_bytes(2, b"default") + _field_bytes(3, b"orders"))
    )
    assert imported.schema.field("key_sequence").type == pa.int32()
    assert imported.schema.field("delete_rule").type == pa.uint8()
    rows = [
        (r["pk_db_schema_name"], r["pk_table_name"], r["pk_column_name"], r["fk_table_name"],
         r["fk_column_name"], r["key_sequence"], r["fk_key_name"], r["pk_key_name"], r["delete_rule"])
        for r in imported.to_pylist()
    ]
    # Flight SQL's rules: CASCADE = 0, NO ACTION = 3.
    assert rows == [
        ("shop", "customers", "email", "orders", "email", 1, "order_email", "customers_email_key", 3),
        ("shop", "customers", "id", "orders", "customer", 1, "orders_customer_fkey", "customers_pkey", 0),
    ]
    exported = flight_read(
        server, _any("CommandGetExportedKeys", _field_bytes(2, b"shop") + _field_bytes(3, b"customers"))
    )
    assert sorted(r["fk_key_name"] for r in exported.to_pylist()) == ["order_email", "orders_customer_fkey"]
    assert {r["fk_db_schema_name"] for r in exported.to_pylist()} == {"default"}
    cross = flight_read(
        server,
        _any(
            "CommandGetCrossReference",
            _field_bytes(2, b"shop") + _field_bytes(3, b"customers")
            + _field_bytes(5, b"default") + _field_bytes(6, b"orders"),
        ),
    )
    assert cross.num_rows == 2
    unrelated = flight_read(
        server,
        _any(
            "CommandGetCrossReference",
            _field_bytes(2, b"default") + _field_bytes(3, b"orders")
            + _field_bytes(5, b"shop") + _field_bytes(6, b"customers"),
        ),
    )
    assert unrelated.num_rows == 0 and unrelated.schema == imported.schema
    missing = flight_read(server, _any("CommandGetImportedKeys", _field_bytes(3, b"nothing")))
    assert missing.num_rows == 0


def test_violations_name_the_constraint_on_both_protocols(server, text, conn):
    text.ok("CREATE TABLE parent (id INT PRIMARY KEY);")
    text.ok("CREATE TABLE child (id INT, pid INT REFERENCES parent);")
    text.ok("INSERT INTO parent VALUES (1);")
    text.ok("INSERT INTO child VALUES (1, 1);")
    answer = text.query("INSERT INTO child VALUES (2, 5);")
    assert answer.startswith("ERROR 23503: ") and "violates foreign key child_pid_fkey" in answer, answer
    assert "key (pid)=(5) is not present in table default.parent" in answer, answer

    cur = conn.cursor()
    try:
        cur.execute("DELETE FROM parent WHERE id = 1")
        raise AssertionError("the DELETE of a referenced row succeeded")
    except Exception as e:  # noqa: BLE001 - the driver's error class varies by version
        message = str(e)
    assert "violates foreign key child_pid_fkey of table default.child" in message, message
    cur.execute("SELECT count(*) FROM parent")
    assert cur.fetchall() == [(1,)]
    cur.close()


def test_concurrent_children_and_parent_deletes_never_leave_an_orphan(server, text):
    """Four clients insert children of random parents while four delete random parents, half of
    the children cascading: whatever interleaving, no child references a missing parent."""
    parents = 60
    text.ok("CREATE TABLE p (id INT PRIMARY KEY, name VARCHAR);")
    text.ok("CREATE TABLE c (id INT PRIMARY KEY, pid INT REFERENCES p, tag VARCHAR);")
    text.ok("CREATE TABLE k (id INT, pid INT REFERENCES p ON DELETE CASCADE);")
    values = ", ".join(f"({i}, 'p{i}')" for i in range(parents))
    text.ok(f"INSERT INTO p VALUES {values};")

    errors: list[str] = []
    counts = {"inserted": 0, "refused": 0, "deleted": 0, "kept": 0}
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def inserter(worker: int) -> None:
        rng = random.Random(worker)
        with server.text() as client:
            barrier.wait()
            for n in range(25):
                row = f"{worker * 1000 + n}, {rng.randrange(parents)}"
                statement = f"INSERT INTO c VALUES ({row}, 'x');" if n % 2 == 0 else f"INSERT INTO k VALUES ({row});"
                answer = client.query(statement)
                with lock:
                    if answer.startswith("Inserted"):
                        counts["inserted"] += 1
                    elif "violates foreign key" in answer:
                        counts["refused"] += 1
                    else:
                        errors.append(answer)

    def deleter(worker: int) -> None:
        rng = random.Random(100 + worker)
        with server.text() as client:
            barrier.wait()
            for _ in range(15):
                answer = client.query(f"DELETE FROM p WHERE id = {rng.randrange(parents)};")
                with lock:
                    if answer.startswith("Deleted"):
                        counts["deleted"] += 1
                    elif "is still referenced" in answer:
                        counts["kept"] += 1
                    else:
                        errors.append(answer)

    threads = [threading.Thread(target=inserter, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=deleter, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    assert errors == [], errors
    assert counts["inserted"] > 0 and counts["deleted"] > 0, counts

    for child in ("c", "k"):
        _, rows = parse_ascii_table(
            text.query(f"SELECT count(*) FROM {child} WHERE pid IS NOT NULL AND pid NOT IN (SELECT id FROM p);")
        )
        assert rows == [["0"]], (child, rows)
    # The same holds after a restart, read from storage alone.
    server.restart()
    with server.text() as client:
        for child in ("c", "k"):
            _, rows = parse_ascii_table(
                client.query(f"SELECT count(*) FROM {child} WHERE pid NOT IN (SELECT id FROM p);")
            )
            assert rows == [["0"]], (child, rows)

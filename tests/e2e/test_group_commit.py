"""Group commit: autocommit appends from many sessions share Delta commits, each statement stays
atomic and acknowledged means durable, even when the server is killed under that load."""

from __future__ import annotations

import json
import threading
import time

from conftest import parse_ascii_table
from test_delta_interop import read_delta_rs

WRITERS = 16
ROWS_PER_STATEMENT = 3


def load(server, table: str, seconds: float, kill_after: float | None = None):
    """WRITERS clients insert statements of ROWS_PER_STATEMENT rows each (one per `part`) for
    `seconds`, or until the server is killed `kill_after` seconds in; returns the (client, n)
    of every acknowledged statement and the number of statements answered with an error."""
    acknowledged: list[tuple[int, int]] = []
    errors = [0]
    lock = threading.Lock()
    stop = threading.Event()
    start = threading.Barrier(WRITERS + 1)

    def writer(me: int) -> None:
        client = server.text(timeout=60)
        try:
            start.wait()
            n = 0
            while not stop.is_set():
                n += 1
                values = ", ".join(f"({me}, {n}, {part})" for part in range(ROWS_PER_STATEMENT))
                try:
                    answer = client.query(f"INSERT INTO {table} VALUES {values};")
                except (ConnectionError, OSError, TimeoutError):
                    return
                with lock:
                    if answer == f"Inserted {ROWS_PER_STATEMENT} row(s) into {table}":
                        acknowledged.append((me, n))
                    else:
                        errors[0] += 1
        finally:
            client.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    start.wait()
    if kill_after is not None:
        time.sleep(kill_after)
        server.kill()
    else:
        time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    return acknowledged, errors[0]


def statements_in(text, table: str) -> dict[tuple[int, int], int]:
    _, rows = parse_ascii_table(
        text.query(f"SELECT client, n, count(*) AS parts FROM {table} GROUP BY client, n;")
    )
    return {(int(c), int(n)): int(parts) for c, n, parts in rows}


def test_concurrent_appends_share_commits_and_each_stays_whole(server):
    with server.text() as text:
        text.ok("CREATE TABLE g (client INT, n INT, part INT);")
    acknowledged, errors = load(server, "g", seconds=2.0)
    assert errors == 0
    assert len(acknowledged) > WRITERS
    with server.text() as text:
        stored = statements_in(text, "g")
        assert stored == {statement: ROWS_PER_STATEMENT for statement in acknowledged}
    conn = server.adbc()
    try:
        with conn.cursor() as cur:
            cur.execute("DESCRIBE HISTORY g")
            history = cur.fetch_arrow_table().sort_by("version")
    finally:
        conn.close()
    appends = history.column("operationParameters").to_pylist()[1:]
    grouped = [json.loads(parameters).get("groupedStatements", 1) for parameters in appends]
    # Fewer commits than statements: some commits held several, and they add up to all.
    assert sum(grouped) == len(acknowledged)
    assert max(grouped) > 1, grouped
    assert len(appends) < len(acknowledged)
    # A Delta reader sees the same rows.
    assert read_delta_rs(server.data_dir / "default" / "g").num_rows == ROWS_PER_STATEMENT * len(acknowledged)


def test_kill_9_under_sixteen_writers_loses_no_acknowledged_statement(server):
    with server.text() as text:
        text.ok("CREATE TABLE k (client INT, n INT, part INT);")
    acknowledged, _ = load(server, "k", seconds=30.0, kill_after=1.5)
    assert len(acknowledged) > WRITERS
    server.start()
    with server.text() as text:
        stored = statements_in(text, "k")
    # Every acknowledged statement is there, whole; any other statement there (one in flight
    # at the kill) is whole too: no statement was torn.
    missing = [statement for statement in acknowledged if statement not in stored]
    assert missing == []
    assert set(stored.values()) == {ROWS_PER_STATEMENT}, stored

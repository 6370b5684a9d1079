"""The memory limit: running statements share --memory-limit. A sort over its share spills to
--spill-dir and completes; an aggregate that cannot spill fails with "resources exhausted",
releases what it held, and the server and its other clients go on."""

from __future__ import annotations

import threading

from adbc_driver_manager import dbapi as adbc_dbapi

from conftest import parse_ascii_table

LIMIT_MIB = 64
#: Peak resident memory allowed beyond the limit: the binary, DataFusion's state, the batches
#: in flight between operators (not counted by the pool) and the allocator's slack.
MARGIN_MIB = 400

#: `string_agg` keeps one growing string and cannot spill (without a limit: gigabytes).
GREEDY = (
    "SELECT length(string_agg(CAST(value AS VARCHAR) || 'xxxxxxxxxxxxxxxxxxxxxxxx', ',')) AS n "
    "FROM generate_series(1, 60000000)"
)
#: A window over 3 M strings sorts about 90 MB: more than the limit, so the sort spills.
SPILLING = (
    "SELECT max(r) AS r FROM (SELECT row_number() OVER (ORDER BY s DESC) AS r FROM "
    "(SELECT CAST(value AS VARCHAR) || 'xxxxxxxxxxxxxxxxxxxxx' AS s FROM generate_series(1, 3000000)))"
)


def peak_rss_mib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(l for l in status if l.startswith("VmHWM:"))
    return int(line.split()[1]) // 1024


def test_statements_share_the_limit_and_the_server_keeps_serving(start_server, tmp_path):
    spill = tmp_path / "spill"
    spill.mkdir()
    server = start_server(["--memory-limit", f"{LIMIT_MIB}MiB", "--spill-dir", str(spill)])
    failures: list[str] = []

    def greedy():
        with server.adbc() as conn, conn.cursor() as cur:
            try:
                cur.execute(GREEDY)
                cur.fetchall()
                failures.append("the greedy query completed")
            except adbc_dbapi.Error as e:
                failures.append(str(e))

    threads = [threading.Thread(target=greedy) for _ in range(4)]
    for t in threads:
        t.start()
    # Meanwhile a normal client writes and reads without an error.
    text = server.text()
    text.ok("CREATE TABLE notes (id INT, body VARCHAR);")
    for i in range(20):
        assert text.query(f"INSERT INTO notes VALUES ({i}, 'note {i}');") == "Inserted into notes"
        _, rows = parse_ascii_table(text.query("SELECT count(*) FROM notes;"))
        assert rows == [[str(i + 1)]]
    for t in threads:
        t.join()
    assert len(failures) == 4
    for message in failures:
        assert "resources exhausted" in message and "--memory-limit" in message, message
    # The sort spills and answers.
    with server.adbc() as conn, conn.cursor() as cur:
        cur.execute(SPILLING)
        assert cur.fetchall() == [(3_000_000,)]
    plan = text.query(f"EXPLAIN ANALYZE {SPILLING};")
    assert "spill_count=0" not in plan and "spill_count=" in plan, plan
    assert peak_rss_mib(server.proc.pid) < LIMIT_MIB + MARGIN_MIB
    # Everything held was released: the same work runs again.
    with server.adbc() as conn, conn.cursor() as cur:
        cur.execute(SPILLING)
        assert cur.fetchall() == [(3_000_000,)]
        cur.execute("SELECT count(*) FROM notes")
        assert cur.fetchall() == [(20,)]

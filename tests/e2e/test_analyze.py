"""ANALYZE TABLE against the real server: the statistics reach DataFusion's planner beside the
bounds of the files' statistics (a join picks its build side from them), survive a restart, and
other engines still read the table."""

from __future__ import annotations

from conftest import parse_ascii_table
from test_mor import commits, peer_rows, query


def scans_in_join_order(text, sql: str) -> list[str]:
    """The tables a plan's hash join scans, build side first."""
    plan = text.query(f"EXPLAIN {sql};")
    physical = plan[plan.index("physical_plan") :]
    assert "HashJoinExec" in physical, physical
    return [line.split("table=")[1].split(",")[0] for line in physical.splitlines() if "DeltaScanExec" in line]


def scan_statistics(text, sql: str, table: str) -> str:
    """What the plan of `sql` tells the planner about its scan of `table`."""
    plan = text.query(f"EXPLAIN {sql};")
    return next(line for line in plan.splitlines() if f"table={table}," in line)


def test_file_and_analyzed_statistics_reach_the_planner(start_server):
    server = start_server(["--engine-setting=datafusion.explain.show_statistics=true"])
    text = server.text()
    conn = server.adbc()
    text.ok("CREATE TABLE big (x INT, k INT, pad VARCHAR);")
    for b in range(5):
        values = ", ".join(f"({b * 2000 + i}, {i % 100}, 'p{i}')" for i in range(2000))
        text.ok(f"INSERT INTO big VALUES {values};")
    text.ok("CREATE TABLE small (k INT, name VARCHAR);")
    text.ok("INSERT INTO small VALUES " + ", ".join(f"({i}, 'n{i}')" for i in range(100)) + ";")
    join = "SELECT big.x, small.name FROM big JOIN small ON big.k = small.k WHERE big.x < 50"
    expected = sorted((x, f"n{x % 100}") for x in range(50))
    cur = conn.cursor()

    # The files' statistics in the log give x's range, so x < 50 keeps about 10 of big's rows:
    # the filtered big side is built. They give k's bounds too; distinct counts need ANALYZE.
    assert scans_in_join_order(text, join) == ["default.big", "default.small"]
    before = scan_statistics(text, join, "default.big")
    assert "Max=Inexact(Int32(99)) Null=Inexact(0) ScanBytes" in before, before
    assert sorted(query(cur, join)) == expected

    # ANALYZE adds the distinct counts; the plan stays.
    header, rows = parse_ascii_table(text.query("ANALYZE TABLE big;"))
    figures = {r[1]: dict(zip(header, r)) for r in rows}
    assert (figures["x"]["row_count"], figures["x"]["min_value"], figures["x"]["max_value"]) == ("10000", "0", "9999")
    assert figures["k"]["distinct_count"] == "100"
    assert 9500 <= int(figures["x"]["distinct_count"]) <= 10500  # an estimate
    after = scan_statistics(text, join, "default.big")
    assert "Max=Inexact(Int32(99)) Null=Inexact(0) Distinct=Inexact(100) ScanBytes" in after, after
    assert scans_in_join_order(text, join) == ["default.big", "default.small"]
    assert sorted(query(cur, join)) == expected

    # ANALYZE over Flight SQL answers with the same figures.
    cur.execute("ANALYZE TABLE small (k)")
    assert cur.fetchall() == [("default.small", "k", 1, 100, 0, 100, "0", "99")]

    # The figures are in the table's configuration: other engines ignore them.
    table = server.data_dir / "default" / "big"
    last = commits(table)[-1]
    assert last[0]["commitInfo"]["operation"] == "ANALYZE"
    configuration = next(a["metaData"] for a in last if "metaData" in a)["configuration"]
    assert "minidb.statistics" in configuration
    for name, peer in peer_rows(table).items():
        assert len(peer) == 10000, name

    # They survive a restart and keep steering the planner.
    cur.close()
    conn.close()
    text.close()
    server.restart()
    with server.text() as again:
        assert scans_in_join_order(again, join) == ["default.big", "default.small"]
        assert "Distinct=Inexact(100) ScanBytes" in scan_statistics(again, join, "default.big")
        _, rows = parse_ascii_table(
            again.query("SELECT distinct_count FROM sys.columns_metadata WHERE table_name = 'big' AND column_name = 'k';")
        )
        assert rows == [["100"]]

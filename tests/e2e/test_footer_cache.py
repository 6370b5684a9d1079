"""The footer cache: scans find data files' parsed Parquet footers in memory instead of reading
them again, within the --footer-cache budget; a commit that takes files out of a table drops
their footers at once, so dead files do not crowd out live ones; sys.cache shows the tier."""

from __future__ import annotations

from conftest import parse_ascii_table

TIER = ("SELECT capacity_bytes, used_bytes, blocks, hits, misses, evictions FROM sys.cache "
        "WHERE tier = 'footers';")


def tier(t) -> dict[str, int]:
    header, rows = parse_ascii_table(t.ok(TIER))
    return {name: int(value) for name, value in zip(header, rows[0])}


def total(t, table: str) -> list[list[str]]:
    return parse_ascii_table(t.ok(f"SELECT count(*), sum(id) FROM {table};"))[1]


def test_footers_are_cached_and_dropped_with_their_files(start_server):
    server = start_server(["--footer-cache", "1MiB", "--compaction-interval-ms", "0"])
    with server.text() as t:
        assert tier(t)["capacity_bytes"] == 1024 * 1024
        t.ok("CREATE TABLE t (id BIGINT, note VARCHAR);")
        for start in range(0, 500, 100):
            t.ok(f"INSERT INTO t SELECT value, 'n' FROM generate_series({start}, {start + 99});")
        assert total(t, "t") == [["500", "124750"]]
        first = tier(t)
        assert first["blocks"] == 5 and first["misses"] >= 5, first
        assert 0 < first["used_bytes"] <= first["capacity_bytes"], first

        assert total(t, "t") == [["500", "124750"]]
        again = tier(t)
        assert again["hits"] >= first["hits"] + 5 and again["misses"] == first["misses"], again

        # OPTIMIZE packs the five files into one: their footers go with them.
        t.ok("OPTIMIZE t;")
        assert tier(t)["blocks"] == 0
        assert total(t, "t") == [["500", "124750"]]
        assert tier(t)["blocks"] == 1

        # A DELETE that only writes a deletion vector keeps the file, and its footer.
        t.ok("DELETE FROM t WHERE id < 10;")
        assert tier(t)["blocks"] == 1
        assert total(t, "t") == [["490", "124705"]]


def test_footers_stay_within_their_budget(start_server):
    server = start_server(["--footer-cache", "8KiB", "--compaction-interval-ms", "0"])
    with server.text() as t:
        for table in ("a", "b", "c", "d"):
            t.ok(f"CREATE TABLE {table} (id BIGINT, note VARCHAR);")
            for start in range(0, 300, 100):
                t.ok(f"INSERT INTO {table} SELECT value, 'n' "
                     f"FROM generate_series({start}, {start + 99});")
        for _ in range(2):
            for table in ("a", "b", "c", "d"):
                assert total(t, table) == [["300", "44850"]]
        last = tier(t)
        assert last["evictions"] > 0, last
        assert 0 < last["used_bytes"] <= 8 * 1024, last

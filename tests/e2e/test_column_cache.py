"""The column cache: scans read decoded column chunks of hot data files instead of Parquet.
What they return stays right across commits (deletion vectors, new files, OPTIMIZE), time
travel and eviction, and sys.cache shows the tier."""

from __future__ import annotations

from decimal import Decimal

CACHE_ROW = ("SELECT used_bytes, blocks, hits, misses, evictions, capacity_bytes "
             "FROM sys.cache WHERE tier = 'columns'")
SUMMARY = ("SELECT grp, count(*) AS n, sum(amount) AS total, min(name) AS first, max(id) AS last "
           "FROM t GROUP BY grp ORDER BY grp")


def query(cur, sql: str) -> list[tuple]:
    cur.execute(sql)
    return [tuple(r.values()) for r in cur.fetch_arrow_table().to_pylist()]


def cache(cur) -> dict[str, int]:
    rows = query(cur, CACHE_ROW)
    assert len(rows) == 1, rows
    return dict(zip(["used", "chunks", "hits", "misses", "evictions", "capacity"], rows[0]))


def insert_range(cur, model: dict, start: int, stop: int) -> None:
    """One INSERT (one data file) of ids start..stop-1, mirrored in `model`."""
    cur.execute(
        "INSERT INTO t SELECT value, CAST(value % 5 AS INT), 'name-' || CAST(value % 997 AS VARCHAR), "
        f"CAST(value % 1000 AS DECIMAL(12, 2)) / 4 FROM generate_series({start}, {stop - 1}) AS g(value)"
    )
    for i in range(start, stop):
        model[i] = (i % 5, f"name-{i % 997}", Decimal(i % 1000) / 4)


def summary(model: dict) -> list[tuple]:
    """SUMMARY computed from the model."""
    groups: dict[int, list] = {}
    for i, (grp, name, amount) in model.items():
        groups.setdefault(grp, []).append((i, name, amount))
    return [
        (grp, len(rows), sum(r[2] for r in rows).quantize(Decimal("0.01")),
         min(r[1] for r in rows), max(r[0] for r in rows))
        for grp, rows in sorted(groups.items())
    ]


def make_table(cur) -> dict:
    cur.execute("CREATE TABLE t (id BIGINT NOT NULL, grp INT, name VARCHAR, amount DECIMAL(12, 2))")
    model: dict = {}
    for start in range(0, 60_000, 20_000):
        insert_range(cur, model, start, start + 20_000)
    return model


def plan(cur, sql: str) -> str:
    cur.execute("EXPLAIN " + sql)
    return "\n".join(str(v) for r in cur.fetch_arrow_table().to_pylist() for v in r.values())


def test_a_repeated_scan_reads_cached_chunks(start_server):
    server = start_server(["--column-cache", "64MiB"])
    with server.adbc() as conn:
        cur = conn.cursor()
        model = make_table(cur)
        assert "ColumnScanExec" in plan(cur, SUMMARY)
        cold = cache(cur)
        assert query(cur, SUMMARY) == summary(model)
        warm = cache(cur)
        assert warm["misses"] > cold["misses"] and warm["used"] > 0 and warm["chunks"] > 0
        assert warm["capacity"] == 64 * 1024 * 1024
        assert query(cur, SUMMARY) == summary(model)
        hot = cache(cur)
        assert hot["misses"] == warm["misses"], "every chunk came from the cache"
        assert hot["hits"] > warm["hits"]


def test_answers_follow_commits_time_travel_and_optimize(start_server):
    server = start_server(["--column-cache", "64MiB"])
    with server.adbc() as conn:
        cur = conn.cursor()
        model = make_table(cur)  # versions 0 (CREATE) to 3
        assert query(cur, SUMMARY) == summary(model)
        before = dict(model)

        cur.execute("UPDATE t SET amount = amount + 1, name = 'updated' WHERE id % 7 = 0")
        for i in model:
            if i % 7 == 0:
                grp, _, amount = model[i]
                model[i] = (grp, "updated", amount + 1)
        assert query(cur, SUMMARY) == summary(model)

        cur.execute("DELETE FROM t WHERE id % 3 = 0 OR id BETWEEN 20000 AND 20999")
        model = {i: v for i, v in model.items() if not (i % 3 == 0 or 20_000 <= i <= 20_999)}
        assert query(cur, SUMMARY) == summary(model)

        insert_range(cur, model, 60_000, 61_000)
        assert query(cur, SUMMARY) == summary(model)
        assert query(cur, SUMMARY.replace("FROM t", "FROM t VERSION AS OF 3")) == summary(before)

        cur.execute("OPTIMIZE t")
        assert query(cur, SUMMARY) == summary(model)
        assert query(cur, "SELECT count(*) FROM t WHERE name = 'updated'") == [
            (sum(1 for v in model.values() if v[1] == "updated"),)
        ]
        assert query(cur, SUMMARY.replace("FROM t", "FROM t VERSION AS OF 3")) == summary(before)


def test_a_cache_smaller_than_the_data_evicts_and_stays_right(start_server):
    server = start_server(["--column-cache", "512KiB"])
    with server.adbc() as conn:
        cur = conn.cursor()
        model = make_table(cur)
        for _ in range(3):
            assert query(cur, SUMMARY) == summary(model)
        figures = cache(cur)
        assert figures["evictions"] > 0
        assert figures["used"] <= 512 * 1024


def test_without_the_cache_scans_read_parquet(start_server):
    server = start_server(["--column-cache", "0"])
    with server.adbc() as conn:
        cur = conn.cursor()
        model = make_table(cur)
        assert query(cur, CACHE_ROW) == []
        assert "ColumnScanExec" not in plan(cur, SUMMARY)
        assert query(cur, SUMMARY) == summary(model)


def test_a_join_filters_the_probe_scan_with_its_build_keys(start_server):
    """The keys of a hash join's small side reach the scan of its large side while the query
    runs (a runtime filter): the scan hands the join only the rows that can match, and the
    answer is the same."""
    server = start_server(["--column-cache", "64MiB"])
    with server.adbc() as conn:
        cur = conn.cursor()
        model = make_table(cur)
        cur.execute("CREATE TABLE picked (id BIGINT NOT NULL, tag VARCHAR)")
        picked = [7, 4_242, 31_337, 59_999]
        values = ", ".join(f"({i}, 'tag {i}')" for i in picked)
        cur.execute(f"INSERT INTO picked VALUES {values}")
        sql = ("SELECT p.tag, t.name, t.amount FROM picked p JOIN t ON t.id = p.id "
               "ORDER BY p.tag")
        expected = sorted((f"tag {i}", model[i][1], model[i][2]) for i in picked)
        assert query(cur, sql) == expected
        cur.execute("EXPLAIN ANALYZE " + sql)
        analyzed = "\n".join(str(v) for r in cur.fetch_arrow_table().to_pylist() for v in r.values())
        scan = next(line for line in analyzed.splitlines()
                    if "ColumnScanExec" in line and "runtime_filters=[" in line)
        assert "id@0 IN (SET)" in scan, scan
        assert "output_rows=4," in scan, scan
        removed = scan.split("rows_removed_by_runtime_filters=")[1].split(",")[0]
        assert removed in ("59996", "60.00 K"), scan

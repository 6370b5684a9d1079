"""Running MiniDB in production: the configuration file and its precedence (command line over
environment over file), and the Prometheus metrics endpoint counting real work.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import MINIDB_BIN, MiniDBServer


def scrape(server: MiniDBServer) -> dict[str, float]:
    """The server's metrics, as {'name{labels}': value}."""
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def string_type_of(server: MiniDBServer) -> pa.DataType:
    client = flight.FlightClient(server.flight_uri)
    from flightsql import flightsql_pb2 as pb
    from test_flight_jdbc_replay import packed

    sql = "SELECT arrow_cast('x', 'Utf8View') AS v"
    info = client.get_flight_info(flight.FlightDescriptor.for_command(packed(pb.CommandStatementQuery(query=sql))))
    return info.schema.field("v").type


def test_config_file_settings_and_their_precedence(tmp_path):
    config = tmp_path / "minidb.toml"
    config.write_text('flight_plain_strings = false\nmetrics-addr = "127.0.0.1:0"\n')

    srv = MiniDBServer(tmp_path, tmp_path, ["--config", str(config)]).start()
    try:
        assert srv.metrics_port, "the file's metrics-addr was not applied"
        assert string_type_of(srv) == pa.string_view()
    finally:
        srv.stop()

    # The environment wins over the file...
    srv = MiniDBServer(tmp_path, tmp_path, ["--config", str(config)],
                       env={"MINIDB_FLIGHT_PLAIN_STRINGS": "true"}).start()
    try:
        assert string_type_of(srv) == pa.string()
    finally:
        srv.stop()

    # ...and the command line over the environment.
    srv = MiniDBServer(tmp_path, tmp_path, ["--config", str(config), "--flight-plain-strings", "false"],
                       env={"MINIDB_FLIGHT_PLAIN_STRINGS": "true"}).start()
    try:
        assert string_type_of(srv) == pa.string_view()
    finally:
        srv.stop()


@pytest.mark.parametrize(
    "text, message",
    [
        ("dta = './x'\n", "unknown setting 'dta'"),
        ("compaction-interval-ms = 'soon'\n", "invalid value 'soon'"),
        ("data = [1, 2]\n", "setting 'data' must be a string, a number or a boolean"),
        ("data = \n", "configuration file"),
    ],
)
def test_a_bad_config_file_stops_the_server_with_the_cause(tmp_path, text, message):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    result = subprocess.run(
        [MINIDB_BIN, "serve", "--config", str(config), "--data", str(tmp_path / "data"),
         "--flight-addr", "127.0.0.1:0", "--text-addr", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def engine_setting(server: MiniDBServer, name: str) -> str:
    with server.text() as t:
        return t.query(f"SELECT value FROM information_schema.df_settings WHERE name = '{name}';")


def test_engine_settings_apply_over_the_defaults(tmp_path):
    batch = "datafusion.execution.batch_size"
    srv = MiniDBServer(tmp_path, tmp_path).start()
    try:
        assert "| 65536 |" in engine_setting(srv, batch)
    finally:
        srv.stop()
    config = tmp_path / "minidb.toml"
    config.write_text(f'engine-setting = "{batch}=1000,datafusion.execution.target_partitions=3"\n')
    srv = MiniDBServer(tmp_path, tmp_path, ["--config", str(config)]).start()
    try:
        assert "| 1000  |" in engine_setting(srv, batch)
        assert "| 3     |" in engine_setting(srv, "datafusion.execution.target_partitions")
    finally:
        srv.stop()
    srv = MiniDBServer(tmp_path, tmp_path, [f"--engine-setting={batch}=77"],
                       env={"MINIDB_ENGINE_SETTINGS": f"{batch}=1000"}).start()
    try:
        assert "| 77    |" in engine_setting(srv, batch)
    finally:
        srv.stop()


@pytest.mark.parametrize(
    "setting, message",
    [
        ("datafusion.execution.no_such_thing=1", "engine setting datafusion.execution.no_such_thing"),
        ("datafusion.execution.batch_size=many", "engine setting datafusion.execution.batch_size"),
        ("batch_size", "expected KEY=VALUE"),
    ],
)
def test_a_bad_engine_setting_stops_the_server_with_the_key(tmp_path, setting, message):
    result = subprocess.run(
        [MINIDB_BIN, "serve", "--engine-setting", setting, "--data", str(tmp_path / "data"),
         "--flight-addr", "127.0.0.1:0", "--text-addr", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_metrics_count_statements_commits_bytes_files_and_sessions(tmp_path):
    srv = MiniDBServer(tmp_path, tmp_path, [
        "--metrics-addr", "127.0.0.1:0", "--lock-timeout-ms", "200",
        "--compaction-interval-ms", "300", "--compaction-min-small-files", "6",
    ]).start()
    try:
        before = scrape(srv)
        assert before.get('minidb_sessions_active{protocol="text"}', 0) == 0

        with srv.text() as t:
            t.ok("CREATE TABLE m (id INT, v VARCHAR);")
            for i in range(4):
                t.ok(f"INSERT INTO m VALUES ({i * 10}, 'a'), ({i * 10 + 1}, 'b');")
            t.ok("SELECT * FROM m WHERE id = 31;")
            assert t.query("SELECT * FROM nope;").startswith("ERROR")
            during = scrape(srv)
            assert during['minidb_sessions_active{protocol="text"}'] == 1

            # A writer waiting for a table another transaction holds gives up with a conflict.
            with srv.text() as other:
                other.ok("BEGIN;")
                other.ok("UPDATE m SET v = 'c' WHERE id = 0;")
                assert "conflict" in t.query("UPDATE m SET v = 'd' WHERE id = 1;")
                other.ok("ROLLBACK;")
            # Six small files: now background compaction has work.
            t.ok("INSERT INTO m VALUES (40, 'e');")
            t.ok("INSERT INTO m VALUES (50, 'f');")

        with srv.adbc() as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM m")
            assert cur.fetchone() == (10,)

        deadline = time.monotonic() + 30
        while scrape(srv).get('minidb_compaction_runs_total{outcome="ok"}', 0) < 1:
            assert time.monotonic() < deadline, "background compaction never ran"
            time.sleep(0.2)

        after = scrape(srv)
        grew = lambda name: after.get(name, 0) - before.get(name, 0)
        assert grew('minidb_statements_total{protocol="text",outcome="ok"}') >= 8
        assert grew('minidb_statements_total{protocol="text",outcome="error"}') >= 2
        assert grew('minidb_statements_total{protocol="flight",outcome="ok"}') >= 1
        assert grew('minidb_statement_duration_seconds_count{protocol="text"}') >= 10
        assert grew("minidb_commits_total") >= 5
        assert grew("minidb_commit_conflicts_total") >= 1
        assert grew("minidb_storage_written_bytes_total") > 1000
        assert grew("minidb_storage_read_bytes_total") > 1000
        # Four files, three of them skipped by their id statistics for `id = 31`.
        assert grew("minidb_scan_files_skipped_total") >= 3
        assert grew("minidb_scan_files_total") >= 1
        assert after['minidb_sessions_active{protocol="text"}'] == 0
        assert after.get('minidb_sessions_active{protocol="flight"}', 0) == 0
    finally:
        srv.stop()

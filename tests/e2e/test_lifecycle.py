"""Server lifecycle: startup announcement, graceful stop on SIGTERM/SIGINT."""

from __future__ import annotations

import signal

from conftest import MiniDBServer


def test_sigterm_right_after_startup_is_graceful(tmp_path):
    """Once the `listening` lines are printed the server is ready, so a SIGTERM sent at that
    moment must already take the graceful path (exit code 0), not the default signal action."""
    codes = []
    for i in range(20):
        data = tmp_path / f"data{i}"
        data.mkdir()
        srv = MiniDBServer(data, tmp_path)
        srv.start()
        codes.append(srv.stop())
    assert codes == [0] * 20


def test_sigint_stops_gracefully(server):
    with server.text() as c:
        c.ok("CREATE DATABASE s;")
        proc = server.proc
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert "Bye" in c.read_to_eof().decode("utf-8")
    assert server.stop() == 0
    server.start()
    with server.text() as c:
        assert "s" in c.query("SHOW DATABASES;").split("\n - ")

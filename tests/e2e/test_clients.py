"""The examples in clients/python, run as a user would, against a fresh server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "clients" / "python"


def run_example(name: str, address: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), address],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_adbc_quickstart(server):
    out = run_example("adbc_quickstart.py", server.flight_uri)
    assert "Alice" in out and "Bob" in out


def test_adbc_dataframes(server):
    out = run_example("adbc_dataframes.py", server.flight_uri)
    assert "big cities: ['Lima', 'Pune']" in out
    assert "Kyiv" in out
    assert "minidb.frames: ['cities']" in out
    assert "after rollback: 4 cities" in out


def test_sqlalchemy_reflect(server):
    out = run_example("sqlalchemy_reflect.py", f"127.0.0.1:{server.flight_port}")
    assert "planets with moons: ['Earth', 'Mars']" in out
    assert "'default'" in out and "tables in default: ['planets']" in out
    assert "columns: [('id', 'INTEGER', False), ('name', 'TEXT', True), ('moons', 'INTEGER', True)]" in out
    assert "primary key: ['id']" in out
    assert "moonless: ['Mercury']" in out


def test_pyarrow_flight(server):
    out = run_example("pyarrow_flight.py", server.flight_uri)
    assert "[{'id': 1, 'body': 'plain pyarrow'}, {'id': 2, 'body': 'works'}]" in out


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_every_example_is_tested(name):
    tested = {"adbc_quickstart.py", "adbc_dataframes.py", "sqlalchemy_reflect.py", "pyarrow_flight.py"}
    assert name in tested, f"{name} has no test in {Path(__file__).name}"

"""`kill -9` in the middle of maintenance: OPTIMIZE, VACUUM, a checkpoint write and background
compaction, 20 rounds each, killed at varied moments. After every restart the table holds
exactly the acknowledged rows (maintenance never changes them, committed or not), no file a
snapshot needs is missing, and delta-rs reads what MiniDB reads. Runs on local disk and, in the
suite's S3 run, on S3."""

from __future__ import annotations

import random
import time

import pytest

from conftest import parse_ascii_table
from test_delta_interop import read_delta_rs

ROUNDS = 20
ROWS_PER_INSERT = 5_000

#: The commit each operation ends with, as DESCRIBE HISTORY names it.
COMMITS = {"optimize": "OPTIMIZE", "vacuum": "VACUUM END", "compaction": "OPTIMIZE"}


def figures(text) -> tuple[int, int]:
    answer = text.query("SELECT count(*), coalesce(sum(id), 0) FROM t;")
    assert not answer.startswith("ERROR"), answer
    count, total = parse_ascii_table(answer)[1][0]
    return int(count), int(total)


def commits_of(text, operation: str) -> int:
    history = parse_ascii_table(text.query("DESCRIBE HISTORY t;"))[1]
    return [row[2] for row in history].count(COMMITS.get(operation, ""))


@pytest.mark.parametrize("operation", ["optimize", "vacuum", "checkpoint", "compaction"])
def test_kill_9_during_maintenance_loses_and_tears_nothing(start_server, operation):
    """The kill comes a random time after the operation starts, within a window that adapts
    (shorter after a round whose operation committed, longer after one it did not), so the
    kills land on both sides of its commit and in the middle of its writes."""
    compaction = operation == "compaction"
    server = start_server([
        f"--compaction-interval-ms={20 if compaction else 0}",
        "--compaction-min-small-files=2",
    ])
    properties = ["'delta.deletedFileRetentionDuration' = 'interval 0 hours'"]
    if operation == "checkpoint":
        properties.append("'delta.checkpointInterval' = '1'")
    with server.text() as text:
        text.ok(f"CREATE TABLE t (id BIGINT, pad VARCHAR) TBLPROPERTIES ({', '.join(properties)});")
    rng = random.Random(operation)
    expected: set[int] = set()
    next_id = 0
    window = 0.2
    interrupted = 0
    committed = 0
    for round in range(ROUNDS):
        with server.text() as text:
            for _ in range(3):
                text.ok(
                    f"INSERT INTO t SELECT value, repeat('x', 64) FROM "
                    f"generate_series({next_id}, {next_id + ROWS_PER_INSERT - 1});"
                )
                expected |= set(range(next_id, next_id + ROWS_PER_INSERT))
                next_id += ROWS_PER_INSERT
            text.ok(f"DELETE FROM t WHERE id % 13 = {round % 13};")
            expected = {i for i in expected if i % 13 != round % 13}
            if operation == "vacuum":
                # Files OPTIMIZE replaced are what VACUUM deletes.
                text.ok("OPTIMIZE t;")
            before = commits_of(text, operation)
            # Sent and never acknowledged. A checkpoint is being written in the background
            # after the acknowledged commits; compaction runs on its own schedule.
            if operation in ("optimize", "vacuum"):
                text.sock.sendall(f"{operation.upper()} t;\n".encode())
            time.sleep(rng.uniform(0, window))
            server.restart(hard=True)
        with server.text() as text:
            assert figures(text) == (len(expected), sum(expected)), f"round {round}"
            if operation == "checkpoint":
                # Written within milliseconds of its commit.
                window = 0.05
            elif commits_of(text, operation) > before:
                committed += 1
                window *= 0.7
            else:
                interrupted += 1
                window *= 1.4
    if operation in ("optimize", "vacuum"):
        assert committed > 0 and interrupted > 0, (committed, interrupted)
    if not server.data.startswith("s3://"):
        ids = sorted(r["id"] for r in read_delta_rs(server.data_dir / "default" / "t").to_pylist())
        assert ids == sorted(expected)

"""Single-row INSERTs over :7205, one commit each, into one table with background compaction:
the rate and the server's resident memory per phase, to see whether a table's write speed holds
as its log grows (checkpoints every `delta.checkpointInterval` commits, log cleanup).

    .venv/bin/python tests/bench/commit_rate.py [--phases 8] [--inserts 3000] [--compaction-interval-ms 5000]

`--compaction-interval-ms 0` turns background compaction off, so every INSERT's file stays and
the table's file list grows with its log.

Uses MINIDB_BIN (build with `cargo build --release`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import conftest  # noqa: E402


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", type=int, default=8)
    parser.add_argument("--inserts", type=int, default=3000, help="INSERTs per phase")
    parser.add_argument("--checkpoint-interval", type=int, default=10)
    parser.add_argument("--compaction-interval-ms", type=int, default=5000)
    args = parser.parse_args()
    print(f"binary: {conftest.MINIDB_BIN}")

    work = Path(tempfile.mkdtemp(prefix="minidb-bench-"))
    (work / "data").mkdir()
    server = conftest.MiniDBServer(work / "data", work, ["--compaction-interval-ms", str(args.compaction_interval_ms)]).start()
    try:
        text = server.text()
        text.ok(
            "CREATE TABLE t (id BIGINT NOT NULL, note VARCHAR) TBLPROPERTIES ("
            "'delta.deletedFileRetentionDuration' = 'interval 30 seconds', "
            f"'delta.checkpointInterval' = '{args.checkpoint_interval}');"
        )
        n = 0
        print("phase  commits  inserts/s  rss MB")
        for phase in range(args.phases):
            started = time.perf_counter()
            for _ in range(args.inserts):
                n += 1
                text.ok(f"INSERT INTO t VALUES ({n}, 'x');")
            rate = args.inserts / (time.perf_counter() - started)
            print(f"{phase + 1:5}  {n:7}  {rate:9.0f}  {rss_mb(server.proc.pid):6.0f}", flush=True)
        text.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()

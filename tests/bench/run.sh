#!/usr/bin/env bash
# Runs every benchmark in tests/bench against a release build of the server, one after another,
# each beside DuckDB and delta-rs on the same data, and prints their figures (tests/bench/README.md
# quotes them). Installs the Python clients in .venv like the test command.
#
#   bash tests/bench/run.sh           # the sizes its README reports (about 80 minutes on 2 cores)
#   bash tests/bench/run.sh --quick   # small sizes, to check that every benchmark still runs
set -euo pipefail
cd "$(dirname "$0")/../.."

quick=false
case "${1:-}" in
  --quick) quick=true ;;
  "") ;;
  *) echo "usage: bash tests/bench/run.sh [--quick]" >&2; exit 2 ;;
esac

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt \
  -r tests/bench/requirements.txt
cargo build --release --bins
MINIDB_BIN="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/minidb"
export MINIDB_BIN

run() {
  echo
  echo "=== $*"
  .venv/bin/python "$@"
}

if $quick; then
  run tests/bench/point_lookup.py --rows 200000 --lookups 50 --scans 5 --warm-up 100 --inserts 10
  run tests/bench/update_one_row.py --rows 700000 --updates 2
  run tests/bench/merge.py --rows 200000
  run tests/bench/zorder.py --rows 200000 --files 16
  run tests/bench/open_log.py --commits 300 --runs 2
  run tests/bench/insert_latency.py --calls 100 --warm-up 10
  run tests/bench/writers.py --clients 1,16 --seconds 2
  run tests/bench/ingest.py --scale 0.05
  run tests/bench/tpch.py --scale 0.1 --runs 1
  run tests/bench/tpch_s3.py --scale 0.1 --runs 1
  run tests/bench/roundtrip.py --calls 50 --rows 20000
  run tests/bench/stream.py --scale 0.1 --runs 1
else
  run tests/bench/point_lookup.py
  run tests/bench/update_one_row.py
  run tests/bench/merge.py
  run tests/bench/zorder.py
  run tests/bench/open_log.py
  run tests/bench/insert_latency.py
  run tests/bench/writers.py
  run tests/bench/ingest.py
  run tests/bench/tpch.py
  run tests/bench/tpch_s3.py
  run tests/bench/roundtrip.py
  run tests/bench/stream.py
fi

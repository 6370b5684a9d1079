#!/usr/bin/env bash
# Runs every MiniDB test on a fresh machine: installs the Python test clients and servers in
# .venv, checks formatting and lints, checks the Dockerfile and Helm chart, runs the Rust unit
# tests, the sqllogictest suites (our own and the SQLite corpus in ../shared/corpora) and the
# end-to-end tests against the real server binary (on local disk and on an S3 server).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt

bash tests/deploy.sh

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
# `cargo test` also builds the binaries the e2e suites start, with the dependency features the
# tests resolve; a separate `cargo build --bins` resolves them without the dev-dependencies and
# so compiles DataFusion and its dependencies a second time.
cargo test --lib --bins --test admin
cargo test --test sqllogictest

export MINIDB_BIN="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug/minidb"
.venv/bin/python -m pytest tests/e2e -q
# The same suite with every `server` over an S3 bucket (SeaweedFS on loopback); tests that
# inspect table files on local disk skip from that point, and -rs lists them.
MINIDB_TEST_STORAGE=s3 .venv/bin/python -m pytest tests/e2e -q -rs --ignore tests/e2e/test_s3.py

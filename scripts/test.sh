#!/usr/bin/env bash
# The test suite, on both backends: everything against PostgreSQL (started if down), then the
# integration tests again against SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-postgres.sh
scripts/ensure-chromium.sh   # headless Chromium and ChromeDriver for the browser tests
cargo test --workspace --all-targets
# Doctests (--all-targets leaves them out): e.g. that a secret cannot be compared with ==.
cargo test --workspace --doc
# --workspace keeps the features of the first build, so nothing is compiled again.
# Tests of promises about PostgreSQL alone run on PostgreSQL above; here they are left out.
FIRSTCALL_TEST_DB=sqlite cargo test --workspace --test api -- --skip postgres_only::

#!/usr/bin/env bash
# The fuzz targets under libFuzzer (cargo fuzz), coverage-guided, for longer runs than the
# bounded corpus run in the test suite (tests/fuzz_corpus.rs, same checks: fuzz/checks.rs).
#
#   scripts/fuzz.sh [seconds per target, default 300] [target ...]
#
# Targets: parse_generic parse_hubspot parse_pipedrive parse_salesforce signatures parse_notes. Seeds come
# from tests/fixtures/ and fuzz/regressions/<target>/; what libFuzzer finds goes to
# fuzz/corpus/<target>/ (not committed) and crashes to fuzz/artifacts/<target>/. Keep a crash
# input in fuzz/regressions/<target>/ once it is fixed, so every test run replays it.
#
# The first build compiles firstcall and its dependencies in release mode with coverage
# instrumentation: about 14 minutes on this 2-core machine (measured while other builds ran).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-300}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(parse_generic parse_hubspot parse_pipedrive parse_salesforce signatures parse_notes)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo fuzz passes flags the stable compiler accepts only this way; no sanitizer keeps the
# standard library prebuilt (the stable toolchain has no instrumented one).
export RUSTC_BOOTSTRAP=1
cd fuzz
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "regressions/$t"
  seeds=()
  [ "$t" != signatures ] && seeds+=("../tests/fixtures/${t#parse_}")
  echo "== $t for $secs s"
  cargo fuzz run --sanitizer none "$t" "corpus/$t" "${seeds[@]}" "regressions/$t" -- -max_total_time="$secs" -print_final_stats=1
done

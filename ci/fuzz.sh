#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ and runs each for a bounded time from the
# committed seed corpus (fuzz/corpus/<target>/), copied to a scratch dir so the run
# never changes the repository, after replaying fuzz/regressions/<target>/. Exits non-zero if any target crashes, leaks past
# libFuzzer's memory limit or hangs; prints each target's execution count.
#
# Knobs: FUZZ_SECS=<n>     seconds per target (default 15; 0 = no time limit)
#        FUZZ_RUNS=<n>     stop a target after n executions (default: no limit)
#        FUZZ_TARGETS="a b" the targets to run (default: all of them)
#        FUZZ_SANITIZER=none|address (default none, see fuzz/README.md)
# Long run (one target at a time, as here): FUZZ_SECS=3600 nice -n 10 ci/fuzz.sh
#
# cargo-fuzz drives rustc flags that are unstable on paper; the stable toolchain accepts
# them with RUSTC_BOOTSTRAP=1, which is set for the build only.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

FUZZ_SECS="${FUZZ_SECS:-15}"
FUZZ_RUNS="${FUZZ_RUNS:--1}"
FUZZ_SANITIZER="${FUZZ_SANITIZER:-none}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
cargo fuzz --version

started=$(date +%s)
# fuzz/Cargo.lock as committed (cargo fuzz build has no --locked of its own).
cargo metadata --locked --format-version 1 >/dev/null
# The harness's own tests first: its checker catches what it must (src/checker.rs) and the
# raft_step seeds still elect and replicate (tests/seeds.rs).
cargo test --locked --release --quiet
echo "fuzz harness tests took $(( $(date +%s) - started ))s"
# -O: optimised; -a: with debug assertions (the raft crate's invariant checks) and
# overflow checks.
RUSTC_BOOTSTRAP=1 cargo fuzz build -O -a -s "$FUZZ_SANITIZER"
echo "fuzz build took $(( $(date +%s) - started ))s"

triple=$(rustc -vV | sed -n 's/^host: //p')
bin_dir="target/$triple/release"
targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p artifacts

failed=()
summary=()
for target in $targets; do
  echo "== fuzz target $target: ${FUZZ_SECS}s, runs ${FUZZ_RUNS}"
  mkdir -p "$scratch/$target" "artifacts/$target"
  cp -R "corpus/$target/." "$scratch/$target/"
  # Inputs that once crashed the target are replayed first (libFuzzer only reads the
  # second corpus dir; what it finds goes to the scratch copy).
  regressions=()
  if [ -d "regressions/$target" ]; then
    regressions=("regressions/$target")
  fi
  log="$scratch/$target.log"
  status=0
  target_started=$(date +%s)
  "$bin_dir/$target" "$scratch/$target" "${regressions[@]}" \
    -max_total_time="$FUZZ_SECS" -runs="$FUZZ_RUNS" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="artifacts/$target/" >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  secs=$(( $(date +%s) - target_started ))
  corpus=$(find "$scratch/$target" -type f | wc -l)
  line="$target: ${runs:-?} executions in ${secs}s, corpus ${corpus} inputs"
  if [ "$status" -ne 0 ]; then
    # The crash report: the panic, the stack, the input (its file and base64).
    grep -v '^INFO\|^#[0-9]\|^WARNING: Failed to find function' "$log" | tail -n 60
    line="$line: FAILED (exit $status; input kept in fuzz/artifacts/$target/)"
    failed+=("$target")
  fi
  echo "$line"
  summary+=("$line")
done

echo
echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -ne 0 ]; then
  echo "fuzz targets failed: ${failed[*]}"
  exit 1
fi

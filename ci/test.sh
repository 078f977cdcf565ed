#!/usr/bin/env bash
# The project's test command (README quick start; `.ci/run` calls it).
# Knobs: CASES=<n> random Raft schedules in the property test (default 2000);
#        SIM_SEEDS=<n> simulated cluster runs (default 200).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "format"
cargo fmt --all -- --check

step "tidy: the raft crate stays sans-IO"
ci/tidy.sh --self-test
ci/tidy.sh raft

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "the driver path builds under madsim (RUSTFLAGS=--cfg madsim, own target dir)"
RUSTFLAGS="--cfg madsim" cargo check --locked -p node -p client -p sim --lib --target-dir target/madsim

step "tests (CASES=${CASES:-2000} random schedules)"
started=$(date +%s)
cargo test --workspace --locked -- --show-output
echo "tests took $(( $(date +%s) - started ))s"

step "deterministic simulation: 200 seeds of real nodes under madsim, leader crashes, checked history"
MADSIM_TEST_SEED=1 ci/sim.sh "${SIM_SEEDS:-200}"
step "simulation determinism: one seed run twice"
MADSIM_TEST_CHECK_DETERMINISM=1 MADSIM_TEST_SEED=42 ci/sim.sh 1

step "the README's local cluster walk-through (ci/demo.sh)"
ci/demo.sh

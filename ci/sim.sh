#!/usr/bin/env bash
# Deterministic simulation of whole raftkv clusters (issue 4): the real node code (driver,
# transport, KV state machine, client listener) runs inside madsim, with simulated storage,
# while the leader is killed and restarted and clients record a history that must be
# linearizable.
#
# `--cfg madsim` swaps tokio (madsim-tokio) for madsim's simulated runtime: one thread, a
# simulated clock and network, one seed deciding every scheduling choice. It changes every
# crate's build, hence the separate target dir, so normal builds are not invalidated.
#
# Usage: ci/sim.sh [seeds]   (or SEEDS=N; default 20). MADSIM_TEST_SEED=N picks the first
# seed (default: from the clock); a failure prints the seed, and
#   MADSIM_TEST_SEED=<seed> SEEDS=1 ci/sim.sh
# replays it exactly. MADSIM_TEST_CHECK_DETERMINISM=1 runs one seed twice and compares.
set -euo pipefail
cd "$(dirname "$0")/.."

seeds="${1:-${SEEDS:-20}}"
export MADSIM_TEST_NUM="$seeds"
RUSTFLAGS="--cfg madsim" cargo test --locked -p sim --features canaries --target-dir target/madsim --test simulation -- --nocapture

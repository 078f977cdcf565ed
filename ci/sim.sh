#!/usr/bin/env bash
# Deterministic simulation of whole raftkv clusters (issue 4). The real node code (driver,
# transport, KV state machine, client listener) runs inside madsim with simulated disks,
# under a seed-derived schedule of crashes (torn writes), pauses, partitions, one-way
# cuts, leader isolation, latency spikes, restarts after compaction, lost disks and
# replaced members (the node rejoins by itself), sometimes two faults at once, while
# clients record a history. Each seed must keep the Raft invariants, give a linearizable
# history, elect a leader and let every client progress once healed, make every node a
# voter again, and converge. Every run also
# replays the fixed regression seeds (REGRESSION_SEEDS in sim/tests/simulation.rs).
#
# `--cfg madsim` swaps tokio (madsim-tokio) for madsim's simulated runtime: one thread, a
# simulated clock and network, one seed deciding every scheduling choice. It changes every
# crate's build, hence the separate target dir, so normal builds are not invalidated.
# The `canaries` feature compiles in the known bugs the canary tests switch on (off in
# every other run; the feature cannot be built without --cfg madsim).
# `--cfg tokio_unstable` lets each run seed tokio's own random generator, which `select!`
# and `sync::watch` draw from (sim/src/runner.rs, `with_seeded_tokio_rng`): without it a
# seed does not replay exactly.
#
# Usage: ci/sim.sh [seeds]   (or SEEDS=N; default 20)
#   MADSIM_TEST_SEED=N      first seed (default: from the clock); a failure prints its seed,
#                           and MADSIM_TEST_SEED=<seed> ci/sim.sh 1 replays it exactly
#   SIM_VERBOSE=1           print every fault of every seed (failing seeds always do)
#   MADSIM_TEST_CHECK_DETERMINISM=1   run the first seed twice, compare every random draw
#   SIM_CANARIES=0          skip the canary tests (they run after the seeds otherwise)
#   SIM_KEEP_GOING=1        run every seed even after a failure; list the failures at the end
#   SIM_PROFILE=sim         build with the optimised `sim` profile (assertions kept), as
#                           ci/soak.sh does; default: the test profile
#   RUST_LOG=raft=debug,sim=debug   every node's log lines (for replaying one seed)
set -euo pipefail
cd "$(dirname "$0")/.."

seeds="${1:-${SEEDS:-20}}"
cargo_test=(cargo test --locked -p raftkv-sim --features canaries --target-dir target/madsim --profile "${SIM_PROFILE:-test}")
export RUSTFLAGS="--cfg madsim --cfg tokio_unstable"

# The seeds asked for, then the fixed regression seeds (tests/simulation.rs), one at a time.
MADSIM_TEST_NUM="$seeds" "${cargo_test[@]}" --test simulation -- --nocapture --test-threads 1

if [[ -z ${MADSIM_TEST_CHECK_DETERMINISM:-} && ${SIM_CANARIES:-1} != 0 ]]; then
  echo "== canaries: each known bug must be found within its fixed seed range"
  "${cargo_test[@]}" --test canaries -- --nocapture --test-threads 1
fi

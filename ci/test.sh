#!/usr/bin/env bash
# The project's test command (README quick start; `.ci/run` calls it).
# Knobs: CASES=<n> random Raft schedules in the property test (default 2000);
#        SIM_SEEDS=<n> simulated cluster runs (default 200);
#        FUZZ_SECS=<n> seconds per fuzz target (default 15).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "format"
cargo fmt --all -- --check

step "tidy: the raft crate stays sans-IO"
ci/tidy.sh --self-test
ci/tidy.sh raft

step "scripts CI does not run: bash -n (bench/compare-etcd.sh, the etcd comparison)"
for script in bench/compare-etcd.sh; do
    bash -n "$script"
    echo "ok $script"
done
python3 -c "import ast, sys; ast.parse(open(sys.argv[1]).read())" bench/compare_etcd.py && echo "ok bench/compare_etcd.py"

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Kubernetes manifests: kustomize, strict schema validation, property checks (ci/k8s-manifests.sh)"
ci/k8s-manifests.sh

step "clippy under madsim (RUSTFLAGS=--cfg madsim --cfg tokio_unstable as ci/sim.sh, own target dir): the node, client and simulation code paths"
RUSTFLAGS="--cfg madsim --cfg tokio_unstable" cargo clippy --locked -p raftkv-raft -p raftkv-node -p raftkv-wire -p raftkv-client --lib --features raftkv-node/canaries \
  --target-dir target/madsim -- -D warnings
RUSTFLAGS="--cfg madsim --cfg tokio_unstable" cargo clippy --locked -p raftkv-sim --all-targets --features canaries \
  --target-dir target/madsim -- -D warnings

step "tests (CASES=${CASES:-2000} random schedules)"
started=$(date +%s)
# The smoke CLI test runs the node binary of another package: name it, so it cannot skip.
RAFTKV_NODE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/raftkv-node" cargo test --workspace --locked -- --show-output
echo "tests took $(( $(date +%s) - started ))s"

step "deterministic simulation: ${SIM_SEEDS:-200} seeds of 3-5 real nodes under madsim, the full fault schedule, then the canaries"
MADSIM_TEST_SEED=1 ci/sim.sh "${SIM_SEEDS:-200}"
step "simulation determinism: one seed run twice"
MADSIM_TEST_CHECK_DETERMINISM=1 MADSIM_TEST_SEED=42 ci/sim.sh 1

step "fuzz: every cargo-fuzz target for FUZZ_SECS=${FUZZ_SECS:-15}s from the committed seed corpus (ci/fuzz.sh)"
ci/fuzz.sh

step "the README's local cluster walk-through (ci/demo.sh)"
ci/demo.sh

step "the image and the Kubernetes validation scenario in Docker (ci/k8s-docker.sh)"
ci/k8s-docker.sh

#!/usr/bin/env bash
# Soak: fresh simulation seeds beyond CI's fixed range, two shards on two cores.
#
# Usage: ci/soak.sh SEEDS [BASE]
#   SEEDS   how many seeds in all (split between the shards)
#   BASE    the first seed; default: taken from the clock (printed first, so a run can be
#           named and repeated). Shard k runs BASE + k*SEEDS/SHARDS onwards.
#   SHARDS=N          parallel shards (default 2, one per core)
#   SIM_PROFILE=test  build as CI's ci/sim.sh does (default here: `sim`, the optimised
#                     profile with every assertion kept; a seed replays the same in both)
#   SIM_TARGET_DIR=D  cargo's target dir for the madsim build (default target/madsim)
#
# Every seed runs to the end even after a failure (SIM_KEEP_GOING=1); each shard's log is
# kept under target/soak/. Exits non-zero if any seed failed, naming each one and the
# command that replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

seeds="${1:?usage: ci/soak.sh SEEDS [BASE]}"
base="${2:-$(( $(date +%s) * 1000 % 1000000000000 ))}"
shards="${SHARDS:-2}"
export SIM_PROFILE="${SIM_PROFILE:-sim}"
[[ $seeds =~ ^[0-9]+$ && $seeds -gt 0 ]] || { echo "SEEDS must be a positive integer, not $seeds" >&2; exit 2; }
[[ $base =~ ^[0-9]+$ ]] || { echo "BASE must be a non-negative integer, not $base" >&2; exit 2; }
echo "soak: $seeds seeds from base $base ($shards shards, profile $SIM_PROFILE)"
echo "soak: repeat with: ci/soak.sh $seeds $base"

logs=target/soak/$base
mkdir -p "$logs"
# Build once and run that very binary in every shard: no shard rebuilds, and an edit to
# the tree while the soak runs changes nothing it tests.
bin=$(RUSTFLAGS="--cfg madsim --cfg tokio_unstable" cargo test --locked -p raftkv-sim --features canaries \
  --target-dir "${SIM_TARGET_DIR:-target/madsim}" --profile "$SIM_PROFILE" --test simulation --no-run \
  --message-format json | grep -o '"executable":"[^"]*"' | tail -n 1 | cut -d'"' -f4)
[[ -x $bin ]] || { echo "soak: no simulation binary was built" >&2; exit 1; }
echo "soak: commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (with uncommitted changes)'), binary $bin"

per_shard=$(( (seeds + shards - 1) / shards ))
pids=()
for (( shard = 0; shard < shards; shard++ )); do
  first=$(( base + shard * per_shard ))
  count=$(( seeds - shard * per_shard < per_shard ? seeds - shard * per_shard : per_shard ))
  (( count > 0 )) || continue
  echo "soak: shard $shard: seeds $first..$(( first + count - 1 )) -> $logs/shard-$shard.log"
  SIM_KEEP_GOING=1 MADSIM_TEST_SEED=$first MADSIM_TEST_NUM=$count \
    "$bin" --exact clusters_survive_the_fault_schedule --nocapture > "$logs/shard-$shard.log" 2>&1 &
  pids+=($!)
done
started=$(date +%s)
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
elapsed=$(( $(date +%s) - started ))

# Seeds of the range only. The seed is printed as the text it was read as: awks such as
# mawk print a number of 12 digits as 7.964e+11, which made every seed one.
passed=$(grep -h '^seed [0-9]*: passed$' "$logs"/shard-*.log | awk -v base="$base" -v seeds="$seeds" \
  '{ text = $2; sub(":", "", text); seed = text + 0 } seed >= base && seed < base + seeds { print text }' \
  | sort -u | wc -l)
failed=$(grep -h 'FAILED: \[' "$logs"/shard-*.log | grep -o '^seed [0-9]*' | sort -u || true)
echo "soak: base $base: $passed of $seeds fresh seeds passed in ${elapsed}s"
if [[ -n $failed ]]; then
  echo "soak: FAILED seeds (replay each with MADSIM_TEST_SEED=<seed> ci/sim.sh 1):"
  echo "$failed" | sed 's/^/  /'
  status=1
elif (( status != 0 )); then
  echo "soak: a shard failed without a failing seed (a build error or a panic); see $logs"
  tail -n 20 "$logs"/shard-*.log
fi
exit "$status"

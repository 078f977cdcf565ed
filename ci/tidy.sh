#!/usr/bin/env bash
# Keeps the raft crate sans-IO and deterministic: no clock, no I/O, no threads, no
# async, no entropy, no randomly-seeded hash maps, and no dependency beyond the ones the
# design allows. Usage: ci/tidy.sh [crate_dir]   (default: raft)
#                       ci/tidy.sh --self-test   (proves the check fails on bad code)
set -euo pipefail

# Each pattern is a way for time, I/O, threads or entropy to leak in. HashMap/HashSet
# iterate in a random order per process (RandomState), which breaks determinism.
banned_patterns=(
  'std::time' '\bInstant\b' 'SystemTime' 'std::thread' 'std::fs' 'std::net' 'std::io'
  'std::process' 'std::env' '\btokio\b' '\bmio\b' '\basync\b' '\.await\b'
  'thread_rng' 'rand::' 'getrandom' 'OsRng' 'RandomState' '\bHashMap\b' '\bHashSet\b'
)
# Dependencies the raft crate may have (ARCHITECTURE.md): serde, optional, for the wire;
# tracing for logs (it performs no I/O itself).
allowed_dependencies='^(serde|tracing)$'

check_crate() {
  local crate_dir=$1 failures=0
  local pattern hits
  for pattern in "${banned_patterns[@]}"; do
    # Comment lines may name what they avoid.
    hits=$(grep -rnE "$pattern" "$crate_dir/src" --include='*.rs' | grep -vE '^[^:]+:[0-9]+:\s*//' || true)
    if [[ -n $hits ]]; then
      echo "tidy: $crate_dir/src uses '$pattern' (time, I/O, threads or entropy):" >&2
      echo "$hits" | sed 's/^/  /' >&2
      failures=$((failures + 1))
    fi
  done
  local dependencies
  dependencies=$(awk '/^\[dependencies\]/{on=1; next} /^\[/{on=0} on && /^[a-zA-Z0-9_-]+/ {sub(/[ .=].*/, ""); print}' \
    "$crate_dir/Cargo.toml")
  local dependency
  for dependency in $dependencies; do
    if ! [[ $dependency =~ $allowed_dependencies ]]; then
      echo "tidy: $crate_dir depends on '$dependency'; the raft crate may depend only on serde and tracing" >&2
      failures=$((failures + 1))
    fi
  done
  return $((failures > 0))
}

self_test() {
  local scratch
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' RETURN
  mkdir -p "$scratch/good/src" "$scratch/bad_code/src" "$scratch/bad_dependency/src"
  printf '[package]\nname = "x"\n\n[dependencies]\nserde = "1"\ntracing = "0.1"\n' > "$scratch/good/Cargo.toml"
  printf '// std::time is not used here\npub fn f() -> u64 { 1 }\n' > "$scratch/good/src/lib.rs"
  cp "$scratch/good/Cargo.toml" "$scratch/bad_code/Cargo.toml"
  printf 'pub fn f() -> u64 { std::time::Instant::now(); 1 }\n' > "$scratch/bad_code/src/lib.rs"
  printf '[package]\nname = "x"\n\n[dependencies]\nrand = "0.8"\n' > "$scratch/bad_dependency/Cargo.toml"
  cp "$scratch/good/src/lib.rs" "$scratch/bad_dependency/src/lib.rs"
  check_crate "$scratch/good" || { echo "tidy self-test: clean crate was refused" >&2; return 1; }
  if check_crate "$scratch/bad_code" 2>/dev/null; then
    echo "tidy self-test: std::time went unnoticed" >&2; return 1
  fi
  if check_crate "$scratch/bad_dependency" 2>/dev/null; then
    echo "tidy self-test: a forbidden dependency went unnoticed" >&2; return 1
  fi
  echo "tidy self-test: ok"
}

cd "$(dirname "$0")/.."
if [[ ${1:-} == --self-test ]]; then
  self_test
else
  crate_dir=${1:-raft}
  check_crate "$crate_dir"
  echo "tidy: $crate_dir is sans-IO"
fi

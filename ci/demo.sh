#!/usr/bin/env bash
# The README's first command: builds raftkv-node and raftkv, then runs `raftkv demo`,
# which starts a local three-node cluster on 127.0.0.1 and walks through the
# validation (writes and reads, kill -9 of the leader, failover, restart and catch-up
# from disk). Exits non-zero if any step fails. Extra arguments go to `raftkv demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bins -p raftkv-node -p raftkv-cli
exec target/release/raftkv demo "$@"

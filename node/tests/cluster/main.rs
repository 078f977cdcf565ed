//! Integration tests with real `raftkv-node` processes on 127.0.0.1: crash recovery,
//! acknowledged writes surviving kill -9, catch-up by snapshot, graceful SIGTERM
//! hand-over, refusal of foreign peers and garbage input, and data dir identities. Each test starts its own
//! cluster (ticks of 20 ms) in a temporary directory; every wait is bounded and fails
//! with the tail of each node's log.

#![cfg(not(madsim))]

// The packages are `raftkv-*`; the code calls them by their short names.
extern crate raftkv_node as node;

mod big_snapshot;
mod crashes;
mod identity;
mod membership;
mod refusals;
mod security;
mod sessions;
mod space;
mod support;
mod writers;

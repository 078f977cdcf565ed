//! raftkv's client library: a client that finds the leader, retries until a deadline
//! and makes every write exactly-once with a session (`client`), following changes
//! (`client::Watcher`), backups, and `local_cluster` to run real nodes on this machine
//! (tests, `raftkv demo`, `raftkv bench --local`). The protocol is the `raftkv-wire`
//! crate, re-exported here (`wire`, `frame`, `connection`, `tls`, `backup_file`) so that a
//! user of this library needs no other crate; the `raftkv` CLI is the `raftkv-cli` crate.

pub mod client;
pub mod local_cluster;

/// The protocol's messages (`raftkv_wire`'s root: requests, responses, revisions).
pub use wire;
pub use wire::{backup_file, connection, frame, parse_endpoints, tls, Endpoint, EndpointError};

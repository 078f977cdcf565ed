//! The raft crate's test suite: one binary, a module per rule, all on the seeded
//! cluster harness. Tests cite the paper (Ongaro & Ousterhout 2014) or the thesis
//! (Ongaro 2014) section they check.

// The package is `raftkv-raft`; its code and tests call the crate `raft`.
extern crate raftkv_raft as raft;

mod harness;

mod election;
mod lease_reads;
mod membership;
mod properties;
mod read_index;
mod regressions;
mod replication;
mod snapshot;
mod trailing_window;
mod transfer;

//! Deterministic simulation of whole raftkv clusters under madsim (issue 4): the real
//! node code (driver, transport, client listener, KV state machine) on simulated
//! machines, network and disks, under a seed-derived schedule of crashes, pauses,
//! partitions and latency spikes, while clients record a history. The checkers: a
//! per-key linearizability checker over the history ([`linearizability`]) and the Raft
//! invariants over the nodes' messages and disks ([`invariants`]).
//!
//! Everything that needs the simulated runtime is `cfg(madsim)`; the checkers, the
//! simulated store and the parameters build and are unit-tested everywhere.

#[cfg(madsim)]
pub mod cluster;
pub mod history;
pub mod incarnations;
pub mod invariants;
pub mod linearizability;
#[cfg(madsim)]
pub mod nemesis;
pub mod parameters;
#[cfg(madsim)]
pub mod probe;
#[cfg(madsim)]
pub mod runner;
#[cfg(madsim)]
pub mod scenario;
pub mod sim_store;
#[cfg(madsim)]
pub mod tls;
pub mod watch_check;
#[cfg(madsim)]
pub mod watchers;
#[cfg(madsim)]
pub mod workload;

pub use parameters::RunParameters;

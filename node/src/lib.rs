//! The raftkv server: a driver task owns the Raft state machine and loops over peer
//! messages, client requests and ticks; it persists each `Ready` with one sync, sends,
//! applies to the KV state machine and answers clients. The same code runs under tokio
//! in production and under madsim in simulation.

pub mod pod;
pub mod storage;

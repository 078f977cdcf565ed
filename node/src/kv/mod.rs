//! The replicated key/value state machine: the command format in log entries and the
//! deterministic apply function with client sessions.

pub mod command;
pub mod key_cache;
pub mod revisions;
pub mod state_machine;

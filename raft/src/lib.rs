//! raftkv's consensus core: a complete Raft written sans-IO.
//!
//! No async, no I/O, no clock, no global randomness. Time arrives as [`Raft::tick`],
//! messages as [`Raft::step`], requests as [`Raft::propose`], [`Raft::read_index`],
//! [`Raft::transfer_leader`] and [`Raft::propose_conf_change`]; everything the
//! application must do comes back as a [`Ready`], whose documentation states the order
//! in which its parts must be persisted, sent and applied. Two servers built with the
//! same [`Config`] and fed the same inputs produce identical outputs.
//!
//! Implemented: elections with pre-vote and check-quorum (thesis §9.6, §6.2),
//! replication with batching, pipelining and fast back-off (paper §5.3), the commit
//! rule of §5.4.2, ReadIndex reads (thesis §6.4), leadership transfer (thesis §3.10),
//! compaction and chunked snapshots (thesis §5), single-server membership changes with
//! learners (thesis §4). Invariants are asserted after every input in debug builds.

// The canaries exist for the simulation's self-test only; a build that could ship must
// never contain them.
#[cfg(all(feature = "canaries", not(madsim)))]
compile_error!("the `canaries` feature injects known bugs: it is for the madsim simulation only");
#[cfg(feature = "canaries")]
pub mod canary;
mod config;
mod election;
mod error;
mod forwarded_reads;
mod inflights;
mod invariants;
mod leader;
mod lease;
mod log;
mod membership;
mod message;
mod prng;
mod progress;
mod raft;
mod read_index;
mod read_queue;
mod ready;
mod replication;
mod snapshot;
mod status;
mod tick;
mod transfer;
mod types;

pub use crate::config::Config;
pub use crate::error::{CompactError, ConfigError, MalformedMessage, ProposalError, StartError};
pub use crate::log::RaftLog;
pub use crate::message::{
    AppendRequest, AppendResponse, Heartbeat, HeartbeatResponse, Message, MessageBody, ReadIndexRequest,
    ReadIndexResponse, SnapshotChunk, SnapshotChunkResponse, VoteRequest, VoteResponse,
};
pub use crate::prng::Prng;
pub use crate::raft::{Raft, RestartState};
pub use crate::ready::Ready;
pub use crate::replication::Proposal;
pub use crate::snapshot::Compaction;
pub use crate::status::{PeerProgress, Status};
pub use crate::types::{
    ConfChange, ConfState, Entry, EntryPayload, HardState, Index, NodeId, ReadState, Role, Snapshot,
    SnapshotMeta, Term, ENTRY_OVERHEAD_BYTES,
};

//! State that exists only while this server leads: it is created by `become_leader`
//! and dropped with the role, so no stale leader state survives a step-down.

use std::collections::BTreeMap;

use crate::lease::ReadLease;
use crate::progress::Progress;
use crate::read_queue::ReadQueue;
use crate::types::{Index, NodeId};

#[derive(Debug)]
pub struct LeaderState {
    /// One entry per member other than this server.
    pub progress: BTreeMap<NodeId, Progress>,
    pub heartbeat_elapsed_ticks: u32,
    pub transfer: Option<Transfer>,
    /// Index of the latest configuration entry this leader appended; a new change waits
    /// until it commits (thesis §4.1: one change at a time).
    pub pending_conf_index: Index,
    /// Bytes of entries appended by this leader and not yet committed.
    pub uncommitted_bytes: usize,
    pub reads: ReadQueue,
    /// Ticks since this server became leader: the clock of its read lease.
    pub ticks: u64,
    /// With `Config::lease_reads`: how long reads may skip their heartbeat round.
    pub lease: ReadLease,
    /// New entries or a new commit index wait to go out with the next `Ready`, so that
    /// many proposals share one append per follower (batching).
    pub broadcast_pending: bool,
}

/// A leadership transfer in flight (thesis §3.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    pub target: NodeId,
    pub elapsed_ticks: u32,
    pub timeout_now_sent: bool,
}

impl LeaderState {
    pub fn new(
        progress: BTreeMap<NodeId, Progress>,
        max_pending_reads: usize,
        read_lease_ticks: u32,
    ) -> Self {
        Self {
            progress,
            heartbeat_elapsed_ticks: 0,
            transfer: None,
            pending_conf_index: 0,
            uncommitted_bytes: 0,
            reads: ReadQueue::new(max_pending_reads),
            ticks: 0,
            lease: ReadLease::new(read_lease_ticks),
            broadcast_pending: true,
        }
    }
}

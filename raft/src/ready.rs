//! The output contract (etcd raft's `Ready`). The application handles one `Ready` in
//! this order, then calls `advance`; no other input may reach the server in between.
//!
//! 1. Send `messages` (now, or while persisting; they never depend on this `Ready`'s
//!    durability: a leader writes its log in parallel with replication, thesis §10.2.1).
//!    An `InstallSnapshot` message (in either list) leaves with its data filled from
//!    the application's image (`SnapshotChunk::range_to_fill`).
//! 2. Write `snapshot_chunks` to the staged image of their snapshot, in order (a chunk at
//!    offset 0 starts the staged image afresh); no sync is needed, as nothing refers to a
//!    staged image until the persist below installs it.
//!    Then persist, in one durable write (one fsync for the whole batch): `snapshot`
//!    (install the staged image of `snapshot.meta.index`, `total_bytes` long, as the
//!    state machine and the current image, and drop the whole durable log), `entries`
//!    (each one replaces any durable entry at its index and every entry after it), and
//!    `hard_state`.
//! 3. Only then send `persisted_messages`: vote grants and append acknowledgements speak
//!    for durable state (paper Figure 2, thesis §3.8).
//! 4. Apply `committed_entries` in order; they may include entries of this `Ready`.
//! 5. Answer `read_states` (their index is applied by now) and fail `dropped_reads`.
//! 6. Call `advance`.

use crate::message::{Message, SnapshotChunk};
use crate::raft::{Raft, RoleState};
use crate::types::{Entry, HardState, Index, ReadState, Snapshot, Term};

#[derive(Debug, Default)]
pub struct Ready {
    pub messages: Vec<Message>,
    /// Snapshot chunks accepted from the leader, in order, to write to the staged image.
    pub snapshot_chunks: Vec<SnapshotChunk>,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
    pub persisted_messages: Vec<Message>,
    pub committed_entries: Vec<Entry>,
    pub read_states: Vec<ReadState>,
    pub dropped_reads: Vec<u64>,
}

impl Ready {
    /// Whether anything must be written to disk before `persisted_messages` go out.
    pub fn must_persist(&self) -> bool {
        self.snapshot.is_some() || !self.entries.is_empty() || self.hard_state.is_some()
    }
}

/// What a handed-out `Ready` promised, confirmed by `advance`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadyMark {
    last_index: Index,
    last_term: Term,
    applied_to: Index,
    hard_state: HardState,
}

impl Raft {
    /// Whether `ready` would hand out anything.
    pub fn has_ready(&self) -> bool {
        if let RoleState::Leader(leader) = &self.role {
            if leader.broadcast_pending || leader.reads.round_requested() {
                return true;
            }
        }
        let applied_base = self
            .snapshot_to_install
            .as_ref()
            .map_or(self.applied, |s| s.meta.index);
        self.hard_state() != self.handed_out_hard_state
            || self.snapshot_to_install.is_some()
            || !self.snapshot_chunks.is_empty()
            || self.log.unstable_from() <= self.log.last_index()
            || !self.messages.is_empty()
            || !self.persisted_messages.is_empty()
            || self.log.committed() > applied_base
            || !self.dropped_reads.is_empty()
            || self.forwarded_reads.has_unsent()
            || self
                .reads_awaiting_apply
                .iter()
                .any(|read| read.index <= applied_base)
    }

    /// Collects everything the application must do now (see the module docs for the
    /// order). Must be followed by `advance` before any other input.
    pub fn ready(&mut self) -> Ready {
        assert!(self.ready_in_flight.is_none(), "ready() twice without advance()");
        if let RoleState::Leader(leader) = &self.role {
            let (broadcast, read_round) = (leader.broadcast_pending, leader.reads.round_requested());
            if broadcast {
                self.broadcast_append();
            }
            if read_round {
                self.broadcast_heartbeat();
            }
        } else {
            self.send_forwarded_reads();
        }
        let hard_state = self.hard_state();
        let snapshot = self.snapshot_to_install.take();
        let applied_base = snapshot.as_ref().map_or(self.applied, |s| s.meta.index);
        let last_index = self.log.last_index();
        let entries = if self.log.unstable_from() <= last_index {
            self.log.entries(self.log.unstable_from(), last_index, usize::MAX)
        } else {
            Vec::new()
        };
        let committed = self.log.committed();
        let committed_entries = if committed > applied_base {
            self.log
                .entries(applied_base + 1, committed, self.config.max_apply_bytes_per_ready)
        } else {
            Vec::new()
        };
        let applied_to = committed_entries.last().map_or(applied_base, |entry| entry.index);
        let (read_states, still_waiting) = std::mem::take(&mut self.reads_awaiting_apply)
            .into_iter()
            .partition(|read| read.index <= applied_to);
        self.reads_awaiting_apply = still_waiting;
        self.ready_in_flight = Some(ReadyMark {
            last_index,
            last_term: self.log.last_term(),
            applied_to,
            hard_state,
        });
        Ready {
            messages: std::mem::take(&mut self.messages),
            snapshot_chunks: std::mem::take(&mut self.snapshot_chunks),
            snapshot,
            entries,
            hard_state: (hard_state != self.handed_out_hard_state).then_some(hard_state),
            persisted_messages: std::mem::take(&mut self.persisted_messages),
            committed_entries,
            read_states,
            dropped_reads: std::mem::take(&mut self.dropped_reads),
        }
    }

    /// The last `Ready` is handled: its state is durable, its entries applied.
    pub fn advance(&mut self) {
        let mark = self.ready_in_flight.take().expect("advance() without ready()");
        self.handed_out_hard_state = mark.hard_state;
        self.log.persisted_to(mark.last_index, mark.last_term);
        assert!(mark.applied_to >= self.applied, "applied moves back");
        self.applied = mark.applied_to;
        // The leader's own durable log counts towards the quorum only now (etcd raft
        // treats it as a message to itself after persistence).
        self.maybe_commit();
        self.check_invariants();
    }
}

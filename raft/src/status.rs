//! A snapshot of one server's Raft state for operators (`/status`, `raftkv status`).

use crate::progress::ProgressState;
use crate::raft::Raft;
use crate::types::{ConfState, Index, NodeId, Role, Term};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub id: NodeId,
    pub role: Role,
    pub term: Term,
    pub vote: Option<NodeId>,
    pub leader: Option<NodeId>,
    pub commit: Index,
    pub applied: Index,
    pub first_index: Index,
    pub last_index: Index,
    pub snapshot_index: Index,
    pub conf_state: ConfState,
    /// On a leader: every other member's replication progress.
    pub progress: Vec<PeerProgress>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerProgress {
    pub id: NodeId,
    pub match_index: Index,
    pub next_index: Index,
    /// "probe", "replicate" or "snapshot".
    pub state: &'static str,
    pub inflight_appends: usize,
}

impl Raft {
    pub fn status(&self) -> Status {
        let progress = self.leader_state().map_or_else(Vec::new, |leader| {
            leader
                .progress
                .iter()
                .map(|(&id, progress)| PeerProgress {
                    id,
                    match_index: progress.match_index,
                    next_index: progress.next_index,
                    state: match progress.state {
                        ProgressState::Probe => "probe",
                        ProgressState::Replicate => "replicate",
                        ProgressState::Snapshot { .. } => "snapshot",
                    },
                    inflight_appends: progress.inflights.len(),
                })
                .collect()
        });
        Status {
            id: self.config.id,
            role: self.role(),
            term: self.term,
            vote: self.vote,
            leader: self.leader,
            commit: self.log.committed(),
            applied: self.applied,
            first_index: self.log.first_index(),
            last_index: self.log.last_index(),
            snapshot_index: self.snapshot.as_ref().map_or(0, |s| s.meta.index),
            conf_state: self.conf.clone(),
            progress,
        }
    }
}

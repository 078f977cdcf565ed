//! What a leader knows of one follower's log, and how it paces appends to it
//! (etcd raft's Progress: probe, replicate, snapshot).

use crate::inflights::Inflights;
use crate::types::Index;

/// How the leader sends to a follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressState {
    /// Where the follower's log matches is unknown: one append at a time.
    Probe,
    /// The logs match at `match_index`: appends are pipelined up to the window.
    Replicate,
    /// The follower needs entries the leader has purged: the snapshot at `index` is
    /// sent chunk by chunk, `acked_bytes` of it confirmed. `answered` says whether the
    /// follower responded since the last heartbeat; if not, the heartbeat resends.
    Snapshot {
        index: Index,
        acked_bytes: u64,
        answered: bool,
    },
}

#[derive(Debug, Clone)]
pub struct Progress {
    /// Highest index known to match the leader's log (paper Figure 2, matchIndex).
    pub match_index: Index,
    /// Next index to send (paper Figure 2, nextIndex).
    pub next_index: Index,
    pub state: ProgressState,
    /// In `Probe`: an append is outstanding; cleared by a response or a heartbeat.
    pub probe_sent: bool,
    pub inflights: Inflights,
    /// Heard from since the last check-quorum round (thesis §6.2).
    pub recent_active: bool,
    /// Highest ReadIndex round this follower acknowledged (thesis §6.4).
    pub read_round_acked: u64,
}

impl Progress {
    pub fn new(next_index: Index, max_inflight: usize) -> Self {
        assert!(next_index >= 1);
        Self {
            match_index: 0,
            next_index,
            state: ProgressState::Probe,
            probe_sent: false,
            inflights: Inflights::new(max_inflight),
            recent_active: false,
            read_round_acked: 0,
        }
    }

    pub fn become_probe(&mut self) {
        // After a snapshot the follower holds at least the snapshot's index.
        let floor = match self.state {
            ProgressState::Snapshot { index, .. } => index + 1,
            _ => 0,
        };
        self.state = ProgressState::Probe;
        self.next_index = (self.match_index + 1).max(floor);
        self.probe_sent = false;
        self.inflights.clear();
    }

    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next_index = self.match_index + 1;
        self.probe_sent = false;
        self.inflights.clear();
    }

    pub fn become_snapshot(&mut self, snapshot_index: Index) {
        self.state = ProgressState::Snapshot {
            index: snapshot_index,
            acked_bytes: 0,
            answered: true,
        };
        self.probe_sent = false;
        self.inflights.clear();
    }

    /// Whether the leader must hold further appends back.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.is_full(),
            ProgressState::Snapshot { .. } => true,
        }
    }

    /// An append through `last_index` (with or without entries) went out.
    pub fn sent_append(&mut self, last_index: Index, entry_count: usize) {
        match self.state {
            ProgressState::Replicate if entry_count > 0 => {
                self.next_index = last_index + 1;
                self.inflights.add(last_index);
            }
            ProgressState::Replicate => {}
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot { .. } => unreachable!("append sent while snapshotting"),
        }
    }

    /// The follower acknowledged `index`; false if the acknowledgement is stale.
    pub fn maybe_update(&mut self, index: Index) -> bool {
        let updated = index > self.match_index;
        if updated {
            self.match_index = index;
            self.probe_sent = false;
        }
        self.next_index = self.next_index.max(index + 1);
        updated
    }

    /// The follower rejected an append after `rejected_prev_index`; back `next_index`
    /// off to `hint_next` (computed by the caller from the fast back-off hint). False if
    /// the rejection is stale (paper §5.3; etcd raft's MaybeDecrTo).
    pub fn maybe_decrease_to(&mut self, rejected_prev_index: Index, hint_next: Index) -> bool {
        if self.state == ProgressState::Replicate {
            if rejected_prev_index <= self.match_index {
                return false;
            }
            self.next_index = self.match_index + 1;
            return true;
        }
        if self.next_index.checked_sub(1) != Some(rejected_prev_index) {
            return false;
        }
        self.next_index = hint_next.min(rejected_prev_index).max(self.match_index + 1);
        self.probe_sent = false;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicate_pipelines_until_window_is_full() {
        let mut progress = Progress::new(1, 2);
        progress.maybe_update(5);
        progress.become_replicate();
        progress.sent_append(7, 2);
        assert!(!progress.is_paused());
        progress.sent_append(9, 2);
        assert!(progress.is_paused());
        assert_eq!(progress.next_index, 10);
        progress.maybe_update(7);
        progress.inflights.free_to(7);
        assert!(!progress.is_paused());
    }

    #[test]
    fn stale_rejections_are_ignored() {
        let mut progress = Progress::new(11, 4);
        // Probe: only a rejection of the append we sent counts.
        assert!(!progress.maybe_decrease_to(5, 3));
        assert!(progress.maybe_decrease_to(10, 3));
        assert_eq!(progress.next_index, 3);
        progress.maybe_update(4);
        progress.become_replicate();
        assert!(!progress.maybe_decrease_to(4, 1));
        assert!(progress.maybe_decrease_to(6, 1));
        assert_eq!(progress.next_index, 5);
    }
}

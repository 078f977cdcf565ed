//! The leader's queue of ReadIndex requests (thesis §6.4). A read waits until the
//! leader has committed an entry of its term, is then stamped with the commit index and
//! a heartbeat round, and is confirmed once a quorum acknowledged that round.

use std::collections::VecDeque;

use crate::types::{Index, NodeId};

/// Who asked for a read: the local application, or a follower that forwarded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOrigin {
    Local,
    Forwarded(NodeId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingRead {
    pub context: u64,
    pub origin: ReadOrigin,
    pub index: Index,
    pub round: u64,
}

#[derive(Debug)]
pub struct ReadQueue {
    /// Reads that arrived before an entry of this term committed (thesis §6.4 step 1).
    awaiting_term_commit: Vec<(u64, ReadOrigin)>,
    /// Stamped reads, in round order.
    stamped: VecDeque<PendingRead>,
    /// The last round sent out in heartbeats.
    sent_round: u64,
    /// Some stamped read waits for round `sent_round + 1` to go out.
    round_requested: bool,
    max_pending: usize,
}

impl ReadQueue {
    pub fn new(max_pending: usize) -> Self {
        assert!(max_pending > 0);
        Self {
            awaiting_term_commit: Vec::new(),
            stamped: VecDeque::new(),
            sent_round: 0,
            round_requested: false,
            max_pending,
        }
    }

    pub fn len(&self) -> usize {
        self.awaiting_term_commit.len() + self.stamped.len()
    }

    pub fn is_full(&self) -> bool {
        self.len() >= self.max_pending
    }

    pub fn sent_round(&self) -> u64 {
        self.sent_round
    }

    pub fn round_requested(&self) -> bool {
        self.round_requested
    }

    pub fn defer_until_term_commit(&mut self, context: u64, origin: ReadOrigin) {
        assert!(!self.is_full());
        self.awaiting_term_commit.push((context, origin));
    }

    /// Stamps a read with `commit_index` for the next heartbeat round.
    pub fn stamp(&mut self, context: u64, origin: ReadOrigin, commit_index: Index) {
        assert!(self.len() <= self.max_pending);
        self.round_requested = true;
        self.stamped.push_back(PendingRead {
            context,
            origin,
            index: commit_index,
            round: self.sent_round + 1,
        });
    }

    /// Stamps every read that waited for the term's first commit.
    pub fn stamp_deferred(&mut self, commit_index: Index) {
        for (context, origin) in std::mem::take(&mut self.awaiting_term_commit) {
            self.stamp(context, origin, commit_index);
        }
    }

    /// Has the next heartbeat start a round though no read waits (a read lease renews
    /// itself with every heartbeat).
    pub fn request_round(&mut self) {
        self.round_requested = true;
    }

    /// Starts the next round if a read needs it; returns the round heartbeats carry.
    pub fn start_round(&mut self) -> u64 {
        if self.round_requested {
            self.sent_round += 1;
            self.round_requested = false;
        }
        self.sent_round
    }

    /// Removes and returns the reads whose round a quorum has acknowledged.
    pub fn confirm_through(&mut self, quorum_round: u64) -> Vec<PendingRead> {
        assert!(quorum_round <= self.sent_round, "acknowledged a round never sent");
        let mut confirmed = Vec::new();
        while self
            .stamped
            .front()
            .is_some_and(|read| read.round <= quorum_round)
        {
            confirmed.extend(self.stamped.pop_front());
        }
        confirmed
    }

    /// Everything still waiting, for when leadership ends.
    pub fn drain_all(&mut self) -> Vec<(u64, ReadOrigin)> {
        let mut all = std::mem::take(&mut self.awaiting_term_commit);
        all.extend(self.stamped.drain(..).map(|read| (read.context, read.origin)));
        self.round_requested = false;
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stamped_before_a_round_share_it_and_confirm_in_order() {
        let mut queue = ReadQueue::new(8);
        queue.stamp(1, ReadOrigin::Local, 5);
        queue.stamp(2, ReadOrigin::Forwarded(3), 6);
        assert_eq!(queue.start_round(), 1);
        queue.stamp(3, ReadOrigin::Local, 7);
        assert!(queue.confirm_through(0).is_empty());
        let confirmed = queue.confirm_through(1);
        assert_eq!(
            confirmed.iter().map(|read| read.context).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(queue.start_round(), 2);
        assert_eq!(queue.confirm_through(2).len(), 1);
        assert_eq!(queue.len(), 0);
    }
}

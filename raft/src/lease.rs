//! The leader's read lease (thesis §6.4.1). Every heartbeat round carries a number; once
//! a quorum acknowledged round `r`, no other server can win an election until
//! `election_timeout_ticks_min` after each of them took it (check-quorum makes them
//! ignore candidates meanwhile), so the leader may serve reads at its commit index, with
//! no round of their own, until `read_lease_ticks` after round `r` left.
//!
//! Time is the leader's tick count. The lease is safe only if those ticks keep up with
//! real time: the application delivers overdue ticks before it asks for a read, so a
//! leader that was paused sees its lease run out instead of serving from a stale one.

use std::collections::VecDeque;

/// Rounds kept waiting for a quorum at most. A heartbeat leaves every
/// `heartbeat_interval_ticks` and a round older than the lease gives none, so a few
/// dozen cover any sane configuration; past this, the oldest are dropped (a lease given
/// by a later round only is shorter, never longer).
const ROUNDS_WAITING_MAX: usize = 64;

#[derive(Debug)]
pub struct ReadLease {
    lease_ticks: u64,
    /// Rounds sent and not yet acknowledged by a quorum, oldest first, each with the
    /// leader's tick count when it first left.
    rounds_waiting: VecDeque<(u64, u64)>,
    /// The lease holds while the leader's tick count is below this.
    holds_until_tick: u64,
    /// A leadership transfer told its target to campaign at once: voters grant that
    /// campaign whatever they heard, so this leader's lease is over for its term.
    revoked: bool,
}

impl ReadLease {
    pub fn new(lease_ticks: u32) -> Self {
        Self {
            lease_ticks: u64::from(lease_ticks),
            rounds_waiting: VecDeque::new(),
            holds_until_tick: 0,
            revoked: false,
        }
    }

    /// Round `round` leaves in heartbeats at tick `now_tick`. A round sent again keeps
    /// its first time: an acknowledgement may answer either sending.
    pub fn round_sent(&mut self, round: u64, now_tick: u64) {
        let lease_ticks = self.lease_ticks;
        while self
            .rounds_waiting
            .front()
            .is_some_and(|&(_, sent_tick)| sent_tick + lease_ticks <= now_tick)
        {
            self.rounds_waiting.pop_front();
        }
        if self.rounds_waiting.back().is_some_and(|&(last, _)| last >= round) {
            return;
        }
        if self.rounds_waiting.len() == ROUNDS_WAITING_MAX {
            self.rounds_waiting.pop_front();
        }
        self.rounds_waiting.push_back((round, now_tick));
    }

    /// A quorum, this leader included, acknowledged every round through `round`.
    pub fn quorum_acknowledged(&mut self, round: u64) {
        let mut latest_sent_tick = None;
        while let Some(&(waiting, sent_tick)) = self.rounds_waiting.front() {
            if waiting > round {
                break;
            }
            latest_sent_tick = Some(sent_tick);
            self.rounds_waiting.pop_front();
        }
        if let Some(sent_tick) = latest_sent_tick {
            self.holds_until_tick = self.holds_until_tick.max(sent_tick + self.lease_ticks);
        }
    }

    pub fn revoke(&mut self) {
        self.revoked = true;
    }

    pub fn holds(&self, now_tick: u64) -> bool {
        !self.revoked && now_tick < self.holds_until_tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_runs_from_when_the_acknowledged_round_left() {
        let mut lease = ReadLease::new(10);
        assert!(!lease.holds(0), "no lease before any acknowledgement");
        lease.round_sent(1, 3);
        lease.round_sent(2, 6);
        lease.quorum_acknowledged(1);
        assert!(lease.holds(12) && !lease.holds(13), "round 1 left at tick 3");
        lease.quorum_acknowledged(2);
        assert!(lease.holds(15) && !lease.holds(16), "round 2 left at tick 6");
        lease.quorum_acknowledged(2);
        assert!(!lease.holds(16), "an acknowledgement again extends nothing");
    }

    #[test]
    fn a_round_sent_again_counts_from_its_first_sending() {
        let mut lease = ReadLease::new(10);
        lease.round_sent(1, 2);
        lease.round_sent(1, 8);
        lease.quorum_acknowledged(1);
        assert!(!lease.holds(12));
    }

    #[test]
    fn a_revoked_lease_never_holds_again() {
        let mut lease = ReadLease::new(10);
        lease.round_sent(1, 0);
        lease.quorum_acknowledged(1);
        lease.revoke();
        assert!(!lease.holds(1));
        lease.round_sent(2, 1);
        lease.quorum_acknowledged(2);
        assert!(!lease.holds(2));
    }

    #[test]
    fn rounds_older_than_a_lease_are_dropped_unacknowledged() {
        let mut lease = ReadLease::new(10);
        for round in 1..=200 {
            lease.round_sent(round, round);
        }
        assert!(lease.rounds_waiting.len() <= 10);
        lease.quorum_acknowledged(150);
        assert!(
            !lease.holds(0),
            "round 150 was dropped long ago: no lease from it"
        );
        lease.quorum_acknowledged(195);
        assert!(lease.holds(204) && !lease.holds(205));
    }
}

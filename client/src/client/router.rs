//! Where the next attempt goes: the node believed to be the leader. It starts as the
//! first listed endpoint, follows a redirect's leader address (which may be a name the
//! user never listed, such as a pod's DNS name), and on a failure without a hint moves
//! round-robin through the listed endpoints so every node is eventually asked.
//!
//! Reads may instead be spread over every listed endpoint (`Client::spread_reads`):
//! any node answers a linearizable read, a follower through the leader's ReadIndex
//! (thesis §6.4.1, `raft/src/read_index.rs`), which takes the serving of reads off the
//! leader's single driver thread. An endpoint whose attempt failed is left out of the
//! spread for `SPREAD_SKIP_AFTER_FAILURE`, so a dead node does not cost every third read
//! a failed attempt.

use std::time::Duration;

use tokio::time::Instant;

/// How long an endpoint that failed an attempt is left out of the reads' spread.
pub(crate) const SPREAD_SKIP_AFTER_FAILURE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub(crate) struct Router {
    /// `host:port` addresses as the user listed them, without duplicates; never empty.
    endpoints: Vec<String>,
    /// The address believed to be the leader's.
    target: String,
    /// The listed endpoint `advance` moves to next.
    next_listed: usize,
    /// The listed endpoint the next spread read goes to.
    next_spread: usize,
    /// Per listed endpoint: left out of the spread until then (a failed attempt).
    spread_skip_until: Vec<Option<Instant>>,
}

impl Router {
    pub(crate) fn new(listed: Vec<String>) -> Self {
        assert!(!listed.is_empty(), "the caller checks for an empty endpoint list");
        // A user may list a node twice; a duplicate would make `advance` stay in place.
        let mut endpoints: Vec<String> = Vec::with_capacity(listed.len());
        for address in listed {
            if !endpoints.contains(&address) {
                endpoints.push(address);
            }
        }
        let target = endpoints[0].clone();
        Self {
            next_listed: 1 % endpoints.len(),
            next_spread: 0,
            spread_skip_until: vec![None; endpoints.len()],
            endpoints,
            target,
        }
    }

    /// Where the next spread read goes: the listed endpoints in turn, leaving out those
    /// that failed lately (the leader's address if every one did).
    pub(crate) fn spread_target(&mut self, now: Instant) -> String {
        for _ in 0..self.endpoints.len() {
            let candidate = self.next_spread;
            self.next_spread = (self.next_spread + 1) % self.endpoints.len();
            match self.spread_skip_until[candidate] {
                Some(until) if until > now => continue,
                _ => return self.endpoints[candidate].clone(),
            }
        }
        self.target.clone()
    }

    /// An attempt at `address` failed (no answer, or no leader to answer through):
    /// leave it out of the spread for a while.
    pub(crate) fn spread_failed(&mut self, address: &str, now: Instant) {
        if let Some(position) = self.endpoints.iter().position(|listed| listed == address) {
            self.spread_skip_until[position] = Some(now + SPREAD_SKIP_AFTER_FAILURE);
        }
    }

    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// A node named the leader's client address: go there next.
    pub(crate) fn follow(&mut self, leader_address: String) {
        debug_assert!(!leader_address.is_empty());
        self.target = leader_address;
    }

    /// The target failed and named no leader: try the next listed endpoint that is not
    /// the failed one (unless it is the only one).
    pub(crate) fn advance(&mut self) {
        for _ in 0..self.endpoints.len() {
            let candidate = &self.endpoints[self.next_listed];
            self.next_listed = (self.next_listed + 1) % self.endpoints.len();
            if *candidate != self.target || self.endpoints.len() == 1 {
                self.target = candidate.clone();
                return;
            }
        }
        debug_assert_eq!(
            self.endpoints.len(),
            1,
            "two distinct listed endpoints always allow a move"
        );
    }

    pub(crate) fn endpoints(&self) -> &[String] {
        &self.endpoints
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(addresses: &[&str]) -> Router {
        Router::new(addresses.iter().map(|a| a.to_string()).collect())
    }

    #[test]
    fn advance_cycles_through_every_endpoint_and_skips_the_failed_one() {
        let mut router = router(&["a:1", "b:1", "c:1"]);
        assert_eq!(router.target(), "a:1");
        router.advance();
        assert_eq!(router.target(), "b:1");
        router.advance();
        assert_eq!(router.target(), "c:1");
        router.advance();
        assert_eq!(router.target(), "a:1");
        // After a redirect to c, a failure moves on to a listed endpoint other than c.
        router.follow("c:1".to_string());
        router.advance();
        assert_ne!(router.target(), "c:1");
    }

    #[test]
    fn a_single_endpoint_is_retried_and_hints_may_name_unlisted_addresses() {
        let mut router = router(&["a:1"]);
        router.advance();
        assert_eq!(router.target(), "a:1");
        router.follow("raftkv-2.raftkv:7001".to_string());
        assert_eq!(router.target(), "raftkv-2.raftkv:7001");
        router.advance();
        assert_eq!(router.target(), "a:1");
    }

    #[test]
    fn spread_reads_take_every_endpoint_in_turn_but_skip_a_failed_one_for_a_while() {
        let mut router = router(&["a:1", "b:1", "c:1"]);
        let now = Instant::now();
        let turn: Vec<String> = (0..4).map(|_| router.spread_target(now)).collect();
        assert_eq!(turn, ["a:1", "b:1", "c:1", "a:1"]);
        router.spread_failed("c:1", now);
        let turn: Vec<String> = (0..4).map(|_| router.spread_target(now)).collect();
        assert_eq!(turn, ["b:1", "a:1", "b:1", "a:1"]);
        let later = now + SPREAD_SKIP_AFTER_FAILURE + Duration::from_millis(1);
        let turn: Vec<String> = (0..3).map(|_| router.spread_target(later)).collect();
        assert_eq!(turn, ["b:1", "c:1", "a:1"]);
        // Every endpoint failed: the leader's address (the target) is all that is left.
        for address in ["a:1", "b:1", "c:1"] {
            router.spread_failed(address, later);
        }
        router.follow("d:1".to_string());
        assert_eq!(router.spread_target(later), "d:1");
    }

    #[test]
    fn duplicates_are_listed_once_so_advance_always_moves() {
        let mut router = router(&["a:1", "a:1", "b:1", "a:1"]);
        assert_eq!(router.endpoints(), ["a:1", "b:1"]);
        router.advance();
        assert_eq!(router.target(), "b:1");
        router.advance();
        assert_eq!(router.target(), "a:1");
    }
}

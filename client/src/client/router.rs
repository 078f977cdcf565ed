//! Where the next attempt goes: the node believed to be the leader. It starts as the
//! first listed endpoint, follows a redirect's leader address (which may be a name the
//! user never listed, such as a pod's DNS name), and on a failure without a hint moves
//! round-robin through the listed endpoints so every node is eventually asked.

#[derive(Debug, Clone)]
pub(crate) struct Router {
    /// `host:port` addresses as the user listed them, without duplicates; never empty.
    endpoints: Vec<String>,
    /// The address believed to be the leader's.
    target: String,
    /// The listed endpoint `advance` moves to next.
    next_listed: usize,
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
            endpoints,
            target,
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
    fn duplicates_are_listed_once_so_advance_always_moves() {
        let mut router = router(&["a:1", "a:1", "b:1", "a:1"]);
        assert_eq!(router.endpoints(), ["a:1", "b:1"]);
        router.advance();
        assert_eq!(router.target(), "b:1");
        router.advance();
        assert_eq!(router.target(), "a:1");
    }
}

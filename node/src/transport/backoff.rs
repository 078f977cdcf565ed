//! Reconnect delays: exponential between a minimum and a maximum, with jitter derived from
//! the two node ids and the attempt number instead of a global RNG, so simulations replay
//! exactly while the nodes of a healed partition still spread their reconnects apart.

use std::time::Duration;

/// The delay schedule of one outbound peer connection.
#[derive(Debug, Clone)]
pub(super) struct Backoff {
    delay_min: Duration,
    delay_max: Duration,
    /// Failed attempts since the last successful handshake.
    attempts: u32,
    seed: u64,
}

impl Backoff {
    pub(super) fn new(delay_min: Duration, delay_max: Duration, own_id: u64, peer_id: u64) -> Self {
        assert!(!delay_min.is_zero(), "validated by TransportConfig");
        assert!(delay_min <= delay_max, "validated by TransportConfig");
        Self {
            delay_min,
            delay_max,
            attempts: 0,
            seed: mix(mix(own_id) ^ peer_id),
        }
    }

    /// The delay before the next attempt: the exponential step halved plus a pseudo-random
    /// share of the other half ("equal jitter"), clamped to `[delay_min, delay_max]`.
    pub(super) fn next_delay(&mut self) -> Duration {
        let doublings = self.attempts.min(31);
        self.attempts = self.attempts.saturating_add(1);
        let step = self
            .delay_min
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.delay_max)
            .min(self.delay_max);
        let half = step / 2;
        let fraction_per_mille = mix(self.seed ^ u64::from(self.attempts)) % 1001;
        let jitter = half.mul_f64(fraction_per_mille as f64 / 1000.0);
        let delay = (step - half + jitter).clamp(self.delay_min, self.delay_max);
        debug_assert!(delay >= self.delay_min && delay <= self.delay_max);
        delay
    }

    /// Called after a successful handshake: the next failure starts from the minimum again.
    pub(super) fn reset(&mut self) {
        self.attempts = 0;
    }
}

/// A cheap, well-spread hash of one word: the first output of the raft crate's
/// SplitMix64 seeded with it.
fn mix(value: u64) -> u64 {
    raft::Prng::new(value).next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    #[test]
    fn delays_grow_within_bounds_and_reset() {
        let mut backoff = Backoff::new(MIN, MAX, 1, 2);
        let delays: Vec<Duration> = (0..60).map(|_| backoff.next_delay()).collect();
        assert!(
            delays.iter().all(|delay| (MIN..=MAX).contains(delay)),
            "{delays:?}"
        );
        assert!(
            delays[0] <= MIN * 2,
            "first delay near the minimum: {:?}",
            delays[0]
        );
        assert!(
            delays[59] >= MAX / 2,
            "late delays near the maximum: {:?}",
            delays[59]
        );
        backoff.reset();
        assert!(backoff.next_delay() <= MIN * 2);
    }

    #[test]
    fn jitter_is_deterministic_per_pair_and_differs_between_pairs() {
        let schedule = |own, peer| {
            let mut backoff = Backoff::new(MIN, MAX, own, peer);
            (0..8).map(|_| backoff.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(schedule(1, 2), schedule(1, 2), "replayable");
        assert_ne!(
            schedule(1, 2),
            schedule(2, 1),
            "two directions of a pair spread apart"
        );
        assert_ne!(schedule(1, 2), schedule(1, 3), "peers of one node spread apart");
    }

    #[test]
    fn equal_bounds_give_a_constant_delay() {
        let mut backoff = Backoff::new(MIN, MIN, 4, 5);
        assert!((0..10).all(|_| backoff.next_delay() == MIN));
    }
}
